r"""Handlers that consume a SoftIndex: selections become expectations under the soft index.

For an index with soft form :math:`P` (shape ``index.shape + (n,)``) selecting along a dim of size
``n``: :math:`\mathrm{out}[\ldots] = \sum_j P[\ldots, j]\, x[\ldots, j, \ldots]`, for ``gather``,
``take_along_dim``, ``index_select``, ``take`` and the indexing forms ``x[idx]``,
``x[..., idx]`` / ``x[:, idx]`` and ``x[rows, idx]`` (integer index tensors before the soft one,
full slices after). Integer or gradient-free ``x`` is handled by
:mod:`softtorch.interception.ops_integer` (the exact values with their distribution).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import canonical_dim
from .context import DECLINE, Ctx
from .tensor import hard_view, is_soft_index, plain


def _usable(x: Any, index: Any) -> bool:
    return is_soft_index(index) and isinstance(x, Tensor) and x.is_floating_point()


def _pair(x: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.promote_types(x.dtype, p.dtype)
    return plain(x).to(dtype), p.to(dtype)


def select_along(x: Tensor, d: int, p: Tensor) -> Tensor:
    """Replace dim ``d`` of ``x`` (size n) by the leading dims of ``p`` (``S + (n,)``)."""
    x, p = _pair(x, p)
    xm = x.movedim(d, 0)
    n = xm.shape[0]
    p2, x2 = p.reshape(-1, n), xm.reshape(n, -1)
    out = p2 @ _finite(x2)
    if _has_nonfinite(x2):  # entries with zero weight never meet inf / nan as 0 * inf
        out = out + torch.where((p2 > 0).unsqueeze(-1) & ~torch.isfinite(x2), x2, 0.0).sum(1)
    out = out.reshape((*p.shape[:-1], *xm.shape[1:]))
    k = p.ndim - 1
    return out.movedim(tuple(range(k)), tuple(range(d, d + k)))


def _along(x: Tensor, d: int, p: Tensor) -> Tensor:
    """``sum_j p[..., j] x[..., j at d, ...]`` with broadcasting (gather / take_along_dim)."""
    x, p = _pair(x, p)
    xm = x.movedim(d, -1).unsqueeze(d)
    out = (_finite(xm) * p).sum(-1)
    if _has_nonfinite(xm):
        out = out + torch.where((p > 0) & ~torch.isfinite(xm), xm, 0.0).sum(-1)
    return out


def _has_nonfinite(x: Tensor) -> bool:
    return torch.compiler.is_compiling() or not bool(torch.isfinite(x).all())


def _finite(x: Tensor) -> Tensor:
    """``x`` with its infinite / NaN entries as 0 (they are added back where selected)."""
    return torch.where(torch.isfinite(x), x, 0.0) if _has_nonfinite(x) else x


def gather(c: Ctx, input: Tensor, dim: int, index: Any, *, sparse_grad: bool = False) -> Any:
    if not _usable(input, index):
        return DECLINE
    d = canonical_dim(dim, input.ndim)
    p = index._sidx
    if p.shape[-1] != input.shape[d] or index.ndim != input.ndim:
        return DECLINE

    def soft() -> Tensor:
        x = input
        for i in range(input.ndim):
            if i != d and index.shape[i] < x.shape[i]:
                x = x.narrow(i, 0, index.shape[i])
        return _along(x, d, p)

    return c.value(soft, lambda: torch.gather(plain(input), dim, hard_view(index)))


def take_along_dim(c: Ctx, input: Tensor, indices: Any, dim: int | None = None) -> Any:
    if not _usable(input, indices):
        return DECLINE
    p = indices._sidx
    if dim is None:
        if p.shape[-1] != input.numel():
            return DECLINE
        soft = lambda: select_along(input.reshape(-1), 0, p.reshape(-1, p.shape[-1]))  # noqa: E731
    else:
        d = canonical_dim(dim, input.ndim)
        if p.shape[-1] != input.shape[d]:
            return DECLINE
        soft = lambda: _along(input, d, p)  # noqa: E731
    return c.value(soft, lambda: torch.take_along_dim(plain(input), hard_view(indices), dim))


def index_select(c: Ctx, input: Tensor, dim: int, index: Any) -> Any:
    if not _usable(input, index) or index.ndim > 1:
        return DECLINE
    d = canonical_dim(dim, input.ndim)
    p = index._sidx
    if p.shape[-1] != input.shape[d]:
        return DECLINE
    return c.value(
        lambda: select_along(input, d, p),
        lambda: torch.index_select(plain(input), dim, hard_view(index)),
    )


def take(c: Ctx, input: Tensor, index: Any) -> Any:
    if not _usable(input, index) or index._sidx.shape[-1] != input.numel():
        return DECLINE
    return c.value(
        lambda: select_along(input.reshape(-1), 0, index._sidx),
        lambda: torch.take(plain(input), hard_view(index)),
    )


def _full(k: Any) -> bool:
    return isinstance(k, slice) and k == slice(None)


def _int_index(k: Any) -> bool:
    if isinstance(k, Tensor):
        return not k.is_floating_point() and k.dtype != torch.bool and not is_soft_index(k)
    return isinstance(k, int) and not isinstance(k, bool)


def getitem(c: Ctx, input: Tensor, key: Any) -> Any:
    items = key if isinstance(key, tuple) else (key,)
    where = [i for i, k in enumerate(items) if is_soft_index(k)]
    if len(where) != 1 or not _usable(input, items[where[0]]):
        return DECLINE
    j = where[0]
    before, after = items[:j], items[j + 1 :]
    p = items[j]._sidx
    if not all(_full(k) for k in after):
        return DECLINE
    if all(_full(k) for k in before) or (len(before) == 1 and before[0] is Ellipsis):
        d = input.ndim - 1 - len(after) if before and before[0] is Ellipsis else j
        if not 0 <= d < input.ndim or p.shape[-1] != input.shape[d]:
            return DECLINE
        soft = lambda: select_along(input, d, p)  # noqa: E731
    elif all(_int_index(k) for k in before) and j < input.ndim:
        n = input.shape[j]
        if p.shape[-1] != n:
            return DECLINE

        def soft() -> Tensor:
            rows = [torch.as_tensor(k, device=input.device) for k in before]
            shape = torch.broadcast_shapes(*(r.shape for r in rows), p.shape[:-1])
            ar = torch.arange(n, device=input.device).reshape(n, *[1] * len(shape))
            picked = input[(*rows, ar)]
            x, w = _pair(picked, p.expand(*shape, n).movedim(-1, 0))
            w = w.reshape(*w.shape, *[1] * (x.ndim - w.ndim))
            return (x * w).sum(0)
    else:
        return DECLINE
    hard_key = tuple(hard_view(k, "bool") for k in items)
    return c.value(soft, lambda: plain(input)[hard_key if isinstance(key, tuple) else hard_key[0]])
