r"""Rows of the soft permutation by the transposed network in layer groups (numba on CPU).

The transposed network runs, stage by stage, layers with distances :math:`1, 2, 4, \dots`
(:func:`._schedule.slot_plan`). ``q`` consecutive layers of a stage (distances
:math:`2^a .. 2^{a+q-1}`) only mix the :math:`2^q` slots that agree outside bits ``a .. a+q-1``,
so a *group* of up to :data:`GROUP_LAYERS` layers runs chunk by chunk with the chunk in L1
(:func:`._numba.forward_groups`): one pass over the block of rows per group instead of per
layer, and wide blocks of rows (the inner loop of every soft swap). The soft swaps are those of
:mod:`._transposed` in the same rounding (only independent pairs are reordered), so the rows
are bit-identical.

**Support.** The block starts from unit vectors :math:`e_p`; after the layers with bits
``0 .. a-1`` of the first stage, row ``p`` is zero outside the aligned block of :math:`2^a`
slots holding ``p`` (the slot order is the identity until then). A first-stage group therefore
runs only on the aligned blocks of :math:`2^{a+q}` slots that hold one of the block's positions;
the pairs it skips are exact zeros (``0 + w (0 - 0) = 0`` for finite ``w``; with a non-finite
weight every group runs on all slots). In backward the gradient of the skipped pairs' weights
is ``(g_b - g_a) \cdot 0 = 0`` and the gradient of the unit vectors is not needed.

**Backward** (first order, nothing kept from forward but the weights): per block of rows,
checkpoints of the slots at the starts of about :math:`\sqrt{G}` segments of groups, then per
segment in reverse: recompute it keeping the slots at every group start, and run its groups in
reverse (:func:`._numba.backward_groups`: each chunk recomputes its layers from the group
snapshot keeping ``d`` in L1, runs them in reverse over the gradient ``g`` and accumulates
:math:`\partial L / \partial w = -\sum_r (g_b - g_a)\, d`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from ._schedule import slot_plan

#: Layers per group (``2^q x LCH x r`` elements per chunk stay in L1).
GROUP_LAYERS: int = 5
#: Slot sets per chunk for groups with large distances (consecutive low bits, contiguous rows).
LCH: int = 4
#: Elements (``B x m x r``) of one forward block of rows.
GROUP_BLOCK: int = 1 << 21
#: Backward keeps the slots before every group when that leaves blocks of this many rows
#: (else it recomputes from checkpoints at about ``sqrt(G)`` segment starts).
MIN_WIDTH: int = 64
#: Block widths are multiples of this (the kernels' inner loops run over the rows).
LANES: int = 16


@functools.lru_cache(maxsize=64)
def group_plan(m: int, q_max: int) -> dict[str, Any]:
    """Groups of the transposed network for ``m`` (a power of two, at least 2).

    Args:
        m: the number of positions.
        q_max: the most layers per group.

    Returns:
        ``js`` / ``los`` (per layer in run order: distance and lower slot bit), ``t0`` / ``t1``
        (per group: its layers), ``first`` (groups of the first stage) and ``span`` (per group:
        ``2^(a + q)``, the aligned slot blocks it mixes).
    """
    steps, _, _ = slot_plan(m)
    js = np.array([j for j, _ in steps], dtype=np.int64)
    los = np.array([lo for _, lo in steps], dtype=np.int64)
    t0s, t1s = [], []
    t = 0
    while t < len(steps):
        t1 = t + 1
        while t1 < len(steps) and t1 - t < q_max and js[t1] == 2 * js[t1 - 1]:
            t1 += 1
        t0s.append(t)
        t1s.append(t1)
        t = t1
    t0 = np.array(t0s, dtype=np.int64)
    t1 = np.array(t1s, dtype=np.int64)
    stage = m.bit_length() - 1  # layers of the first stage in run order (distances 1 .. m / 2)
    return {
        "js": js,
        "los": los,
        "t0": t0,
        "t1": t1,
        "first": int((t1 <= stage).sum()),
        "span": js[t1 - 1] * 2,
    }


def _ranges(plan: dict[str, Any], pos: torch.Tensor, m: int, exact: bool) -> tuple[Any, Any]:
    """Per group the slot range ``[lo, hi)`` it runs on for a block of rows at ``pos``."""
    groups = plan["t0"].shape[0]
    lo = np.zeros(groups, dtype=np.int64)
    hi = np.full(groups, m, dtype=np.int64)
    if exact and pos.numel():
        p0, p1 = int(pos.min()), int(pos.max())
        for g in range(plan["first"]):
            span = int(plan["span"][g])
            lo[g], hi[g] = (p0 // span) * span, (p1 // span + 1) * span
    return lo, hi


def _width(limit: int, total: int) -> int:
    if total <= limit:
        return max(total, 1)
    r = max(1, limit)
    return r - r % LANES if r >= LANES else 1 << (r.bit_length() - 1)


def _view(store: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous ``shape`` view of the front of ``store`` (buffers reused across blocks of
    rows: no fresh pages per block)."""
    return store[: math.prod(shape)].view(shape)


