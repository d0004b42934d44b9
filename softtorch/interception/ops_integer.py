r"""Soft integers in torch code: the dispatch of calls with SoftBool / SoftIndex / SoftInt /
SoftFloat operands, and the consumers of soft integers.

Each call gets torch's exact result (computed on the exact operands) and its relaxation
(:mod:`softtorch.interception.discrete`):

* casts, pointwise ops (tagged ``pointwise`` in torch's op registry), linear reductions and
  shape ops follow the soft-integer algebra;
* ``bincount`` (with ``weights``, ``minlength``), ``scatter_add`` / ``index_add`` /
  ``scatter_reduce(..., "sum")`` of soft integers give soft counts :math:`\sum_i p_i(v)`;
* ``scatter`` / ``x[idx] = v`` through a SoftIndex :math:`P` write :math:`P^\top v`
  (``rank[argsort_idx] = arange(n)`` is the soft rank) at the positions the exact write
  reaches, and :math:`x (1 - P^\top 1) + P^\top v` elsewhere; ``index_put`` likewise, with
  ``accumulate=True`` the soft scatter-add :math:`x + P^\top v`;
* ``gather`` / ``take_along_dim`` / ``take`` / ``index_select`` / ``x[idx]`` of integer or
  gradient-free data through a SoftIndex return torch's exact values with the distribution over
  the gathered values; ``F.embedding`` looked up by a SoftIndex is :math:`P W`;
* ``F.one_hot`` of a soft integer is the exact one-hot (int64) with :math:`P(X = c)`.

Everything else runs on the exact operands (never on soft values truncated to integers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import comparison as cmp
from .._checks import canonical_dim
from ..ordering import ops
from . import discrete as D
from .context import DECLINE, Ctx
from .roles import _INDEX_VIEWS, CASTS, CONVERSIONS, MASKED, STRUCTURAL
from .tensor import SoftTensor, is_discrete, is_soft_index, make, plain, support

T = torch.Tensor
Handler = Callable[..., Any]


def _dist_of(t: Any) -> D.Dist | None:
    return support(t) if is_discrete(t) else None


# ------------------------------------------------------------------------------- counting


def bincount(c: Ctx, input: Any, weights: Any = None, minlength: int = 0) -> Any:
    d = _dist_of(input)
    if d is None:
        if not _floating(weights):
            return DECLINE
        d = D.point(D.exact_of(input), D.soft_of(weights))  # exact ids, soft weights
    exact = torch.bincount(D.exact_of(input), _detached(D.exact_of(weights)), minlength)
    v, p = d
    length = exact.shape[0]
    w = p if weights is None else p * D._as_float(D.soft_of(weights))
    inside = (v >= 0) & (v < length)
    bins = torch.where(inside, v, torch.zeros_like(v)).long()
    soft = torch.zeros(length, dtype=w.dtype, device=w.device)
    soft = soft.scatter_add(0, bins.reshape(-1), torch.where(inside, w, 0.0).reshape(-1))
    return D.result(exact, None, soft, c.carried)


def _detached(t: Any) -> Any:
    return t.detach() if isinstance(t, Tensor) else t


def _scatter_add_soft(self: Any, dim: int, index: Any, src: Any) -> Tensor:
    """``self + scatter_add(dim, index, src)`` on soft values: through the distribution of a
    soft ``index`` (positions), with the expectation of a soft ``src``."""
    base = D._as_float(D.soft_of(self))
    srcv = D.soft_of(src)
    if isinstance(srcv, Tensor):
        srcv = D._as_float(srcv).to(base.dtype)
    d = _dist_of(index)
    if d is None:
        return base.scatter_add(dim, D.exact_of(index), _expand_src(srcv, index, base))
    v, p = d
    srcv = _expand_src(srcv, index, base)
    out = base
    for k in range(v.shape[0]):  # K scatters of the weighted source (K is bounded)
        out = out.scatter_add(dim, v[k].long().clamp(0, base.shape[dim] - 1),
                              (p[k] * srcv).to(base.dtype))  # fmt: skip
    return out


def _expand_src(src: Any, index: Any, like: Tensor) -> Tensor:
    if isinstance(src, Tensor):
        return src.to(like.dtype).expand(index.shape) if src.ndim == 0 else src.to(like.dtype)
    return torch.full(index.shape, float(src), dtype=like.dtype, device=like.device)


def scatter_add(c: Ctx, input: Any, dim: int, index: Any, src: Any) -> Any:
    if not (is_discrete(index) or is_discrete(src)):
        return DECLINE
    exact = torch.scatter_add(D.exact_of(input), dim, D.exact_of(index), D.exact_of(src))
    d = canonical_dim(dim, exact.ndim)
    return D.result(exact, None, _scatter_add_soft(input, d, index, src), c.carried)


def index_add(c: Ctx, input: Any, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Any:
    if not (is_discrete(index) or is_discrete(source)):
        return DECLINE
    exact = torch.index_add(D.exact_of(input), dim, D.exact_of(index), D.exact_of(source),
                            alpha=alpha)  # fmt: skip
    d = canonical_dim(dim, exact.ndim)
    idx = index
    shape = [1] * exact.ndim
    shape[d] = index.shape[0]
    target = list(exact.shape)
    target[d] = index.shape[0]
    if is_soft_index(index):
        v, p = support(index)  # type: ignore[misc]
        idx = make(D.exact_of(index).reshape(shape).expand(target), None,
                   dist=(v.reshape(v.shape[0], *shape).expand(v.shape[0], *target),
                         p.reshape(p.shape[0], *shape).expand(p.shape[0], *target)))  # fmt: skip
    else:
        idx = D.exact_of(index).reshape(shape).expand(target)
    src = D.soft_of(source)
    if isinstance(src, Tensor):
        src = src * alpha
    return D.result(exact, None, _scatter_add_soft(input, d, idx, src), c.carried)


def scatter_reduce(
    c: Ctx, input: Any, dim: int, index: Any, src: Any, reduce: str, *, include_self: bool = True
) -> Any:
    if reduce != "sum" or not include_self:
        return DECLINE
    return scatter_add(c, input, dim, index, src)


def scatter(
    c: Ctx,
    input: Any,
    dim: int,
    index: Any,
    src: Any = None,
    value: Any = None,
    *,
    reduce: str | None = None,
) -> Any:
    if src is None:
        src = value
    if reduce == "add":
        return scatter_add(c, input, dim, index, src)
    if reduce is not None or not is_discrete(index):
        if is_discrete(src) and reduce is None and not is_discrete(index):
            exact = torch.scatter(D.exact_of(input), dim, D.exact_of(index), D.exact_of(src))
            soft = torch.scatter(D._as_float(D.soft_of(input)), dim, D.exact_of(index),
                                 D._as_float(D.soft_of(src)))  # fmt: skip
            return D.result(exact, None, soft, c.carried)
        return DECLINE
    exact = torch.scatter(D.exact_of(input), dim, D.exact_of(index), D.exact_of(src))
    d = canonical_dim(dim, exact.ndim)
    written = _scatter_add_soft(torch.zeros_like(D._as_float(D.soft_of(input))), d, index, src)
    cover = _scatter_add_soft(torch.zeros_like(written), d, index, 1.0)
    hit = torch.zeros(exact.shape, dtype=torch.bool, device=exact.device)
    hit = hit.scatter(d, D.exact_of(index), True)
    soft = _overwrite(D.soft_of(input), written, cover, hit)
    return D.result(exact, None, soft, c.carried)


def _overwrite(base: Any, written: Tensor, cover: Tensor, hit: Tensor) -> Tensor:
    """Soft result of writing through a soft index. Positions the exact write reaches (``hit``)
    hold the written mass :math:`P^\\top v`: their old content (possibly uninitialised memory)
    never enters. Elsewhere the old value keeps the uncovered weight,
    :math:`x (1 - P^\\top 1) + P^\\top v` (a zero weight never meets a non-finite old value)."""
    base = D._as_float(base).to(written.dtype)
    keep = (1.0 - cover).clamp_min(0.0)
    safe = torch.where(hit | (keep == 0), torch.zeros_like(base), base)
    return torch.where(hit, written, written + safe * keep)


def _key_parts(key: Any) -> tuple[list[Any], int] | None:
    """A key with exactly one SoftIndex preceded by full slices / Ellipsis and followed by full
    slices: its items and the SoftIndex's position."""
    items = list(key) if isinstance(key, tuple) else [key]
    where = [i for i, k in enumerate(items) if is_soft_index(k)]
    if len(where) != 1:
        return None
    j = where[0]
    full = all(isinstance(k, slice) and k == slice(None) for k in items[j + 1 :])
    before = all((isinstance(k, slice) and k == slice(None)) or k is Ellipsis
                 for k in items[:j])  # fmt: skip
    return (items, j) if full and before else None


