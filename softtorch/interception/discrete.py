r"""Soft integers: the algebra of relaxed booleans, indices and the integers computed from them.

A relaxed boolean (SoftBool) is a Bernoulli distribution, a relaxed index (SoftIndex) a
categorical distribution over positions. Every integer value computed from them is a *SoftInt*:
torch's exact integers (the data user code sees) together with a distribution over values,
stored support axis first, :math:`(v, p)` of shape ``(K, *shape)`` with :math:`\sum_k p_k = 1`.

* A pointwise op :math:`f` of soft operands :math:`X_1, \ldots, X_m` (taken as independent)
  has the support :math:`f(v_{k_1}, \ldots, v_{k_m})` over every combination of support points
  (:math:`K = K_1 \cdots K_m`) with probabilities :math:`p_{k_1} \cdots p_{k_m}`. The dtype of
  torch's exact result decides what user code sees: an integer result is a SoftInt, a bool result
  a SoftBool with :math:`P(f = \text{true})`, a floating result shows the expectation
  :math:`\mathbb{E} f(X) = \sum_k p_k f(v_k)` (it carries the gradient) and keeps torch's exact
  result beside it (a *SoftFloat*).
* A linear reduction (``sum``, ``cumsum``, ``mean``, ``trace`` ...) gives torch's exact result
  with the expectation; the distribution of a sum is not tracked: it becomes the two-point
  distribution on :math:`\lfloor m \rfloor, \lfloor m \rfloor + 1` with the same mean :math:`m`
  (:func:`tent`).
* Bound: :data:`MAX_SUPPORT` support points per element and :data:`MAX_ELEMENTS` values in all.
  Beyond it, equal support values are merged (the distinct values of the whole tensor), and if
  that is still too many the distribution becomes the two-point distribution with the same mean.
  The exact values never change; only the soft side is coarsened (its gradient is then the
  gradient of the mean).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .tensor import SoftTensor, _Disable, is_discrete, make, plain, support

#: Support points per element before equal values are merged.
MAX_SUPPORT: int = 256
#: Values stored for one distribution (support size times number of elements).
MAX_ELEMENTS: int = 1 << 24

Dist = tuple[Tensor, Tensor]


def is_integral(dtype: torch.dtype) -> bool:
    """Integer or bool dtypes (the values a soft integer stands for)."""
    return not (dtype.is_floating_point or dtype.is_complex)


def mean(dist: Dist, dtype: torch.dtype | None = None) -> Tensor:
    r"""The expectation :math:`\sum_k p_k v_k` (in the probabilities' floating dtype)."""
    v, p = dist
    return expect(p, v) if dtype is None else expect(p.to(dtype), v)


def tent(m: Tensor, dtype: torch.dtype) -> Dist:
    r"""The two-point distribution on :math:`\lfloor m \rfloor` and :math:`\lfloor m \rfloor + 1`
    with mean ``m`` (a point mass where ``m`` is an integer); gradients flow through ``m``."""
    lo = torch.floor(m.detach())
    lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
    frac = (m - lo).clamp(0.0, 1.0)
    vals = torch.stack([lo, lo + 1]).to(dtype)
    return vals, torch.stack([1.0 - frac, frac])


def point(exact: Tensor, like: Tensor) -> Dist:
    """A point mass at ``exact`` (probabilities in ``like``'s dtype and device)."""
    ones = torch.ones((1, *exact.shape), dtype=like.dtype, device=exact.device)
    return exact.unsqueeze(0), ones


def compress(dist: Dist) -> Dist:
    """Keep a distribution small: support points with equal values are merged (a dense
    distribution over each element's range ``min .. max`` when that is shorter than the
    support), and beyond :data:`MAX_SUPPORT` / :data:`MAX_ELEMENTS` the distribution is
    replaced by its :func:`tent`."""
    v, p = dist
    k = v.shape[0]
    if k <= 4:
        return dist
    numel = max(v[0].numel(), 1)
    vl = v.long()
    lo = vl.amin(0)
    span = int((vl.amax(0) - lo).max()) + 1 if v.numel() else 1
    if span < k and span * numel <= MAX_ELEMENTS:
        dense = torch.zeros((span, *v.shape[1:]), dtype=p.dtype, device=p.device)
        dense = dense.scatter_add(0, vl - lo, p.expand_as(v))
        steps = torch.arange(span, device=v.device).reshape(span, *[1] * (v.ndim - 1))
        return (lo + steps).to(v.dtype), dense
    if k <= MAX_SUPPORT and k * numel <= MAX_ELEMENTS:
        return dist
    return tent(mean(dist), v.dtype)


def from_exact_and_soft(exact: Tensor, soft: Tensor) -> Dist:
    """A distribution for an integer ``exact`` whose relaxed value is the float ``soft``: the
    :func:`tent` around ``soft``."""
    return tent(soft.to(_float_for(soft)), exact.dtype)


def _float_for(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


def result(exact: Any, dist: Dist | None, soft: Tensor | None, cfg: Any) -> Any:
    """Package torch's ``exact`` result with its relaxation: a SoftInt (integer ``exact`` and a
    distribution), a SoftBool (bool ``exact``; probability of true), a SoftFloat (floating
    ``exact``; ``soft`` values, or the mean of ``dist``)."""
    if not isinstance(exact, Tensor):
        return exact
    if exact.dtype == torch.bool:
        if dist is not None:
            prob = mean(dist)
        elif soft is not None:
            prob = soft.clamp(0.0, 1.0)
        else:
            return make(exact, cfg)
        return make(prob.to(_float_for(prob)), cfg, hard=exact)
    if is_integral(exact.dtype):
        if dist is None:
            if soft is None:
                return make(exact, cfg)
            dist = from_exact_and_soft(exact, soft)
        return make(exact, cfg, dist=compress(dist))
    if soft is None:
        if dist is None:
            return make(exact, cfg)
        soft = mean(dist)
    return make(soft.to(exact.dtype), cfg, exact=exact)


# ------------------------------------------------------------------------------ operands


def exact_of(t: Any) -> Any:
    """Torch's exact operand: a SoftBool's exact result, a soft integer's integers, a SoftFloat's
    exact values, a carrier's data."""
    if not isinstance(t, SoftTensor):
        return t
    if t._hard is not None:
        return t._hard
    if t._exact is not None:
        return t._exact
    return plain(t)


def soft_of(t: Any) -> Any:
    """The relaxed operand as a plain value: a soft integer's expectation, a SoftFloat's or a
    SoftBool's soft values."""
    if not isinstance(t, SoftTensor):
        return t
    if t._dist is not None or t._sidx is not None:
        return mean(support(t))  # type: ignore[arg-type]
    return plain(t)


def map_args(
    args: tuple[Any, ...], kwargs: dict[str, Any], fn: Callable[[Any], Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``fn`` on every operand (top level and inside lists / tuples)."""

    def one(a: Any) -> Any:
        if isinstance(a, (list, tuple)) and not hasattr(a, "_fields"):
            return type(a)(one(b) for b in a)
        return fn(a)

    return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}


def exact_call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """torch's result on the exact operands, None if torch rejects them."""
    try:
        ea, ek = map_args(args, kwargs, exact_of)
        return func(*ea, **ek)
    except Exception:
        return None


def operands(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            out.extend(a)
        else:
            out.append(a)
    return out


def has_discrete(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return any(is_discrete(a) for a in operands(args, kwargs))


# ---------------------------------------------------------------------- op classification

_DUNDER = {
    "add": "add", "radd": "add", "sub": "sub", "rsub": "rsub", "mul": "mul", "rmul": "mul",
    "truediv": "div", "rtruediv": "div", "floordiv": "floor_divide",
    "rfloordiv": "floor_divide", "mod": "remainder", "rmod": "remainder", "pow": "pow",
    "rpow": "pow", "and": "bitwise_and", "rand": "bitwise_and", "or": "bitwise_or",
    "ror": "bitwise_or", "xor": "bitwise_xor", "rxor": "bitwise_xor", "invert": "bitwise_not",
    "neg": "neg", "pos": "positive", "abs": "abs", "eq": "eq", "ne": "ne", "lt": "lt",
    "le": "le", "gt": "gt", "ge": "ge", "lshift": "bitwise_left_shift",
    "rlshift": "bitwise_left_shift", "rshift": "bitwise_right_shift",
    "rrshift": "bitwise_right_shift",
}  # fmt: skip


def aten_name(func: Callable[..., Any]) -> str:
    """The aten op a torch callable stands for (``Tensor.__radd__`` -> ``add``)."""
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__") and name.endswith("__"):
        inner = name[2:-2]
        if inner.startswith("i") and inner[1:] in _DUNDER:
            return _DUNDER[inner[1:]]
        return _DUNDER.get(inner, inner)
    return name.rstrip("_") if name.endswith("_") and not name.endswith("__") else name


@functools.cache
def _pointwise_name(name: str) -> bool:
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return False
    try:
        overloads = packet.overloads()
    except Exception:  # pragma: no cover - not an op packet
        return False
    return any(torch.Tag.pointwise in getattr(packet, o).tags for o in overloads)


#: Elementwise aten ops that torch (2.13) does not tag ``pointwise``.
_UNTAGGED_POINTWISE = frozenset({"floor_divide", "true_divide"})


def is_pointwise(func: Callable[..., Any]) -> bool:
    """True for torch callables whose aten op is tagged ``pointwise`` (``add``, ``eq``,
    ``where`` ...), read from torch's own op registry, and the few elementwise ops it leaves
    untagged (:data:`_UNTAGGED_POINTWISE`)."""
    try:
        name = aten_name(func)
        return name in _UNTAGGED_POINTWISE or _pointwise_name(name)
    except TypeError:
        return False


def is_inplace(func: Callable[..., Any]) -> bool:
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__i") and name[3:-2] in _DUNDER:
        return True
    return name.endswith("_") and not name.endswith("__")


# ------------------------------------------------------------------------- pointwise ops


def _pad_axes(t: Tensor, lead: int, pos: int, rank: int) -> Tensor:
    """``t`` of shape ``(K, *s)`` as ``(1.., K at pos, ..1, 1 * (rank - len(s)), *s)``."""
    k, s = t.shape[0], t.shape[1:]
    shape = [1] * lead
    shape[pos] = k
    return t.reshape(*shape, *[1] * (rank - len(s)), *s)


def pointwise(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cfg: Any
) -> Any:
    """A pointwise op with soft-integer operands (see the module docstring). Returns None when
    the call is not for this path (torch rejects the exact operands, or only SoftBools meet a
    floating result: those keep the SoftBool arithmetic on soft values)."""
    exact = exact_call(func, args, kwargs)
    if not isinstance(exact, Tensor):
        return None
    found: list[Any] = []
    for a in operands(args, kwargs):
        if is_discrete(a) and not any(a is b for b in found):
            found.append(a)
    if not found:  # SoftFloat operands: the op on the soft values beside the exact result
        sa, sk = map_args(args, kwargs, soft_of)
        return None if is_inplace(func) else result(exact, None, safe_apply(func, sa, sk), cfg)
    if not is_integral(exact.dtype) and all(t._hard is not None for t in found):
        return None
    dists = [support(t) for t in found]
    rank = exact.ndim
    total = math.prod(d[0].shape[0] for d in dists) * max(exact.numel(), 1)  # type: ignore
    if total > MAX_ELEMENTS:  # too many combinations: each operand by its two-point form
        dists = [tent(mean(d), d[0].dtype) for d in dists]  # type: ignore[arg-type]
        if 2 ** len(dists) * max(exact.numel(), 1) > MAX_ELEMENTS:
            return None
    lead = len(dists)

    def substitute(a: Any) -> Any:
        for i, t in enumerate(found):
            if a is t:
                return _pad_axes(dists[i][0], lead, i, rank)  # type: ignore[index]
        return soft_of(a)

    va, vk = map_args(args, kwargs, substitute)
    if is_inplace(func):
        return None
    vals = func(*va, **vk)
    probs = functools.reduce(
        torch.mul,
        (_pad_axes(d[1], lead, i, rank) for i, d in enumerate(dists)),  # type: ignore
    )
    k = math.prod(d[0].shape[0] for d in dists)  # type: ignore[index]
    vals = vals.reshape(k, *vals.shape[lead:]) if lead else vals.unsqueeze(0)
    probs = probs.expand(*probs.shape[:lead], *vals.shape[1:]).reshape(k, *vals.shape[1:])
    vals = vals.expand(probs.shape[0], *vals.shape[1:])
    if is_integral(exact.dtype):
        return result(exact, (vals.to(exact.dtype), probs), None, cfg)
    return result(exact, None, expect(probs, vals), cfg)


def expect(probs: Tensor, vals: Tensor) -> Tensor:
    r""":math:`\sum_k p_k v_k` where a zero probability never meets an infinite value as NaN."""
    v = vals.to(probs.dtype)
    v = torch.where((probs == 0) & ~torch.isfinite(v), torch.zeros_like(v), v)
    return (probs * v).sum(0)


def safe_apply(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``func`` on soft operands; where the result is not finite (``0 / 0`` on a soft count that
    is exactly zero, say) the operands enter through ``where(bad, v.detach(), v)``, so the
    non-finite local derivative never reaches the gradient (``0 * inf`` stays out of it)."""
    out = func(*args, **kwargs)
    if not isinstance(out, Tensor) or not out.is_floating_point() or not out.requires_grad:
        return out
    bad = ~torch.isfinite(out)
    if torch.compiler.is_compiling() or not bool(bad.any()):
        return out

    def guard(a: Any) -> Any:
        if isinstance(a, Tensor) and a.requires_grad:
            return torch.where(bad, a.detach(), a)
        return a

    ga, gk = map_args(args, kwargs, guard)
    return func(*ga, **gk)


# --------------------------------------------------------------------------- reductions

#: Linear reductions: the soft value is the same reduction of the expectation.
LINEAR_REDUCTIONS: frozenset[str] = frozenset({
    "sum", "nansum", "cumsum", "mean", "nanmean", "trace", "diff",
})  # fmt: skip


def linear(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cfg: Any
) -> Any:
    """A linear reduction of soft integers: torch's exact result with the reduction of the
    expectations (floating), the distribution of an integer result by :func:`tent`."""
    exact = exact_call(func, args, kwargs)
    if not isinstance(exact, Tensor):
        return None
    if aten_name(func) in ("sum", "nansum") and is_integral(exact.dtype) and is_discrete(args[0]):
        dist = _sum_distribution(args, kwargs, exact)
        if dist is not None:
            return result(exact, dist, None, cfg)
    sk = dict(kwargs)
    sk.pop("dtype", None)
    sa, sk = map_args(args, sk, lambda a: _as_float(soft_of(a)))
    return result(exact, None, safe_apply(func, sa, sk), cfg)


def _sum_distribution(args: tuple[Any, ...], kwargs: dict[str, Any], exact: Tensor) -> Dist | None:
    r"""The distribution of a sum of independent soft integers (``sum(x, dim, keepdim)``): the
    convolution of their distributions, :math:`q_{1} * q_{2} * \cdots * q_{n}`, kept while its
    support has at most :data:`MAX_SUPPORT` values (a Poisson-binomial for SoftBools); None
    beyond (the caller keeps the mean)."""
    x = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
    v, p = support(x)  # type: ignore[misc]
    nd = v.ndim - 1
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        dims = list(range(nd))
    else:
        dims = sorted({d % max(nd, 1) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))})
    n = math.prod(x.shape[d] for d in dims) if nd else 1
    if v.numel() == 0 or n == 0:
        return None
    lo, hi = int(v.min()), int(v.max())
    w = hi - lo + 1
    width = n * (w - 1) + 1
    if width > MAX_SUPPORT or n * w > 4 * MAX_SUPPORT:
        return None
    keep = [d for d in range(nd) if d not in dims]
    dense = torch.zeros((w, *v.shape[1:]), dtype=p.dtype, device=p.device)
    dense = dense.scatter_add(0, v.long() - lo, p.expand_as(v))
    q = dense.permute(*[k + 1 for k in keep], *[d + 1 for d in dims], 0)
    q = q.reshape(*[x.shape[k] for k in keep], n, w)
    r = q[..., 0, :]
    for i in range(1, n):  # one convolution per summand, vectorised over the kept dims
        qi = q[..., i, :]
        size = r.shape[-1]
        r = sum(F.pad(qi[..., j : j + 1] * r, (j, w - 1 - j)) for j in range(w))
        assert r.shape[-1] == size + w - 1
    probs = r.movedim(-1, 0)
    if keepdim:
        for d in dims:
            probs = probs.unsqueeze(d + 1)
    vals = torch.arange(n * lo, n * lo + width, device=p.device, dtype=exact.dtype)
    vals = vals.reshape(width, *[1] * (probs.ndim - 1)).expand_as(probs)
    return vals, probs


def _as_float(a: Any) -> Any:
    if isinstance(a, Tensor) and not a.is_floating_point():
        return a.to(torch.get_default_dtype())
    return a


# ---------------------------------------------------------------------- structural ops


def structural(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cfg: Any
) -> Any:
    """Shape and copy ops (``reshape``, ``permute``, ``x[i]``, ``cat``, ``stack`` ...): applied
    to torch's exact operands, to the SoftFloat values, and (batched over the support axis) to
    the support values and probabilities of every soft integer; plain tensors listed next to
    soft integers (``cat([a, b])``) count as point masses. Returns None when the op cannot be
    batched."""
    ea, ek = map_args(args, kwargs, exact_of)
    exact = func(*ea, **ek)
    first = args[0] if args else None
    data = list(first) if isinstance(first, (list, tuple)) else [first]
    ints = [a for a in data if is_discrete(a)]  # later operands are indices / masks: exact
    if not ints:  # SoftFloat operands only
        sa, sk = map_args(args, kwargs, soft_of)
        return _pair_soft(exact, func(*sa, **sk), cfg)
    if not _same_kind(exact):
        return None
    dists = {id(a): support(a) for a in ints}
    k = max(d[0].shape[0] for d in dists.values())  # type: ignore[index]
    pdt = next(iter(dists.values()))[1].dtype  # type: ignore[index]
    vals: list[Tensor] = []
    probs: list[Tensor] = []

    def collect(a: Any, listed: bool) -> Any:
        if id(a) in dists:
            v, p = dists[id(a)]  # type: ignore[misc]
            if v.shape[0] < k:  # pad the support with zero-probability points
                v = torch.cat([v, v[:1].expand(k - v.shape[0], *v.shape[1:])])
                p = torch.cat([p, p.new_zeros((k - p.shape[0], *p.shape[1:]))])
        elif listed and isinstance(a, Tensor):
            e = soft_of(a) if a.is_floating_point() else exact_of(a)
            v = e.unsqueeze(0).expand(k, *e.shape)
            p = torch.zeros((k, *e.shape), dtype=pdt, device=e.device)
            p[0] = 1.0
        else:
            return exact_of(a)
        vals.append(v)
        probs.append(p)
        return _Slot(len(vals) - 1)

    def top(a: Any) -> Any:
        if isinstance(a, (list, tuple)) and not hasattr(a, "_fields"):
            listed = any(id(b) in dists for b in a)
            return type(a)(collect(b, listed) for b in a)
        return collect(a, False)

    ca = (top(first), *(exact_of(a) for a in args[1:]))
    ck = {key: exact_of(v) for key, v in kwargs.items()}

    def run(*ts: Tensor) -> Any:
        ra, rk = map_args(ca, ck, lambda a: ts[a.i] if isinstance(a, _Slot) else a)
        return func(*ra, **rk)

    try:
        if func is Tensor.__getitem__ and isinstance(ca[0], _Slot):  # masks: no vmap
            key = ca[1] if isinstance(ca[1], tuple) else (ca[1],)
            bv, bp = vals[0][(slice(None), *key)], probs[0][(slice(None), *key)]
        else:
            bv = torch.vmap(run)(*vals)
            bp = torch.vmap(run)(*probs)
    except Exception:
        return None
    return _package_structural(exact, bv, bp, cfg)


def _same_kind(exact: Any) -> bool:
    if isinstance(exact, Tensor):
        return True
    return isinstance(exact, (tuple, list)) and all(isinstance(e, Tensor) for e in exact)


class _Slot:
    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


def _package_structural(exact: Any, vals: Any, probs: Any, cfg: Any) -> Any:
    if isinstance(exact, Tensor):
        v = vals.to(exact.dtype) if is_integral(exact.dtype) else vals
        # positions the op filled itself (diag, tril ...) have no probability: a point mass
        # positions the op filled itself (pad, diag, tril, masked_fill ...) carry no
        # distribution (their "probabilities" are the fill value): a point mass at torch's value
        filled = (probs.sum(0) - 1.0).abs() > 1e-3
        if bool(filled.any()):
            first = torch.zeros_like(probs)
            first[0] = 1.0
            probs = torch.where(filled, first, probs)
            v = torch.where(filled, exact.to(v.dtype).unsqueeze(0).expand_as(v), v)
        return result(exact, (v, probs), None, cfg)
    return type(exact)(_package_structural(e, v, p, cfg) for e, v, p in zip(exact, vals, probs))


def _pair_soft(exact: Any, soft: Any, cfg: Any) -> Any:
    if isinstance(exact, Tensor):
        return result(exact, None, soft, cfg)
    if isinstance(exact, (tuple, list)):
        return type(exact)(_pair_soft(e, s, cfg) for e, s in zip(exact, soft))
    return exact


# --------------------------------------------------------------------------------- casts


def cast(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], cfg: Any) -> Any:
    """Dtype / device casts of a soft integer or SoftFloat: integer results keep the
    distribution (values cast), floating results show the expectation. A floating soft value
    cast to an integer is never truncated: torch's exact cast of the exact value, with the
    two-point distribution around the soft value shifted by the exact fractional part."""
    x = args[0]
    ea, ek = map_args(args, kwargs, exact_of)
    exact = func(*ea, **ek)
    if not isinstance(exact, Tensor):
        return exact
    if x._hard is not None and not (is_integral(exact.dtype) and exact.dtype != torch.bool):
        return None  # SoftBool to float / bool: the SoftBool rules (it stays a SoftBool)
    d = support(x)
    if d is not None:
        v, p = d
        if func in (Tensor.cpu, Tensor.cuda) or exact.dtype == exact_of(x).dtype:
            dev = exact.device
            if is_integral(exact.dtype) and x._dist is not None:
                return make(exact, cfg, dist=(v.to(dev), p.to(dev)))
            if x._sidx is not None and exact.dtype == exact_of(x).dtype:
                return make(exact, cfg, sidx=x._sidx.to(dev))
        if is_integral(exact.dtype):
            return result(exact, (v.to(device=exact.device, dtype=exact.dtype),
                                  p.to(exact.device)), None, cfg)  # fmt: skip
        return result(exact, None, mean(d).to(exact.device), cfg)
    # SoftFloat
    soft = plain(x)
    if is_integral(exact.dtype):
        e = exact_of(x)
        shift = (e - torch.trunc(e)).to(soft.dtype) if e.is_floating_point() else 0.0
        target = (soft - shift).to(exact.device)
        return result(exact, tent(target, exact.dtype), None, cfg)
    return result(exact, None, soft.to(device=exact.device, dtype=exact.dtype), cfg)


# ------------------------------------------------------------------------------ in place


def out_of_place(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """The out-of-place form of an in-place tensor method (``add_`` / ``__iadd__`` -> ``add`` /
    ``__add__``), None if there is none."""
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__i") and name[3:-2] in _DUNDER:
        return getattr(Tensor, "__" + name[3:], None)
    if name.endswith("_") and not name.endswith("__"):
        return getattr(Tensor, name[:-1], None)
    return None


def write_into(target: Tensor, out: Any) -> Tensor:
    """Store a relaxed result in ``target`` in place: integer / bool storage holds torch's exact
    values and becomes a SoftInt carrying the distribution; floating storage holds the soft
    values and keeps the exact ones beside them (a SoftFloat). ``target`` keeps its identity."""
    with _Disable():
        data = plain(target)
        if not isinstance(out, SoftTensor):
            data.copy_(out)
            dist = exact = None
        elif is_integral(target.dtype):
            data.copy_(exact_of(out))
            d = support(out) if is_discrete(out) else from_exact_and_soft(
                data, soft_of(out))  # fmt: skip
            dist = (d[0].to(target.dtype), d[1]) if d is not None else None
            exact = None
        else:
            data.copy_(plain(out) if not is_discrete(out) else soft_of(out))
            dist, exact = None, exact_of(out).to(target.dtype)
    if not isinstance(target, SoftTensor):
        target.__class__ = SoftTensor
    if isinstance(out, SoftTensor) and out._cfg is not None:
        target._cfg = out._cfg
    target._hard = None
    target._sidx = None
    target._dist = None if dist is None else compress(dist)
    target._exact = exact
    return target
