r"""How SoftBools and SoftIndices behave in ops that are not relaxations (in any context).

* Boolean uses see torch's exact result: Python truth and numbers (``bool``, ``int``, ``float``,
  ``item``, ``tolist``, numpy), integer and bool casts, ``nonzero`` / ``argwhere`` /
  ``count_nonzero``, and masks or indices in ``x[m]``, ``x[m] = v``, ``masked_select``,
  ``masked_scatter``, ``index_put`` (shapes cannot be soft).
* Float casts (``m.float()``, ``m.to(dtype)``, ``type_as``) keep a SoftBool a SoftBool.
* Shape and copy ops (``view``, ``reshape``, ``unsqueeze``, ``m[i]``, ``cat``, ``stack``,
  ``clone`` ...) apply to the soft values and the exact result alike; for a SoftIndex the
  order-preserving ones (view / reshape / squeeze / unsqueeze / flatten / expand / basic indexing /
  clone / detach / contiguous) keep the soft index.
* Everything else (arithmetic, reductions such as ``m.sum()`` / ``m.mean()``) sees the soft values
  of a SoftBool and the integers of a SoftIndex.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .tensor import (
    SoftTensor,
    hard_view,
    is_soft_bool,
    is_soft_float,
    is_soft_index,
    make,
    map_tensors,
    plain,
    wrap,
)

Cfg = Any
Handler = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], Cfg], Any]

T = torch.Tensor

#: Ops that read a SoftBool as its exact result (all operands).
CONVERSIONS: tuple[Any, ...] = (
    T.__bool__, T.__int__, T.__float__, T.__index__, T.item, T.tolist, T.numpy, T.__array__,
    torch.nonzero, T.nonzero, torch.argwhere, T.argwhere, torch.count_nonzero, T.count_nonzero,
)  # fmt: skip

#: Ops whose operands after the first are masks or indices (exact); the first is data.
MASKED: tuple[Any, ...] = (
    T.__setitem__, torch.masked_select, T.masked_select, T.masked_scatter, T.masked_scatter_,
    torch.index_put, T.index_put, T.index_put_,
)  # fmt: skip

#: Dtype / device casts: float casts keep a SoftBool, integer casts keep a SoftIndex; other
#: casts of a SoftBool read its exact result.
CASTS: tuple[Any, ...] = (
    T.float, T.double, T.half, T.bfloat16, T.to, T.type_as, T.type, T.cpu, T.cuda,
    T.bool, T.long, T.int, T.short, T.char, T.byte,
)  # fmt: skip

#: Order-preserving shape ops that keep a SoftIndex's soft index.
_INDEX_VIEWS: tuple[Any, ...] = (
    T.__getitem__, T.clone, T.detach, T.contiguous, T.view, T.reshape, T.flatten, T.squeeze,
    T.unsqueeze, T.expand, T.view_as, T.reshape_as, T.expand_as, torch.reshape, torch.flatten,
    torch.squeeze, torch.unsqueeze, torch.clone, torch.detach, torch.broadcast_to, T.broadcast_to,
)  # fmt: skip

#: Shape and copy ops applied to a SoftBool's values and exact result alike.
STRUCTURAL: tuple[Any, ...] = _INDEX_VIEWS + (
    T.unflatten, T.permute, T.transpose, T.t, T.movedim, T.flip, T.roll, T.repeat, T.narrow,
    T.select, T.chunk, T.split, T.unbind, torch.cat, torch.concat, torch.concatenate, torch.stack,
    torch.permute, torch.transpose, torch.t, torch.movedim, torch.flip, torch.roll, torch.narrow,
    torch.select, torch.chunk, torch.split, torch.unbind, T.T.__get__, T.mT.__get__,
)  # fmt: skip

#: In-place methods whose names end in ``_`` but do not change the data.
_KEEPS_DATA = frozenset({"requires_grad_", "share_memory_", "retain_grad"})
_INPLACE_DUNDERS = frozenset(
    f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or",
                            "xor", "lshift", "rshift", "matmul")
)  # fmt: skip


_WRITES_FIRST: dict[Any, bool] = {}


def writes_first(func: Callable[..., Any]) -> bool:
    """True for in-place ops (``x.add_``, ``x += ...``, ``x[i] = ...``) that change ``args[0]``
    (memoised per callable: it runs on every SoftTensor operation)."""
    try:
        return _WRITES_FIRST[func]
    except (KeyError, TypeError):
        pass
    name = getattr(func, "__name__", "")
    if name in _INPLACE_DUNDERS or name == "__setitem__":
        out = True
    else:
        out = name.endswith("_") and not name.endswith("__") and name not in _KEEPS_DATA
    try:
        _WRITES_FIRST[func] = out
    except TypeError:  # unhashable callable
        pass
    return out


#: torch.compile evaluates it on the real callable (a pure function of it) instead of tracing
#: ``str`` methods on a name Dynamo does not know (``torch._dynamo.assume_constant_result``).
writes_first._dynamo_marked_constant = True  # type: ignore[attr-defined]


def forget_role(t: Any) -> None:
    """After an in-place change the exact result / soft index no longer describe ``t``."""
    if isinstance(t, SoftTensor):
        t._hard = None
        t._sidx = None


#: Conversions that show a floating value as numbers: a SoftFloat shows its soft values (the
#: truth value and integer conversions of a SoftFloat, and everything of a SoftBool, are exact).
_NUMBERS = frozenset({T.item, T.tolist, T.numpy, T.__array__, T.__float__})


def _exact(func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg) -> Any:
    if func in _NUMBERS and args and is_soft_float(args[0]):
        return func(plain(args[0]), *args[1:], **kw)
    a, k = map_tensors(args, kw, lambda t: hard_view(t, "raw"))
    return wrap(func(*a, **k), cfg)


def _masked(func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg) -> Any:
    a, k = map_tensors(args, kw, lambda t: hard_view(t, "bool"), start=1)
    out = func(*a, **k)
    if writes_first(func):
        forget_role(args[0])
    return wrap(out, cfg)


def _cast(func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg) -> Any:
    x = args[0]
    if is_soft_bool(x):
        out = func(plain(x), *args[1:], **kw)
        if isinstance(out, Tensor) and out.is_floating_point():
            keep = func in (T.cpu, T.cuda)
            hard = x._hard.to(out.device) if keep else x._hard.to(out)
            return make(out, cfg or x._cfg, hard=hard)
        return _exact(func, args, kw, cfg)
    if is_soft_index(x):
        out = func(hard_view(x), *args[1:], **kw)
        if isinstance(out, Tensor) and not out.is_floating_point() and out.dtype != torch.bool:
            return make(out, cfg or x._cfg, sidx=x._sidx.to(out.device))
        return wrap(out, cfg)
    return wrap(func(*args, **kw), cfg)


def _pair_bool(values: Any, hard: Any, cfg: Cfg) -> Any:
    if isinstance(hard, Tensor):
        if hard.dtype != torch.bool or not isinstance(values, Tensor):
            return wrap(values, cfg)
        return make(values, cfg, hard=hard)
    if isinstance(hard, (tuple, list)):
        return type(hard)(_pair_bool(v, h, cfg) for v, h in zip(values, hard))
    return values


def _structural(
    func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg
) -> Any:
    first = args[0] if args else None
    operands = first if isinstance(first, (list, tuple)) else (first,)
    # Operands after the first (indices, masks, shapes) are always exact.
    rest, rk = map_tensors(args, kw, lambda t: hard_view(t, "bool"), start=1)
    rest = rest[1:]
    if any(is_soft_bool(t) for t in operands):
        if first is operands:
            head_soft = type(first)(plain(t) for t in first)
            head_hard = type(first)(hard_view(t, "bool") for t in first)
        else:
            head_soft, head_hard = plain(first), hard_view(first, "bool")
        hard = func(head_hard, *rest, **rk)
        return _pair_bool(func(head_soft, *rest, **rk), hard, cfg)
    if is_soft_index(first) and func in _INDEX_VIEWS:
        out = func(hard_view(first), *rest, **rk)
        p = first._sidx
        n = p.shape[-1]
        if func is T.__getitem__:
            key = rest[0] if isinstance(rest[0], tuple) else (rest[0],)
            sidx = p[(*key, slice(None))]
        elif func in (T.detach, torch.detach):
            sidx = p.detach()
        elif out.numel() == first.numel():
            sidx = p.reshape(*out.shape, n)
        else:
            sidx = p.expand(*out.shape, n)
        if tuple(sidx.shape) != (*out.shape, n):
            return wrap(out, cfg)
        return make(out, cfg or first._cfg, sidx=sidx)
    return passthrough(func, (first, *rest), rk, cfg)


def _iter(func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg) -> Any:
    return iter(_structural(T.unbind, args, kw, cfg))


def passthrough(
    func: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], cfg: Cfg
) -> Any:
    """Any other op: on the soft values / integers; an in-place change forgets the role."""
    out = func(*args, **kw)
    if args and isinstance(args[0], SoftTensor) and writes_first(func):
        forget_role(args[0])
    return wrap(out, cfg)


def _table() -> dict[Any, Handler]:
    table: dict[Any, Handler] = {}
    for funcs, handler in (
        (CONVERSIONS, _exact), (MASKED, _masked), (CASTS, _cast), (STRUCTURAL, _structural),
        ((T.__iter__,), _iter),
    ):  # fmt: skip
        for f in funcs:
            table.setdefault(f, handler)
    return table


#: Role handlers by torch callable; the dispatcher falls back to :func:`passthrough`.
ROLES: dict[Any, Handler] = _table()
