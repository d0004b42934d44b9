r"""The dispatch path shared by ``soft_mode`` and ``SoftTensor``.

Plain path (``soft_mode`` active, no SoftTensor operand): one dict lookup on the callable; a hit
whose trigger holds (a floating operand on the gradient path) runs its handler, everything else is
torch's own call.

Soft path (a SoftTensor operand): with the innermost mode's settings, else the operands' own,

1. a selected registry op whose trigger holds runs its handler;
2. otherwise the role table (:mod:`softtorch.interception.roles`) decides how SoftBools and
   SoftIndices act (exact masks, casts, shape ops);
3. a registry op that is not relaxed (hard mode, excluded, declined) runs on torch's exact
   operands;
4. anything else runs on the soft values; results carry the operands' settings.

The engine's own torch calls are never relaxed: torch pops the mode while its handler runs, the
soft path runs with subclass dispatch disabled, and calls made by softtorch's own modules (an
explicit ``softtorch.sort`` inside a block, say) are left to torch (:func:`from_engine`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch

from . import ops_integer
from .config import SoftConfig
from .context import DECLINE, Ctx, into
from .discrete import exact_call, operands, out_of_place, write_into
from .registry import BY_TARGET, Entry, tables
from .roles import ROLES, forget_role, passthrough, writes_first
from .tensor import (
    SoftTensor,
    _Disable,
    carried_config,
    clone_role,
    hard_view,
    has_role,
    is_soft_bool,
    is_soft_index,
    make,
    map_tensors,
    plain,
    wrap,
)

#: torch function handling off (torch internal ``torch._C``, checked on torch 2.13.0)
_DisableAll = torch._C.DisableTorchFunction
_EXACT_AS_BOOL = frozenset({"logic", "selection"})


def from_engine(frame: FrameType | None) -> bool:
    """True if the torch call was made by softtorch's own code (e.g. ``softtorch.sort`` called
    explicitly inside a block) or by a graph that ``torch.compile`` traced through the mode
    (the relaxations are already in it): such calls run as plain torch. ``frame`` is the
    caller's frame; torch's own Python frames in between are skipped."""
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name == "torch" or name.startswith("torch."):
            frame = frame.f_back
            continue
        if frame.f_code.co_filename.startswith("<eval_with_key>"):  # FX graph code
            return True
        return name.startswith("softtorch.") and not name.startswith("softtorch.interception")
    return False


def caller_is_engine(depth: int = 2) -> bool:
    """:func:`from_engine` for the frame ``depth`` levels up (2: the caller of the
    ``__torch_function__`` that calls this). While torch.compile traces, calls are relaxed (into
    the graph)."""
    if torch.compiler.is_compiling():
        return False
    return from_engine(sys._getframe(depth))


def _counts(t: Any, level: int) -> bool:
    """A floating operand that counts at ``level`` (0: any, 1: requires grad or soft data,
    2: soft data only)."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        return False
    return level == 0 or isinstance(t, SoftTensor) or (level == 1 and t.requires_grad)


def _non_strided(group: Any) -> bool:
    """Whether a tensor operand (or one in a list / tuple operand) has a non-strided layout."""
    for a in group:
        if isinstance(a, torch.Tensor):
            if a.layout != torch.strided:
                return True
        elif isinstance(a, (list, tuple)) and any(
            isinstance(b, torch.Tensor) and b.layout != torch.strided for b in a
        ):
            return True
    return False


def triggered(trigger: str, args: tuple[Any, ...], kwargs: dict[str, Any], cfg: SoftConfig) -> bool:
    """Whether a call is relaxed: see :data:`softtorch.interception.registry.TRIGGERS`.

    ``scope="grad"``: a floating operand counts when it requires grad or is soft data (a
    SoftTensor); with gradients disabled (``torch.no_grad``, inference, optimizer steps) no
    gradient path exists and only soft data counts. ``scope="all"``: every floating operand.
    Calls with a non-strided operand (sparse COO / CSR / ..., mkldnn) are never relaxed: they pass
    through to torch exactly.
    """
    if _non_strided(args) or (kwargs and _non_strided(kwargs.values())):
        return False
    if trigger == "role" or (trigger == "float|role" and any(
            has_role(t) for t in operands(args, kwargs))):  # fmt: skip
        return True
    level = 0 if cfg.scope == "all" else (1 if torch.is_grad_enabled() else 2)
    index = trigger == "float|index"
    for group in (args, kwargs.values()) if kwargs else (args,):
        for a in group:
            if isinstance(a, torch.Tensor):
                if _counts(a, level) or (index and is_soft_index(a)):
                    return True
            elif isinstance(a, (list, tuple)) and any(_counts(b, level) for b in a):
                return True
    return False


