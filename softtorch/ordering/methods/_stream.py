r"""When the streamed (no ``n x n``) paths of the ``O(n^2)`` methods replace the dense ones.

The streamed paths (:mod:`.softsort._smooth` for SoftSort, :mod:`.neuralsort._smooth` for
NeuralSort) compute the same values as the dense row-block paths, but keep only ``O(n)`` tensors
for autograd (besides a returned soft permutation) and have first-order gradients only. They
are used when all of these hold:

* the mode is ``smooth``, or one of the sparse modes ``c0`` / ``c1`` / ``c2`` where the method
  streams them (SoftSort, :mod:`.softsort._sparse`; NeuralSort's sorted values and ranks,
  :mod:`.neuralsort._sparse`; pass ``modes``);
* the softness is a Python float or a tensor that does not require a gradient;
* eager mode on concrete tensors: not while ``torch.compile`` traces, not under ``torch.func``
  transforms or forward-mode AD (those keep the dense composite, double backward included);
* every score and weight is finite (NaN / inf propagate exactly as in the dense path);
* the problem is large: ``batch * rows * n > STREAM_MIN`` elements (``rows = n`` except for
  ``topk`` / selected rows), the size from which the dense path itself stops keeping an autograd
  graph (:data:`softtorch.simplex.PLAIN_BUDGET`), so small problems keep double backward.

:func:`run_kernel` launches the streamed paths' numba kernels: a ``parallel=True`` variant
(``name + "_parallel"``, taking the thread count last) on torch's intra-op threads when there
are several and the work is large, under :func:`softtorch.kernels._numba_kernels.parallel_guard`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

from ..._checks import forward_ad_active
from ...simplex import PLAIN_BUDGET, is_concrete
from .._base import Softness

#: Problems of more than this many ``batch * n * n`` elements take the streamed path.
STREAM_MIN: int = PLAIN_BUDGET
#: Every mode with a streamed path somewhere (``smooth`` plus the sparse modes).
ALL_MODES: tuple[str, ...] = ("smooth", "c0", "c1", "c2")


def stream_softness(softness: Softness) -> float | None:
    """The softness as a float when the streamed path can use it (no gradient), else None."""
    if isinstance(softness, torch.Tensor):
        if softness.requires_grad or not is_concrete(softness):
            return None
        return float(softness)
    return float(softness)


def use_stream(
    mode: str,
    softness: Softness,
    *tensors: torch.Tensor,
    rows: int | None = None,
    modes: tuple[str, ...] = ("smooth",),
) -> bool:
    """Whether the streamed path applies (see the module docstring).

    Args:
        mode: the ordering mode.
        softness: the softness.
        *tensors: the scores first, then any weights; all ``(..., n)``.
        rows: rows of the result (``n`` when None): the size is ``batch * rows * n``.
        modes: the modes the caller streams (:data:`ALL_MODES` where the sparse ones are too).
    """
    if mode not in modes or stream_softness(softness) is None:
        return False
    if torch.compiler.is_compiling() or forward_ad_active():
        return False
    z = tensors[0]
    n = z.shape[-1]
    batch = z.numel() // max(n, 1)
    if n < 2 or batch * n * (n if rows is None else rows) <= STREAM_MIN:
        return False
    if not all(is_concrete(t) for t in tensors):
        return False
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def run_kernel(mod: ModuleType, name: str, *args: Any, work: int, min_work: int) -> Any:
    """``mod.<name>(*args)``, or ``mod.<name>_parallel(*args, threads)`` on torch's intra-op
    threads (capped by numba's) when torch has several and ``work >= min_work``.

    Args:
        mod: the (numba) kernel module.
        name: the serial kernel's name.
        *args: the kernel's arguments.
        work: the call's size (elements written or read).
        min_work: size from which the parallel variant runs (waking the pool costs more below).
    """
    threads = torch.get_num_threads()
    if threads > 1 and work >= min_work:
        nb = importlib.import_module("numba")
        guard = importlib.import_module("softtorch.kernels._numba_kernels").parallel_guard
        with guard():
            t = min(threads, nb.config.NUMBA_NUM_THREADS)
            nb.set_num_threads(t)
            return getattr(mod, name + "_parallel")(*args, t)
    return getattr(mod, name)(*args)
