r"""Public entry points: :func:`threshold`, :func:`sign`, the :data:`SURROGATES` registry and the
norse-compatible ``*_fn(x, k)`` helpers."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_float, check_choice, forward_ad_active
from . import _functions as F
from . import _kernels as K
from ._kernels import Alpha


@dataclass(frozen=True)
class Surrogate:
    """One registry entry.

    Attributes:
        name: method name accepted by :func:`threshold`.
        function: the ``torch.autograd.Function`` implementing it (``.apply(x, alpha)``).
        default_alpha: ``alpha`` used when :func:`threshold` gets ``alpha=None``.
        h: the smooth step :math:`h(x, \alpha)` as plain differentiable torch code; the backward
            of ``function`` is exactly its derivative. For stochastic methods it is the spike
            probability; for ``heaviside`` it is the hard step itself.
        formula: ``h`` in words, for documentation and error messages.
        stochastic: forward draws Bernoulli(h) spikes instead of ``x > 0``.
        alpha_is_width: ``alpha`` is a width (larger = softer) rather than a sharpness.
    """

    name: str
    function: type[torch.autograd.Function]
    default_alpha: float
    h: Callable[[Tensor, Alpha], Tensor]
    formula: str
    stochastic: bool = False
    alpha_is_width: bool = False


def _entries() -> dict[str, Surrogate]:
    S = Surrogate
    tanh_f = "1/2 + 1/2 tanh(a x)"
    circ_f = "1/2 + x / (2 sqrt(x^2 + a^2))"
    super_f = "1/2 + 1/2 a x / (1 + a|x|)"
    st_f = "clamp(a x + 1/2, 0, 1)"
    entries = [
        S("heaviside", F.Heaviside, 1.0, K.heaviside_h, "1[x > 0] (zero gradient)"),
        S("super", F.SuperSpike, 2.0, K.super_h, super_f),
        S("tanh", F.HeaviTanh, 2.0, K.tanh_h, tanh_f),
        S("erfc", F.HeaviErfc, math.sqrt(math.pi), K.erfc_h, "1/2 erfc(-a x)"),
        S("circ", F.HeaviCirc, 0.5, K.circ_h, circ_f, alpha_is_width=True),
        S("tent", F.HeaviTent, 1.0, K.tent_h, "integral of a max(0, 1 - |a x|)"),
        S("logistic", F.Logistic, 2.0, K.tanh_h, f"z ~ B({tanh_f})", stochastic=True),
        S(
            "circ_dist",
            F.CircDist,
            0.5,
            K.circ_h,
            f"z ~ B({circ_f})",
            stochastic=True,
            alpha_is_width=True,
        ),
        S("atan", F.ATan, 2.0, K.atan_h, "1/2 + arctan(pi a x / 2) / pi"),
        S("sigmoid", F.Sigmoid, 4.0, K.sigmoid_h, "sigmoid(a x)"),
        S("fast_sigmoid", F.FastSigmoid, 2.0, K.super_h, super_f),
        S("straight_through", F.StraightThrough, 1.0, K.straight_through_h, st_f),
    ]
    return {e.name: e for e in entries}


#: Every surrogate method by name; see :class:`Surrogate` and the package docstring's table.
SURROGATES: dict[str, Surrogate] = _entries()
#: The valid ``method`` names, in registry order.
METHODS: tuple[str, ...] = tuple(SURROGATES)


def _values_are_concrete(t: Tensor) -> bool:
    """False while tracing (torch.compile) or inside a torch.func transform (no data access)."""
    if torch.compiler.is_compiling():
        return False
    # torch internal, checked on torch 2.13.0
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)


def _check_alpha(alpha: object) -> Alpha:
    """``alpha`` must be a finite number > 0, or a real tensor whose elements all are."""
    if isinstance(alpha, Tensor):
        if alpha.is_complex():
            raise TypeError(f"alpha must be real, got a complex tensor ({alpha.dtype})")
        if alpha.dtype == torch.bool:
            raise TypeError("alpha must be a float or a floating tensor, got a bool tensor")
        if not alpha.is_floating_point():
            alpha = alpha.to(torch.get_default_dtype())
        if _values_are_concrete(alpha):
            bad = ~(torch.isfinite(alpha) & (alpha > 0))
            if bool(bad.any()):
                first = float(alpha.detach()[bad].flatten()[0])
                raise ValueError(
                    f"alpha must be finite and > 0 in every element; {int(bad.sum())} element(s) "
                    f"are not (e.g. {first})"
                )
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a float > 0 or a tensor, got {type(alpha).__name__}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    return float(alpha)


def threshold(x: Tensor, method: str = "super", alpha: float | Tensor | None = None) -> Tensor:
    r"""Spike ``(x > 0)`` with a surrogate gradient: the derivative of a smooth step :math:`h`.

    Forward: 1 where ``x > 0``, else 0 (``x == 0`` gives 0), in ``x``'s dtype (integer ``x`` is
    promoted to the default float dtype); NaN stays NaN. The stochastic methods ``logistic`` and
    ``circ_dist`` instead draw :math:`z \sim \mathrm{Bernoulli}(h(x, \alpha))`.
    Backward: :math:`\partial_x h` for ``x`` and :math:`\partial_\alpha h` for a tensor ``alpha``
    that requires grad (learnable sharpness; summed to ``alpha``'s shape when it broadcasts).

    Args:
        x: input, e.g. membrane potential minus threshold.
        method: one of :data:`SURROGATES` (``heaviside`` = no surrogate, zero gradient).
        alpha: sharpness (width for ``circ``/``circ_dist``), a float > 0 or a tensor broadcastable
            with ``x``; ``None`` selects the method's ``default_alpha``.

    Example:
        >>> x = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
        >>> threshold(x, "tanh", 1.0).sum().backward()
        >>> x.grad  # 1/2 sech^2(x)
        tensor([0.3932, 0.5000, 0.3932])
    """
    entry = SURROGATES[check_choice(method, METHODS, "method")]
    x = as_float(x)
    a = _check_alpha(entry.default_alpha if alpha is None else alpha)
    if isinstance(a, Tensor) and a.shape != x.shape:
        try:
            shape = torch.broadcast_shapes(x.shape, a.shape)
        except RuntimeError as err:
            raise ValueError(
                f"alpha of shape {tuple(a.shape)} does not broadcast with x of shape "
                f"{tuple(x.shape)}"
            ) from err
        if shape != x.shape:
            x = x.expand(shape)
    if forward_ad_active():  # the Functions have no jvp: plain ops instead
        return _composite_spike(entry, x, a)
    return entry.function.apply(x, a)


def _composite_spike(entry: Surrogate, x: Tensor, alpha: Alpha) -> Tensor:
    r"""The spike as plain torch ops: :math:`z + (h - \mathrm{sg}(h))` with the hard (or sampled)
    spike :math:`z`, so the value is ``z`` exactly and every derivative (forward or reverse, any
    order) is that of :math:`h(x, \alpha)`: the same as ``entry.function``'s backward."""
    xc = F._opmath(x)
    a = F._opmath(alpha) if isinstance(alpha, Tensor) else alpha
    h = entry.h(xc, a)
    if entry.stochastic:
        z = F._bernoulli_spike(h.detach(), xc.dtype)
    else:
        z = K.spike(xc.detach())
    # h - h.detach() is exactly 0 where h is finite; +-inf inputs may give a NaN h (inf / inf)
    return (z + torch.nan_to_num(h - h.detach(), nan=0.0, posinf=0.0, neginf=0.0)).to(x.dtype)


def sign(x: Tensor, method: str = "super", alpha: float | Tensor | None = None) -> Tensor:
    """``2 * threshold(x, method, alpha) - 1``: +1 where ``x > 0``, -1 elsewhere (also at 0)."""
    return 2.0 * threshold(x, method, alpha) - 1.0


#: Name under which other softtorch modules (``heaviside_st``, ``soft_mode(surrogate=...)``) use it.
surrogate_heaviside = threshold
surrogate_sign = sign


def super_fn(x: Tensor, alpha: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "super", alpha)``."""
    return threshold(x, "super", alpha)


def heavi_tanh_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "tanh", k)``."""
    return threshold(x, "tanh", k)


def heavi_erfc_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "erfc", k)``."""
    return threshold(x, "erfc", k)


def heavi_circ_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "circ", k)`` (``k`` is a width)."""
    return threshold(x, "circ", k)


def heavi_tent_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "tent", k)``."""
    return threshold(x, "tent", k)


def logistic_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "logistic", k)`` (stochastic)."""
    return threshold(x, "logistic", k)


def circ_dist_fn(x: Tensor, k: float | Tensor) -> Tensor:
    """norse-style call form of ``threshold(x, "circ_dist", k)`` (stochastic, ``k`` is a width)."""
    return threshold(x, "circ_dist", k)
