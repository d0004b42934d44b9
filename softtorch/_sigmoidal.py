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
import torch.nn.functional as F

from ._checks import SIGMOIDAL_MODES, as_float, check_choice, check_softness, upcast_half

SoftnessLike = float | torch.Tensor

#: Half-width of the c0/c1/c2 transition band, in units of softness.
BAND = 5.0


def _t(x: torch.Tensor, softness: SoftnessLike) -> torch.Tensor:
    return (0.5 + x / (2.0 * BAND * softness)).clamp(0.0, 1.0)


def _pnorm_mid(h: torch.Tensor, p: str) -> torch.Tensor:
    """Midpoint m of the two 2-point projection weights' bases, for half-score h in [-1/2, 1/2].

    The weights are (m - h)^e and (m + h)^e with e = 2 (p = 3/2) or e = 3 (p = 4/3), summing to 1.
    """
    if p == "_c1_pnorm":
        return torch.sqrt((0.5 - h * h).clamp_min(0.25))
    # m^3 + 3 h^2 m - 1/2 = 0 has one real root (Cardano): m = c - h^2 / c with
    # c = cbrt(1/4 + sqrt(1/16 + h^6)); this form has no cbrt(0) and so finite gradients.
    c = torch.pow(0.25 + torch.sqrt(0.0625 + h**6), 1.0 / 3.0)
    return c - h * h / c


def _unit_sigmoidal(u: torch.Tensor, mode: str) -> torch.Tensor:
    """sigmoidal at softness 1 for the p-norm modes (u = x / softness)."""
    uc = u.clamp(-1.0, 1.0)
    h = uc / 2
    m = _pnorm_mid(h, mode)
    e = 2 if mode == "_c1_pnorm" else 3
    return torch.pow(m + h, e)


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
    return step(xc, check_softness(softness), mode).to(dtype)


def step(x: torch.Tensor, softness: SoftnessLike, mode: str) -> torch.Tensor:
    """:func:`sigmoidal` without argument checks, for callers that validated them once."""
    if mode == "smooth":
        return torch.sigmoid(x / softness)
    if mode in ("c0", "c1", "c2"):
        t = _t(x, softness)
        if mode == "c0":
            return t
        if mode == "c1":
            return t * t * (3.0 - 2.0 * t)
        return t * t * t * (t * (6.0 * t - 15.0) + 10.0)
    return _unit_sigmoidal(x / softness, mode)


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
    return ramp(xc, check_softness(softness), mode, gated).to(dtype)


def ramp(x: torch.Tensor, softness: SoftnessLike, mode: str, gated: bool = False) -> torch.Tensor:
    """:func:`softrelu` without argument checks, for callers that validated them once."""
    if gated:
        return x * step(x, softness, mode)
    if mode == "smooth":
        return F.softplus(x / softness) * softness
    if mode in ("c0", "c1", "c2"):
        w = BAND * softness
        t = _t(x, softness)
        if mode == "c0":
            inner = w * t * t
        elif mode == "c1":
            inner = 2.0 * w * t**3 * (1.0 - 0.5 * t)
        else:
            inner = 2.0 * w * t**4 * (t * (t - 3.0) + 2.5)
        return torch.where(x >= w, x, inner)
    u = x / softness
    uc = u.clamp(-1.0, 1.0)
    if mode == "_c1_pnorm":
        inner = uc / 2 - (2.0 - uc * uc).clamp_min(1.0) ** 1.5 / 6 + 2.0 / 3.0
    else:
        h = uc / 2
        m = _pnorm_mid(h, mode)
        inner = h - (m + m**4) / 2 + h**4 / 2 + 0.75
    return torch.where(u >= 1.0, x, inner * softness)
