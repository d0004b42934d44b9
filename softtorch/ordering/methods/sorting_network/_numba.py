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
by chunk in L1 (:mod:`._grouped`), skipping the chunks of padding blocks that never reach a real
position (:func:`_dead`) and swapping exactly the slots of layers a masked batch row switches
off (``first_on``); ``forward_rows`` / ``backward_rows`` run whole blocks of rows per call (one
call per worker thread). This module imports numba at import time; :mod:`._transposed` imports
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
    base0: int, l0: int, lch: int, keep: np.ndarray, keeping: bool, on0: int,
) -> None:  # fmt: skip
    """Layers ``t0..t1-1`` over one chunk of a group in place (differences to ``keep``); layers
    ``t < on0`` are switched off for this batch row (an exact swap of the two slots: the slot
    map assumes every layer swaps, so the logical positions keep their values)."""
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
                if t < on0:
                    for c in range(r):
                        av = x[b, pa, c]
                        x[b, pa, c] = x[b, pb, c]
                        x[b, pb, c] = av
                elif keeping:
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
def _dead(dead: np.ndarray, g: int, base0: int) -> bool:  # pragma: no cover
    """Whether the chunk at slot ``base0`` of group ``g`` lies in a stage block of logical
    positions that are all ``>= dead[g, 2]`` (``dead[g]``: slot mask, stage bits, bound)."""
    sh = dead[g, 1]
    return ((base0 ^ dead[g, 0]) >> sh) << sh >= dead[g, 2]


@nb.njit(**_OPTS)
def forward_groups(  # pragma: no cover
    x: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, gt0: np.ndarray,
    gt1: np.ndarray, glo: np.ndarray, ghi: np.ndarray, g_from: int, g_to: int, lch_max: int,
    snaps: np.ndarray, snap_of: np.ndarray, first_on: np.ndarray, dead: np.ndarray,
) -> None:  # fmt: skip
    """Groups ``g_from..g_to-1`` over ``x`` ``(B, m, r)`` in place; before group ``g``, ``x``
    is copied to ``snaps[snap_of[g]]`` when ``snap_of[g] >= 0``; chunks in dead blocks
    (:func:`_dead`) are skipped."""
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
                if _dead(dead, g, base0):
                    continue
                for l0 in range(0, low, lch):
                    _group_chunk_forward(
                        x, w, js, los, b, t0, t1, base0, l0, lch, dummy, False, first_on[b]
                    )