def _units(pos: torch.Tensor, nb_: int, m: int, store: torch.Tensor) -> torch.Tensor:
    """Slots ``(B, m, r)`` holding the unit vectors ``e_pos``, in ``store``."""
    x = _view(store, nb_, m, pos.shape[0]).zero_()
    x[:, pos, torch.arange(pos.shape[0])] = 1.0
    return x


def rows_forward(
    kernels: Any, asc: torch.Tensor, n: int, w: torch.Tensor, out_slot: torch.Tensor
) -> torch.Tensor:
    """Rows ``asc`` ``(B, R, n)`` from slot-ordered weights ``w`` ``(T, B, m / 2)`` (CPU)."""
    t_, nb_, half = w.shape
    m = 2 * half
    plan = group_plan(m, GROUP_LAYERS)
    exact = bool(torch.isfinite(w).all())
    wn = w.numpy()
    rows = asc.shape[0]
    out = w.new_empty(nb_, rows, n)
    none = np.full(plan["t0"].shape[0], -1, dtype=np.int64)
    dummy = np.empty((1, 1, 1, 1), dtype=wn.dtype)
    chunk = _width(GROUP_BLOCK // (nb_ * m), rows)
    store = w.new_empty(nb_ * m * chunk)
    for a in range(0, rows, chunk):
        pos = asc[a : a + chunk]
        x = _units(pos, nb_, m, store)
        lo, hi = _ranges(plan, pos, m, exact)
        groups = plan["t0"].shape[0]
        kernels.forward_groups(
            x.numpy(), wn, plan["js"], plan["los"], plan["t0"], plan["t1"], lo, hi, 0, groups,
            LCH, dummy, none,
        )  # fmt: skip
        _take_rows(out, a, x, out_slot)
    return out


def _take_rows(out: torch.Tensor, a: int, x: torch.Tensor, out_slot: torch.Tensor) -> None:
    """``out[:, a : a + r] = x[:, out_slot].T`` (2-D transposes: a fast blocked copy)."""
    y = x.index_select(1, out_slot)
    for b in range(x.shape[0]):
        out[b, a : a + x.shape[-1]].copy_(y[b].t())


def rows_backward(
    kernels: Any,
    asc: torch.Tensor,
    w: torch.Tensor,
    out_slot: torch.Tensor,
    grad: torch.Tensor,
    budget: int,
) -> torch.Tensor:
    """Slot-ordered weight gradient ``(T, B, m / 2)`` of :func:`rows_forward` for ``grad``."""
    t_, nb_, half = w.shape
    m = 2 * half
    plan = group_plan(m, GROUP_LAYERS)
    groups = plan["t0"].shape[0]
    exact = bool(torch.isfinite(w).all())
    rows = asc.shape[0]
    # one snapshot per group if that leaves blocks of MIN_WIDTH rows, else ~sqrt(G) segments
    seg = groups
    if budget // max((groups + 1) * nb_ * m, 1) < min(MIN_WIDTH, rows):
        seg = max(1, math.isqrt(max(groups - 1, 0)) + 1)
    starts = list(range(0, groups, seg))
    wn = w.numpy()
    gw = torch.zeros_like(w)
    gwn = gw.numpy()
    chunk = _width(budget // max((len(starts) + seg) * nb_ * m, 1), rows)
    seg_of = np.full(groups, -1, dtype=np.int64)
    for i, g in enumerate(starts[:-1]):
        seg_of[g] = i
    store = w.new_empty(nb_ * m * chunk)
    seg_store = w.new_empty(len(starts) * nb_ * m * chunk)
    snap_store = w.new_empty(seg * nb_ * m * chunk)
    for a in range(0, rows, chunk):
        pos = asc[a : a + chunk]
        x = _units(pos, nb_, m, store)
        r = x.shape[-1]
        lo, hi = _ranges(plan, pos, m, exact)
        segs = _view(seg_store, len(starts), nb_, m, r)
        kernels.forward_groups(
            x.numpy(), wn, plan["js"], plan["los"], plan["t0"], plan["t1"], lo, hi, 0,
            starts[-1], LCH, segs.numpy(), seg_of,
        )  # fmt: skip
        segs[-1] = x
        g = x.zero_()
        part = torch.stack([gb.t().contiguous() for gb in grad[:, a : a + r].to(g.dtype)])
        g.index_copy_(1, out_slot, part)
        snaps = _view(snap_store, seg, nb_, m, r)
        for i in range(len(starts) - 1, -1, -1):
            g0 = starts[i]
            g1 = min(g0 + seg, groups)
            snaps[0] = segs[i]
            kernels.forward_chain(
                snaps.numpy(), wn, plan["js"], plan["los"], plan["t0"], plan["t1"], lo, hi, g0,
                g1 - 1, LCH,
            )  # fmt: skip
            kernels.backward_groups(
                snaps.numpy(), g.numpy(), wn, plan["js"], plan["los"], plan["t0"], plan["t1"],
                lo, hi, g0, g1, LCH, gwn, wn.dtype.type(0),
            )  # fmt: skip
    return gw