def _write_through(c: Ctx, input: Any, key: Any, value: Any, accumulate: bool) -> Any:
    """``x[idx] = v`` (``accumulate``: ``x[idx] += v``) with a SoftIndex in ``key``, out of
    place: torch's exact result with the soft one, :math:`P^\\top v` written (or added)."""
    parts = _key_parts(key)
    if parts is None or not isinstance(input, Tensor):
        return DECLINE
    items, j = parts
    x = plain(input)
    d = x.ndim - (len(items) - j) if items[0] is Ellipsis else j
    idx = items[j]
    if idx.ndim != 1 or not 0 <= d < x.ndim:
        return DECLINE
    hard_key = tuple(D.exact_of(k) for k in items)
    where = hard_key if isinstance(key, tuple) else hard_key[0]
    exact = D.exact_of(input).detach().clone()
    if accumulate:
        exact = exact.index_put(hard_key, D.exact_of(value), accumulate=True)
    else:
        exact[where] = D.exact_of(value)
    p = idx._sidx  # (m, n)
    fdt = p.dtype if D.is_integral(x.dtype) else torch.promote_types(x.dtype, p.dtype)
    vals = D.soft_of(value)
    vals = vals if isinstance(vals, Tensor) else torch.tensor(float(vals))
    vals = vals.to(fdt).expand(*x.shape[:d], idx.shape[0], *x.shape[d + 1 :])
    written = (vals.movedim(d, -1) @ p.to(fdt)).movedim(-1, d)  # (..., n)
    if accumulate:
        return D.result(exact, None, D._as_float(D.soft_of(input)).to(fdt) + written, c.carried)
    cover = p.sum(0).to(fdt).reshape(-1, *[1] * (x.ndim - d - 1))
    hit = torch.zeros(exact.shape, dtype=torch.bool, device=exact.device)
    hit[where] = True
    soft = _overwrite(D.soft_of(input), written, cover.expand_as(written), hit)
    return D.result(exact, None, soft, c.carried)


