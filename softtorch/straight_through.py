r"""Straight-through estimators: the hard function forward, a soft relaxation's gradient backward.

``st(fn)(*args, mode=m, softness=s)`` evaluates ``fn`` twice, with ``mode="hard"`` and with the
given mode, and returns the hard values exactly while gradients flow through the soft result:

.. math::
    y = f_\text{hard}(x), \qquad
    \frac{\partial y}{\partial x} := \frac{\partial f_m(x)}{\partial x}.

``grad_replace(fn)`` does the same with ``forward=True`` / ``forward=False`` calls. Outputs may be
tensors, tuples or ``torch.return_types`` named tuples (``None`` entries stay ``None``).

All keyword arguments pass through, including the ordering ops' ``return_log_probs`` and
``log_prob_eps``: e.g. ``argmax_st(x, return_log_probs=True)`` returns the hard log one-hot
(``0`` at the argmax, ``-inf`` elsewhere) forward and the gradient of the soft log-probabilities
backward.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from . import comparison as _cmp
from . import elementwise as _ew
from ._checks import forward_ad_active
from .ordering import ops as _ord
from .surrogate import sign as _surrogate_sign
from .surrogate import threshold as _threshold


class _HardForwardSoftBackward(torch.autograd.Function):
    """``forward(hard, soft) = hard``; ``backward(g) = (None, g)``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return hard.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, grad


def combine(hard: Any, soft: Any) -> Any:
    """Hard values with the soft result's gradient, recursively over tuples / named tuples."""
    if isinstance(soft, torch.Tensor) and isinstance(hard, torch.Tensor):
        if forward_ad_active() or torch.compiler.is_compiling():
            # the same hard-forward / soft-derivative as plain torch ops: dual tensors do not
            # require grad and the Function has no jvp (Dynamo cannot trace one); under
            # torch.compile Inductor drops the Function's clone as a no-op, so a hard result
            # also returned elsewhere in the graph became one tensor with it, which AOTAutograd
            # then marked non-differentiable. ``hard - (+0.0)`` keeps ``hard`` bit-exact.
            zero = torch.nan_to_num(soft.detach() - soft, nan=0.0, posinf=0.0, neginf=0.0)
            return hard.detach().to(soft.dtype) - zero
        if not soft.requires_grad:
            return hard
        # detach: the hard graph is never differentiated (and may hold ops such as heaviside
        # whose derivative torch does not implement, which would raise in backward)
        return _HardForwardSoftBackward.apply(hard.detach().to(soft.dtype), soft)
    if isinstance(soft, tuple) and isinstance(hard, tuple):
        items = [combine(h, s) for h, s in zip(hard, soft)]
        if hasattr(soft, "_fields"):  # collections.namedtuple
            return type(soft)(*items)
        if type(soft) is not tuple:  # torch.return_types structseq
            return type(soft)(items)
        return tuple(items)
    return hard


