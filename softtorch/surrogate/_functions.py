r"""One ``torch.autograd.Function`` per surrogate method.

Forward: the hard spike ``(x > 0)`` (deterministic methods) or a Bernoulli spike with probability
:math:`p = h(x, \alpha)` (``Logistic``, ``CircDist``). Backward: the exact partial derivatives of
the method's smooth step :math:`h` (see :mod:`._kernels`), w.r.t. ``x`` and, when ``alpha`` is a
tensor that requires grad, w.r.t. ``alpha`` (summed to ``alpha``'s shape).

The functions are in the modern form (``forward`` without ``ctx`` plus ``setup_context``) with
``generate_vmap_rule = True``, so they work under ``torch.func.vmap`` / ``grad`` / ``jacrev`` and
trace into a single ``torch.compile`` graph. The backward is written with differentiable torch
ops, so double backward (``jacrev(jacrev(...))``) differentiates the surrogate once more. There is
no ``jvp`` (forward-mode AD, ``jacfwd``, ``torch.func.hessian``): Dynamo cannot trace
``autograd.Function`` classes that define one, and graph-break-free ``torch.compile`` comes first;
under forward-mode AD :func:`softtorch.surrogate.threshold` uses an equivalent composition of
plain torch ops instead of these classes.

Call them through :func:`softtorch.surrogate.threshold`, which validates the inputs; ``.apply(x,
alpha)`` directly expects a floating ``x`` and a valid ``alpha`` (a float, or a tensor that
broadcasts to ``x``'s shape).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _kernels as K
from ._kernels import Alpha, GradsFn

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _opmath(t: Tensor) -> Tensor:
    """Compute in float32 for half-precision tensors (as torch's own kernels do)."""
    return t.float() if t.dtype in _LOW_PRECISION else t


def _bernoulli_spike(p: Tensor, dtype: torch.dtype) -> Tensor:
    """z = 1[u < p] with u ~ U[0, 1): P(z = 1) = p exactly; NaN p gives NaN."""
    return K.spike(p - torch.rand_like(p)).to(dtype)


def _saved(ctx: Any) -> tuple[Tensor, Tensor | None, Alpha]:
    """(x, alpha tensor or None, alpha in compute precision) from the context."""
    if ctx.alpha is None:
        x, alpha = ctx.saved_tensors
        return x, alpha, _opmath(alpha)
    (x,) = ctx.saved_tensors
    return x, None, ctx.alpha


def _backward(ctx: Any, grad: Tensor, grads_fn: GradsFn) -> tuple[Tensor | None, Tensor | None]:
    """Chain rule with the method's (dh/dx, dh/dalpha)."""
    need_x, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_x or need_a):
        return None, None
    x, alpha, a = _saved(ctx)
    dx, da = grads_fn(_opmath(x), a, need_x, need_a)
    gx = (grad * dx).sum_to_size(x.shape).to(x.dtype) if dx is not None else None
    ga = None
    if da is not None and alpha is not None:
        ga = (grad * da).sum_to_size(alpha.shape).to(alpha.dtype)
    return gx, ga


def _rules(grads_fn: GradsFn) -> staticmethod:
    """The ``backward`` static method built from a method's ``(dh/dx, dh/dalpha)``."""

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        return _backward(ctx, grad, grads_fn)

    return staticmethod(backward)


class _Spike(torch.autograd.Function):
    """Shared forward / context handling of the deterministic surrogate functions."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: Alpha) -> Tensor:  # type: ignore[override]
        return K.spike(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Alpha], output: Tensor) -> None:
        x, alpha = inputs
        saved = (x, alpha) if isinstance(alpha, Tensor) else (x,)
        ctx.save_for_backward(*saved)
        ctx.alpha = None if isinstance(alpha, Tensor) else alpha


class Heaviside(_Spike):
    """No surrogate: forward ``x > 0``, zero gradient (w.r.t. ``x`` and ``alpha``)."""

    backward = _rules(K.heaviside_grads)


class SuperSpike(_Spike):
    r"""SuperSpike (Zenke & Ganguli 2018), fast-sigmoid step.

    :math:`h = \tfrac12 + \tfrac12\,\alpha x / (1 + \alpha|x|)`,
    :math:`\partial_x h = \alpha / (2 (1 + \alpha|x|)^2)`.
    """

    backward = _rules(K.super_grads)


class FastSigmoid(SuperSpike):
    """snntorch's ``fast_sigmoid``: the same step as :class:`SuperSpike` (own default alpha)."""


