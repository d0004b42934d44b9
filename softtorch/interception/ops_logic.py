r"""Handlers for comparisons (results: SoftBools) and for logic on SoftBools.

Comparisons use :mod:`softtorch.comparison`; with ``surrogate=`` the order comparisons and
``heaviside`` give torch's spikes forward and the surrogate derivative of the margin backward.
Special operands of ``==`` / ``!=``: a SoftIndex compared with integer labels gives the soft
probability of the label, :math:`P[\ldots, y]`; SoftBools compared with truth values give the soft
XNOR / XOR. Logic (``~ & | ^``, ``logical_*``, ``all``, ``any``, ``where``, ``masked_fill``) relaxes
only when an operand is a SoftBool, with :mod:`softtorch.logic` (product t-norm); where a ``where``
branch is not finite the exact ``torch.where`` value is used, since a soft mix of an infinity is
that infinity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import comparison as cmp
from .. import logic as lg
from .._checks import as_float_pair
from .context import DECLINE, Ctx
from .tensor import hard_view, is_discrete, is_soft_bool, is_soft_index, plain, prob

_Cmp = Callable[..., Tensor]


def _margin(a: Any, b: Any) -> Callable[[], Tensor]:
    def d() -> Tensor:
        x, y = as_float_pair(plain(a), plain(b))
        return x - y

    return d


def _order(soft: _Cmp, exact: _Cmp, flip: bool) -> Callable[..., Any]:
    """gt / ge (``flip=False``) and lt / le (``flip=True``): spike iff the margin is positive."""

    def handler(c: Ctx, input: Any, other: Any) -> Any:
        if is_discrete(input) or is_discrete(other):
            return DECLINE  # soft integers: the probability of the event (ops_integer)
        return c.bool(
            lambda: soft(input, other, c.softness, c.mode),
            lambda: exact(hard_view(input), hard_view(other)),
            _margin(other, input) if flip else _margin(input, other),
        )

    return handler


gt = _order(cmp.greater, torch.gt, False)
ge = _order(cmp.greater_equal, torch.ge, False)
lt = _order(cmp.less, torch.lt, True)
le = _order(cmp.less_equal, torch.le, True)


def _boolish(t: Any) -> bool:
    if isinstance(t, Tensor):
        return is_soft_bool(t) or t.dtype == torch.bool
    return isinstance(t, (bool, int)) and t in (0, 1)


def _label_probability(a: Any, b: Any) -> Tensor | None:
    """Soft P(index == label) for a SoftIndex against integer labels or another SoftIndex."""
    if is_soft_index(a) and is_soft_index(b):
        p, q = a._sidx, b._sidx
        return (p * q).sum(-1) if p.shape[-1] == q.shape[-1] else None
    idx, other = (a, b) if is_soft_index(a) else (b, a)
    p = idx._sidx
    lab = torch.as_tensor(hard_view(other), device=p.device)
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        return None
    n = p.shape[-1]
    shape = torch.broadcast_shapes(p.shape[:-1], lab.shape)
    lab = lab.expand(shape)
    pick = p.expand(*shape, n).gather(-1, lab.clamp(0, max(n - 1, 0)).unsqueeze(-1)).squeeze(-1)
    return pick * ((lab >= 0) & (lab < n)).to(p.dtype)


def _equality(negate: bool) -> Callable[..., Any]:
    exact = torch.ne if negate else torch.eq
    soft = cmp.not_equal if negate else cmp.eq

    def handler(c: Ctx, input: Any, other: Any) -> Any:
        def hard() -> Tensor:
            return exact(hard_view(input), hard_view(other))

        if is_soft_index(input) or is_soft_index(other):
            p = _label_probability(input, other)
            if p is None:
                return DECLINE
            return c.bool(lambda: 1.0 - p if negate else p, hard)
        if is_discrete(input) or is_discrete(other):
            return DECLINE  # the probability mass at the other value (ops_integer)
        if not _floating(input, other):
            return DECLINE
        return c.bool(lambda: soft(input, other, c.softness, c.mode), hard)

    return handler


def _floating(*xs: Any) -> bool:
    return any(isinstance(x, Tensor) and x.is_floating_point() for x in xs)


eq = _equality(False)
ne = _equality(True)


def isclose(
    c: Ctx, input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8,
    equal_nan: bool = False,
) -> Any:
    if equal_nan:
        return DECLINE
    return c.bool(
        lambda: cmp.isclose(input, other, c.softness, rtol, atol, c.mode),
        lambda: torch.isclose(hard_view(input), hard_view(other), rtol=rtol, atol=atol),
    )


# ------------------------------------------------------------------------------------ logic


def _bool_operands(*xs: Any) -> bool:
    """Relax logic only on SoftBools combined with truth values."""
    return any(is_soft_bool(x) for x in xs) and all(_boolish(x) for x in xs)


def logical_not(c: Ctx, input: Any) -> Any:
    if not is_soft_bool(input):
        return DECLINE
    return c.bool(
        lambda: lg.logical_not(prob(input)), lambda: torch.logical_not(hard_view(input, "bool"))
    )


def _binary(soft: _Cmp, exact: _Cmp) -> Callable[..., Any]:
    def handler(c: Ctx, input: Any, other: Any) -> Any:
        if not _bool_operands(input, other):
            return DECLINE
        return c.bool(
            lambda: soft(prob(input), prob(other)),
            lambda: exact(hard_view(input, "bool"), hard_view(other, "bool")),
        )

    return handler


logical_and = _binary(lg.logical_and, torch.logical_and)
logical_or = _binary(lg.logical_or, torch.logical_or)
logical_xor = _binary(lg.logical_xor, torch.logical_xor)


def _flat(t: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, list[int]]:
    """Move ``dims`` last and merge them; also return the keepdim shape."""
    nd = t.ndim
    ds = sorted({d % nd for d in dims}) if nd else []
    keep = [1 if i in ds else s for i, s in enumerate(t.shape)]
    rest = [i for i in range(nd) if i not in ds]
    moved = t.permute(*rest, *ds) if nd else t
    return moved.reshape(*[t.shape[i] for i in rest], -1), keep


def _reduction(soft: Callable[..., Tensor], exact: Callable[..., Tensor]) -> Callable[..., Any]:
    def handler(c: Ctx, input: Any, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
        if not is_soft_bool(input) or kw:
            return DECLINE
        dims = dim if isinstance(dim, (tuple, list)) else None

        def run() -> Tensor:
            p = prob(input)
            if dim is None:
                return soft(p, None)
            if dims is None:
                return soft(p, dim, keepdim=keepdim)
            flat, keep = _flat(p, tuple(dims))
            out = soft(flat, -1)
            return out.reshape(keep) if keepdim else out

        def hard() -> Tensor:
            mask = hard_view(input, "bool")
            return exact(mask) if dim is None else exact(mask, dim, keepdim)

        return c.bool(run, hard)

    return handler


all_ = _reduction(lg.all, torch.all)
any_ = _reduction(lg.any, torch.any)


def _soft_where(cond: Any, x: Any, y: Any, mask: Tensor) -> Tensor:
    """``c x + (1 - c) y``, with torch's exact choice where a branch is not finite."""
    xs, ys = as_float_pair(plain(x), plain(y))
    finite = torch.isfinite(xs) & torch.isfinite(ys)
    zero = torch.zeros((), dtype=xs.dtype, device=xs.device)
    out = lg.where(prob(cond), torch.where(finite, xs, zero), torch.where(finite, ys, zero))
    return torch.where(finite, out, torch.where(mask, xs, ys))


