r"""Handlers for elementwise ops: relu, relu6, hardtanh, clamp, abs, sign, heaviside, round,
floor / ceil / trunc and binary maximum / minimum.

With :math:`r_s` the soft relu and :math:`\mathrm{round}_s` the soft staircase of
:mod:`softtorch.elementwise`: :math:`\lfloor x\rfloor_s = \mathrm{round}_s(x - \tfrac12)`,
:math:`\lceil x\rceil_s = \mathrm{round}_s(x + \tfrac12)`,
:math:`\mathrm{trunc}_s(x) = \mathrm{round}_s(x - \tfrac12\mathrm{sign}_s(x))`,
:math:`\max_s(a, b) = b + r_s(a - b)` (symmetric in a, b) and :math:`\min_s(a, b) = a - r_s(a - b)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import elementwise as ew
from .._checks import as_float_pair
from ..straight_through import combine
from .context import Ctx, into
from .tensor import wrap


def relu(c: Ctx, input: Tensor, inplace: bool = False) -> Any:
    x = input.clone() if inplace else input
    out = c.value(lambda: ew.relu(x, c.softness, c.mode), lambda: torch.relu(x))
    return into(input, out) if inplace else out


def relu6(c: Ctx, input: Tensor, inplace: bool = False) -> Any:
    return hardtanh(c, input, 0.0, 6.0, inplace)


def hardtanh(
    c: Ctx, input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Any:
    x = input.clone() if inplace else input
    out = c.value(
        lambda: ew.clamp(x, min_val, max_val, c.softness, c.mode),
        lambda: torch.clamp(x, min_val, max_val),
    )
    return into(input, out) if inplace else out


def clamp(c: Ctx, input: Tensor, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    return c.value(
        lambda: ew.clamp(input, min, max, c.softness, c.mode), lambda: torch.clamp(input, min, max)
    )


def clamp_min(c: Ctx, input: Tensor, min: Any) -> Any:  # noqa: A002
    return clamp(c, input, min, None)


def clamp_max(c: Ctx, input: Tensor, max: Any) -> Any:  # noqa: A002
    return clamp(c, input, None, max)


def abs_(c: Ctx, input: Tensor) -> Any:
    return c.value(lambda: ew.abs(input, c.softness, c.mode), lambda: torch.abs(input))


def sign(c: Ctx, input: Tensor) -> Any:
    return c.value(lambda: ew.sign(input, c.softness, c.mode), lambda: torch.sign(input))


def heaviside(c: Ctx, input: Tensor, values: Tensor) -> Any:
    """Soft step; ``values`` (torch's value at exactly 0) only affects the hard result."""
    if c.cfg.surrogate is not None:
        from ..surrogate import threshold

        exact = torch.heaviside(input, values)
        return wrap(combine(exact, threshold(input, c.cfg.surrogate)), c.carried)
    return c.value(
        lambda: ew.heaviside(input, c.softness, c.mode), lambda: torch.heaviside(input, values)
    )


def round_(c: Ctx, input: Tensor, *, decimals: int = 0) -> Any:
    def soft() -> Tensor:
        if decimals == 0:
            return ew.round(input, c.softness, c.mode)
        scale = 10.0**decimals
        return ew.round(input * scale, c.softness, c.mode) / scale

    return c.value(soft, lambda: torch.round(input, decimals=decimals))


def floor(c: Ctx, input: Tensor) -> Any:
    return c.value(lambda: ew.round(input - 0.5, c.softness, c.mode), lambda: torch.floor(input))


def floor_divide(c: Ctx, input: Tensor, other: Any) -> Any:
    """``x // y`` of floating data: the soft floor of the true quotient."""
    return c.value(
        lambda: ew.round(torch.div(input, other) - 0.5, c.softness, c.mode),
        lambda: torch.floor_divide(input, other),
    )


def rfloordiv(self: Any, other: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Argument adapter: ``y.__rfloordiv__(x)`` is ``x // y``."""
    return (other, self), {}


def ceil(c: Ctx, input: Tensor) -> Any:
    return c.value(lambda: ew.round(input + 0.5, c.softness, c.mode), lambda: torch.ceil(input))


def trunc(c: Ctx, input: Tensor) -> Any:
    def soft() -> Tensor:
        shift = 0.5 * ew.sign(input, c.softness, c.mode)
        return ew.round(input - shift, c.softness, c.mode)

    return c.value(soft, lambda: torch.trunc(input))


def maximum(c: Ctx, input: Tensor, other: Tensor) -> Any:
    def soft() -> Tensor:
        a, b = as_float_pair(input, other)
        return b + ew.relu(a - b, c.softness, c.mode)

    return c.value(soft, lambda: torch.maximum(input, other))


def minimum(c: Ctx, input: Tensor, other: Tensor) -> Any:
    def soft() -> Tensor:
        a, b = as_float_pair(input, other)
        return a - ew.relu(a - b, c.softness, c.mode)

    return c.value(soft, lambda: torch.minimum(input, other))