class HeaviTanh(_Spike):
    r""":math:`h = \tfrac12 + \tfrac12 \tanh(\alpha x)`,
    :math:`\partial_x h = \tfrac{\alpha}{2}\,\mathrm{sech}^2(\alpha x)`."""

    backward = _rules(K.tanh_grads)


class HeaviErfc(_Spike):
    r""":math:`h = \tfrac12 \mathrm{erfc}(-\alpha x)`,
    :math:`\partial_x h = \tfrac{\alpha}{\sqrt\pi} e^{-\alpha^2 x^2}`.

    norse documents :math:`\tfrac12 + \tfrac12 \mathrm{erfc}(kx)`, which decreases from 3/2 to 1/2
    and is not a step; this is the Gaussian-CDF step it intends.
    """

    backward = _rules(K.erfc_grads)


class HeaviCirc(_Spike):
    r""":math:`h = \tfrac12 + \tfrac12\,x / \sqrt{x^2 + \alpha^2}` (``alpha`` is a width),
    :math:`\partial_x h = \alpha^2 / (2 (x^2 + \alpha^2)^{3/2})`."""

    backward = _rules(K.circ_grads)


class HeaviTent(_Spike):
    r"""Triangle surrogate :math:`\partial_x h = \alpha \max(0, 1 - |\alpha x|)`, whose integral is
    :math:`h = \tfrac12 + u - \tfrac12 u|u|` with :math:`u = \mathrm{clip}(\alpha x, -1, 1)`."""

    backward = _rules(K.tent_grads)


class ATan(_Spike):
    r"""snntorch's arctan: :math:`h = \tfrac12 + \arctan(\tfrac{\pi}{2}\alpha x) / \pi`,
    :math:`\partial_x h = \tfrac{\alpha}{2} / (1 + (\tfrac{\pi}{2}\alpha x)^2)`."""

    backward = _rules(K.atan_grads)


class Sigmoid(_Spike):
    r"""snntorch's sigmoid: :math:`h = \sigma(\alpha x)`,
    :math:`\partial_x h = \alpha\,\sigma(\alpha x)\,\sigma(-\alpha x)`."""

    backward = _rules(K.sigmoid_grads)


class StraightThrough(_Spike):
    r"""Saturating straight-through estimator: :math:`h = \mathrm{clip}(\alpha x + \tfrac12, 0, 1)`,
    :math:`\partial_x h = \alpha\,\mathbb 1[|\alpha x| \le \tfrac12]` (identity gradient, scaled by
    ``alpha``, on the window where the linear ramp is not clipped)."""

    backward = _rules(K.straight_through_grads)


class Logistic(_Spike):
    r"""Stochastic spike :math:`z \sim \mathrm{Bernoulli}(p)`,
    :math:`p = \tfrac12 + \tfrac12\tanh(\alpha x) = \sigma(2\alpha x)`; backward :math:`\partial p`.

    :math:`\mathbb E[z] = p`, so the backward is the exact gradient of the expected spike.
    """

    @staticmethod
    def forward(x: Tensor, alpha: Alpha) -> Tensor:  # type: ignore[override]
        a = _opmath(alpha) if isinstance(alpha, Tensor) else alpha
        return _bernoulli_spike(K.tanh_h(_opmath(x), a), x.dtype)

    backward = _rules(K.tanh_grads)


class CircDist(_Spike):
    r"""Stochastic spike :math:`z \sim \mathrm{Bernoulli}(p)` with the circ step
    :math:`p = \tfrac12 + \tfrac12\,x/\sqrt{x^2 + \alpha^2}` (``alpha`` is a width); backward
    :math:`\partial p` (norse's version passes no gradient)."""

    @staticmethod
    def forward(x: Tensor, alpha: Alpha) -> Tensor:  # type: ignore[override]
        a = _opmath(alpha) if isinstance(alpha, Tensor) else alpha
        return _bernoulli_spike(K.circ_h(_opmath(x), a), x.dtype)

    backward = _rules(K.circ_grads)
