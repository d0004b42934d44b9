r"""Smooth steps :math:`h(x, \alpha)` and their exact partial derivatives, one pair per method.

Every ``h`` is a true soft step: non-decreasing in ``x``, :math:`h(-\infty) = 0`,
:math:`h(+\infty) = 1`, :math:`h(0) = 1/2`, so every surrogate derivative :math:`\partial_x h` is a
probability density (it integrates to 1) that tends to the Dirac delta as the step sharpens.
``alpha`` is a *sharpness* (larger = steeper) for every method except ``circ`` / ``circ_dist``,
where it is a *width* (norse's convention; larger = softer).

Each ``*_grads(x, a, need_x, need_a)`` returns :math:`(\partial_x h, \partial_\alpha h)` (``None``
for what is not needed), written so that nothing overflows to inf/NaN for finite ``x``: large
arguments send the derivatives to 0 through ``1/inf``, never through ``inf * 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Alpha = float | Tensor
Grads = tuple[Tensor | None, Tensor | None]
GradsFn = Callable[[Tensor, Alpha, bool, bool], Grads]

_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def spike(x: Tensor) -> Tensor:
    """Hard step ``(x > 0)`` in ``x``'s dtype (0 at ``x == 0``); NaN entries stay NaN.

    ``x.clamp(0, 0)`` is 0 for every number (including +-inf) and NaN for NaN, so adding it
    propagates NaN at the cost of one extra elementwise kernel.
    """
    return x.gt(0).to(x.dtype).add_(x.clamp(0, 0))


def _out(d: Tensor, need: bool) -> Tensor | None:
    return d if need else None


# heaviside: h = 1[x > 0]; no surrogate, zero gradient -----------------------------------------


def heaviside_h(x: Tensor, a: Alpha) -> Tensor:
    # sign() has a zero derivative everywhere, so autograd sees d h / d x = 0 (also at x = 0).
    return spike(x.detach()) + 0.0 * torch.sign(x)


def heaviside_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    z = torch.zeros_like(x)
    return _out(z, need_x), _out(z, need_a)


# super / fast_sigmoid: h = 1/2 + 1/2 a x / (1 + a|x|) --------------------------------------------


def super_h(x: Tensor, a: Alpha) -> Tensor:
    return 0.5 + 0.5 * (a * x) / (1.0 + a * x.abs())


def super_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    r = torch.reciprocal(1.0 + a * x.abs())  # in (0, 1]
    r2 = r * r
    dx = 0.5 * a * r2 if need_x else None
    da = 0.5 * (x * r) * r if need_a else None
    return dx, da


# tanh (and logistic's spike probability): h = 1/2 + 1/2 tanh(a x) ------------------------------


def tanh_h(x: Tensor, a: Alpha) -> Tensor:
    return 0.5 + 0.5 * torch.tanh(a * x)


def tanh_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    sech = torch.reciprocal(torch.cosh(a * x))  # cosh -> inf gives exactly 0
    half_sech2 = 0.5 * sech * sech
    dx = a * half_sech2 if need_x else None
    da = x * half_sech2 if need_a else None
    return dx, da


# erfc: h = 1/2 erfc(-a x) = 1/2 (1 + erf(a x)) ---------------------------------------------------


def erfc_h(x: Tensor, a: Alpha) -> Tensor:
    return 0.5 * torch.erfc(-(a * x))


def erfc_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    u = a * x
    g = _INV_SQRT_PI * torch.exp(-(u * u))
    dx = a * g if need_x else None
    da = x * g if need_a else None
    return dx, da


# circ (and circ_dist's spike probability), a = width: h = 1/2 + x / (2 sqrt(x^2 + a^2)) ----------


def _hypot(x: Tensor, a: Alpha) -> Tensor:
    at = a if isinstance(a, Tensor) else torch.tensor(a, dtype=x.dtype, device=x.device)
    return torch.hypot(x, at)


def circ_h(x: Tensor, a: Alpha) -> Tensor:
    return 0.5 + 0.5 * x / _hypot(x, a)


def circ_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    r = _hypot(x, a)  # sqrt(x^2 + a^2) > 0 without overflow or underflow
    c = a / r  # in (0, 1]
    half_c_over_r = 0.5 * c / r
    dx = half_c_over_r * c if need_x else None  # a^2 / (2 r^3)
    da = -half_c_over_r * (x / r) if need_a else None  # -a x / (2 r^3)
    return dx, da


# tent: h' = a max(0, 1 - |a x|) (triangle of half-width 1/a, area 1) --------------------------


def tent_h(x: Tensor, a: Alpha) -> Tensor:
    u = (a * x).clamp(-1.0, 1.0)
    return 0.5 + u - 0.5 * u * u.abs()


def tent_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    m = (1.0 - (a * x).abs()).clamp_min(0.0)
    dx = a * m if need_x else None
    da = x * m if need_a else None
    return dx, da


# atan (snntorch): h = 1/2 + arctan(pi a x / 2) / pi ---------------------------------------------


def atan_h(x: Tensor, a: Alpha) -> Tensor:
    return 0.5 + torch.atan((0.5 * math.pi) * (a * x)) / math.pi


def atan_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    v = (0.5 * math.pi) * (a * x)
    q = 0.5 * torch.reciprocal(1.0 + v * v)
    dx = a * q if need_x else None
    da = x * q if need_a else None
    return dx, da


# sigmoid (snntorch): h = sigmoid(a x) -----------------------------------------------------------


def sigmoid_h(x: Tensor, a: Alpha) -> Tensor:
    return torch.sigmoid(a * x)


def sigmoid_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    t = torch.sigmoid(-(a * x).abs())  # sigma(u) sigma(-u) = t (1 - t), t <= 1/2: no cancellation
    s = t * (1.0 - t)
    dx = a * s if need_x else None
    da = x * s if need_a else None
    return dx, da


# straight_through: h = clamp(a x + 1/2, 0, 1) --------------------------------------------------


def straight_through_h(x: Tensor, a: Alpha) -> Tensor:
    return torch.clamp(a * x + 0.5, 0.0, 1.0)


def straight_through_grads(x: Tensor, a: Alpha, need_x: bool, need_a: bool) -> Grads:
    t = a * x + 0.5
    # closed window, like torch.clamp's gradient; the clamp(0, 0) term keeps NaN as NaN
    m = ((t >= 0.0) & (t <= 1.0)).to(t.dtype).add_(t.clamp(0.0, 0.0))
    dx = a * m if need_x else None
    da = x * m if need_a else None
    return dx, da
