r"""Numba kernels of the transposed network (see :mod:`._transposed` for the slot layout).

Every kernel works in place on one block of unit vectors ``x`` ``(B, m, r)`` in the dtype of its
arrays (float32 stays float32). Layer ``t`` (distance ``j = js[t]``, lower slot bit
``lo = los[t]``, slot-ordered weights ``w[t]`` ``(B, m / 2)``) maps a pair of slots ``(a, b)`` to

.. math:: d = b - a, \qquad a \leftarrow a + w d, \qquad b \leftarrow b - w d

with the same rounding as the torch fallback (no FMA contraction in the forward kernels). The
backward kernel runs the layers in reverse over the gradient ``g`` (every layer is symmetric)
and accumulates :math:`\partial L / \partial w = -\sum_r (g_b - g_a)\, d` from the kept
differences. Every kernel runs the layers ``t0 .. t1 - 1`` (a segment, see
:mod:`._transposed`). This module imports numba at import time; :mod:`._transposed` imports
it on first use.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


@nb.njit(**_OPTS)
def forward(  # pragma: no cover
    x: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, t0: int, t1: int
) -> None:
    """Layers ``t0..t1-1`` over ``x`` ``(B, m, r)`` in place (weights ``w`` ``(T, B, m / 2)``)."""
    nbatch, m, r = x.shape
    for t in range(t0, t1):
        j = js[t]
        oa = los[t] * j
        ob = (1 - los[t]) * j
        for b in range(nbatch):
            for blk in range(m // (2 * j)):
                for o in range(j):
                    pa = blk * 2 * j + oa + o
                    pb = blk * 2 * j + ob + o
                    wt = w[t, b, blk * j + o]
                    for c in range(r):
                        av = x[b, pa, c]
                        bv = x[b, pb, c]
                        s = (bv - av) * wt
                        x[b, pa, c] = av + s
                        x[b, pb, c] = bv - s


@nb.njit(**_OPTS)
def forward_keep(  # pragma: no cover
    x: np.ndarray,
    w: np.ndarray,
    js: np.ndarray,
    los: np.ndarray,
    t0: int,
    t1: int,
    keep: np.ndarray,
) -> None:
    """:func:`forward` that also writes layer ``t``'s differences ``d`` to ``keep[t - t0]``
    (``keep`` ``(t1 - t0, B, m / 2, r)``)."""
    nbatch, m, r = x.shape
    for t in range(t0, t1):
        j = js[t]
        oa = los[t] * j
        ob = (1 - los[t]) * j
        for b in range(nbatch):
            for blk in range(m // (2 * j)):
                for o in range(j):
                    pa = blk * 2 * j + oa + o
                    pb = blk * 2 * j + ob + o
                    q = blk * j + o
                    wt = w[t, b, q]
                    for c in range(r):
                        av = x[b, pa, c]
                        bv = x[b, pb, c]
                        d = bv - av
                        keep[t - t0, b, q, c] = d
                        s = d * wt
                        x[b, pa, c] = av + s
                        x[b, pb, c] = bv - s


@nb.njit(fastmath={"reassoc"}, **_OPTS)
def backward(  # pragma: no cover
    g: np.ndarray,
    w: np.ndarray,
    js: np.ndarray,
    los: np.ndarray,
    t0: int,
    t1: int,
    keep: np.ndarray,
    gw: np.ndarray,
    zero: float,
) -> None:
    """Layers ``t1-1..t0`` in reverse over the gradient ``g`` ``(B, m, r)`` (in place), adding
    ``-sum_r (g_b - g_a) d`` to ``gw`` ``(T, B, m / 2)`` (sums start from ``zero``, a scalar of
    the arrays' dtype, so float32 sums vectorise in float32)."""
    nbatch, m, r = g.shape
    for t in range(t1 - 1, t0 - 1, -1):
        j = js[t]
        oa = los[t] * j
        ob = (1 - los[t]) * j
        for b in range(nbatch):
            for blk in range(m // (2 * j)):
                for o in range(j):
                    pa = blk * 2 * j + oa + o
                    pb = blk * 2 * j + ob + o
                    q = blk * j + o
                    wt = w[t, b, q]
                    acc = zero
                    for c in range(r):
                        ga = g[b, pa, c]
                        gb = g[b, pb, c]
                        dg = gb - ga
                        acc += dg * keep[t - t0, b, q, c]
                        s = dg * wt
                        g[b, pa, c] = ga + s
                        g[b, pb, c] = gb - s
                    gw[t, b, q] -= acc
