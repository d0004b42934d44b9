r"""Soft elementwise relaxations: heaviside, sign, abs, relu, clamp, round.

All are built from :func:`softtorch.sigmoidal.sigmoidal` :math:`\sigma_s` and its integral, so each
mode's continuity class carries over (``smooth``: C-infinity; ``cK``: K times continuously
differentiable and equal to the hard function outside a band of half-width :math:`5s`).
``mode="hard"`` returns torch's own result. Half-precision inputs are computed in float32 and
returned in their own dtype.
"""

from __future__ import annotations

import torch

from ._checks import (
    ELEMENTWISE_MODES,
    _is_compiling,
    as_float,
    check_mode,
    check_softness,
    upcast_half,
)
from ._sigmoidal_math import SoftnessLike
from .kernels import fused
from .kernels.composite import ABS, SIGN, STEP


def _is_wrapped(x: torch.Tensor) -> bool:
    """True for tensors inside a torch.func transform (which may carry tangents or gradients);
    assumed while torch.compile traces (Dynamo cannot call the check; the caller's fallback only
    adds ``0 * sign(x)``, which leaves the values unchanged)."""
    if _is_compiling():
        return True
    # torch internal, checked on torch 2.13.0
    return bool(torch._C._functorch.is_functorch_wrapped_tensor(x))


def _prepare(
    x: object, softness: SoftnessLike, mode: str
) -> tuple[torch.Tensor, SoftnessLike, str]:
    mode = check_mode(mode, ELEMENTWISE_MODES)
    softness = check_softness(softness)
    return as_float(x), softness, mode  # type: ignore[arg-type]