def relax(
    entry: Entry,
    cfg: SoftConfig,
    carried: SoftConfig | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run one handler (DECLINE if it leaves the call to torch)."""
    if entry.adapt is not None:
        args, kwargs = entry.adapt(*args, **kwargs)
    if not entry.inplace:
        return entry.handler(Ctx(cfg, carried), *args, **kwargs)
    # In place: relax a copy (autograd may save the input), then write into the target.
    target = args[0]
    if not target.is_floating_point():  # integer / bool storage cannot hold soft values
        return DECLINE
    out = entry.handler(Ctx(cfg, carried), clone_role(target), *args[1:], **kwargs)
    return out if out is DECLINE else into(target, out)


def _carrier_plain(t: Any) -> Any:
    """A SoftTensor without a role (no SoftBool / SoftIndex) as a plain alias."""
    if not has_role(t):
        return plain(t)  # traceable by torch.compile (SoftTensor.as_subclass is not free)
    return t


def dispatch_plain(
    entry: Entry, cfg: SoftConfig, func: Callable[..., Any], args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A registry callable inside ``soft_mode`` with plain operands."""
    # Plain operands. The handler's own torch calls run with torch function handling off: they
    # are never intercepted anyway (torch stashes the mode), and inside a mode's handler each
    # torch call would otherwise take the slow override check (~0.5-1 us per call).
    if triggered(entry.trigger, args, kwargs, cfg) and not caller_is_engine(3):
        with _DisableAll():
            out = relax(entry, cfg, None, args, kwargs)
        if out is not DECLINE:
            return out
    return func(*args, **kwargs)


def _with_exact(
    out: Any, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
    carried: SoftConfig | None,
) -> Any:
    """The exact shadow through a relaxation: when an operand carries torch's exact values
    apart from its soft ones (SoftFloat, soft integers), the relaxed result is paired with
    torch's result on the exact operands (floating values become SoftFloats, SoftIndex /
    SoftBool results take the exact integers / booleans), so exact uses downstream (``item``,
    indices, integer casts) see what plain torch computes."""
    if torch.compiler.is_compiling() or writes_first(func) or not any(
            has_role(t) for t in operands(args, kwargs)):  # fmt: skip
        return out
    exact = exact_call(func, args, kwargs)
    return out if exact is None else _pair_exact(out, exact, carried)


def _pair_exact(out: Any, exact: Any, carried: SoftConfig | None) -> Any:
    if isinstance(out, torch.Tensor):
        if not isinstance(exact, torch.Tensor) or exact.shape != out.shape:
            return out
        if is_soft_index(out):
            return make(exact, out._cfg or carried, sidx=out._sidx)
        if is_soft_bool(out):
            return make(plain(out), out._cfg or carried, hard=exact)
        if out.is_floating_point() and (out._exact is not None if isinstance(
                out, SoftTensor) else True) and not is_soft_bool(out):  # fmt: skip
            soft = plain(out) if not exact.is_floating_point() else plain(out).to(exact.dtype)
            return make(soft, carried, exact=exact.to(soft.dtype))
        return out
    if isinstance(out, (tuple, list)) and isinstance(exact, (tuple, list)):
        items = [_pair_exact(o, e, carried) for o, e in zip(out, exact)]
        if hasattr(out, "_fields"):
            return type(out)(*items)
        return type(out)(items)
    return out


def _soft_inplace(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
    cfg: SoftConfig | None,
) -> Any:
    """An in-place op with soft-integer operands: its out-of-place form, written into the
    target (:func:`softtorch.interception.discrete.write_into`; SoftBool targets keep the logic
    rules)."""
    target = args[0] if args else None
    outplace = out_of_place(func)
    if outplace is None or not isinstance(target, torch.Tensor):
        return DECLINE
    out = dispatch_soft(outplace, args, kwargs, cfg)
    if is_soft_bool(target):  # logic into a SoftBool's float storage
        return into(target, out) if is_soft_bool(out) else DECLINE
    if not has_role(out):
        return DECLINE
    return write_into(target, out)


def dispatch_soft(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
    cfg: SoftConfig | None, engine: bool = False,
) -> Any:
    """Any torch callable with a SoftTensor operand; ``cfg``: the innermost mode's settings;
    ``engine``: called by softtorch's own code (plain torch on the values)."""
    if engine:  # the values as plain tensors (compiled graphs may not accept subclasses)
        a, k = map_tensors(args, kwargs, plain)
        with _Disable():
            return func(*a, **k)
    carried = carried_config(args, kwargs)
    eff = cfg if cfg is not None else carried
    with _Disable():
        if eff is not None and eff.relaxing:
            entry = (eff.tables or tables(eff.ops, eff.exclude)).soft.get(func)
            if entry is not None and triggered(entry.trigger, args, kwargs, eff):
                # carriers (no role) enter the handler as plain aliases: autograd then saves
                # plain tensors, which is much cheaper than saving subclass instances
                a, k = map_tensors(args, kwargs, _carrier_plain, start=int(entry.inplace))
                out = relax(entry, eff, carried, a, k)
                if out is not DECLINE:
                    return _with_exact(out, func, args, kwargs, carried)
            if any(has_role(t) for t in operands(args, kwargs)):
                if writes_first(func) and func is not torch.Tensor.__setitem__:
                    out = _soft_inplace(func, args, kwargs, cfg)
                else:
                    out = ops_integer.call(func, args, kwargs, Ctx(eff, carried))
                if out is not DECLINE:
                    return out
        role = ROLES.get(func)
        if role is not None:
            return role(func, args, kwargs, carried)
        known = BY_TARGET.get(func)
        if known is not None:
            kind = "bool" if known[0].group in _EXACT_AS_BOOL else "value"
            inplace = known[1].inplace
            if inplace and is_soft_bool(args[0]):  # exact logic into a SoftBool's float storage
                a, k = map_tensors(args, kwargs, lambda t: hard_view(t, kind))
                exact = func(a[0].clone(), *a[1:], **k)
                return into(args[0], make(exact.to(args[0].dtype), None, hard=exact))
            # a SoftFloat that meets an op that is not relaxed shows its (soft) values
            a, k = map_tensors(args, kwargs, lambda t: plain(t) if t._exact is not None else
                               hard_view(t, kind), start=int(inplace))  # fmt: skip
            out = func(*a, **k)
            if inplace:
                forget_role(args[0])
            return wrap(out, carried)
        return passthrough(func, args, kwargs, carried)
