"""Closed-form Gaussian (and Gumbel) smoothings used as independent references by the tests.

For ``Z ~ N(0, 1)`` and softness ``s`` (``Phi`` / ``phi`` the standard normal cdf / pdf):

* Heaviside ``1[x > 0]``: ``E = Phi(x/s)``, ``d/dx = phi(x/s)/s``;
* ``relu``: ``E = s phi(x/s) + x Phi(x/s)``, ``d/dx = Phi(x/s)``;
* ``abs`` (folded normal mean): ``E = s sqrt(2/pi) exp(-x^2/(2 s^2)) + x (1 - 2 Phi(-x/s))``,
  ``d/dx = 2 Phi(x/s) - 1``;
* staircase ``sum_k 1[x > c_k]``: ``E = sum_k Phi((x - c_k)/s)``;
* Gumbel Heaviside ``P(x + sG > 0) = 1 - exp(-exp(x/s))``.
"""

from __future__ import annotations

import math

import torch

STEPS: tuple[float, ...] = (-0.5, 0.0, 0.5)


def Phi(t: torch.Tensor) -> torch.Tensor:  # noqa: N802
    return 0.5 * torch.erfc(-t / math.sqrt(2.0))


def phi(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def heaviside(t: torch.Tensor) -> torch.Tensor:
    return (t > 0).to(t.dtype)


def staircase(t: torch.Tensor) -> torch.Tensor:
    return sum((t > c).to(t.dtype) for c in STEPS)


#: name -> (fn, value(x, s), grad(x, s)) for Gaussian noise.
GAUSSIAN = {
    "heaviside": (heaviside, lambda x, s: Phi(x / s), lambda x, s: phi(x / s) / s),
    "relu": (
        torch.relu,
        lambda x, s: s * phi(x / s) + x * Phi(x / s),
        lambda x, s: Phi(x / s),
    ),
    "abs": (
        torch.abs,
        lambda x, s: (
            s * math.sqrt(2 / math.pi) * torch.exp(-(x**2) / (2 * s * s))
            + x * (1 - 2 * Phi(-x / s))
        ),
        lambda x, s: 2 * Phi(x / s) - 1,
    ),
    "staircase": (
        staircase,
        lambda x, s: sum(Phi((x - c) / s) for c in STEPS),
        lambda x, s: sum(phi((x - c) / s) / s for c in STEPS),
    ),
}


def gumbel_heaviside(x: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Value and derivative of ``E[1[x + sG > 0]]`` for a standard Gumbel ``G``."""
    e = torch.exp(x / s)
    return 1 - torch.exp(-e), e * torch.exp(-e) / s