def setitem(c: Ctx, input: Any, key: Any, value: Any) -> Any:
    """``x[idx] = v`` with a SoftIndex ``idx`` (writes :math:`P^\\top v`), in place: integer
    storage keeps torch's exact values and carries the soft ones."""
    out = _write_through(c, input, key, value, False)
    return out if out is DECLINE else D.write_into(input, out)


def index_put(c: Ctx, input: Any, indices: Any, values: Any, accumulate: bool = False) -> Any:
    """``index_put`` with a SoftIndex among ``indices``: as ``x[idx] = v`` (``accumulate``: the
    soft scatter-add :math:`x + P^\\top v`)."""
    return _write_through(c, input, tuple(indices), values, accumulate)


# -------------------------------------------------------------------------- selection


def _gathered(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], c: Ctx,
    pos: int, probs_at: Callable[[Tensor, Tensor], Tensor],
) -> Any:
    """A selection of integer / gradient-free data ``args[0]`` by the SoftIndex at
    ``args[pos]``: the exact result, with the support evaluated at every position (``vmap``) and
    the index's probabilities arranged like the output by ``probs_at(probs, exact)``. Soft
    integer data make a mixture: :math:`P(out = v) = \\sum_j P_j\\, P(X_j = v)`."""
    idx = args[pos]
    ea, ek = D.map_args(args, kwargs, D.exact_of)
    exact = func(*ea, **ek)
    v, p = support(idx)  # type: ignore[misc]
    data = support(args[0]) if is_discrete(args[0]) else None
    layers = [(ea[0], None)] if data is None else list(zip(data[0], data[1]))

    def at(x: Tensor) -> Callable[[Tensor], Tensor]:
        def one(vk: Tensor) -> Tensor:
            a = list(ea)
            a[0], a[pos] = x, vk
            return func(*a, **ek)

        return one

    try:
        vals, probs = [], []
        for x, px in layers:  # the data's own support (one layer for exact data)
            vals.append(torch.vmap(at(x))(v).expand(v.shape[0], *exact.shape))
            pk = probs_at(p, exact).expand(p.shape[0], *exact.shape)
            if px is not None:
                pk = pk * torch.vmap(at(px))(v).expand(v.shape[0], *exact.shape)
            probs.append(pk)
    except Exception:
        return DECLINE
    vs, ps = torch.cat(vals), torch.cat(probs)
    if D.is_integral(exact.dtype):
        return D.result(exact, (vs.to(exact.dtype), ps), None, c.carried)
    return D.result(exact, None, D.expect(ps, vs), c.carried)


