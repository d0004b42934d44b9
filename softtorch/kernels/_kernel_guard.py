"""Numba kernel families that fail to compile fall back to a working path, with one warning.

numba compiles a kernel on its first call (per argument types). A compiler bug on some Python /
numba combination (e.g. ``AssertionError: unexpected cycle in lookup()`` from the parfor pass)
must never take the user's call down: :func:`guarded` runs a kernel family's call and, if it
raises while the family has not yet run successfully (or raises a numba error or an
``AssertionError`` at any time), marks the family broken, warns once (``RuntimeWarning``) and
returns the fallback's result; later calls of a broken family go straight to the fallback.

Families (each module names its own and its fallback): ``"radix argsort"`` (numpy's stable
``argsort``), ``"PAV"`` (the torch PAV), ``"fused sort"`` / ``"fused rank"`` (the composite path:
standardize, PAV, inverse map) of fast_soft_sort; ``"neuralsort sums"``, ``"softsort rows"`` and
the c-mode window kernels of the streamed softsort / neuralsort paths (torch row blocks);
``"sorting network"`` (torch ops); the OT families (semi-dual, banded curvature, plan, best anchor:
the torch solver; ``"OT plan write"`` / ``"OT plan sums"`` of the fused entropic plan: torch row
blocks). This module imports nothing from numba at import time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Families whose kernels failed (every later call takes the fallback).
_BROKEN: set[str] = set()
#: Families whose kernels ran at least once.
_OK: set[str] = set()
_LOCK = threading.Lock()


def _is_compile_error(err: BaseException) -> bool:
    """A numba error (typing, lowering, unsupported feature) or a compiler assertion."""
    if isinstance(err, AssertionError):
        return True
    try:
        from numba.core.errors import NumbaError
    except Exception:  # noqa: BLE001  (numba missing or broken: any failure is a compile error)
        return True
    return isinstance(err, NumbaError)


def broken(family: str) -> bool:
    """Whether the kernels of ``family`` failed before (the caller should take its fallback)."""
    return family in _BROKEN


def mark_broken(family: str, err: BaseException, fallback: str) -> None:
    """Record that ``family`` failed with ``err`` and warn once."""
    with _LOCK:
        first = family not in _BROKEN
        _BROKEN.add(family)
    if first:
        warnings.warn(
            f"softtorch: the numba {family} kernel failed to compile or run "
            f"({type(err).__name__}: {err}); using {fallback} from now on (same results, "
            "slower). Please report this with your Python and numba versions.",
            RuntimeWarning,
            stacklevel=3,
        )


def guarded(family: str, kernel: Callable[[], T], fallback: Callable[[], T], what: str) -> T:
    """``kernel()``, or ``fallback()`` if the family is broken or the kernel fails to compile.

    Args:
        family: the kernel family (one warning per family and process).
        kernel: runs the numba kernel (compiling it on first use).
        fallback: computes the same result without the kernel.
        what: the fallback's name for the warning.
    """
    if family in _BROKEN:
        return fallback()
    try:
        out = kernel()
    except Exception as err:  # noqa: BLE001
        if family in _OK and not _is_compile_error(err):
            raise
        mark_broken(family, err, what)
        return fallback()
    _OK.add(family)
    return out