def heaviside(x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth") -> torch.Tensor:
    r"""Soft step :math:`H(x) \approx \sigma_s(x)`; relaxes ``torch.heaviside(x, 0.5)``.

    Args:
        x: input tensor (integers and bools are promoted to the default float dtype).
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's result), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"`` or the
            p-norm sigmoidals ``"_c1_pnorm"`` / ``"_c2_pnorm"`` (see :func:`softtorch.sigmoidal`).

    Example:
        >>> heaviside(torch.tensor([-0.2, 0.3]))
        tensor([0.1192, 0.9526])
    """
    x, softness, mode = _prepare(x, softness, mode)
    if mode == "hard":
        # torch.heaviside has no derivative (backward and forward AD raise); like torch.sign, the
        # hard step gets a zero one: 0 * sign(x) adds an exact +0 (NaN stays NaN)
        hard = torch.heaviside(x.detach(), torch.tensor(0.5, dtype=x.dtype, device=x.device))
        return hard + 0.0 * torch.sign(x) if x.requires_grad or _is_wrapped(x) else hard
    return fused.unary(x, softness, mode, STEP)


def sign(x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth") -> torch.Tensor:
    r"""Soft sign :math:`2\sigma_s(x) - 1` (``smooth``: :math:`\tanh(x / 2s)`).

    Args:
        x: input tensor (integers and bools are promoted to the default float dtype).
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (``torch.sign``), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``,
            ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
    """
    x, softness, mode = _prepare(x, softness, mode)
    if mode == "hard":
        return torch.sign(x)
    return fused.unary(x, softness, mode, SIGN)


def abs(x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth") -> torch.Tensor:  # noqa: A001
    r"""Soft absolute value :math:`x \cdot \mathrm{sign}_s(x)` (never above :math:`|x|`).

    Args:
        x: input tensor (integers and bools are promoted to the default float dtype).
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (``torch.abs``), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``,
            ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
    """
    x, softness, mode = _prepare(x, softness, mode)
    if mode == "hard":
        return torch.abs(x)
    return fused.unary(x, softness, mode, ABS)


def relu(
    x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth", gated: bool = False
) -> torch.Tensor:
    r"""Soft ReLU: :math:`\int_{-\infty}^x \sigma_s` (``smooth``: softplus) or, with ``gated``,
    :math:`x\,\sigma_s(x)` (``smooth``: SiLU).

    Args:
        x: input tensor (integers and bools are promoted to the default float dtype).
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (``torch.relu``), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``,
            ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        gated: use :math:`x\,\sigma_s(x)` instead of the integral of the sigmoidal.
    """
    x, softness, mode = _prepare(x, softness, mode)
    if mode == "hard":
        return torch.relu(x)
    return fused.ramp(x, softness, mode, gated=gated)


def _bound(b: torch.Tensor | float | None, like: torch.Tensor) -> torch.Tensor | None:
    if b is None:
        return None
    if isinstance(b, torch.Tensor):
        if b.is_complex():
            raise TypeError("clamp bounds must be real")
        return b.to(like.dtype)
    return torch.as_tensor(b, dtype=like.dtype, device=like.device)


def _clamp_dtype(x: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None) -> torch.dtype:
    """Result dtype of ``torch.clamp``: 0-d bounds do not promote (as in torch)."""

    def probe(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.new_empty(() if t.ndim == 0 else (0,))

    return torch.clamp(probe(x), probe(a), probe(b)).dtype  # type: ignore[arg-type]


def clamp(
    x: torch.Tensor,
    a: torch.Tensor | float | None = None,
    b: torch.Tensor | float | None = None,
    softness: SoftnessLike = 0.1,
    mode: str = "smooth",
    gated: bool = False,
) -> torch.Tensor:
    r"""Soft ``torch.clamp(x, a, b)`` as soft ``min(max(x, a), b)``:
    :math:`b - \mathrm{relu}_s(b - a - \mathrm{relu}_s(x - a))`.

    Like torch, ``a > b`` gives ``b``. Infinite bounds act as in torch: ``a = -inf`` or
    ``b = +inf`` is no bound on that side, ``a = +inf`` gives ``+inf`` and ``b = -inf`` gives
    ``-inf`` (never ``inf - inf``).

    Args:
        x: input tensor.
        a: lower bound (``min``): ``None`` (one-sided), a float or a tensor broadcastable with
            ``x``.
        b: upper bound (``max``), likewise; at least one of ``a`` and ``b`` must be given.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (``torch.clamp``), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``,
            ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        gated: build from the gated soft relu :math:`x\,\sigma_s(x)`.
    """
    x, softness, mode = _prepare(x, softness, mode)
    if a is None and b is None:
        raise ValueError("clamp needs at least one of the bounds a (min) or b (max)")
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        # torch.clamp takes two tensors or two numbers: a number bound becomes a 0-d tensor; x
        # is then promoted like torch.clamp does (float32 x, float64 tensor bounds -> float64)
        a = a if isinstance(a, torch.Tensor) else _bound(a, x)
        b = b if isinstance(b, torch.Tensor) else _bound(b, x)
        for t in (a, b):
            if t is not None and t.is_complex():
                raise TypeError("clamp bounds must be real")
        x = x.to(_clamp_dtype(x, a, b))
    if mode == "hard":
        return torch.clamp(x, a, b)  # type: ignore[arg-type]
    xc, dtype = upcast_half(x)
    return fused.clamp(xc, _bound(a, xc), _bound(b, xc), softness, mode, gated).to(dtype)


def round(  # noqa: A001
    x: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth", neighbor_radius: int = 5
) -> torch.Tensor:
    r"""Soft rounding as a staircase of soft steps (arXiv 2504.19026):

    .. math:: \mathrm{round}_s(x) = \lfloor x\rfloor - r + \sum_{j=-r}^{r-1}
              \sigma_s\big(x - \lfloor x\rfloor - j - \tfrac12\big)

    with ``r = neighbor_radius`` steps on each side of ``x`` (the omitted far steps are saturated).
    Hard mode is ``torch.round`` (half to even).

    Args:
        x: input tensor.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (``torch.round``), ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``,
            ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        neighbor_radius: the number r >= 1 of soft steps on each side of ``x``.
    """
    x, softness, mode = _prepare(x, softness, mode)
    if isinstance(neighbor_radius, bool) or not isinstance(neighbor_radius, int):
        raise TypeError("neighbor_radius must be an int >= 1")
    if neighbor_radius < 1:
        raise ValueError(f"neighbor_radius must be >= 1, got {neighbor_radius}")
    if mode == "hard":
        return torch.round(x)
    return fused.round(x, softness, mode, neighbor_radius)
