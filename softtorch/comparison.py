r"""Soft comparisons returning SoftBools (floats in [0, 1]).

With :math:`\sigma_s` the mode's sigmoidal, :math:`|\cdot|_s` the soft :func:`~softtorch.abs` and
:math:`\epsilon` a tiny shift (default 1e-10) that fixes the value at equality in the limit
softness -> 0:

* ``greater(x, y)`` :math:`= \sigma_s(x - y - \epsilon)`,
  ``greater_equal`` :math:`= \sigma_s(x - y + \epsilon)`
  (both about 1/2 at equality for ordinary softness; 0 resp. 1 in the limit);
* ``less(x, y) = greater(y, x)``, ``less_equal(x, y) = greater_equal(y, x)``;
* ``eq(x, y)`` :math:`= \min(1, 2\sigma_s(\epsilon - |x - y|_s))` (1 at equality, 0 far away);
  ``not_equal = 1 - eq``;
* ``isclose(x, y)`` = ``eq`` with the tolerance :math:`atol + rtol|y|` added to :math:`\epsilon`.

``mode="hard"`` returns torch's boolean result as a float tensor. Operands broadcast and promote
like torch (integers to the default float dtype).
"""

from __future__ import annotations

import torch

from ._checks import ELEMENTWISE_MODES, as_float_pair, check_mode, check_softness, upcast_half
from ._sigmoidal_math import SoftnessLike, step
from .kernels import fused
from .kernels.composite import CMP, EQ, NE
from .kernels.fused_close import close

_HALF = (torch.float16, torch.bfloat16)

SoftBool = torch.Tensor


class ToleranceError(ValueError, RuntimeError):
    """A negative or NaN ``rtol`` / ``atol``: a ValueError, and a RuntimeError like torch's."""


def _pair(
    x: object, y: object, softness: SoftnessLike, mode: str
) -> tuple[torch.Tensor, torch.Tensor, SoftnessLike, str]:
    mode = check_mode(mode, ELEMENTWISE_MODES)
    softness = check_softness(softness)
    xt, yt = as_float_pair(x, y)
    return xt, yt, softness, mode


def _diff(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x - y``, and 0 where both are the same infinity (``inf`` vs ``inf`` compares as equal,
    like torch, instead of ``inf - inf = nan``); equal finite values keep their gradient."""
    d = x - y
    return torch.where((x == y) & torch.isinf(x), torch.zeros_like(d), d)


def _step(d: torch.Tensor, softness: SoftnessLike, mode: str) -> torch.Tensor:
    dc, dtype = upcast_half(d)
    return step(dc, softness, mode).to(dtype)


def greater(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x > y``: :math:`\\sigma_s(x - y - \\epsilon)`.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.gt(x, y).to(x.dtype)
    if x.dtype in _HALF:  # the difference in half precision, as torch would
        return _step(_diff(x, y) - epsilon, softness, mode)
    return fused.binary(x, y, softness, mode, CMP, shift=-epsilon)


def greater_equal(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x >= y``: :math:`\\sigma_s(x - y + \\epsilon)`.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.ge(x, y).to(x.dtype)
    if x.dtype in _HALF:  # the difference in half precision, as torch would
        return _step(_diff(x, y) + epsilon, softness, mode)
    return fused.binary(x, y, softness, mode, CMP, shift=epsilon)


def less(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x < y`` = ``greater(y, x)``.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    return greater(y, x, softness, mode, epsilon)


def less_equal(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x <= y`` = ``greater_equal(y, x)``.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    return greater_equal(y, x, softness, mode, epsilon)


def eq(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x == y``: :math:`\\min(1, 2\\sigma_s(\\epsilon - |x - y|_s))`.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.eq(x, y).to(x.dtype)
    return close(x, y, softness, mode, 0.0, epsilon, EQ)


def not_equal(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x != y`` = ``1 - eq(x, y)``.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand.
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        mode: ``"hard"`` (torch's boolean result as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: the shift that fixes the value at equality as softness -> 0.
    """
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.ne(x, y).to(x.dtype)
    return close(x, y, softness, mode, 0.0, epsilon, NE)


def isclose(
    x: torch.Tensor, y: torch.Tensor, softness: SoftnessLike = 0.1, rtol: float = 1e-05,
    atol: float = 1e-08, mode: str = "smooth", epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``torch.isclose``: soft :math:`|x - y| \\le atol + rtol |y|`, 1 inside the tolerance.

    Equal operands (infinities included) are close; ``rtol |y|`` is 0 where ``y == 0``.

    Args:
        x: first operand (tensor or number; broadcast and promoted like torch).
        y: second operand (the reference of the relative tolerance).
        softness: transition width s > 0 (a float, or a 0-d tensor, which may require grad).
        rtol: relative tolerance >= 0 (NaN or negative raises, like torch).
        atol: absolute tolerance >= 0.
        mode: ``"hard"`` (``torch.isclose`` as floats), ``"smooth"``, ``"c0"``, ``"c1"``,
            ``"c2"``, ``"_c1_pnorm"`` or ``"_c2_pnorm"``.
        epsilon: added to the tolerance (the value at equality as softness -> 0).
    """
    x, y, softness, mode = _pair(x, y, softness, mode)
    rtol, atol = _tolerance(rtol, "rtol"), _tolerance(atol, "atol")
    if mode == "hard":
        return torch.isclose(x, y, rtol=rtol, atol=atol).to(x.dtype)
    return close(x, y, softness, mode, rtol, atol + epsilon, EQ)


def _tolerance(value: object, name: str) -> float:
    """``rtol`` / ``atol``: a real number >= 0 (NaN rejected), with torch's error message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not value >= 0:  # also NaN
        raise ToleranceError(f"{name} must be greater than or equal to zero, but got {value}")
    return float(value)