def _data_ok(x: Any) -> bool:
    return isinstance(x, Tensor) and (
        is_discrete(x) or D.is_integral(x.dtype) or not x.requires_grad
    )


def gather(c: Ctx, input: Any, dim: int, index: Any, *, sparse_grad: bool = False) -> Any:
    if not (is_soft_index(index) and _data_ok(input)):
        return DECLINE
    return _gathered(torch.gather, (input, dim, index), {}, c, 2, lambda p, e: p)


def take_along_dim(c: Ctx, input: Any, indices: Any, dim: int | None = None) -> Any:
    if not (is_soft_index(indices) and _data_ok(input)) or dim is None:
        return DECLINE
    return _gathered(torch.take_along_dim, (input, indices, dim), {}, c, 1, lambda p, e: p)


def take(c: Ctx, input: Any, index: Any) -> Any:
    if not (is_soft_index(index) and _data_ok(input)):
        return DECLINE
    return _gathered(torch.take, (input, index), {}, c, 1, lambda p, e: p)


def index_select(c: Ctx, input: Any, dim: int, index: Any) -> Any:
    if not (is_soft_index(index) and _data_ok(input)) or index.ndim != 1:
        return DECLINE
    d = canonical_dim(dim, input.ndim)

    def arrange(p: Tensor, e: Tensor) -> Tensor:
        return p.reshape(p.shape[0], *[1] * d, p.shape[1], *[1] * (e.ndim - d - 1))

    return _gathered(torch.index_select, (input, dim, index), {}, c, 2, arrange)


def getitem(c: Ctx, input: Any, key: Any) -> Any:
    if not _data_ok(input):
        return DECLINE
    parts = _key_parts(key)
    if parts is None:
        return DECLINE
    items, j = parts
    d = input.ndim - (len(items) - j) if items[0] is Ellipsis else j
    if not 0 <= d < input.ndim:
        return DECLINE
    rest = input.ndim - d - 1

    def arrange(p: Tensor, e: Tensor) -> Tensor:
        return p.reshape(p.shape[0], *[1] * d, *p.shape[1:], *[1] * rest)

    def get(x: Tensor, *ks: Any) -> Any:
        k = tuple(ks)
        return x[k if isinstance(key, tuple) else k[0]]

    return _gathered(get, (input, *items), {}, c, 1 + j, arrange)


def embedding(c: Ctx, input: Any, weight: Tensor, *args: Any, **kwargs: Any) -> Any:
    """``F.embedding`` by a SoftIndex: :math:`P W` (exact lookup forward with the extra options
    ignored by the soft side)."""
    if not is_soft_index(input) or is_discrete(weight):
        return DECLINE
    p = input._sidx
    if p.shape[-1] != weight.shape[0]:
        return DECLINE
    exact = F.embedding(D.exact_of(input), plain(weight), *args, **kwargs)
    return c.value(lambda: p.to(weight.dtype) @ plain(weight), lambda: exact)


def one_hot(c: Ctx, tensor: Any, num_classes: int = -1) -> Any:
    d = _dist_of(tensor)
    if d is None:
        return DECLINE
    exact = F.one_hot(D.exact_of(tensor), num_classes)
    v, p = d
    width = exact.shape[-1]
    inside = (v >= 0) & (v < width)
    q = torch.zeros((*v.shape[1:], width), dtype=p.dtype, device=p.device)
    q = q.scatter_add(-1, torch.where(inside, v, 0).long().movedim(0, -1),
                      torch.where(inside, p, 0.0).movedim(0, -1))  # fmt: skip
    return D.result(exact, (torch.stack([torch.zeros_like(exact), torch.ones_like(exact)]),
                            torch.stack([1.0 - q, q])), None, c.carried)  # fmt: skip