@nb.njit(**_OPTS)
def forward_chain(  # pragma: no cover
    snaps: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, gt0: np.ndarray,
    gt1: np.ndarray, glo: np.ndarray, ghi: np.ndarray, g_from: int, g_to: int, lch_max: int,
    first_on: np.ndarray, dead: np.ndarray,
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
                if _dead(dead, g, base0):
                    continue
                for l0 in range(0, low, lch):
                    for k in range(1 << q):
                        s0 = base0 + k * low + l0
                        for li in range(lch):
                            for c in range(r):
                                dst[b, s0 + li, c] = src[b, s0 + li, c]
                    _group_chunk_forward(
                        dst, w, js, los, b, t0, t1, base0, l0, lch, dummy, False, first_on[b]
                    )


@nb.njit(fastmath={"reassoc"}, **_OPTS)
def _group_chunk_backward(  # pragma: no cover
    g: np.ndarray, keep: np.ndarray, w: np.ndarray, js: np.ndarray, los: np.ndarray, b: int,
    t0: int, t1: int, base0: int, l0: int, lch: int, gw: np.ndarray, zero: float, on0: int,
) -> None:  # fmt: skip
    """Layers ``t1-1..t0`` of one chunk in reverse over ``g`` in place, ``-sum_r (g_b - g_a) d``
    into ``gw`` (``d`` from ``keep``; the sums reassociated so they vectorise in the dtype);
    switched-off layers (``t < on0``) swap ``g`` and get no weight gradient."""
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
                if t < on0:
                    for c in range(r):
                        ga = g[b, pa, c]
                        g[b, pa, c] = g[b, pb, c]
                        g[b, pb, c] = ga
                    continue
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
    lch_max: int, gw: np.ndarray, zero: float, first_on: np.ndarray, dead: np.ndarray,
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
                if _dead(dead, gi, base0):
                    continue
                for l0 in range(0, low, lch):
                    _group_chunk_forward(
                        xs, w, js, los, b, t0, t1, base0, l0, lch, keep, True, first_on[b]
                    )
                    _group_chunk_backward(
                        g, keep, w, js, los, b, t0, t1, base0, l0, lch, gw, zero, first_on[b]
                    )


# ------------------------------------------------- whole blocks of rows in one call (per thread)
#
# ``forward_rows`` / ``backward_rows`` run a list of blocks of rows ``[a0, a1)`` (``blocks``
# ``(K, 2)``) start to end inside one call, so several Python threads can each run their share
# (the kernels release the GIL) with no per-block work in Python. ``pos`` ``(B, R)`` are the
# rows' start slots per batch row, ``first_on`` ``(B,)`` the first layer (run order) each batch
# row runs (``0``: all; masked rows switch off the layers of the larger stages), ``first`` /
# ``span`` / ``exact`` the support of the first-stage groups (see :mod:`._grouped`).


_TILE = 64  # columns per tile of the transposes between slot order and output rows


@nb.njit(**_OPTS)
def _start_block(  # pragma: no cover
    x: np.ndarray, pos: np.ndarray, a0: int, first: int, span: np.ndarray, exact: bool,
    glo: np.ndarray, ghi: np.ndarray,
) -> None:  # fmt: skip
    """Unit vectors ``e_pos[b, a0 + c]`` into ``x`` ``(B, m, r)`` and the groups' slot ranges."""
    nbatch, m, r = x.shape
    x[:] = 0
    p0, p1 = m, 0
    for b in range(nbatch):
        for c in range(r):
            p = pos[b, a0 + c]
            x[b, p, c] = 1
            p0 = min(p0, p)
            p1 = max(p1, p)
    for gg in range(glo.shape[0]):
        glo[gg], ghi[gg] = 0, m
        if exact and gg < first:
            sp = span[gg]
            glo[gg], ghi[gg] = (p0 // sp) * sp, (p1 // sp + 1) * sp


@nb.njit(**_OPTS)
def forward_rows(  # pragma: no cover
    out: np.ndarray, pos: np.ndarray, out_slot: np.ndarray, w: np.ndarray, js: np.ndarray,
    los: np.ndarray, gt0: np.ndarray, gt1: np.ndarray, first: int, span: np.ndarray,
    exact: bool, lch: int, first_on: np.ndarray, blocks: np.ndarray, buf: np.ndarray,
    dead: np.ndarray,
) -> None:  # fmt: skip
    """Rows ``out[b, a0:a1, :]`` ``(B, R, n)`` of every block (``buf``: scratch of at least
    ``B m r`` elements for the widest block): the groups in place, then the real slots
    ``out_slot`` transposed into ``out``."""
    nbatch, m = w.shape[1], 2 * w.shape[2]
    groups = gt0.shape[0]
    n = out_slot.shape[0]
    glo = np.zeros(groups, np.int64)
    ghi = np.zeros(groups, np.int64)
    none = np.full(groups, -1, np.int64)
    dummy = np.empty((1, 1, 1, 1), dtype=buf.dtype)
    for i in range(blocks.shape[0]):
        a0, a1 = blocks[i, 0], blocks[i, 1]
        r = a1 - a0
        x = buf[: nbatch * m * r].reshape((nbatch, m, r))
        _start_block(x, pos, a0, first, span, exact, glo, ghi)
        forward_groups(
            x, w, js, los, gt0, gt1, glo, ghi, 0, groups, lch, dummy, none, first_on, dead
        )
        for b in range(nbatch):  # tiles of columns: both sides stay in cache
            for c0 in range(0, n, _TILE):
                c1 = min(c0 + _TILE, n)
                for c in range(r):
                    for col in range(c0, c1):
                        out[b, a0 + c, col] = x[b, out_slot[col], c]


@nb.njit(**_OPTS)
def backward_rows(  # pragma: no cover
    grad: np.ndarray, pos: np.ndarray, out_slot: np.ndarray, w: np.ndarray, js: np.ndarray,
    los: np.ndarray, gt0: np.ndarray, gt1: np.ndarray, first: int, span: np.ndarray,
    exact: bool, lch: int, first_on: np.ndarray, blocks: np.ndarray, snap_buf: np.ndarray,
    g_buf: np.ndarray, gw: np.ndarray, zero: float, dead: np.ndarray,
) -> None:  # fmt: skip
    """Weight gradient of :func:`forward_rows` for ``grad`` ``(B, R, n)``, added to ``gw``.

    Per block: the slots before every group (``snap_buf``, ``G B m r`` elements) by one
    out-of-place pass (:func:`forward_chain`), the incoming gradient in slot order (``g_buf``,
    ``B m r``), then the groups in reverse (:func:`backward_groups`).
    """
    nbatch, m = w.shape[1], 2 * w.shape[2]
    groups = gt0.shape[0]
    n = out_slot.shape[0]
    glo = np.zeros(groups, np.int64)
    ghi = np.zeros(groups, np.int64)
    for i in range(blocks.shape[0]):
        a0, a1 = blocks[i, 0], blocks[i, 1]
        r = a1 - a0
        snaps = snap_buf[: groups * nbatch * m * r].reshape((groups, nbatch, m, r))
        _start_block(snaps[0], pos, a0, first, span, exact, glo, ghi)
        forward_chain(
            snaps, w, js, los, gt0, gt1, glo, ghi, 0, groups - 1, lch, first_on, dead
        )
        g = g_buf[: nbatch * m * r].reshape((nbatch, m, r))
        g[:] = 0
        for b in range(nbatch):
            for c0 in range(0, n, _TILE):
                c1 = min(c0 + _TILE, n)
                for c in range(r):
                    for col in range(c0, c1):
                        g[b, out_slot[col], c] = grad[b, a0 + c, col]
        backward_groups(
            snaps, g, w, js, los, gt0, gt1, glo, ghi, 0, groups, lch, gw, zero, first_on, dead
        )
