r"""A learnable softness: a positive scalar parametrised through softplus.

The recommended way to learn ``softness`` (softness must stay > 0; a raw parameter that an
optimiser drives negative is rejected by every op) is

.. math:: s = s_{\min} + \operatorname{softplus}(r),

with an unconstrained parameter :math:`r` and a floor :math:`s_{\min} > 0` that keeps ``s``
away from 0 (where relaxations become hard and gradients vanish) also when ``softplus``
underflows. :class:`Softness` holds :math:`r` as an ``nn.Parameter`` initialised so that
:math:`s` starts at a given value; :func:`positive_softness` is the same map as a function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["Softness", "positive_softness"]


def positive_softness(raw: torch.Tensor, min_softness: float = 1e-4) -> torch.Tensor:
    r"""Map an unconstrained tensor to a valid softness :math:`s_{\min} + \mathrm{softplus}(r)`.

    Args:
        raw: the unconstrained parameter (any real values).
        min_softness: the floor :math:`s_{\min} > 0`.

    Returns:
        A tensor of ``raw``'s shape with every value >= ``min_softness``.
    """
    _check_floor(min_softness)
    return min_softness + F.softplus(raw)


def _check_floor(min_softness: float) -> None:
    if not (isinstance(min_softness, (int, float)) and math.isfinite(min_softness)
            and min_softness > 0):
        raise ValueError(f"min_softness must be a finite number > 0, got {min_softness!r}")


def _inverse_softplus(y: float) -> float:
    """``r`` with ``softplus(r) = y`` for ``y > 0`` (stable for large and tiny ``y``)."""
    return y + math.log(-math.expm1(-y))


class Softness(torch.nn.Module):
    r"""A learnable softness :math:`s = s_{\min} + \mathrm{softplus}(r)`; calling it returns s.

    Example:
        >>> s = Softness(0.5)
        >>> round(float(s()), 4)
        0.5

    Args:
        init: the softness at initialisation (> ``min_softness``).
        min_softness: the floor :math:`s_{\min} > 0` the softness never goes below.
        dtype: dtype of the raw parameter (default: the default float dtype).
        device: device of the raw parameter.
    """

    def __init__(
        self,
        init: float = 0.1,
        min_softness: float = 1e-4,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_floor(min_softness)
        if not (isinstance(init, (int, float)) and math.isfinite(init) and init > min_softness):
            raise ValueError(
                f"init must be a finite softness > min_softness = {min_softness}, got {init!r}"
            )
        self.min_softness = float(min_softness)
        raw = _inverse_softplus(float(init) - self.min_softness)
        self.raw = torch.nn.Parameter(torch.tensor(raw, dtype=dtype, device=device))

    def forward(self) -> torch.Tensor:
        """The current softness, a 0-d tensor that requires grad."""
        return positive_softness(self.raw, self.min_softness)

    def extra_repr(self) -> str:
        return f"softness={float(self.forward().detach()):.4g}, min_softness={self.min_softness}"
