r"""Torch reference formulas of the fused families: the fallback for every device and dtype the
CPU kernels do not cover, the double backward of the fused Functions, and the reference the
kernel tests compare with.

With :math:`\sigma_s` = :func:`softtorch.sigmoidal.step` and :math:`R_s` =
:func:`softtorch.sigmoidal.ramp` (its integral, or :math:`x\sigma_s(x)` when gated):

* ``unary``: :math:`\sigma_s(x)`, :math:`2\sigma_s(x) - 1`, :math:`x(2\sigma_s(x) - 1)`,
  :math:`R_s(x)`, :math:`x\sigma_s(x)` for the op codes STEP, SIGN, ABS, RAMP, GATED;
* ``binary``: :math:`\sigma_s(x - y + \delta)` (CMP), :math:`\min(1, 2\sigma_s(\tau - |x - y|_s))`
  (EQ) and one minus it (NE), with ``inf - inf = 0`` for equal infinities;
* ``clamp``: :math:`b - R_s(b - (a + R_s(x - a)))`, one-sided :math:`a + R_s(x - a)`,
  :math:`b - R_s(b - x)`; a bound at :math:`-\infty` (lower) / :math:`+\infty` (upper) counts as
  absent (its gradient is 0);
* ``round``: :math:`\lfloor x\rfloor - r + \sum_{j=-r}^{r-1}
  \sigma_s(x - \lfloor x\rfloor - j - \tfrac12)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._sigmoidal_math import SoftnessLike as Softness
from .._sigmoidal_math import ramp, step

#: Unary op codes (shared with the CPU kernels).
STEP, SIGN, ABS, RAMP, GATED = 0, 1, 2, 3, 4
#: Binary op codes (shared with the CPU kernels).
CMP, EQ, NE = 0, 1, 2


def unary(x: Tensor, softness: Softness, mode: str, op: int) -> Tensor:
    """Composite of the unary op ``op`` (see the module docstring).

    Args:
        x: floating input.
        softness: s > 0 (validated by the caller).
        mode: a sigmoidal mode (``smooth``, ``c0``, ``c1``, ``c2``, ``_c1_pnorm``, ``_c2_pnorm``).
        op: STEP, SIGN, ABS, RAMP or GATED.
    """
    if op == RAMP:
        return ramp(x, softness, mode)
    if op == GATED:
        return ramp(x, softness, mode, gated=True)
    sg = step(x, softness, mode)
    if op == STEP:
        return sg
    if op == SIGN:
        return 2.0 * sg - 1.0
    return x * (2.0 * sg - 1.0)


def binary(
    x: Tensor, y: Tensor, softness: Softness, mode: str, op: int, shift: float = 0.0,
    tol: float = 0.0,
) -> Tensor:
    """Composite of the comparison ``op`` on ``d = x - y + shift`` (see the module docstring).

    Equal infinities have ``x - y = 0`` (not NaN) with a zero gradient; for EQ / NE every pair of
    equal operands does, and an infinite operand is close only to itself (EQ exactly 0, with a
    zero gradient).

    Args:
        x, y: floating operands (broadcastable, one dtype).
        softness: s > 0.
        mode: a sigmoidal mode.
        op: CMP, EQ or NE.
        shift: added to ``x - y`` (``-eps`` for ``greater``, ``+eps`` for ``greater_equal``).
        tol: the tolerance :math:`\tau` of EQ / NE.
    """
    same = x == y
    d = x - y
    if op == CMP:
        d = torch.where(same & torch.isinf(x), torch.zeros_like(d), d)
        return step(d + shift if shift != 0.0 else d, softness, mode)
    far = (torch.isinf(x) | torch.isinf(y)) & ~same
    d = torch.where(same | far, torch.zeros_like(d), d)  # far: no inf * 0 in the gradient
    if shift != 0.0:
        d = d + shift
    a = d * (2.0 * step(d, softness, mode) - 1.0)
    v = (2.0 * step(tol - a, softness, mode)).clamp(max=1.0)
    v = torch.where(far, torch.zeros_like(v), v)
    return v if op == EQ else 1.0 - v


def clamp(
    x: Tensor, lo: Tensor | None, hi: Tensor | None, softness: Softness, mode: str,
    gated: bool = False,
) -> Tensor:
    r"""Composite soft clamp as soft ``min(max(x, lo), hi)``: ``m = lo + R_s(x - lo)``, then
    ``hi - R_s(hi - m)``; ``lo`` / ``hi`` are ``None`` or tensors of ``x``'s dtype that broadcast
    with it. A lower bound ``-inf`` or an upper bound ``+inf`` is dropped elementwise, ``lo = +inf``
    gives ``m = +inf`` and ``hi = -inf`` gives ``-inf`` (never ``inf - inf``).

    Args:
        x: floating input.
        lo, hi: the bounds (at least one given).
        softness: s > 0.
        mode: a sigmoidal mode.
        gated: use :math:`x\sigma_s(x)` instead of the integral of :math:`\sigma_s`.
    """

    def r(t: Tensor) -> Tensor:
        return ramp(t, softness, mode, gated=gated)

    out = x
    inf = float("inf")
    if lo is not None:  # soft max(out, lo) = lo + r(out - lo)
        finite = torch.where(torch.isinf(lo), torch.zeros_like(lo), lo)
        soft = finite + r(out - finite)
        out = torch.where(lo == -inf, out, torch.where(lo == inf, lo, soft))
    if hi is not None:  # soft min(out, hi) = hi - r(hi - out)
        finite = torch.where(torch.isinf(hi), torch.zeros_like(hi), hi)
        soft = finite - r(finite - out)
        out = torch.where(hi == inf, out, torch.where(hi == -inf, hi, soft))
    return out


def round(x: Tensor, softness: Softness, mode: str, neighbor_radius: int = 5) -> Tensor:  # noqa: A001
    """Composite staircase of ``2 * neighbor_radius`` soft steps (see the module docstring).

    Args:
        x: floating input.
        softness: s > 0.
        mode: a sigmoidal mode.
        neighbor_radius: steps on each side of ``x`` (>= 1).
    """
    base = torch.floor(x).detach()
    frac = x - base
    out = base - neighbor_radius
    for j in range(-neighbor_radius, neighbor_radius):
        out = out + step(frac - (j + 0.5), softness, mode)
    return out


def close(
    x: Tensor, y: Tensor, softness: Softness, mode: str, rtol: float, tol: float, op: int = EQ
) -> Tensor:
    r"""Composite soft ``isclose``: :math:`\min(1, 2\sigma_s(\tau - |x - y|_s))` with
    :math:`\tau = tol + rtol|y|` (``rtol |y|`` is 0 where ``y == 0``; ``rtol = 0``: soft ``eq``),
    or one minus it (``op = NE``).

    Equal operands (infinities included) have distance 0 and no gradient through it; an infinite
    operand is close only to itself (0, with a zero gradient). ``rtol = inf`` gives an infinite
    tolerance for ``y != 0`` without a ``0 * inf`` in the gradient.

    Args:
        x, y: floating operands (broadcastable, one dtype).
        softness: s > 0.
        mode: a sigmoidal mode.
        rtol: relative tolerance >= 0 (times ``|y|``).
        tol: absolute tolerance (``atol + epsilon``).
        op: EQ or NE.
    """
    same = x == y
    far = (torch.isinf(x) | torch.isinf(y)) & ~same
    d = torch.where(same | far, torch.zeros_like(x), x - y)
    tau = torch.full_like(d, tol)
    if rtol != 0.0:
        ay = torch.abs(y)
        zero = torch.zeros_like(ay)
        if rtol == float("inf"):
            rel = torch.where(ay == 0, zero, torch.full_like(ay, rtol))
        else:
            rel = torch.where(ay == 0, zero, rtol * ay)
        tau = tau + rel
    a = d * (2.0 * step(d, softness, mode) - 1.0)
    v = (2.0 * step(tau - a, softness, mode)).clamp(max=1.0)
    v = torch.where(far, torch.zeros_like(v), v)
    return v if op == EQ else 1.0 - v


def geometric_and(a: Tensor, b: Tensor, epsilon: float = 1e-10) -> Tensor:
    r"""Composite soft AND as a geometric mean,
    :math:`\mathrm{clip}(\exp(\tfrac12(\log(a + \epsilon) + \log(b + \epsilon))) - \epsilon, 0, 1)`.

    Args:
        a, b: SoftBools (broadcastable, one floating dtype).
        epsilon: added inside the logs.
    """
    mean = (torch.log(a + epsilon) + torch.log(b + epsilon)) / 2
    return (torch.exp(mean) - epsilon).clamp(0.0, 1.0)
