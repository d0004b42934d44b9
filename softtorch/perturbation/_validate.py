"""Argument checks shared by :func:`perturbed` and the perturbed ordering functions."""

from __future__ import annotations

import torch

from .._checks import check_choice, check_softness
from ._estimators import BASELINES, baseline_name
from ._noise import NOISES


def check_samples(samples: object, antithetic: bool) -> int:
    """``samples`` must be an int >= 1, and even (>= 2) with antithetic pairs."""
    if isinstance(samples, bool) or not isinstance(samples, int):
        raise TypeError(f"samples must be an int, got {type(samples).__name__}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if antithetic and (samples < 2 or samples % 2):
        raise ValueError(
            f"antithetic=True draws pairs (Z, Z'), so samples must be even and >= 2, got "
            f"{samples}; use samples={max(2, samples + samples % 2)} or antithetic=False"
        )
    return samples


def check_float_softness(softness: object) -> float:
    """A finite float > 0 (a tensor that requires grad is refused: no gradient w.r.t. it)."""
    if isinstance(softness, torch.Tensor) and softness.requires_grad:
        raise TypeError("the perturbation estimators do not differentiate w.r.t. softness")
    return float(check_softness(softness))  # type: ignore[arg-type]


def check_noise(noise: object) -> str:
    return check_choice(noise, NOISES, "noise")


def check_baseline(baseline: object) -> str:
    """``True`` / ``False`` or one of ``"none"``, ``"mean"``, ``"linear"``; returns the name."""
    if isinstance(baseline, bool):
        return baseline_name(baseline)
    return check_choice(baseline, BASELINES, "baseline")


def check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


#: Context manager for the estimators' own torch calls: a ``soft_mode`` the caller has open (and
#: SoftTensor dispatch) must not relax them; the user's ``fn`` is called outside it.
plain = torch._C.DisableTorchFunction
