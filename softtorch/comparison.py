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

from ._checks import MODES, as_float_pair, check_mode, check_softness
from .elementwise import _upcast_half
from .elementwise import abs as soft_abs
from .sigmoidal import Softness, step

SoftBool = torch.Tensor


def _pair(
    x: object, y: object, softness: Softness, mode: str
) -> tuple[torch.Tensor, torch.Tensor, Softness, str]:
    mode = check_mode(mode, MODES)
    softness = check_softness(softness)
    xt, yt = as_float_pair(x, y)
    return xt, yt, softness, mode


def _step(d: torch.Tensor, softness: Softness, mode: str) -> torch.Tensor:
    dc, dtype = _upcast_half(d)
    return step(dc, softness, mode).to(dtype)


def greater(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x > y``: :math:`\\sigma_s(x - y - \\epsilon)`."""
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.gt(x, y).to(x.dtype)
    return _step(x - y - epsilon, softness, mode)


def greater_equal(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x >= y``: :math:`\\sigma_s(x - y + \\epsilon)`."""
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.ge(x, y).to(x.dtype)
    return _step(x - y + epsilon, softness, mode)


def less(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x < y`` = ``greater(y, x)``."""
    return greater(y, x, softness, mode, epsilon)


def less_equal(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x <= y`` = ``greater_equal(y, x)``."""
    return greater_equal(y, x, softness, mode, epsilon)


def _close(
    d: torch.Tensor, tol: torch.Tensor | float, softness: Softness, mode: str
) -> torch.Tensor:
    dc, dtype = _upcast_half(d)
    if isinstance(tol, torch.Tensor):
        tol = tol.to(dc.dtype)
    a = soft_abs(dc, softness, mode)
    return (2.0 * step(tol - a, softness, mode)).clamp(max=1.0).to(dtype)


def eq(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x == y``: :math:`\\min(1, 2\\sigma_s(\\epsilon - |x - y|_s))`."""
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.eq(x, y).to(x.dtype)
    return _close(x - y, epsilon, softness, mode)


def not_equal(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, mode: str = "smooth",
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``x != y`` = ``1 - eq(x, y)``."""
    x, y, softness, mode = _pair(x, y, softness, mode)
    if mode == "hard":
        return torch.ne(x, y).to(x.dtype)
    return 1.0 - _close(x - y, epsilon, softness, mode)


def isclose(
    x: torch.Tensor, y: torch.Tensor, softness: Softness = 0.1, rtol: float = 1e-05,
    atol: float = 1e-08, mode: str = "smooth", epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ``torch.isclose``: soft :math:`|x - y| \\le atol + rtol |y|`, 1 inside the tolerance."""
    x, y, softness, mode = _pair(x, y, softness, mode)
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    if mode == "hard":
        return torch.isclose(x, y, rtol=rtol, atol=atol).to(x.dtype)
    tol = atol + rtol * torch.abs(y) + epsilon
    return _close(x - y, tol, softness, mode)
