r"""``SoftTensor``: a tensor that carries relaxation settings, a soft boolean, index or integer.

One subclass plays five roles, told apart by which attribute is set:

* *carrier* (``_cfg``): data made with :func:`soft`; torch ops on it are relaxed with its settings
  and their tensor results are carriers again.
* *SoftBool* (``_hard``): the float result of a relaxed comparison, values in [0, 1], together with
  torch's exact result (a bool tensor, or 0/1 in a float dtype after ``.float()``). Arithmetic sees
  the soft values; everything that needs a boolean (``bool(m)``, ``m.item()``, ``m.bool()``,
  ``x[m]``, ``nonzero`` ...) sees the exact result.
* *SoftIndex* (``_sidx``): torch's integer index result, with the soft index (a distribution over
  the ``n`` positions, shape ``index.shape + (n,)``) that selection ops use inside a soft context.
* *SoftInt* (``_dist``): an integer tensor holding torch's exact values, with the distribution
  they are relaxed to: support values ``(K, *shape)`` (integers) and probabilities ``(K, *shape)``
  that sum to one over ``K`` (see :mod:`softtorch.interception.discrete`).
* *SoftFloat* (``_exact``): a floating value computed from soft integers: the data are the soft
  values (they carry the gradient), ``_exact`` holds torch's exact result.

Settings travel with the data, roles only mark what a value means: a SoftBool made inside
``soft_mode`` carries no settings and acts as a plain mask outside it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .config import SoftConfig

#: Subclass dispatch off for a block (torch internal ``torch._C``, checked on torch 2.13.0):
#: the one alias every interception module uses.
_Disable = torch._C.DisableTorchFunctionSubclass
#: ``torch.Tensor.as_subclass`` itself (SoftTensor overrides the method for traced code).
_as_subclass = Tensor.as_subclass

Dispatch = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
#: The subclass dispatch entry (one slot), set by :func:`set_dispatch`.
_DISPATCH: list[Dispatch] = []


def set_dispatch(entry: Dispatch) -> None:
    """Install the function every SoftTensor operation is routed to. The dispatcher lives above
    this module (it reads the registry, which reads this module), so it registers itself here:
    :mod:`softtorch.interception.mode` calls this once at import."""
    _DISPATCH[:] = [entry]


class SoftTensor(torch.Tensor):
    """A tensor whose torch operations are relaxed; see the module docstring for its roles.

    Make one with :func:`softtorch.soft`; leave with :meth:`hard` or ``.as_subclass(torch.Tensor)``.
    """

    _cfg: SoftConfig | None = None
    _hard: Tensor | None = None
    _sidx: Tensor | None = None
    _dist: tuple[Tensor, Tensor] | None = None
    _exact: Tensor | None = None

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Iterable[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        return _DISPATCH[0](func, args, kwargs or {})

    @property
    def config(self) -> SoftConfig | None:
        """The relaxation settings this tensor carries (None: it only marks a role)."""
        return self._cfg

    @property
    def soft_index(self) -> Tensor | None:
        """For an index result: the soft index ``(*self.shape, n)``; else None."""
        return self._sidx

    @property
    def is_soft_bool(self) -> bool:
        """True for the result of a relaxed comparison or logic op."""
        return self._hard is not None

    @property
    def distribution(self) -> tuple[Tensor, Tensor] | None:
        """For a soft integer (SoftInt, SoftIndex, SoftBool): ``(values, probabilities)``, both
        ``(K, *self.shape)``, the probabilities summing to one over the first axis; else None."""
        return support(self)

    def hard(self) -> Tensor:
        """Torch's exact value as a plain tensor: the boolean result of a SoftBool, the integer
        index of a SoftIndex, the integers of a SoftInt, the exact result of a SoftFloat, the
        data of a carrier."""
        if self._hard is not None:
            return self._hard
        if self._exact is not None:
            return self._exact
        return plain(self)

    def as_subclass(self, cls: type) -> Tensor:  # type: ignore[override]
        """``Tensor.as_subclass``; under ``torch.compile`` ``as_subclass(torch.Tensor)`` is
        traced as :func:`plain` (Dynamo cannot trace it for a ``__torch_function__`` subclass)."""
        if cls is Tensor and torch.compiler.is_compiling():
            return traced_plain(self)
        return _as_subclass(self, cls)

    def detach(self) -> Tensor:  # type: ignore[override]
        """``Tensor.detach`` (through the dispatch as usual). Under a ``TorchDispatchMode`` the
        plain data is detached and the settings and role are kept: some modes reject subclass
        operands, such as the check AOTAutograd runs on the first call of a compiled function,
        which detaches the SoftTensor inputs it saves for backward."""
        # torch internal (torch._C._len_torch_dispatch_stack), checked on torch 2.13.0
        if torch.compiler.is_compiling() or not torch._C._len_torch_dispatch_stack():
            return Tensor.detach(self)
        sidx = None if self._sidx is None else self._sidx.detach()
        dist = None if self._dist is None else (self._dist[0], self._dist[1].detach())
        return make(Tensor.detach(plain(self)), self._cfg, self._hard, sidx, dist, self._exact)

    @property
    def _base(self) -> Tensor | None:  # type: ignore[override]
        """The view base as a plain tensor. (Through ``__torch_function__`` it would become a
        carrier, itself an ``as_subclass`` alias of the base and so a view again: Dynamo, which
        follows ``_base`` while it wraps a SoftTensor input, recursed without end.)"""
        with _Disable():
            return Tensor._base.__get__(self)  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, Any]) -> SoftTensor:
        if id(self) in memo:
            return memo[id(self)]
        data = copy.deepcopy(plain(self), memo)
        hard, sidx = copy.deepcopy(self._hard, memo), copy.deepcopy(self._sidx, memo)
        dist, exact = copy.deepcopy(self._dist, memo), copy.deepcopy(self._exact, memo)
        out = make(data, self._cfg, hard, sidx, dist, exact)
        memo[id(self)] = out
        return out  # type: ignore[return-value]

    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        with _Disable():
            body = Tensor.__repr__(plain(self))
        if self._hard is not None:
            kind = "SoftBool"
        elif self._sidx is not None:
            kind = "SoftIndex"
        elif self._dist is not None:
            kind = "SoftInt"
        elif self._exact is not None:
            kind = "SoftFloat"
        else:
            kind = "SoftTensor"
        extra = "" if self._cfg is None else f", {self._cfg!r}"
        return f"{kind}({body}{extra})"


def make(
    data: Tensor,
    cfg: SoftConfig | None,
    hard: Tensor | None = None,
    sidx: Tensor | None = None,
    dist: tuple[Tensor, Tensor] | None = None,
    exact: Tensor | None = None,
) -> Tensor:
    """``data`` as a SoftTensor with the given settings and role (plain if it has neither)."""
    if cfg is None and hard is None and sidx is None and dist is None and exact is None:
        return plain(data)
    out = _as_subclass(data, SoftTensor)  # as_subclass is never dispatched
    if cfg is not None:  # unset attributes fall back to the class defaults (None)
        out._cfg = cfg
    if hard is not None:
        out._hard = hard
    if sidx is not None:
        out._sidx = sidx
    if dist is not None:
        out._dist = dist
    if exact is not None:  # observation only: the gradient flows through the soft values
        out._exact = exact.detach()
    return out


def traced_make(
    data: Tensor,
    cfg: SoftConfig | None,
    hard: Tensor | None = None,
    sidx: Tensor | None = None,
    dist: tuple[Tensor, Tensor] | None = None,
    exact: Tensor | None = None,
) -> Tensor:
    """:func:`make` as ``torch.compile`` traces it: every attribute is set on the new object
    (Dynamo does not see the class defaults of a SoftTensor made while tracing)."""
    if cfg is None and hard is None and sidx is None and dist is None and exact is None:
        return plain(data)
    out = plain(data).as_subclass(SoftTensor)
    out._cfg = cfg
    out._hard = hard
    out._sidx = sidx
    out._dist = dist
    out._exact = exact
    return out


def clone_role(t: Tensor) -> Tensor:
    """A copy of ``t``'s data (``clone``, differentiable) with the same settings and role."""
    with _Disable():
        data = t.clone()
    if not isinstance(t, SoftTensor):
        return data
    return make(data, t._cfg, t._hard, t._sidx, t._dist, t._exact)


