r"""Many rows of the soft permutation at once, by columns: :math:`P e_c` from the input side.

After the first ``s`` stages of the bitonic network (stage ``s`` merges blocks of ``2^s``, its
layers have distances ``2^{s-1}, ..., 1``) the product of the layers so far is block diagonal
with blocks of ``2^s``: column ``c`` of it is zero outside the block of ``2^s`` holding ``c``.
So the columns of :math:`P = L_T \cdots L_1` of a block of ``C`` input positions (``C`` a power
of two, aligned) run stage ``s`` only on the ``max(2^s, C)`` positions of their block:

.. math:: \text{cost} = \sum_s s \cdot \max(2^s, C) \cdot C / 2 \text{ soft swaps per block}

(about ``13 m^2`` for all ``m`` columns of ``m = 2^{14}``, against ``T m^2 / 2 = 52 m^2`` for all
rows by :mod:`._transposed`), and only the ``n`` columns of real entries are needed. The layers
run in place in application order (:func:`._schedule.slot_plan` with ``transposed=False``) with
the kernels of :mod:`._transposed`; backward recomputes each block of columns stage by stage
(checkpoints at stage starts) and runs every stage in reverse over the gradient.
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from ._schedule import layers_cpu, slot_plan
from ._transposed import (
    FORWARD_BLOCK,
    logical_grads,
    run_layers,
    run_layers_back,
    slot_weights,
)


@functools.lru_cache(maxsize=64)
def stages(m: int) -> tuple[tuple[int, int, int], ...]:
    """``(t0, t1, size)`` per stage in application order: layers ``t0..t1-1`` merge blocks of
    ``size`` positions.

    Args:
        m: the number of positions (a power of two).
    """
    out, t0, size = [], 0, 2
    layers = layers_cpu(m)
    while t0 < len(layers):
        t1 = t0 + size.bit_length() - 1
        out.append((t0, t1, size))
        t0, size = t1, size * 2
    return tuple(out)


def column_cost(m: int, n: int) -> int:
    """Soft swaps (times rows of the batch) to compute the ``n`` real columns, block by block."""
    cols = _block(m, 1)
    return sum((t1 - t0) * max(size, cols) // 2 for t0, t1, size in stages(m)) * n


def _block(m: int, nb_: int) -> int:
    """Columns per block: a power of two with ``B x m x C`` about :data:`FORWARD_BLOCK`."""
    c = max(1, FORWARD_BLOCK // max(nb_ * m, 1))
    return min(m, 1 << (c.bit_length() - 1))


def _window(c0: int, cols: int, size: int) -> tuple[int, int]:
    """The positions ``[r0, r0 + span)`` that columns ``c0..`` (block of ``cols``) occupy while a
    stage merges blocks of ``size``."""
    span = max(size, cols)
    return (c0 // span) * span, span


class _NetworkColumns(torch.autograd.Function):
    """Rows ``asc`` of the soft permutation ``(B, R, n)``, computed by columns (module doc)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        asc: torch.Tensor,
        n: int,
        *alphas: torch.Tensor,
    ) -> torch.Tensor:
        m = 2 * alphas[0].shape[-1] * alphas[0].shape[-2]
        nb_ = alphas[0].numel() // (m // 2)
        steps, index, out_slot = slot_plan(m, transposed=False)
        dev = alphas[0].device
        index = index.to(dev)
        rows_slot = out_slot.to(dev)[asc]
        w = slot_weights(list(alphas), index)
        out = w.new_empty(nb_, asc.shape[0], n)
        cols = _block(m, nb_)
        for c0 in range(0, n, cols):
            x = _columns(c0, min(cols, n - c0), nb_, m, w)
            for t0, t1, size in stages(m):
                r0, span = _window(c0, cols, size)
                run_layers(x[:, r0 : r0 + span], w[:, :, r0 // 2 : (r0 + span) // 2], steps, t0, t1)
            out[:, :, c0 : c0 + x.shape[-1]] = x.index_select(1, rows_slot)
        ctx.save_for_backward(w, index, rows_slot)
        ctx.m, ctx.n = m, n  # type: ignore[attr-defined]
        ctx.unique = bool(rows_slot.unique().numel() == rows_slot.numel())  # type: ignore[attr-defined]
        ctx.shapes = [a.shape for a in alphas]  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        w, index, rows_slot = ctx.saved_tensors  # type: ignore[attr-defined]
        m: int = ctx.m  # type: ignore[attr-defined]
        n: int = ctx.n  # type: ignore[attr-defined]
        steps, _, _ = slot_plan(m, transposed=False)
        nb_ = w.shape[1]
        gw = torch.zeros_like(w)
        cols = _block(m, nb_)
        plan = stages(m)
        for c0 in range(0, n, cols):
            x = _columns(c0, min(cols, n - c0), nb_, m, w)
            c = x.shape[-1]
            snaps = []
            for i, (t0, t1, size) in enumerate(plan):
                r0, span = _window(c0, cols, size)
                snaps.append(x[:, r0 : r0 + span].clone())
                if i + 1 < len(plan):
                    run_layers(
                        x[:, r0 : r0 + span], w[:, :, r0 // 2 : (r0 + span) // 2], steps, t0, t1
                    )
            g = x.zero_()
            part = grad[:, :, c0 : c0 + c].to(g.dtype).contiguous()
            if ctx.unique:  # type: ignore[attr-defined]
                g.index_copy_(1, rows_slot, part)
            else:  # repeated rows: their gradients add up
                g.index_add_(1, rows_slot, part)
            for i in range(len(plan) - 1, -1, -1):
                t0, t1, size = plan[i]
                r0, span = _window(c0, cols, size)
                sl = slice(r0 // 2, (r0 + span) // 2)
                keep = w.new_empty(t1 - t0, nb_, span // 2, c)
                run_layers(snaps[i], w[:, :, sl], steps, t0, t1, keep)
                run_layers_back(
                    g[:, r0 : r0 + span], w[:, :, sl], steps, t0, t1, keep, gw[:, :, sl]
                )
        shapes = ctx.shapes  # type: ignore[attr-defined]
        grads = logical_grads(gw, index)
        return (None, None, *(g.view(s) for g, s in zip(grads, shapes)))


def _columns(c0: int, c: int, nb_: int, m: int, like: torch.Tensor) -> torch.Tensor:
    """Slots ``(B, m, c)`` holding the unit vectors ``e_{c0}, ..., e_{c0 + c - 1}``."""
    x = like.new_zeros(nb_, m, c)
    idx = torch.arange(c, device=like.device)
    x[:, c0 + idx, idx] = 1.0
    return x


def network_columns(asc: torch.Tensor, n: int, alphas: list[torch.Tensor]) -> torch.Tensor:
    """Rows ``asc`` (ascending positions) of the soft permutation, ``(B, len(asc), n)``, by
    columns (cheaper than :func:`._transposed.network_rows` when many rows are wanted).

    Args:
        asc: the output positions (ascending order) of the rows, a long tensor ``(R,)``.
        n: the number of real (unpadded) entries: the columns computed.
        alphas: the per-layer weights of ``network_forward``, each ``(*batch, m / 2j, j)``.
    """
    return _NetworkColumns.apply(asc, n, *alphas)
