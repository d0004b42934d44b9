r"""Masked ordering ops (``mask=``): lists of different lengths padded to one length.

``mask`` is a bool tensor broadcastable to the input, ``True`` at the real entries. Every op
acts on each slice's real entries alone; padded entries get zero probability, move no rank or
value of a real entry and get exactly zero gradient. Layout rules (the *fill* of padded output
positions; ``c`` is a slice's number of real entries):

* sorted values / top-k values at output positions ``>= c`` are ``0``; the matching soft-index
  rows are all zero (``-inf`` with ``return_log_probs=True``);
* ranks of padded entries are ``0`` (real ranks lie in ``[1, c]``);
* soft-index columns of padded entries are ``0`` (``-inf`` in log space);
* ``topk`` with ``k > c``: positions ``>= c`` are filled as above (``k`` itself must still be
  at most the padded length ``n``);
* a slice without real entries (``c = 0``) gives fills only: values (``max``, ``median``,
  ``quantile``, ...) ``0`` and all-zero soft indices, never NaN.

Mechanism (this module holds the shared steps; :mod:`._masked` the method wrapper):
standardization uses the real entries only (:func:`standardize`); padded scores are replaced by
a constant per-slice *sentinel* on the side that puts them after every real entry in the op's
order (:func:`sentinel`), far enough that every interaction with a real entry underflows to
exactly zero; the output fill is applied by the op layer (:func:`fill_positions`).
"""

from __future__ import annotations

import math

import torch

from ._base import Softness
from ._standardize import VAR_EPS, Stats

#: Gap between the sentinel and the real scores, in units of the softness (``exp(-800)`` is 0
#: in float32 and float64, and every sigmoid / sparse projection saturates well before).
GAP_SOFTNESS: float = 800.0


def check_mask(mask: object, x: torch.Tensor) -> torch.Tensor:
    """``mask`` as a bool tensor of ``x``'s shape (broadcast), with clear errors."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"mask must be a bool torch.Tensor (True = real entry) or None, got "
            f"{type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must have dtype torch.bool (True = real entry), got {mask.dtype}; "
            "use mask.bool() or a comparison such as lengths[:, None] > arange(n)"
        )
    try:
        shape = torch.broadcast_shapes(mask.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the input's shape "
            f"{tuple(x.shape)}"
        )
    return mask.to(x.device).expand(x.shape)


def counts(m: torch.Tensor) -> torch.Tensor:
    """Number of real entries per slice, ``(..., 1)`` int64."""
    return m.sum(-1, keepdim=True)


def standardize(x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    r""":func:`._standardize.standardize` over the real entries only: mean and population
    variance of the real entries; padded scores are ``0.5`` (replaced by a sentinel later)."""
    c = counts(m).to(x.dtype).clamp(min=1.0)
    xr = torch.where(m, x, 0.0)
    mean = xr.sum(-1, keepdim=True) / c
    var = torch.where(m, x - mean, 0.0).square().sum(-1, keepdim=True) / c
    std = torch.sqrt(var + VAR_EPS)
    z = torch.sigmoid((xr - mean) / std)
    return torch.where(m, z, 0.5), (mean, std)


def real_range(z: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)``: the smallest / largest real score per slice (``0`` for empty slices),
    detached, ``(..., 1)``."""
    zd = z.detach()
    any_real = m.any(-1, keepdim=True)
    lo = torch.where(m, zd, math.inf).amin(-1, keepdim=True)
    hi = torch.where(m, zd, -math.inf).amax(-1, keepdim=True)
    return torch.where(any_real, lo, 0.0), torch.where(any_real, hi, 0.0)


def sentinel(z: torch.Tensor, m: torch.Tensor, softness: Softness, *, high: bool) -> torch.Tensor:
    r"""``z`` with padded scores replaced by a per-slice constant beyond every real score.

    ``high=True`` puts them above the largest real score (after the reals in ascending order),
    else below the smallest: ``hi + g`` / ``lo - g`` with
    :math:`g = 2(n + 1)(hi - lo + 1) + 800 s` (``s`` the softness), so that for every pairwise
    method a real / padded interaction underflows to exactly zero and NeuralSort's row scores
    of real entries see the padded entries only through a constant shift. The sentinel is a
    constant (no gradient reaches padded entries).
    """
    lo, hi = real_range(z, m)
    s = softness.detach() if isinstance(softness, torch.Tensor) else softness
    n = z.shape[-1]
    gap = 2.0 * (n + 1) * (hi - lo + 1.0) + GAP_SOFTNESS * s
    fill = hi + gap if high else lo - gap
    return torch.where(m, z, fill.to(z.dtype))


def real_first(x: torch.Tensor, m: torch.Tensor, *, descending: bool) -> torch.Tensor:
    """The stable order of the last axis that sorts the real entries (ties and NaN like
    ``torch.sort(stable=True)``) and puts every padded entry after them: ``(..., n)`` int64."""
    order = torch.sort(x.detach(), dim=-1, descending=descending, stable=True).indices
    pad = (~m).gather(-1, order).to(torch.uint8)
    second = torch.sort(pad, dim=-1, stable=True).indices
    return order.gather(-1, second)


def positions_mask(c: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., k)`` bool: output position ``i`` is real (``i < c``) for counts ``c`` (..., 1)."""
    return torch.arange(k, device=c.device) < c


def fill_positions(
    t: torch.Tensor, c: torch.Tensor, *, axis: int = -1, fill: float = 0.0
) -> torch.Tensor:
    """``t`` with output positions ``>= c`` along ``axis`` (-1 values, -2 index rows) set to
    ``fill``."""
    k = t.shape[axis]
    keep = positions_mask(c, k)
    if axis == -2:
        keep = keep.unsqueeze(-1)
    return torch.where(keep, t, torch.as_tensor(fill, dtype=t.dtype, device=t.device))


def fill_columns(t: torch.Tensor, m: torch.Tensor, *, log: bool) -> torch.Tensor:
    """Soft index ``t`` (..., r, n) with the columns of padded entries set to 0 (-inf)."""
    fill = -math.inf if log else 0.0
    return torch.where(m.unsqueeze(-2), t, torch.as_tensor(fill, dtype=t.dtype, device=t.device))


def hard_ranks(x: torch.Tensor, m: torch.Tensor, *, descending: bool) -> torch.Tensor:
    """Exact ranks ``1..c`` of the real entries (ties by input order), ``0`` at padded ones."""
    order = real_first(x, m, descending=descending)
    r = torch.argsort(order, dim=-1, stable=True) + 1
    return torch.where(m, r.to(x.dtype), 0.0)
