r"""``method="perturbed"``: the perturbed optimisers of Berthet et al. (2020), "Learning with
Differentiable Perturbed Optimizers", as an ordering method.

Math. Every ordering op is a linear program whose vertices are the hard results (one-hot vectors
for argmax, permutation matrices for sort, rank vectors on the permutahedron for rank). The
perturbed relaxation replaces the hard solution :math:`y^*(z)` of the scores ``z`` by its
expectation under noise of scale ``s`` (the softness),

.. math::

    y_s(z) = \mathbb{E}\big[y^*(z + sZ)\big], \qquad
    J y_s(z) = \frac{1}{s}\,\mathbb{E}\big[y^*(z + sZ)\,\psi(Z)^\top\big],

estimated from ``samples`` Monte-Carlo draws (the same draws give the value and its gradient;
antithetic pairs and a leave-one-out baseline reduce the gradient's variance). So:

* ``argmax`` is :math:`\mathbb{E}[\operatorname{onehot}(\arg\max(z + sZ))]`; with Gumbel noise
  this is exactly :math:`\operatorname{softmax}(z / s)` in expectation, with Gaussian noise and
  two entries :math:`\Phi((z_1 - z_2) / (\sqrt 2\, s))`.
* ``argsort`` / ``sort`` is the expected permutation matrix (doubly stochastic), ``topk`` its first
  ``k`` rows, ``rank`` the expected rank vector (no ``n x n`` matrix), and ``quantile`` /
  ``median`` take rows of the expected permutation, as for the other methods.
* ``max`` / ``min`` follow the op layer's convention for every method: the expected value
  :math:`\sum_j p_j x_j` under the soft argmax ``p`` (for Gumbel noise and
  ``standardize=False``: :math:`\langle \operatorname{softmax}(x / s), x\rangle`). The convex
  perturbed maximum :math:`\mathbb{E}[\max(x + sZ)]` is
  :func:`softtorch.perturbation.perturbed_max`.

The kernels are :mod:`softtorch.perturbation.ordering`; this module only adapts them to the method
interface (scores last, options). Softness semantics are those of every method: with
``standardize=True`` (the default) the noise is added to the standardized scores in ``(0, 1)``,
so ``softness`` does not depend on the scale of ``x``; with ``standardize=False`` it is in the
units of ``x``. ``mode`` only distinguishes ``"hard"`` (exact, handled by the op layer) from the
soft modes, which all give the same relaxation (the noise distribution sets its shape). The
softness must be a float or a tensor without grad (the estimators do not differentiate w.r.t.
it). Values are Monte-Carlo estimates: two calls differ unless a ``generator`` is passed; the
gradients are unbiased estimates of the smoothed op's gradient, so finite-difference gradchecks
do not apply. ``torch.func`` transforms (vmap, grad, jvp) are not supported (the kernels are
``autograd.Function`` s without ``setup_context``); ``torch.compile`` runs them.

Options (``perturbed_kwargs=`` of every ordering op, the ``options`` of the hooks):

* ``samples`` (int, default 100): Monte-Carlo samples, even and >= 2 with antithetic pairs;
* ``noise`` (``"gaussian"`` (default) or ``"gumbel"``);
* ``generator`` (:class:`torch.Generator` or None): reproducible values and gradients;
* ``antithetic`` (bool, default True) and ``baseline`` (True / False / ``"linear"``, default
  True): the variance reduction of :mod:`softtorch.perturbation._estimators`.
"""

from __future__ import annotations

from typing import Any

import torch

from ...perturbation import ordering as _po
from .._base import OrderingMethod, Softness, register

#: Valid keys of ``perturbed_kwargs`` and their defaults.
DEFAULTS: dict[str, Any] = {
    "samples": 100,
    "noise": "gaussian",
    "generator": None,
    "antithetic": True,
    "baseline": True,
}


def parse_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``perturbed_kwargs`` completed with the defaults; unknown keys are a ValueError (the
    values themselves are checked by :mod:`softtorch.perturbation.ordering`)."""
    if options is None:
        return dict(DEFAULTS)
    if not isinstance(options, dict):
        raise TypeError(f"perturbed_kwargs must be a dict or None, got {type(options).__name__}")
    unknown = sorted(set(options) - set(DEFAULTS), key=str)
    if unknown:
        raise ValueError(
            f"unknown perturbed_kwargs key(s) {', '.join(repr(k) for k in unknown)}; valid keys "
            "are: " + ", ".join(repr(k) for k in DEFAULTS)
        )
    return {**DEFAULTS, **options}


def _kw(softness: Softness, options: dict[str, Any] | None) -> dict[str, Any]:
    return {"softness": softness, **parse_options(options)}


def _nan_rows(z: torch.Tensor, out: torch.Tensor, extra: int) -> torch.Tensor:
    """NaN wherever the scores of a row hold a NaN (the hard solvers would silently order it),
    so NaN propagates like for the other methods; ``extra``: result axes after the batch."""
    bad = z.isnan().any(-1)
    return out.masked_fill(bad.reshape(*bad.shape, *([1] * extra)), float("nan"))


@register
class Perturbed(OrderingMethod):
    """Perturbed optimisers (Monte-Carlo); see the module docstring for the math and options."""

    name = "perturbed"

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        p = _po.perturbed_sort(z, -1, descending, **_kw(softness, options)).indices
        return _nan_rows(z, p, 2)

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        p = _po.perturbed_topk(z, k, -1, **_kw(softness, options)).indices
        return _nan_rows(z, p, 2)

    def argmax(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _nan_rows(z, _po.perturbed_argmax(z, -1, **_kw(softness, options)), 1)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _nan_rows(z, _po.perturbed_rank(z, -1, descending, **_kw(softness, options)), 1)