def st(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` into its straight-through version: ``mode="hard"`` forward, the given mode's
    gradient backward.

    ``fn`` receives ``mode`` either as a parameter of its own or through ``**kwargs`` (then
    ``mode`` defaults to ``"smooth"`` and ``mode`` / ``softness`` given at call time are passed
    on as keywords); ``mode="hard"`` at call time is a single hard call.

    Args:
        fn: the function to wrap; it must accept a ``mode`` argument (a parameter or
            ``**kwargs``).

    Returns:
        A function with ``fn``'s arguments returning the hard result with the soft gradient.

    Raises:
        TypeError: if ``fn`` can receive no ``mode`` (also for builtins such as
            ``torch.sigmoid`` whose signature cannot be inspected).
    """
    if torch.compiler.is_compiling():  # the wrapper is built outside the graph (see _wrap)
        return _wrap_untraced(fn)
    return _wrap(fn)


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`st`'s wrapper (signature inspection and docs: plain Python, not traced)."""
    name = getattr(fn, "__name__", type(fn).__name__)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature (torch.sigmoid, ...)
        sig = None
    params = {} if sig is None else sig.parameters
    if "mode" in params:
        assert sig is not None
        wrapped = _st_bound(fn, sig)
    elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        wrapped = _st_kwargs(fn)
    else:
        raise TypeError(
            f"st() needs a function that accepts a 'mode' argument (a parameter or **kwargs); "
            f"{name} " + ("has neither" if sig is not None else "has no inspectable signature")
        )
    wrapped.__doc__ = _st_doc(fn, name)
    wrapped.__name__ = f"{name}_st"
    wrapped.__qualname__ = wrapped.__name__
    return wrapped


def _wrap_untraced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Under ``torch.compile``: the wrapper for a function with a ``mode`` parameter, built
    from its signature as Dynamo traces it (docstrings are not needed inside a graph)."""
    sig = inspect.signature(fn)
    if "mode" in sig.parameters:
        return _st_bound(fn, sig)
    return _st_kwargs(fn)


def _st_bound(fn: Callable[..., Any], sig: inspect.Signature) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.arguments["mode"] == "hard":
            return fn(*bound.args, **bound.kwargs)
        soft = fn(*bound.args, **bound.kwargs)
        bound.arguments["mode"] = "hard"
        hard = fn(*bound.args, **bound.kwargs)
        return combine(hard, soft)

    return wrapped


def _st_kwargs(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, mode: str = "smooth", **kwargs: Any) -> Any:
        if mode == "hard":
            return fn(*args, mode="hard", **kwargs)
        soft = fn(*args, mode=mode, **kwargs)
        hard = fn(*args, mode="hard", **kwargs)
        return combine(hard, soft)

    return wrapped


def _st_doc(fn: Callable[..., Any], name: str) -> str:
    head = (
        f"Straight-through ``{name}``: the ``mode='hard'`` result forward, the gradient of the "
        f"given ``mode`` and ``softness`` backward (same arguments as ``{name}``)."
    )
    doc = inspect.getdoc(fn)
    return f"{head}\n\n{doc}" if doc else head


def grad_replace(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn(..., forward)``: the ``forward=True`` value, the ``forward=False`` gradient.

    Args:
        fn: a function taking a ``forward`` keyword: ``True`` computes the value returned,
            ``False`` the result whose gradient is used.

    Returns:
        The wrapped function (a ``forward`` given at call time is ignored).
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("forward", None)
        fwd = fn(*args, forward=True, **kwargs)
        bwd = fn(*args, forward=False, **kwargs)
        return combine(fwd, bwd)

    return wrapped


abs_st = st(_ew.abs)
clamp_st = st(_ew.clamp)
_heaviside_st = st(_ew.heaviside)
_sign_st = st(_ew.sign)


def heaviside_st(
    x: torch.Tensor,
    softness: float | torch.Tensor = 0.1,
    mode: str = "smooth",
    *,
    surrogate: str | None = None,
    alpha: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Straight-through :func:`softtorch.heaviside`: ``torch.heaviside(x, 0.5)`` forward.

    The backward is the gradient of the soft heaviside in ``mode`` / ``softness`` or, with
    ``surrogate`` (a method of :func:`softtorch.surrogate.threshold`, e.g. ``"super"``), that
    surrogate's derivative with sharpness ``alpha``.

    Args:
        x: input tensor.
        softness: transition width s > 0 of the backward relaxation.
        mode: the backward relaxation's mode (``"hard"``: plain hard forward and zero gradient).
        surrogate: a surrogate gradient method instead of the soft heaviside.
        alpha: the surrogate's sharpness (its default when None).
    """
    if surrogate is None:
        return _heaviside_st(x, softness, mode)
    return combine(_ew.heaviside(x, mode="hard"), _threshold(x, surrogate, alpha))


def sign_st(
    x: torch.Tensor,
    softness: float | torch.Tensor = 0.1,
    mode: str = "smooth",
    *,
    surrogate: str | None = None,
    alpha: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Straight-through :func:`softtorch.sign`: ``torch.sign(x)`` forward; the backward of the
    soft sign, or of ``2 * threshold(x, surrogate, alpha) - 1`` when ``surrogate`` is given.

    Args:
        x: input tensor.
        softness: transition width s > 0 of the backward relaxation.
        mode: the backward relaxation's mode.
        surrogate: a surrogate gradient method instead of the soft sign.
        alpha: the surrogate's sharpness (its default when None).
    """
    if surrogate is None:
        return _sign_st(x, softness, mode)
    return combine(_ew.sign(x, mode="hard"), _surrogate_sign(x, surrogate, alpha))


relu_st = st(_ew.relu)
round_st = st(_ew.round)

greater_st = st(_cmp.greater)
greater_equal_st = st(_cmp.greater_equal)
less_st = st(_cmp.less)
less_equal_st = st(_cmp.less_equal)
eq_st = st(_cmp.eq)
equal_st = eq_st
not_equal_st = st(_cmp.not_equal)
isclose_st = st(_cmp.isclose)

argmax_st = st(_ord.argmax)
max_st = st(_ord.max)
argmin_st = st(_ord.argmin)
min_st = st(_ord.min)
argsort_st = st(_ord.argsort)
sort_st = st(_ord.sort)
topk_st = st(_ord.topk)
rank_st = st(_ord.rank)
ranking_st = rank_st
median_st = st(_ord.median)
argmedian_st = st(_ord.argmedian)
quantile_st = st(_ord.quantile)
argquantile_st = st(_ord.argquantile)
