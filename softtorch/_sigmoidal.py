r"""The S-shaped kernel every elementwise relaxation is built from, and its integral.

``sigmoidal(x, softness, mode)`` maps R to [0, 1] and tends to the Heaviside step as softness -> 0:

* ``smooth``: the logistic sigmoid :math:`\sigma(x/s)` (C-infinity).
* ``c0`` / ``c1`` / ``c2``: with :math:`t = \mathrm{clip}(\tfrac12 + \tfrac{x}{10 s}, 0, 1)`,
  :math:`t`, :math:`3t^2 - 2t^3` and :math:`6t^5 - 15t^4 + 10t^3`: piecewise polynomials that are
  exactly 0 for :math:`x \le -5s`, exactly 1 for :math:`x \ge 5s` and continuous to order 0 / 1 / 2.
  The band half-width :math:`5s` makes their transition as wide as the logistic one.
* ``_c1_pnorm`` / ``_c2_pnorm``: the weight of the second point when the scores :math:`(0, x/s)` are
  projected onto the 2-simplex with the p-norm regulariser, p = 3/2 and p = 4/3 (the 2-point case
  of :func:`softtorch.simplex.project_simplex`); exact 0 / 1 outside :math:`|x| \le s`.

``softrelu(x)`` is :math:`\int_{-\infty}^x \mathrm{sigmoidal}(t)\,dt` (``smooth``: softplus), or
``x * sigmoidal(x)`` when ``gated`` (``smooth``: SiLU).
"""

from __future__ import annotations

import torch

from ._checks import SIGMOIDAL_MODES, as_float, check_choice, check_softness, upcast_half
from ._sigmoidal_math import BAND, SoftnessLike, ramp, step
from .kernels import fused
from .kernels.composite import STEP

__all__ = ["BAND", "SoftnessLike", "ramp", "sigmoidal", "softrelu", "step"]


def sigmoidal(
    x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth"
) -> torch.Tensor:
    """Soft Heaviside step in [0, 1]; see the module docstring for each mode's formula.

    Half-precision input is computed in float32 and returned in its dtype.

    Args:
        x: input tensor (floating; integers are promoted).
        softness: transition width s > 0.
        mode: one of ``smooth``, ``c0``, ``c1``, ``_c1_pnorm``, ``c2``, ``_c2_pnorm``.

    Example:
        >>> sigmoidal(torch.tensor([-1.0, 0.0, 1.0]), 0.5, "c1")
        tensor([0.2160, 0.5000, 0.7840])
    """
    mode = check_choice(mode, SIGMOIDAL_MODES, "mode")
    xc, dtype = upcast_half(as_float(x))
    return fused.unary(xc, check_softness(softness), mode, STEP).to(dtype)


def softrelu(
    x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth", gated: bool = False
) -> torch.Tensor:
    """Soft ReLU: the integral of :func:`sigmoidal` (``gated=False``) or ``x * sigmoidal(x)``.

    The ungated form is convex, lies above ``relu`` and equals it outside the band
    (c-modes); ``smooth`` gives ``s * softplus(x / s)``. Half-precision input is computed in
    float32 and returned in its dtype.

    Args:
        x: input tensor (floating; integers are promoted).
        softness: transition width s > 0.
        mode: one of ``smooth``, ``c0``, ``c1``, ``_c1_pnorm``, ``c2``, ``_c2_pnorm``.
        gated: ``x * sigmoidal(x)`` instead of the integral.
    """
    mode = check_choice(mode, SIGMOIDAL_MODES, "mode")
    xc, dtype = upcast_half(as_float(x))
    return fused.ramp(xc, check_softness(softness), mode, gated).to(dtype)
