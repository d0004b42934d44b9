r"""What a relaxation handler gets: the settings in force and builders for its results.

A handler has the signature of the torch function it relaxes, with a :class:`Ctx` first. It returns
:data:`DECLINE` to leave the call to torch, or a result built with

* :meth:`Ctx.value` -- a soft value (straight-through: torch's value forward, soft gradient);
* :meth:`Ctx.bool` -- a SoftBool: soft truth values plus torch's exact boolean result;
* :meth:`Ctx.index` -- a SoftIndex: torch's integer result plus the soft index;
* :meth:`Ctx.pair` -- torch's ``(values, indices)`` named tuple built from the two above.

The builders take zero-argument callables, so torch's exact result is computed only when needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import INDEX_METHODS
from ..straight_through import combine
from ..surrogate import threshold
from .config import SoftConfig
from .tensor import SoftTensor, _Disable, is_soft_bool, make, wrap

#: Returned by a handler that leaves the call to torch (e.g. no soft operand where one is needed).
DECLINE: Any = object()



class Ctx:
    """Settings in force for one relaxed call; ``carried``: settings its results should carry."""

    __slots__ = ("cfg", "carried", "softness", "mode", "st")

    def __init__(self, cfg: SoftConfig, carried: SoftConfig | None) -> None:
        self.cfg = cfg
        self.carried = carried
        self.softness = cfg.softness
        self.mode = cfg.mode
        self.st = cfg.straight_through

    def kw(self, index: bool = False) -> dict[str, Any]:
        """Keyword arguments for an ordering function: softness, mode and the chosen method
        (left out for index results when the method computes values only)."""
        out: dict[str, Any] = {"softness": self.softness, "mode": self.mode}
        method = self.cfg.method
        if method is not None and (not index or method in INDEX_METHODS):
            out["method"] = method
        return out

    def value(
        self, soft: Callable[[], Tensor], hard: Callable[[], Tensor], finite: bool = False
    ) -> Tensor:
        """Soft value; ``finite``: where torch's exact value is not finite (an infinite
        maximum, say) the exact value is used."""
        out = soft()
        finite = finite and not torch.compiler.is_compiling()
        if not (self.st or finite):
            return wrap(out, self.carried)
        exact = hard()
        if finite:
            out = _keep_nonfinite(out, exact)
        if self.st:
            out = combine(exact, out)
        return make(out, self.carried, exact=exact.to(out.dtype)) if _shadow(finite) else wrap(
            out, self.carried)  # fmt: skip

    def bool(
        self,
        soft: Callable[[], Tensor],
        hard: Callable[[], Tensor],
        step: Callable[[], Tensor] | None = None,
    ) -> Tensor:
        """SoftBool; ``step`` gives the signed margin ``d`` (true iff ``d > 0``) that a
        surrogate gradient is computed from."""
        exact = hard()
        if self.cfg.surrogate is not None and step is not None:
            surrogate = threshold(step(), self.cfg.surrogate)
            values = combine(exact.to(surrogate.dtype), surrogate)
        else:
            values = soft()
            if self.st:
                values = combine(exact.to(values.dtype), values)
        return make(values, self.carried, hard=exact)

    def index(self, soft: Callable[[], Tensor | None], hard: Callable[[], Tensor]) -> Tensor:
        return self.soft_index(hard(), soft())

    def soft_index(self, exact: Tensor, sidx: Tensor | None) -> Tensor:
        """SoftIndex from torch's integer index and the soft one (None: integers only)."""
        if sidx is None:
            return wrap(exact, self.carried)
        if self.st:
            sidx = combine(F.one_hot(exact, sidx.shape[-1]).to(sidx.dtype), sidx)
        return make(exact, self.carried, sidx=sidx)

    def pair(
        self,
        soft: Callable[[], tuple[Tensor, Tensor | None]],
        hard: Callable[[], Any],
        finite: bool = False,
    ) -> Any:
        """``type(torch_result)(values, indices)`` with soft values and a SoftIndex (``finite``:
        as in :meth:`value`)."""
        exact = hard()
        values, sidx = soft()
        finite = finite and not torch.compiler.is_compiling()
        if finite:
            values = _keep_nonfinite(values, exact[0])
        if self.st:
            values = combine(exact[0], values)
        shown = make(values, self.carried, exact=exact[0].to(values.dtype)) if _shadow(
            finite) else wrap(values, self.carried)  # fmt: skip
        return type(exact)((shown, self.soft_index(exact[1], sidx)))


def _shadow(finite: bool) -> bool:
    """Order statistics keep torch's exact values beside the soft ones (a SoftFloat) in eager
    mode; a compiled graph returns the soft values (its outputs carry no extra tensors, and the
    non-finite guard of :func:`finite_input` is not traced)."""
    return finite


def _keep_nonfinite(soft: Tensor, exact: Tensor) -> Tensor:
    """torch's exact value where it is not finite, the soft value elsewhere."""
    exact = exact.detach()
    return torch.where(torch.isfinite(exact), soft, exact.to(soft.dtype))


def finite_input(x: Tensor, dim: int | None) -> Tensor:
    """``x`` with ``+inf`` / ``-inf`` replaced by the largest / smallest finite value of its
    slice along ``dim`` (all of ``x`` for None), for the soft side of an order statistic: an
    infinite entry then takes part as the extreme finite value instead of turning ``0 * inf``
    into NaN; where torch's exact result is infinite the handler keeps it (``finite=True``)."""
    if not x.is_floating_point() or x.ndim == 0:
        return x
    if torch.compiler.is_compiling():  # traced graphs keep the input as it is
        return x
    inf = torch.isinf(x)
    if not bool(inf.any()):
        return x
    kw: dict[str, Any] = {} if dim is None else {"dim": dim, "keepdim": True}
    big = torch.finfo(x.dtype).max
    lo = torch.where(inf, big, x).amin(**kw).detach()
    hi = torch.where(inf, -big, x).amax(**kw).detach()
    lo = torch.where(lo == big, torch.zeros_like(lo), lo)
    hi = torch.where(hi == -big, torch.zeros_like(hi), hi)
    return torch.where(x == float("-inf"), lo, torch.where(x == float("inf"), hi, x))


def into(target: Tensor, out: Tensor) -> Tensor:
    """In-place spelling: write the relaxed result into ``target`` and return it."""
    src = out._hard if target.dtype == torch.bool and is_soft_bool(out) else out
    with _Disable():
        target.copy_(src)
    if isinstance(target, SoftTensor):
        target._hard = out._hard if is_soft_bool(out) and target.is_floating_point() else None
        target._sidx = None
    return target