def plain(t: Any) -> Any:
    """A plain-tensor alias of ``t`` (same data and autograd history); non-SoftTensors unchanged."""
    if isinstance(t, SoftTensor):
        return _as_subclass(t, Tensor)
    return t


def traced_plain(t: Any) -> Any:
    """:func:`plain` as ``torch.compile`` traces it: Dynamo cannot trace ``as_subclass`` to
    ``torch.Tensor``, but an ``alias`` with subclass dispatch disabled is the same plain alias."""
    if isinstance(t, SoftTensor):
        with _Disable():
            return torch.ops.aten.alias(t)
    return t


def trace_as(fn: Callable[..., Any], traced: Callable[..., Any]) -> None:
    """Make Dynamo trace ``traced`` wherever it meets ``fn`` (the ``_torchdynamo_inline`` hook
    it also follows for ``torch.jit`` wrappers). Eager calls of ``fn`` are unchanged, so the
    eager dispatch pays nothing for the traceable form."""
    fn._torchdynamo_inline = traced  # type: ignore[attr-defined]


trace_as(plain, traced_plain)
trace_as(make, traced_make)


def is_soft_bool(t: object) -> bool:
    return isinstance(t, SoftTensor) and t._hard is not None


def is_soft_index(t: object) -> bool:
    return isinstance(t, SoftTensor) and t._sidx is not None