def unique(
    c: Ctx, input: Tensor, sorted: bool = True, return_inverse: bool = False,
    return_counts: bool = False, dim: int | None = None,
) -> Any:
    """``torch.unique`` of floating data with a gradient path, all values distinct: the
    values are the soft sort, the inverse (the rank of each element) is a SoftIndex whose row
    ``i`` is column ``i`` of the soft permutation, normalised. With ties the result is exact."""
    if dim is not None or not sorted or input.ndim == 0:
        return DECLINE
    exact = torch.unique(plain(input).detach(), sorted, return_inverse, return_counts, dim)
    uniq = exact[0] if isinstance(exact, tuple) else exact
    if uniq.numel() != input.numel():
        return DECLINE
    flat = plain(input).reshape(-1)
    res = ops.sort(flat, -1, **c.kw())
    parts: list[Any] = [c.value(lambda: res.values, lambda: uniq, finite=True)]
    if return_inverse:
        perm = ops.argsort(flat, -1, **c.kw(index=True))  # (n, n): rank r -> element j
        col = perm / perm.sum(0, keepdim=True).clamp_min(torch.finfo(perm.dtype).tiny)
        sidx = col.transpose(0, 1).reshape(*input.shape, flat.shape[0])
        parts.append(c.soft_index(exact[1], sidx))
    if return_counts:
        parts.append(exact[-1])
    return parts[0] if len(parts) == 1 else tuple(parts)


def _bucket_distribution(c: Ctx, x: Tensor, boundaries: Tensor, right: bool) -> D.Dist:
    r"""Bucket ids of ``x`` among sorted ``boundaries`` (``m`` values) as a distribution over
    ``0 .. m``: with :math:`S_i = P(x > b_{i-1})` (``right``: :math:`x \ge b_{i-1}`), the soft
    steps of the mode, :math:`p_0 = 1 - S_1`, :math:`p_i = S_i - S_{i+1}`, :math:`p_m = S_m`."""
    xs = D._as_float(D.soft_of(x))
    b = D.exact_of(boundaries).to(xs.dtype)
    step = cmp.greater_equal if right else cmp.greater
    s = step(xs.unsqueeze(0), b.reshape(-1, *[1] * xs.ndim), c.softness, c.mode).to(xs.dtype)
    one = torch.ones_like(xs).unsqueeze(0)
    upper = torch.cat([one, s])
    lower = torch.cat([s, torch.zeros_like(one)])
    probs = (upper - lower).clamp_min(0.0)
    m = b.numel()
    vals = torch.arange(m + 1, device=xs.device).reshape(m + 1, *[1] * xs.ndim).expand(
        m + 1, *xs.shape)  # fmt: skip
    return vals, probs


def bucketize(
    c: Ctx, input: Any, boundaries: Any, *, out_int32: bool = False, right: bool = False,
    out: Any = None,
) -> Any:
    """``torch.bucketize`` of floating data: torch's bucket ids with the distribution of
    :func:`_bucket_distribution`."""
    if out is not None or not _floating(input) or D.exact_of(boundaries).ndim != 1:
        return DECLINE
    exact = torch.bucketize(D.exact_of(input).detach(), D.exact_of(boundaries),
                            out_int32=out_int32, right=right)  # fmt: skip
    v, p = _bucket_distribution(c, input, boundaries, right)
    return D.result(exact, (v.to(exact.dtype), p), None, c.carried)


def searchsorted(
    c: Ctx, sorted_sequence: Any, input: Any, *, out_int32: bool = False, right: bool = False,
    side: str | None = None, sorter: Any = None, out: Any = None,
) -> Any:
    """``torch.searchsorted`` of floating values in a 1-D sequence: as :func:`bucketize`."""
    if sorter is not None or not isinstance(input, Tensor):
        return DECLINE
    right = right or side == "right"
    return bucketize(c, input, sorted_sequence, out_int32=out_int32, right=right, out=out)


