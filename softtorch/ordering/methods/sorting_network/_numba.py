r"""Numba kernels of the transposed network (see :mod:`._transposed` for the slot layout).

Every kernel works in place on one block of unit vectors ``x`` ``(B, m, r)`` in the dtype of its
arrays (float32 stays float32). Layer ``t`` (distance ``j = js[t]``, lower slot bit
``lo = los[t]``, slot-ordered weights ``w[t]`` ``(B, m / 2)``) maps a pair of slots ``(a, b)`` to

.. math:: d = b - a, \qquad a \leftarrow a + w d, \qquad b \leftarrow b - w d

with the same rounding as the torch fallback (no FMA contraction in the forward kernels). The
backward kernel runs the layers in reverse over the gradient ``g`` (every layer is symmetric)
and accumulates :math:`\partial L / \partial w = -\sum_r (g_b - g_a)\, d` from the kept
differences. Every kernel runs the layers ``t0 .. t1 - 1`` (a segment, see
:mod:`._transposed`); the ``*_groups`` / ``forward_chain`` kernels run groups of layers chunk
by chunk in L1 (:mod:`._grouped`). This module imports numba at import time;
:mod:`._transposed` imports it on first use.
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


# ---------------------------------------------------------------- grouped layers (L1-resident)
#
# A group is a run of consecutive layers ``t0 .. t1 - 1`` whose distances are the consecutive
# powers of two ``2^a, ..., 2^(a + q - 1)`` (one stage of the transposed network, in run order).
# Its soft swaps only mix slots that agree outside bits ``a .. a + q - 1``: ``2^q`` slots
# ``base + k 2^a`` (``k < 2^q``), so a group runs chunk by chunk (``lch`` such slot sets with
# consecutive low bits at once, ``2^q x lch x r`` elements in L1) through all its layers. Per
# element the arithmetic is that of :func:`forward` (only the order of independent pairs
# changes), so the results are bit-identical. ``glo[g] .. ghi[g]`` is the slot range a group
# runs on (multiples of ``2^(a + q)``): the support of the unit vectors in the first stage.


@nb.njit(**_OPTS)
def _log2(v: int) -> int:  # pragma: no cover
    a = 0
    while (1 << a) < v:
        a += 1
    return a


@nb.njit(**_OPTS)
def _group_chunk_forward(  # pragma: no cover
    x: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, b: int, t0: int, t1: int,
    base0: int, l0: int, lch: int, keep: np.ndarray, keeping: bool,
) -> None:  # fmt: skip
    """Layers ``t0..t1-1`` over one chunk of a group in place (differences to ``keep``)."""
    r = x.shape[2]
    low = js[t0]
    a = _log2(low)
    half = 1 << (t1 - t0 - 1)
    for t in range(t0, t1):
        lvl = t - t0
        j = js[t]
        lb = a + lvl
        oa = los[t] * j
        ob = (1 - los[t]) * j
        for kk in range(half):
            k = ((kk >> lvl) << (lvl + 1)) | (kk & ((1 << lvl) - 1))
            s0 = base0 + k * low + l0
            wb = ((s0 >> (lb + 1)) << lb) | (s0 & (j - 1))
            for li in range(lch):
                pa = s0 + li + oa
                pb = s0 + li + ob
                wt = w[t, b, wb + li]
                if keeping:
                    for c in range(r):
                        av = x[b, pa, c]
                        bv = x[b, pb, c]
                        d = bv - av
                        keep[lvl, kk, li, c] = d
                        s = d * wt
                        x[b, pa, c] = av + s
                        x[b, pb, c] = bv - s
                else:
                    for c in range(r):
                        av = x[b, pa, c]
                        bv = x[b, pb, c]
                        s = (bv - av) * wt
                        x[b, pa, c] = av + s
                        x[b, pb, c] = bv - s


@nb.njit(**_OPTS)
def forward_groups(  # pragma: no cover
    x: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, gt0: np.ndarray,
    gt1: np.ndarray, glo: np.ndarray, ghi: np.ndarray, g_from: int, g_to: int, lch_max: int,
    snaps: np.ndarray, snap_of: np.ndarray,
) -> None:  # fmt: skip
    """Groups ``g_from..g_to-1`` over ``x`` ``(B, m, r)`` in place; before group ``g``, ``x``
    is copied to ``snaps[snap_of[g]]`` when ``snap_of[g] >= 0``."""
    nbatch, m, r = x.shape
    dummy = np.empty((1, 1, 1, 1), dtype=x.dtype)
    for g in range(g_from, g_to):
        t0, t1 = gt0[g], gt1[g]
        low = js[t0]
        span = low << (t1 - t0)
        lch = min(low, lch_max)
        for b in range(nbatch):
            if snap_of[g] >= 0:
                si = snap_of[g]
                for s in range(m):
                    for c in range(r):
                        snaps[si, b, s, c] = x[b, s, c]
            for base0 in range(glo[g], ghi[g], span):
                for l0 in range(0, low, lch):
                    _group_chunk_forward(x, w, js, los, b, t0, t1, base0, l0, lch, dummy, False)


@nb.njit(**_OPTS)
def forward_chain(  # pragma: no cover
    snaps: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, gt0: np.ndarray,
    gt1: np.ndarray, glo: np.ndarray, ghi: np.ndarray, g_from: int, g_to: int, lch_max: int,
) -> None:  # fmt: skip
    """Groups ``g_from..g_to-1`` out of place: group ``g`` reads ``snaps[g - g_from]``
    ``(B, m, r)`` and writes ``snaps[g - g_from + 1]`` (chunk by chunk: copy, then the layers on
    the copy in L1), so the slots before every group are kept without an extra copy pass."""
    nbatch, m, r = snaps.shape[1], snaps.shape[2], snaps.shape[3]
    dummy = np.empty((1, 1, 1, 1), dtype=snaps.dtype)
    for g in range(g_from, g_to):
        src = snaps[g - g_from]
        dst = snaps[g - g_from + 1]
        t0, t1 = gt0[g], gt1[g]
        q = t1 - t0
        low = js[t0]
        span = low << q
        lch = min(low, lch_max)
        for b in range(nbatch):
            for s in range(0, glo[g]):
                for c in range(r):
                    dst[b, s, c] = src[b, s, c]
            for s in range(ghi[g], m):
                for c in range(r):
                    dst[b, s, c] = src[b, s, c]
            for base0 in range(glo[g], ghi[g], span):
                for l0 in range(0, low, lch):
                    for k in range(1 << q):
                        s0 = base0 + k * low + l0
                        for li in range(lch):
                            for c in range(r):
                                dst[b, s0 + li, c] = src[b, s0 + li, c]
                    _group_chunk_forward(dst, w, js, los, b, t0, t1, base0, l0, lch, dummy, False)


@nb.njit(fastmath={"reassoc"}, **_OPTS)
def _group_chunk_backward(  # pragma: no cover
    g: np.ndarray, keep: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, b: int,
    t0: int, t1: int, base0: int, l0: int, lch: int, gw: np.ndarray, zero: float,
) -> None:  # fmt: skip
    """Layers ``t1-1..t0`` of one chunk in reverse over ``g`` in place, ``-sum_r (g_b - g_a) d``
    into ``gw`` (``d`` from ``keep``; the sums reassociated so they vectorise in the dtype)."""
    r = g.shape[2]
    low = js[t0]
    a = _log2(low)
    half = 1 << (t1 - t0 - 1)
    for t in range(t1 - 1, t0 - 1, -1):
        lvl = t - t0
        j = js[t]
        lb = a + lvl
        oa = los[t] * j
        ob = (1 - los[t]) * j
        for kk in range(half):
            k = ((kk >> lvl) << (lvl + 1)) | (kk & ((1 << lvl) - 1))
            s0 = base0 + k * low + l0
            wb = ((s0 >> (lb + 1)) << lb) | (s0 & (j - 1))
            for li in range(lch):
                pa = s0 + li + oa
                pb = s0 + li + ob
                wt = w[t, b, wb + li]
                acc = zero
                for c in range(r):
                    ga = g[b, pa, c]
                    gb = g[b, pb, c]
                    dg = gb - ga
                    acc += dg * keep[lvl, kk, li, c]
                    s = dg * wt
                    g[b, pa, c] = ga + s
                    g[b, pb, c] = gb - s
                gw[t, b, wb + li] -= acc


@nb.njit(**_OPTS)
def backward_groups(  # pragma: no cover
    snaps: np.ndarray, g: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray,
    gt0: np.ndarray, gt1: np.ndarray, glo: np.ndarray, ghi: np.ndarray, g_from: int, g_to: int,
    lch_max: int, gw: np.ndarray, zero: float,
) -> None:  # fmt: skip
    """Groups ``g_to-1..g_from`` in reverse over the gradient ``g`` ``(B, m, r)`` in place.

    ``snaps[g - g_from]`` holds the slots before group ``g``; every chunk recomputes its layers
    from it (consuming it) keeping the differences ``d`` in L1, then runs them in reverse over
    ``g`` and subtracts ``sum_r (g_b - g_a) d`` from ``gw``. ``zero`` is a scalar of the arrays'
    dtype (float32 sums stay float32).
    """
    nbatch, m, r = g.shape
    qmax = 1
    for gg in range(g_from, g_to):
        qmax = max(qmax, gt1[gg] - gt0[gg])
    keep = np.empty((qmax, 1 << (qmax - 1), lch_max, r), dtype=g.dtype)
    for gi in range(g_to - 1, g_from - 1, -1):
        t0, t1 = gt0[gi], gt1[gi]
        low = js[t0]
        span = low << (t1 - t0)
        lch = min(low, lch_max)
        xs = snaps[gi - g_from]
        for b in range(nbatch):
            for base0 in range(glo[gi], ghi[gi], span):
                for l0 in range(0, low, lch):
                    _group_chunk_forward(xs, w, js, los, b, t0, t1, base0, l0, lch, keep, True)
                    _group_chunk_backward(
                        g, keep, w, js, los, b, t0, t1, base0, l0, lch, gw, zero
                    )
