r"""Value selection along the last axis with a gradient Inductor cannot reorder.

The backward of ``torch.sort(x).values``, ``torch.topk``, ``torch.max(x, dim)``,
``torch.median(x, dim)``, ``gather``, ``index_select`` and ``torch.quantile`` scatters the
incoming gradient into a zero tensor. Inductor (torch 2.13, CPU backend) can schedule a *reader*
of such a scatter result before the scatter itself: when the CPU backend fuses the reader with a
node of compatible loop ranges it calls ``SchedulerNode.recompute_size_and_body``, which
re-derives the reader's dependencies from its loop body and drops the buffer's mutation rename,
so the reader depends on the zero fill only and may run first. The compiled gradient then
silently lacks that term (for example, the gradient of a hard ``sort`` compiled together with
soft sorts is off by exactly the hard values' gradient).

While ``torch.compile`` traces, and only when the input needs a gradient, the functions here
compute the same values with ``gather`` and put the gradient back with
``softtorch::put_along_last``, a ``torch.library`` custom op: Inductor calls it as an opaque
kernel with a fresh output (no mutated buffer in the graph). In eager mode they are exactly the
torch calls they replace.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "extreme",
    "index_select_last",
    "index_select_rows",
    "median",
    "quantile",
    "sort",
    "topk",
]


@torch.library.custom_op("softtorch::put_along_last", mutates_args=())
def put_along_last(grad: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Adjoint of ``x.gather(-1, idx)`` for ``x`` of last size ``n``: scatter-add ``grad``."""
    out = grad.new_zeros((*grad.shape[:-1], n))
    return out.scatter_add_(-1, idx, grad)


@put_along_last.register_fake
def _put_along_last_fake(grad: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    return grad.new_empty((*grad.shape[:-1], n))


def _put_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[1])


def _put_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
    (idx,) = ctx.saved_tensors
    return grad.gather(-1, idx), None, None


put_along_last.register_autograd(_put_backward, setup_context=_put_setup)


class _Take(torch.autograd.Function):
    """``x.gather(-1, idx)`` whose backward is :func:`put_along_last` (no scatter in the graph)."""

    @staticmethod
    def forward(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.gather(-1, idx)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        x, idx = inputs
        ctx.save_for_backward(idx)
        ctx.n = x.shape[-1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        return put_along_last(grad, idx, ctx.n), None


def _traced(x: torch.Tensor) -> bool:
    """Whether ``torch.compile`` is tracing a selection from ``x`` that needs a gradient."""
    return torch.compiler.is_compiling() and x.requires_grad


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return _Take.apply(x, idx)


def sort(x: torch.Tensor, descending: bool = False, stable: bool = False) -> tuple[Any, Any]:
    """``torch.sort(x, dim=-1, ...)`` as ``(values, indices)``."""
    if not _traced(x):
        res = torch.sort(x, dim=-1, descending=descending, stable=stable)
        return res.values, res.indices
    idx = torch.sort(x.detach(), dim=-1, descending=descending, stable=stable).indices
    return _take(x, idx), idx


def topk(x: torch.Tensor, k: int, largest: bool = True) -> tuple[Any, Any]:
    """``torch.topk(x, k, dim=-1, largest=largest)`` as ``(values, indices)``."""
    if not _traced(x):
        res = torch.topk(x, k, dim=-1, largest=largest)
        return res.values, res.indices
    idx = torch.topk(x.detach(), k, dim=-1, largest=largest).indices
    return _take(x, idx), idx


def extreme(x: torch.Tensor, largest: bool) -> tuple[Any, Any]:
    """``torch.max(x, dim=-1)`` (``torch.min`` unless ``largest``) as ``(values, indices)``."""
    fn = torch.max if largest else torch.min
    if not _traced(x):
        res = fn(x, dim=-1)
        return res.values, res.indices
    idx = fn(x.detach(), dim=-1).indices
    return _take(x, idx.unsqueeze(-1)).squeeze(-1), idx


def median(x: torch.Tensor) -> tuple[Any, Any]:
    """``torch.median(x, dim=-1)`` as ``(values, indices)``."""
    if not _traced(x):
        res = torch.median(x, dim=-1)
        return res.values, res.indices
    idx = torch.median(x.detach(), dim=-1).indices
    return _take(x, idx.unsqueeze(-1)).squeeze(-1), idx


def index_select_last(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x.index_select(-1, positions)`` for 1-D int64 ``positions``."""
    if not _traced(x):
        return x.index_select(-1, positions)
    return _take(x, positions.expand(*x.shape[:-1], positions.shape[0]))


def index_select_rows(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x.index_select(-2, positions)`` for 1-D int64 ``positions`` (rows of a matrix)."""
    if not _traced(x):
        return x.index_select(-2, positions)
    xt = x.transpose(-1, -2)
    return _take(xt, positions.expand(*xt.shape[:-1], positions.shape[0])).transpose(-1, -2)


def quantile(x: torch.Tensor, q: torch.Tensor, interpolation: str) -> torch.Tensor:
    """``torch.quantile(x, q, dim=-1, interpolation=...)`` with the ``q`` axis last, ``(..., m)``.

    While tracing with a gradient: torch's algorithm (sort, positions ``q (n - 1)``, ``lerp`` of
    the neighbours; rows holding a NaN give NaN) on the values of :func:`sort`.
    """
    if not _traced(x) or x.numel() == 0:
        return torch.quantile(x, q, dim=-1, interpolation=interpolation).movedim(0, -1)
    xs, _ = sort(x)
    n = x.shape[-1]
    pos = (q * (n - 1)).expand(*x.shape[:-1], q.shape[0])
    pos = torch.where(xs.isnan().any(-1, keepdim=True), float(n - 1), pos)
    if interpolation in ("lower", "higher", "nearest"):
        fn = {"lower": torch.floor, "higher": torch.ceil, "nearest": torch.round}[interpolation]
        return _take(xs, fn(pos).long())
    lo = pos.floor()
    w = torch.full_like(pos, 0.5) if interpolation == "midpoint" else pos - lo
    return torch.lerp(_take(xs, lo.long()), _take(xs, pos.ceil().long()), w)
