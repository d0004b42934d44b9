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
segment in reverse: the slots before each of its groups by one out-of-place pass
(:func:`._numba.forward_chain`) and its groups in reverse (:func:`._numba.backward_groups`: each
chunk recomputes its layers from the group snapshot keeping ``d`` in L1, runs them in reverse
over the gradient ``g`` and accumulates :math:`\partial L / \partial w = -\sum_r (g_b - g_a)\,
d`). With :data:`SNAPSHOT_BUDGET` set, one out-of-place pass keeps the slots before every group
instead and the whole block runs in one kernel call (:func:`._numba.backward_rows`): one
forward pass less, but about three times the memory traffic (not faster on the test machine).

**Threads.** Blocks of rows are independent: forward and backward deal them round robin to
torch's intra-op thread count of workers (Python threads; the kernels release the GIL), each
with its own buffers and, in backward, its own weight gradient (summed at the end).

**Masked rows.** A batch row may switch off the layers before ``first_on[b]`` in run order
(the larger stages, for a list shorter than the network): the kernels swap those slot pairs
exactly (the slot map assumes every layer swaps) and give their weights no gradient.
"""

from __future__ import annotations

import functools
import math
import threading
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
#: Backward keeps the slots before every group when :data:`SNAPSHOT_BUDGET` leaves blocks of
#: this many rows (else it recomputes from checkpoints at about ``sqrt(G)`` segment starts).
MIN_WIDTH: int = 32
#: Elements of the slots kept before every group in backward (all workers together); ``0``
#: (the default) always takes the two-level checkpoints. On the 2-core test machine the one-pass
#: backward (``1 << 25``: blocks of 64 rows at ``m = 2^14``) was not faster than the two-level
#: one with blocks of 80 rows: the passes over the larger snapshots are bound by memory traffic.
SNAPSHOT_BUDGET: int = 0
#: Workers (threads) for the blocks of rows; ``0``: torch's intra-op thread count.
THREADS: int = 0
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
    masks = np.concatenate(([0], np.bitwise_xor.accumulate(js)))  # slot mask before each layer
    top = js.copy()  # per layer the largest distance of its stage (run order: 1, 2, .., top)
    for t in range(len(js) - 2, -1, -1):
        if js[t + 1] == 2 * js[t]:
            top[t] = top[t + 1]
    return {
        "js": js,
        "los": los,
        "t0": t0,
        "t1": t1,
        "first": int((t1 <= stage).sum()),
        "span": js[t1 - 1] * 2,
        "mask": masks[t0],
        "stage_bits": np.array([int(2 * v).bit_length() - 1 for v in top[t0]], dtype=np.int64),
    }


def dead_blocks(plan: dict[str, Any], n: int, m: int, exact: bool) -> np.ndarray:
    r"""Per group ``(slot mask, stage bits, bound)`` for :func:`._numba._dead`.

    A group of the stage of size :math:`2^K` only mixes slots within aligned blocks of
    :math:`2^K` (the same blocks of logical positions: the slot mask changes only below bit
    ``K`` within the stage). The stages run from large to small, so a block of logical
    positions all ``>= n`` (padding) never mixes with a real position again: its rows are never
    read (forward) and its gradient is exactly zero (backward). Such chunks are skipped when
    every weight is finite (``exact``; else the bound is ``m``: nothing skipped, so non-finite
    values propagate as in the layer-by-layer path).

    Args:
        plan: :func:`group_plan`'s plan.
        n: the real positions.
        m: the network size.
        exact: whether every weight is finite.
    """
    groups = plan["t0"].shape[0]
    out = np.empty((groups, 3), dtype=np.int64)
    out[:, 0] = plan["mask"]
    out[:, 1] = plan["stage_bits"]
    out[:, 2] = n if exact else m
    return out


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


def _pos2d(asc: torch.Tensor, nb_: int) -> np.ndarray:
    """Start slots per batch row ``(B, R)`` (``asc`` ``(R,)`` shared or ``(B, R)``)."""
    pos = asc if asc.dim() == 2 else asc.unsqueeze(0).expand(nb_, -1)
    return np.ascontiguousarray(pos.to(torch.int64).cpu().numpy())


def _first_on(first_on: torch.Tensor | None, nb_: int) -> np.ndarray:
    if first_on is None:
        return np.zeros(nb_, dtype=np.int64)
    return np.ascontiguousarray(first_on.to(torch.int64).cpu().numpy())


def _blocks(rows: int, width: int, threads: int) -> list[np.ndarray]:
    """Blocks of ``width`` rows ``[a0, a1)``, dealt round robin to ``threads`` workers."""
    spans = [(a, min(a + width, rows)) for a in range(0, rows, width)]
    threads = max(1, min(threads, len(spans)))
    return [np.array(spans[t::threads], dtype=np.int64).reshape(-1, 2) for t in range(threads)]


def threads_for(rows: int) -> int:
    """Workers for ``rows`` rows: torch's intra-op thread count (:data:`THREADS` if set)."""
    t = THREADS if THREADS > 0 else torch.get_num_threads()
    return max(1, min(t, rows))


