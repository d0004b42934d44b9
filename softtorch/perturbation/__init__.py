r"""Perturbation-based smoothing: gradients for code that ``soft_mode`` cannot see.

:func:`perturbed` wraps any function of tensors (Python branches, NumPy inside, a simulator)
into its Gaussian smoothing :math:`\mathbb{E}[f(x + sZ)]` with an unbiased Monte-Carlo gradient
(score function with antithetic pairs and a leave-one-out baseline, or the reparameterised path).
:mod:`softtorch.perturbation.ordering` holds the perturbed-optimiser relaxations of argmax, max,
top-k, sort and rank (Berthet et al., 2020).

Modules: ``_noise`` (Gaussian / Gumbel draws and scores), ``_estimators`` (the score-function
autograd node), ``_wrap`` (:func:`perturbed`), ``ordering`` (the ordering relaxations).
"""

from . import ordering
from ._noise import NOISES
from ._wrap import ESTIMATORS, perturbed
from .ordering import (
    perturbed_argmax,
    perturbed_max,
    perturbed_rank,
    perturbed_sort,
    perturbed_topk,
    perturbed_topk_mask,
)

__all__ = [
    "ESTIMATORS",
    "NOISES",
    "ordering",
    "perturbed",
    "perturbed_argmax",
    "perturbed_max",
    "perturbed_rank",
    "perturbed_sort",
    "perturbed_topk",
    "perturbed_topk_mask",
]
