r"""The math of the sigmoidal kernel :math:`\sigma_s` and its integral, without argument checks:
:func:`step` (``sigmoidal``) and :func:`ramp` (``softrelu``), in torch ops. See
the private ``_sigmoidal`` module for the formulas of each mode; the public, checked functions live
there and run the fused kernels of :mod:`softtorch.kernels` (whose composite formulas are these).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
