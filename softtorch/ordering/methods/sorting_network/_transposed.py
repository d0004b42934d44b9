r"""Rows of the soft permutation from the transposed network, in place, without an autograd graph.

Row ``i`` of :math:`P = L_T \cdots L_1` is :math:`(P^\top e_i)^\top = (L_1 \cdots L_T e_i)^\top`
(every layer matrix is symmetric), so ``R`` rows cost ``O(R m log^2 m)`` and never an ``m x m``
matrix. Blocks of ``r`` unit vectors ``x`` ``(B, m, r)`` run through the layers in reverse, each
layer an in-place soft swap of slot pairs ``(a, b)`` with weight :math:`\alpha` (slot order of
:func:`._schedule.slot_plan`):

.. math:: d = b - a, \qquad a \leftarrow a + \alpha d, \qquad b \leftarrow b - \alpha d,

which leaves the new upper value in slot ``a`` and the new lower one in slot ``b`` (the values
of :func:`network_transpose` in the same rounding; only the slot map changes). Nothing is kept
but the weights. Backward recomputes every block of rows, in segments of about
:math:`\sqrt{T}` layers (checkpoints of ``x`` at segment starts, then per segment from the last
one: recompute it keeping ``d`` per layer, run its layers in reverse over the incoming gradient
``g``; each layer is its own transpose) and accumulates

.. math:: \frac{\partial L}{\partial \alpha} = \sum_r (g_{\mathrm{hi}'} - g_{\mathrm{lo}'})\, d.

On CPU the layers run in the numba kernels of :mod:`._numba` (one call per block, the block in
cache through all layers); elsewhere, or without numba, in torch ops on strided views.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ....kernels import _kernel_guard
from ._grouped import rows_backward, rows_forward
from ._schedule import slot_plan

HAS_NUMBA: bool = importlib.util.find_spec("numba") is not None
#: ``"auto"`` (numba on CPU when installed), ``"numba"`` (same) or ``"torch"`` (always torch ops).
BACKEND: str = "auto"
#: Elements (``B x m x r``) of one forward block: small enough to stay in cache through all layers.
FORWARD_BLOCK: int = 1 << 19
#: Elements of one backward segment's kept differences (``seg x B x m / 2 x r``), cache-sized.
BACKWARD_BLOCK: int = 1 << 22
#: Rows by the layer groups of :mod:`._grouped` when numba runs (else layer by layer).
GROUPED: bool = True
#: Block widths ``r`` are multiples of this (the kernels' inner loops run over ``r``: a width
#: just below a vector multiple leaves most of the work to the scalar remainder loop).
LANES: int = 16
_FLOATS = (torch.float32, torch.float64)


def _kernels() -> Any:
    """The numba kernels (numba imported on first use)."""
    from . import _numba

    return _numba


def _use_numba(x: torch.Tensor) -> bool:
    return (
        BACKEND in ("auto", "numba")
        and HAS_NUMBA
        and x.device.type == "cpu"
        and x.dtype in _FLOATS
        and not _kernel_guard.broken("sorting network")
    )


def _swap(
    x: torch.Tensor,
    w: torch.Tensor,
    j: int,
    lo: int,
    keep: torch.Tensor | None,
    off: torch.Tensor | None = None,
) -> None:
    """One layer in place on ``x`` ``(B, m, r)``, slot-ordered weights ``w`` ``(B, m / 2)``;
    ``d`` goes to ``keep`` ``(B, m / 2, r)`` when given. Batch rows with ``off`` ``(B,)`` set
    skip the layer: an exact swap of the slot pairs (the slot map assumes every layer swaps)."""
    nb_, m, r = x.shape
    v = x.view(nb_, m // (2 * j), 2, j, r)
    a, b = v[:, :, lo], v[:, :, 1 - lo]
    ww = w.view(nb_, m // (2 * j), j, 1)
    skip = off is not None and bool(off.any())
    if skip:
        sa, sb = a[off].clone(), b[off].clone()
    if keep is None:
        d = b - a
        d.mul_(ww)
    else:
        kv = keep.view(nb_, m // (2 * j), j, r)
        torch.sub(b, a, out=kv)
        d = kv * ww
    a.add_(d)
    b.sub_(d)
    if skip:
        a[off], b[off] = sb, sa


Steps = tuple[tuple[int, int], ...]


def _torch_forward(
    x: torch.Tensor,
    w: torch.Tensor,
    steps: Steps,
    t0: int,
    t1: int,
    keep: torch.Tensor | None,
    first_on: torch.Tensor | None = None,
) -> None:
    for t in range(t0, t1):
        j, lo = steps[t]
        off = None if first_on is None else t < first_on
        _swap(x, w[t], j, lo, None if keep is None else keep[t - t0], off)


def _torch_backward(
    g: torch.Tensor,
    w: torch.Tensor,
    steps: Steps,
    t0: int,
    t1: int,
    keep: torch.Tensor,
    gw: torch.Tensor,
    first_on: torch.Tensor | None = None,
) -> None:
    nb_, m, r = g.shape
    for t in range(t1 - 1, t0 - 1, -1):
        j, lo = steps[t]
        v = g.view(nb_, m // (2 * j), 2, j, r)
        ga, gb = v[:, :, lo], v[:, :, 1 - lo]
        off = None if first_on is None else t < first_on
        skip = off is not None and bool(off.any())
        if skip:
            sa, sb = ga[off].clone(), gb[off].clone()
        dg = gb - ga  # g_lo' - g_hi' (slot a holds the upper output)
        kv = keep[t - t0].view(nb_, m // (2 * j), j, r)
        part = (dg * kv).sum(-1).view(nb_, m // 2)
        if skip:
            part[off] = 0.0
        gw[t] -= part
        dg.mul_(w[t].view(nb_, m // (2 * j), j, 1))
        ga.add_(dg)
        gb.sub_(dg)
        if skip:
            ga[off], gb[off] = sb, sa


@functools.lru_cache(maxsize=64)
def _np_steps(steps: Steps) -> tuple[Any, Any]:
    import numpy as np

    return (
        np.array([j for j, _ in steps], dtype=np.int64),
        np.array([lo for _, lo in steps], dtype=np.int64),
    )


def run_layers(
    x: torch.Tensor,
    w: torch.Tensor,
    steps: Steps,
    t0: int,
    t1: int,
    keep: torch.Tensor | None = None,
) -> None:
    """Layers ``t0..t1-1`` over ``x`` in place (numba on CPU, torch ops otherwise), their
    differences into ``keep`` when given."""
    if not _use_numba(x):
        _torch_forward(x, w, steps, t0, t1, keep)
        return
    js, los = _np_steps(steps)

    def kernel() -> None:
        k = _kernels()
        if keep is None:
            k.forward(x.numpy(), w.numpy(), js, los, t0, t1)
        else:
            k.forward_keep(x.numpy(), w.numpy(), js, los, t0, t1, keep.numpy())

    def fallback() -> None:  # a kernel fails while compiling, before it touches ``x``
        _torch_forward(x, w, steps, t0, t1, keep)

    _kernel_guard.guarded("sorting network", kernel, fallback, "torch ops")


def run_layers_back(
    g: torch.Tensor,
    w: torch.Tensor,
    steps: Steps,
    t0: int,
    t1: int,
    keep: torch.Tensor,
    gw: torch.Tensor,
) -> None:
    """Layers ``t1-1..t0`` in reverse over ``g`` in place, their weight gradient added to ``gw``."""
    if not _use_numba(g):
        _torch_backward(g, w, steps, t0, t1, keep, gw)
        return
    js, los = _np_steps(steps)
    def kernel() -> None:
        gn = g.numpy()
        zero = gn.dtype.type(0)
        _kernels().backward(gn, w.numpy(), js, los, t0, t1, keep.numpy(), gw.numpy(), zero)

    def fallback() -> None:  # a kernel fails while compiling, before it touches ``g``
        _torch_backward(g, w, steps, t0, t1, keep, gw)

    _kernel_guard.guarded("sorting network", kernel, fallback, "torch ops")


def slot_weights(alphas: list[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """The layer weights in run order, ``(*batch, m / 2j, j)`` each, as one slot-ordered tensor
    ``(T, B, m / 2)`` (``index`` of :func:`._schedule.slot_plan`, on their device)."""
    half = index.shape[-1]
    nb_ = alphas[0].numel() // half
    w_log = torch.stack([a.detach().reshape(nb_, half) for a in alphas])
    return torch.gather(w_log, 2, index.unsqueeze(1).expand(-1, nb_, -1)).contiguous()


def logical_grads(gw: torch.Tensor, index: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (run order) gradients ``(B, m / 2)`` in logical order from slot order."""
    nb_ = gw.shape[1]
    return list(torch.gather(gw, 2, index.unsqueeze(1).expand(-1, nb_, -1)).unbind(0))


