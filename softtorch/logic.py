r"""Fuzzy logic on SoftBools (probabilities in [0, 1]) and the soft ``where``.

* ``logical_not(a) = 1 - a``; ``logical_and(a, b) = a b`` (or the geometric mean
  :math:`\sqrt{ab}` with ``use_geometric_mean``);
* ``logical_or(a, b) = not(and(not a, not b))``;
  ``logical_xor(a, b) = or(and(a, not b), and(not a, b))``;
* ``all(a, dim)`` = product along ``dim``
  (or geometric mean :math:`\exp(\overline{\log(a + \epsilon)})`);
  ``any(a, dim) = 1 - all(1 - a, dim)``;
* ``where(c, x, y) = c x + (1 - c) y``, computed so that a weight of exactly 0 never multiplies a
  non-finite value (``where(0, nan, y) == y``), while the gradient w.r.t. ``c`` is kept.

Boolean inputs are accepted and treated as 0/1.
"""

from __future__ import annotations

import torch

from ._checks import as_float, as_float_pair, canonical_dim, upcast_half
from .kernels.fused_logic import geometric_and

SoftBool = torch.Tensor


def _gm(t: torch.Tensor, dim: int | None, keepdim: bool, epsilon: float) -> torch.Tensor:
    """Geometric mean along ``dim``, in float32 for half-precision ``t`` (an ``epsilon`` of 1e-10
    underflows to 0 in float16, making ``log(0)`` and NaN gradients at exact 0 / 1)."""
    t, dtype = upcast_half(t)
    return _gm_exact(t, dim, keepdim, epsilon).to(dtype)


def _gm_exact(t: torch.Tensor, dim: int | None, keepdim: bool, epsilon: float) -> torch.Tensor:
    logs = torch.log(t + epsilon)
    total = logs.sum() if dim is None else logs.sum(dim=dim, keepdim=keepdim)
    n = t.numel() if dim is None else t.shape[dim]
    mean = total / max(n, 1)  # an empty reduction gives 1, like the empty product
    return (torch.exp(mean) - epsilon).clamp(0.0, 1.0)


def logical_not(x: SoftBool) -> SoftBool:
    """Soft NOT: :math:`1 - a`.

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
    """
    return 1.0 - as_float(x)


def logical_and(x: SoftBool, y: SoftBool, use_geometric_mean: bool = False) -> SoftBool:
    """Soft AND: :math:`ab`, or :math:`\\sqrt{ab}` (computed as a stable geometric mean).

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        y: a SoftBool broadcastable with ``x``.
        use_geometric_mean: use the geometric mean instead of the product (computed in float32
            for half-precision inputs).
    """
    a, b = as_float_pair(x, y)
    if use_geometric_mean:
        return geometric_and(a, b, 1e-10)
    return a * b


def logical_or(x: SoftBool, y: SoftBool, use_geometric_mean: bool = False) -> SoftBool:
    """Soft OR: :math:`1 - (1 - a)(1 - b)` (De Morgan on :func:`logical_and`).

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        y: a SoftBool broadcastable with ``x``.
        use_geometric_mean: use the geometric mean instead of the product (computed in float32
            for half-precision inputs).
    """
    a, b = as_float_pair(x, y)
    a, dtype = upcast_half(a) if use_geometric_mean else (a, a.dtype)
    b = b.to(a.dtype)
    return (1.0 - logical_and(1.0 - a, 1.0 - b, use_geometric_mean)).to(dtype)


def logical_xor(x: SoftBool, y: SoftBool, use_geometric_mean: bool = False) -> SoftBool:
    """Soft XOR: ``or(and(a, not b), and(not a, b))``.

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        y: a SoftBool broadcastable with ``x``.
        use_geometric_mean: use the geometric mean instead of the product (computed in float32
            for half-precision inputs).
    """
    a, b = as_float_pair(x, y)
    a, dtype = upcast_half(a) if use_geometric_mean else (a, a.dtype)
    b = b.to(a.dtype)
    return logical_or(
        logical_and(a, 1.0 - b, use_geometric_mean),
        logical_and(1.0 - a, b, use_geometric_mean),
        use_geometric_mean,
    ).to(dtype)


def all(  # noqa: A001
    x: SoftBool,
    dim: int | None = -1,
    epsilon: float = 1e-10,
    use_geometric_mean: bool = False,
    keepdim: bool = False,
) -> SoftBool:
    """Soft ALL along ``dim`` (``None``: all elements): product, or geometric mean.

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        dim: the dimension to reduce, or ``None`` for all elements.
        epsilon: added inside the log of the geometric mean.
        use_geometric_mean: :math:`\\exp(\\overline{\\log(a + \\epsilon)})` instead of the product.
        keepdim: keep the reduced dimension as a singleton.
    """
    a = as_float(x)
    if dim is not None:
        dim = canonical_dim(dim, a.ndim)
        if a.ndim == 0:
            return a.clone()
    if use_geometric_mean:
        out = _gm(a, dim, keepdim, epsilon)
    else:
        out = a.prod() if dim is None else a.prod(dim=dim, keepdim=keepdim)
    if dim is None and keepdim:  # like torch.all(x, dim=None, keepdim=True)
        out = out.reshape((1,) * a.ndim)
    return out


def any(  # noqa: A001
    x: SoftBool,
    dim: int | None = -1,
    use_geometric_mean: bool = False,
    keepdim: bool = False,
    epsilon: float = 1e-10,
) -> SoftBool:
    """Soft ANY along ``dim``: :math:`1 - \\mathrm{all}(1 - a)`.

    Args:
        x: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        dim: the dimension to reduce, or ``None`` for all elements.
        use_geometric_mean: reduce with the geometric mean (see :func:`all`).
        keepdim: keep the reduced dimension as a singleton.
        epsilon: added inside the log of the geometric mean.
    """
    return 1.0 - all(1.0 - as_float(x), dim, epsilon, use_geometric_mean, keepdim)


def where(condition: SoftBool, x: torch.Tensor | float, y: torch.Tensor | float) -> torch.Tensor:
    """Soft ``torch.where``: :math:`c x + (1 - c) y` for a SoftBool ``condition``.

    Where ``c`` is exactly 1 (0) the non-finite entries of ``y`` (``x``) do not leak into the
    result, so a 0/1 condition reproduces ``torch.where`` exactly, NaNs and infs included.

    Args:
        condition: a SoftBool (floats in [0, 1]; bools are treated as 0 / 1).
        x: the value where the condition holds (tensor or number).
        y: the value where it does not.
    """
    xt, yt = as_float_pair(x, y)
    c = condition
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c)
    if c.is_complex():
        raise TypeError("condition must be real")
    c = c.to(xt.dtype)
    xs = torch.where((c == 0) & ~torch.isfinite(xt), torch.zeros((), dtype=xt.dtype,
                     device=xt.device), xt)
    ys = torch.where((c == 1) & ~torch.isfinite(yt), torch.zeros((), dtype=yt.dtype,
                     device=yt.device), yt)
    return xs * c + ys * (1.0 - c)


__all__ = [
    "logical_not", "logical_and", "logical_or", "logical_xor", "all", "any", "where",
]