def is_soft_int(t: object) -> bool:
    return isinstance(t, SoftTensor) and t._dist is not None


def is_soft_float(t: object) -> bool:
    return isinstance(t, SoftTensor) and t._exact is not None


def is_discrete(t: object) -> bool:
    """A soft integer in the wide sense: SoftBool, SoftIndex or SoftInt."""
    return isinstance(t, SoftTensor) and (
        t._hard is not None or t._sidx is not None or t._dist is not None
    )


def has_role(t: object) -> bool:
    return isinstance(t, SoftTensor) and (
        t._hard is not None or t._sidx is not None or t._dist is not None or t._exact is not None
    )


def support(t: Any) -> tuple[Tensor, Tensor] | None:
    """The distribution of a soft integer as ``(values, probabilities)``, both ``(K, *t.shape)``
    with the support axis first: a SoftInt's own, a SoftIndex's positions ``0 .. n - 1`` with its
    soft index, a SoftBool's ``{0, 1}`` (in the dtype of its exact result) with ``(1 - p, p)``.
    None for other tensors."""
    if not isinstance(t, SoftTensor):
        return None
    if t._dist is not None:
        return t._dist
    if t._sidx is not None:
        p = t._sidx
        n = p.shape[-1]
        vals = torch.arange(n, dtype=t.dtype, device=p.device).reshape(n, *[1] * (p.ndim - 1))
        return vals.expand(n, *p.shape[:-1]), p.movedim(-1, 0)
    if t._hard is not None:
        p = plain(t)
        h = t._hard
        vals = torch.stack([torch.zeros_like(h), torch.ones_like(h)])
        return vals, torch.stack([1.0 - p, p])
    return None


def hard_view(t: Any, kind: str = "value") -> Any:
    """Torch's exact operand. For a SoftBool: ``"bool"`` the boolean mask, ``"raw"`` the exact
    result as stored (bool, or 0/1 floats after ``.float()``), ``"value"`` 0/1 in its float
    dtype. A SoftIndex gives its integers, a carrier its data; other objects are unchanged."""
    if not isinstance(t, SoftTensor):
        return t
    h = t._hard
    if h is None:
        return plain(t) if t._exact is None else t._exact
    if kind == "bool":
        return h if h.dtype == torch.bool else h != 0
    if kind == "raw":
        return h
    return h.to(t.dtype)


def prob(t: Any) -> Any:
    """A truth value as a probability: SoftBool values, bool tensors as 0/1 floats."""
    if isinstance(t, SoftTensor):
        return plain(t)
    if isinstance(t, Tensor) and t.dtype == torch.bool:
        return t.to(torch.get_default_dtype())
    if isinstance(t, bool):
        return float(t)
    return t


def carried_config(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SoftConfig | None:
    """Settings of the first operand (argument, keyword or list item) that carries any."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, SoftTensor):
            if a._cfg is not None:
                return a._cfg
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, SoftTensor) and b._cfg is not None:
                    return b._cfg
    return None


def _map_one(a: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(a, SoftTensor):
        return fn(a)
    if isinstance(a, (list, tuple)) and any(isinstance(b, SoftTensor) for b in a):
        return type(a)(fn(b) if isinstance(b, SoftTensor) else b for b in a)
    return a


def map_tensors(
    args: tuple[Any, ...], kwargs: dict[str, Any], fn: Callable[[Any], Any], start: int = 0
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Apply ``fn`` to every SoftTensor operand from position ``start`` on (top level and inside
    lists / tuples) and to every keyword operand."""
    out = tuple(a if i < start else _map_one(a, fn) for i, a in enumerate(args))
    return out, {k: _map_one(v, fn) for k, v in kwargs.items()}


def wrap(out: Any, cfg: SoftConfig | None) -> Any:
    """Tensor results as carriers of ``cfg`` (recursively through tuples); unchanged if None."""
    if cfg is None:
        return out
    if isinstance(out, Tensor):
        if isinstance(out, SoftTensor):
            if out._cfg is None:
                out._cfg = cfg
            return out
        return make(out, cfg)
    if isinstance(out, (tuple, list)):
        items = [wrap(o, cfg) for o in out]
        if isinstance(out, list):
            return items
        if hasattr(out, "_fields"):
            return type(out)(*items)
        return type(out)(items) if type(out) is not tuple else tuple(items)
    return out