def block_width(limit: int, total: int) -> int:
    """Columns per block: ``total`` if it is at most ``limit``, else ``limit`` (at least 1)
    rounded down to a multiple of :data:`LANES` (or to a power of two below it)."""
    if total <= limit:
        return max(total, 1)
    r = max(1, limit)
    if r >= LANES:
        return r - r % LANES
    return 1 << (r.bit_length() - 1)


def segment_length(layers: int) -> int:
    """Layers per backward segment: about the square root of the layer count."""
    return max(1, math.isqrt(max(layers - 1, 0)) + 1)


def unit_block(pos: torch.Tensor, nb_: int, m: int, like: torch.Tensor) -> torch.Tensor:
    """Slots ``(B, m, r)`` holding the unit vectors ``e_pos`` (the initial slot order; ``pos``
    ``(r,)`` for every batch row or ``(B, r)``)."""
    r = pos.shape[-1]
    x = like.new_zeros(nb_, m, r)
    dev = like.device
    x[torch.arange(nb_, device=dev).unsqueeze(-1), pos, torch.arange(r, device=dev)] = 1.0
    return x


class _NetworkRows(torch.autograd.Function):
    """Rows ``asc`` of the soft permutation ``(B, R, n)`` from the layer weights (module doc)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        asc: torch.Tensor,
        n: int,
        budget: int,
        first_on: torch.Tensor | None,
        *alphas: torch.Tensor,
    ) -> torch.Tensor:
        m = 2 * alphas[0].shape[-1] * alphas[0].shape[-2]
        nb_ = alphas[0].numel() // (m // 2)
        steps, index, out_slot = slot_plan(m)
        dev = alphas[0].device
        index, out_slot = index.to(dev), out_slot[:n].to(dev)
        w = slot_weights(list(reversed(alphas)), index)
        rows = asc.shape[-1]

        def layered() -> torch.Tensor:
            out = w.new_empty(nb_, rows, n)
            chunk = block_width(FORWARD_BLOCK // (nb_ * m), rows)
            for a in range(0, rows, chunk):
                x = unit_block(asc[..., a : a + chunk], nb_, m, w)
                if first_on is None:
                    run_layers(x, w, steps, 0, len(steps))
                else:
                    _torch_forward(x, w, steps, 0, len(steps), None, first_on)
                out[:, a : a + x.shape[-1]] = x.index_select(1, out_slot).transpose(1, 2)
            return out

        if GROUPED and _use_numba(w) and m > 1:
            out = _kernel_guard.guarded(
                "sorting network",
                lambda: rows_forward(_kernels(), asc, n, w, out_slot, first_on),
                layered,
                "torch ops",
            )
        else:
            out = layered()
        ctx.save_for_backward(asc, w, index, out_slot, first_on)
        ctx.m, ctx.budget = m, budget  # type: ignore[attr-defined]
        ctx.shapes = [a.shape for a in alphas]  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        asc, w, index, out_slot, first_on = ctx.saved_tensors  # type: ignore[attr-defined]
        m: int = ctx.m  # type: ignore[attr-defined]
        budget: int = ctx.budget  # type: ignore[attr-defined]
        if GROUPED and _use_numba(w) and m > 1:
            gw = _kernel_guard.guarded(
                "sorting network",
                lambda: rows_backward(_kernels(), asc, w, out_slot, grad, budget, first_on),
                lambda: _layered_backward(asc, w, out_slot, grad, budget, first_on),
                "torch ops",
            )
        else:
            gw = _layered_backward(asc, w, out_slot, grad, budget, first_on)
        grads = reversed(logical_grads(gw, index))
        shapes = ctx.shapes  # type: ignore[attr-defined]
        return (None, None, None, None, *(g.view(s) for g, s in zip(grads, shapes)))


def _layered_backward(
    asc: torch.Tensor,
    w: torch.Tensor,
    out_slot: torch.Tensor,
    grad: torch.Tensor,
    budget: int,
    first_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """Slot-ordered weight gradient of the rows, layer by layer (segments of layers; torch ops
    when some batch rows switch layers off, ``first_on``)."""
    m = 2 * w.shape[-1]
    steps, _, _ = slot_plan(m)
    t_, nb_, half = w.shape
    rows = asc.shape[-1]
    gw = torch.zeros_like(w)
    seg = segment_length(t_)
    bounds = [(t, min(t + seg, t_)) for t in range(0, t_, seg)]
    per_row = nb_ * (len(bounds) * 2 * half + seg * half)  # snapshots + one segment's d
    limit = min(budget // max(per_row, 1), BACKWARD_BLOCK // (seg * nb_ * half))
    chunk = block_width(limit, rows)
    for a in range(0, rows, chunk):
        x = unit_block(asc[..., a : a + chunk], nb_, m, w)
        r = x.shape[-1]
        snaps = w.new_empty(len(bounds), nb_, m, r)
        for i, (t0, t1) in enumerate(bounds):
            snaps[i] = x
            if i + 1 < len(bounds):
                if first_on is None:
                    run_layers(x, w, steps, t0, t1)
                else:
                    _torch_forward(x, w, steps, t0, t1, None, first_on)
        g = x.zero_()
        g.index_copy_(1, out_slot, grad[:, a : a + r].transpose(1, 2).to(g.dtype))
        keep = w.new_empty(seg, nb_, half, r)
        for i in range(len(bounds) - 1, -1, -1):
            t0, t1 = bounds[i]
            if first_on is None:
                run_layers(snaps[i], w, steps, t0, t1, keep)
                run_layers_back(g, w, steps, t0, t1, keep, gw)
            else:
                _torch_forward(snaps[i], w, steps, t0, t1, keep, first_on)
                _torch_backward(g, w, steps, t0, t1, keep, gw, first_on)
    return gw


def network_rows(
    asc: torch.Tensor,
    n: int,
    alphas: list[torch.Tensor],
    budget: int,
    first_on: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows ``asc`` (ascending positions) of the soft permutation, ``(B, len(asc), n)``.

    First-order gradients flow to ``alphas``; backward keeps at most about ``budget`` elements
    of per-layer differences per block of rows.

    Args:
        asc: the output positions (ascending order) of the rows, a long tensor ``(R,)``.
        n: the number of real (unpadded) entries; columns ``n..m-1`` are dropped.
        alphas: the per-layer weights of :func:`network_forward`, each ``(*batch, m / 2j, j)``.
        budget: elements of kept differences per block of rows in backward.
        first_on: per batch row (``B`` = the weights' batch, flattened) the first layer in run
            order it runs, a long tensor ``(B,)``: rows of shorter masked lists switch off the
            layers of the larger stages (the first ones of the transposed network); with it,
            ``asc`` may hold positions per batch row, ``(B, R)``.
    """
    return _NetworkRows.apply(asc, n, budget, first_on, *alphas)