def _run_threads(jobs: list[Any]) -> None:
    """Run the callables in ``jobs`` (one per worker; the kernels release the GIL)."""
    if len(jobs) == 1:
        jobs[0]()
        return
    errors: list[BaseException] = []

    def work(job: Any) -> None:
        try:
            job()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(job,)) for job in jobs[1:]]
    for t in workers:
        t.start()
    work(jobs[0])
    for t in workers:
        t.join()
    if errors:
        raise errors[0]


def rows_forward(
    kernels: Any,
    asc: torch.Tensor,
    n: int,
    w: torch.Tensor,
    out_slot: torch.Tensor,
    first_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows ``asc`` ``(B, R, n)`` from slot-ordered weights ``w`` ``(T, B, m / 2)`` (CPU).

    Args:
        kernels: the :mod:`._numba` module.
        asc: start positions ``(R,)`` (every batch row) or ``(B, R)``.
        n: the real entries (output columns).
        w: the slot-ordered weights.
        out_slot: the slot of every real position after the last layer.
        first_on: per batch row the first layer (run order) it runs, ``(B,)`` (default all).
    """
    t_, nb_, half = w.shape
    m = 2 * half
    plan = group_plan(m, GROUP_LAYERS)
    exact = bool(torch.isfinite(w).all())
    wn = w.numpy()
    rows = asc.shape[-1]
    out = w.new_empty(nb_, rows, n)
    pos, on = _pos2d(asc, nb_), _first_on(first_on, nb_)
    threads = threads_for(rows)
    width = _width(GROUP_BLOCK // (nb_ * m), -(-rows // threads))
    slots = np.ascontiguousarray(out_slot.numpy())
    dead = dead_blocks(plan, n, m, exact)

    def job(blocks: np.ndarray) -> Any:
        def run() -> None:
            buf = np.empty(nb_ * m * width, dtype=wn.dtype)
            kernels.forward_rows(
                out.numpy(), pos, slots, wn, plan["js"], plan["los"], plan["t0"], plan["t1"],
                plan["first"], plan["span"], exact, LCH, on, blocks, buf, dead,
            )  # fmt: skip

        return run

    _run_threads([job(b) for b in _blocks(rows, width, threads)])
    return out


def rows_backward(
    kernels: Any,
    asc: torch.Tensor,
    w: torch.Tensor,
    out_slot: torch.Tensor,
    grad: torch.Tensor,
    budget: int,
    first_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """Slot-ordered weight gradient ``(T, B, m / 2)`` of :func:`rows_forward` for ``grad``.

    With :data:`SNAPSHOT_BUDGET` elements for the slots before every group (blocks of at least
    :data:`MIN_WIDTH` rows per worker) one pass per block (:func:`._numba.backward_rows`), else
    two-level checkpoints within ``budget`` per worker (:func:`_rows_backward_segments`); the
    workers run interleaved blocks of rows, each with its own gradient.

    Args:
        kernels: the :mod:`._numba` module.
        asc: start positions ``(R,)`` or ``(B, R)``.
        w: the slot-ordered weights ``(T, B, m / 2)``.
        out_slot: the slot of every real position after the last layer.
        grad: the gradient of the rows ``(B, R, n)``.
        budget: elements of checkpoints per block in the two-level fallback.
        first_on: per batch row the first layer (run order) it runs, ``(B,)`` (default all).
    """
    t_, nb_, half = w.shape
    m = 2 * half
    plan = group_plan(m, GROUP_LAYERS)
    groups = plan["t0"].shape[0]
    rows = asc.shape[-1]
    per_row = groups * nb_ * m
    least = min(MIN_WIDTH, rows)
    threads = max(1, min(threads_for(rows), SNAPSHOT_BUDGET // max(per_row * least, 1)))
    width = _width(SNAPSHOT_BUDGET // max(per_row * threads, 1), -(-rows // threads))
    if SNAPSHOT_BUDGET <= 0 or width < least:
        return _rows_backward_segments(kernels, asc, w, out_slot, grad, budget, first_on)
    exact = bool(torch.isfinite(w).all())
    wn = w.numpy()
    pos, on = _pos2d(asc, nb_), _first_on(first_on, nb_)
    gn = grad.to(w.dtype).contiguous().numpy()
    slots = np.ascontiguousarray(out_slot.numpy())
    dead = dead_blocks(plan, out_slot.shape[0], m, exact)
    parts = _blocks(rows, width, threads)
    gws = [np.zeros_like(wn) for _ in parts]

    def job(blocks: np.ndarray, gw: np.ndarray) -> Any:
        def run() -> None:
            snaps = np.empty(per_row * width, dtype=wn.dtype)
            g = np.empty(nb_ * m * width, dtype=wn.dtype)
            kernels.backward_rows(
                gn, pos, slots, wn, plan["js"], plan["los"], plan["t0"], plan["t1"],
                plan["first"], plan["span"], exact, LCH, on, blocks, snaps, g, gw,
                wn.dtype.type(0), dead,
            )  # fmt: skip

        return run

    _run_threads([job(b, gw) for b, gw in zip(parts, gws)])
    total = gws[0]
    for extra in gws[1:]:
        total += extra
    return torch.from_numpy(total)


def _rows_backward_segments(
    kernels: Any,
    asc: torch.Tensor,
    w: torch.Tensor,
    out_slot: torch.Tensor,
    grad: torch.Tensor,
    budget: int,
    first_on: torch.Tensor | None,
) -> torch.Tensor:
    r""":func:`rows_backward` within ``budget`` per worker: per block of rows, checkpoints at the
    starts of about :math:`\sqrt{G}` segments of groups, then per segment in reverse the slots
    before its groups by one out-of-place pass and its groups in reverse; the workers on
    interleaved blocks, each with its own weight gradient."""
    t_, nb_, half = w.shape
    m = 2 * half
    plan = group_plan(m, GROUP_LAYERS)
    groups = plan["t0"].shape[0]
    exact = bool(torch.isfinite(w).all())
    rows = asc.shape[-1]
    pos2 = torch.from_numpy(_pos2d(asc, nb_))
    on = _first_on(first_on, nb_)
    seg = max(1, math.isqrt(max(groups - 1, 0)) + 1)
    starts = list(range(0, groups, seg))
    wn = w.numpy()
    threads = threads_for(rows)
    chunk = _width(budget // max((len(starts) + seg) * nb_ * m, 1), -(-rows // threads))
    seg_of = np.full(groups, -1, dtype=np.int64)
    for i, g in enumerate(starts[:-1]):
        seg_of[g] = i
    dead = dead_blocks(plan, out_slot.shape[0], m, exact)
    parts = _blocks(rows, chunk, threads)
    gws = [torch.zeros_like(w) for _ in parts]

    def job(blocks: np.ndarray, gw: torch.Tensor) -> Any:
        def run() -> None:
            # one buffer: checkpoint i at slot i; segment i's chain writes slots i+1 .. i+seg-1
            # (the checkpoints of the later segments, consumed by then): no copies
            gwn = gw.numpy()
            last = len(starts) - 1
            store = w.new_empty((last + seg) * nb_ * m * chunk)
            g_store = w.new_empty(nb_ * m * chunk)
            for a0, a1 in blocks.tolist():
                pos = pos2[:, a0:a1]
                r = a1 - a0
                buf = _view(store, last + seg, nb_, m, r)
                x = buf[last].zero_()
                x[torch.arange(nb_).unsqueeze(-1), pos, torch.arange(r)] = 1.0
                lo, hi = _ranges(plan, pos, m, exact)
                bufn = buf.numpy()
                kernels.forward_groups(
                    bufn[last], wn, plan["js"], plan["los"], plan["t0"], plan["t1"], lo, hi, 0,
                    starts[-1], LCH, bufn, seg_of, on, dead,
                )  # fmt: skip
                g = _view(g_store, nb_, m, r).zero_()
                part = torch.stack([gb.t().contiguous() for gb in grad[:, a0:a1].to(g.dtype)])
                g.index_copy_(1, out_slot, part)
                for i in range(last, -1, -1):
                    g0 = starts[i]
                    g1 = min(g0 + seg, groups)
                    snaps = bufn[i : i + seg]
                    kernels.forward_chain(
                        snaps, wn, plan["js"], plan["los"], plan["t0"], plan["t1"], lo, hi, g0,
                        g1 - 1, LCH, on, dead,
                    )  # fmt: skip
                    kernels.backward_groups(
                        snaps, g.numpy(), wn, plan["js"], plan["los"], plan["t0"], plan["t1"],
                        lo, hi, g0, g1, LCH, gwn, wn.dtype.type(0), on, dead,
                    )  # fmt: skip

        return run

    _run_threads([job(b, gw) for b, gw in zip(parts, gws)])
    total = gws[0]
    for extra in gws[1:]:
        total += extra
    return total