def histc(
    c: Ctx, input: Any, bins: int = 100, min: float = 0.0, max: float = 0.0, *, out: Any = None
) -> Any:
    r"""``torch.histc`` of floating data: soft counts :math:`\sum_i P(e_j \le x_i) -
    P(e_{j+1} \le x_i)` over the bin edges (the last edge inclusive, like torch)."""
    if out is not None or not _floating(input):
        return DECLINE
    xe = D.exact_of(input).detach()
    exact = torch.histc(xe, bins, min, max)
    lo, hi = (float(xe.min()), float(xe.max())) if min == 0 and max == 0 else (min, max)
    if xe.numel() == 0 or lo == hi:
        return DECLINE
    xs = D.soft_of(input).reshape(-1)
    edges = torch.linspace(lo, hi, bins + 1, dtype=xs.dtype, device=xs.device)
    ge = cmp.greater_equal(xs.unsqueeze(0), edges[:-1].unsqueeze(1), c.softness, c.mode)
    gt = cmp.greater(xs, edges[-1:], c.softness, c.mode).unsqueeze(0)
    s = torch.cat([ge, gt]).to(xs.dtype)
    soft = (s[:-1] - s[1:]).clamp_min(0.0).sum(-1)
    return D.result(exact, None, soft, c.carried)


def _floating(x: Any) -> bool:
    return isinstance(x, Tensor) and x.is_floating_point()


#: Selections of integer / gradient-free data by a SoftIndex (the registry's selection
#: handlers relax floating data with a gradient path and leave these calls here).
SELECTIONS: dict[Any, Handler] = {
    torch.gather: gather, T.gather: gather,
    torch.take_along_dim: take_along_dim, T.take_along_dim: take_along_dim,
    torch.take: take, T.take: take,
    torch.index_select: index_select, T.index_select: index_select,
    T.__getitem__: getitem,
}  # fmt: skip


# ----------------------------------------------------------------------------- dispatch

#: Shape, copy and rearranging ops of soft integers (batched over the support axis).
_STRUCTURAL = frozenset(STRUCTURAL) | frozenset({
    torch.diag, T.diag, torch.diagonal, T.diagonal, torch.tril, T.tril, torch.triu, T.triu,
    torch.gather, T.gather, torch.take_along_dim, T.take_along_dim, torch.index_select,
    T.index_select, torch.take, T.take, torch.tile, T.tile, torch.repeat_interleave,
    T.repeat_interleave, torch.rot90, T.rot90, torch.swapaxes, T.swapaxes, torch.swapdims,
    T.swapdims, torch.moveaxis, T.moveaxis, torch.diag_embed, T.diag_embed, torch.hstack,
    torch.vstack, torch.dstack, torch.column_stack, torch.atleast_1d, torch.atleast_2d,
    T.masked_fill, torch.masked_fill, T.view_as, T.unfold, T.contiguous, T.clone, F.pad,
    torch.constant_pad_nd, F.unfold, F.fold, torch.flatten, T.flatten, torch.squeeze,
})  # fmt: skip
_CASTS = frozenset(CASTS)
_EXACT = frozenset(CONVERSIONS) | frozenset(MASKED) - {T.__setitem__}


def _only_roles(items: list[Any]) -> bool:
    """Only SoftBools / SoftIndices (no SoftInt, no SoftFloat) among the soft operands."""
    return not any(
        isinstance(a, SoftTensor) and (a._dist is not None or a._exact is not None) for a in items
    )


def call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], c: Ctx) -> Any:
    """The soft-integer path of one call (``DECLINE`` to leave it to the other role rules)."""
    handler = SELECTIONS.get(func)
    if handler is not None:
        out = handler(c, *args, **kwargs)
        if out is not DECLINE:
            return out
    if func in _EXACT:
        return DECLINE
    items = D.operands(args, kwargs)
    cfg = c.carried
    if func in _CASTS:
        x = args[0] if args else None
        if not isinstance(x, SoftTensor):
            return DECLINE
        out = D.cast(func, args, kwargs, cfg)
        return DECLINE if out is None else out
    if D.is_inplace(func):
        return DECLINE
    name = D.aten_name(func)
    if name in D.LINEAR_REDUCTIONS:
        if all(not isinstance(a, SoftTensor) or a._hard is None or a._hard.dtype == torch.bool
               for a in items):  # fmt: skip
            out = D.linear(func, args, kwargs, cfg)
            if out is not None:
                return out
        return DECLINE
    if func in _STRUCTURAL:
        if _only_roles(items) and (func in _INDEX_VIEWS or not any(
                is_soft_index(a) for a in items)):  # fmt: skip
            return DECLINE  # the role rules keep SoftBools, and SoftIndices through views
        out = D.structural(func, args, kwargs, cfg)
        return DECLINE if out is None else out
    if D.is_pointwise(func):
        out = D.pointwise(func, args, kwargs, cfg)
        return DECLINE if out is None else out
    return DECLINE
