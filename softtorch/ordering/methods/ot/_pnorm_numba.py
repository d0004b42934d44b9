r"""The p-norm plan entries and the row-potential sums shared by the OT numba kernels.

With slacks ``v`` and ``k = kind`` (:mod:`._solver`): the plan entry ``phi(v) = max(v, 0)^k``,
its curvature ``phi'(v) = k max(v, 0)^(k - 1)`` (``1`` for ``k = 1`` where ``v > 0``), and the
sums ``F = sum_j phi(x_j + alpha)``, ``F' = sum_j phi'(x_j + alpha)`` of the monotone Newton
iteration for a row potential (:func:`._dual.row_potentials`). One definition serves the dense
kernels of :mod:`._dual_numba`, the support-only ones of :mod:`._span_numba` and the curvature
runs of :mod:`._runs_numba`; every helper is inlined into its caller (no call overhead).

This module imports numba at import time; the kernel modules import it.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def phi(v: float, kind: int) -> float:
    """``max(v, 0)^kind``."""
    if v <= 0:
        return 0.0
    if kind == 1:
        return v
    if kind == 2:
        return v * v
    return v * v * v


@nb.njit(cache=True, inline="always")
def dphi(v: float, kind: int) -> float:
    """``kind max(v, 0)^(kind - 1)`` (``1`` for ``kind = 1`` and ``v > 0``, else ``0``)."""
    if v <= 0:
        return 0.0
    if kind == 1:
        return 1.0
    if kind == 2:
        return 2.0 * v
    return 3.0 * v * v


@nb.njit(cache=True, inline="always")
def row_terms(v: float, kind: int) -> tuple[float, float]:
    """``(phi(v), phi'(v))`` for ``v > 0``, as the row-potential iteration adds them."""
    if kind == 1:
        return v, 1.0
    if kind == 2:
        return v * v, 2.0 * v
    v2 = v * v
    return v2 * v, 3.0 * v2


@nb.njit(cache=True, inline="always")
def compacted_sums(
    buf: np.ndarray, cnt: int, al: float, kind: int, compact: bool
) -> tuple[float, float, int]:
    """``(F, F', keep)`` over the candidates ``buf[:cnt]`` at the row potential ``al``; with
    ``compact`` the active ones (``buf_t + al > 0``) are moved to ``buf[:keep]`` in order (the
    iterates decrease after the first step, so the active set only shrinks)."""
    F = 0.0
    dF = 0.0
    keep = 0
    for t in range(cnt):
        v = buf[t] + al
        if v > 0:
            q, d = row_terms(v, kind)
            F += q
            dF += d
            if compact:
                buf[keep] = buf[t]
                keep += 1
    return F, dF, keep