def _float_operand(t: Any) -> bool:
    return isinstance(t, float) or (isinstance(t, Tensor) and t.is_floating_point())


def where(c: Ctx, condition: Any, input: Any = None, other: Any = None) -> Any:
    """Soft for a SoftBool condition with a floating branch (integer branches, e.g. labels, have
    no gradient path and keep torch's integer result)."""
    if input is None or other is None or not is_soft_bool(condition):
        return DECLINE
    if not (_float_operand(input) or _float_operand(other)):
        return DECLINE
    mask = hard_view(condition, "bool")
    return c.value(
        lambda: _soft_where(condition, input, other, mask),
        lambda: torch.where(mask, plain(input), plain(other)),
    )


def tensor_where(self: Any, condition: Any, y: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Argument adapter: ``x.where(condition, y)`` is ``torch.where(condition, x, y)``."""
    return (condition, self, y), {}


def masked_fill(c: Ctx, input: Tensor, mask: Any, value: Any) -> Any:
    if not is_soft_bool(mask) or not input.is_floating_point():
        return DECLINE
    if not isinstance(value, Tensor) and not math.isfinite(float(value)):
        return DECLINE
    m = hard_view(mask, "bool")
    return c.value(
        lambda: _soft_where(mask, value, input, m).to(input.dtype).expand_as(input),
        lambda: torch.masked_fill(plain(input), m, value),
    )
