r"""Masked ``fast_soft_sort``: the permutahedron projection of each slice's real entries, batched.

A slice with ``c`` real entries needs the anchors :math:`\rho_c = \mathrm{linspace}(1, 0, c)`,
so the projection runs on rows with per-row anchors (the PAV kernels take one row of scores and
anchors per batch row). Each row is sorted with the real entries first
(:func:`softtorch.ordering._mask.real_first`); the padded tail gets constant values chosen so
that it forms its own PAV blocks whose block values :math:`\gamma` lie below every real block's
(``gamma`` is non-increasing along a row, and PAV only pools a block with the one before when
its ``gamma`` is not smaller), so the first ``c`` outputs are exactly the projection of the real
entries alone:

* sort (:math:`P_\Psi(\rho/\varepsilon, w)`, ``w`` the sorted scores): padded anchors equal the
  smallest real score (rows stay sorted, and the p-norm anchor shift is unchanged) and padded
  scores are :math:`-(2R + \log n + 10)` with ``R = |max w| + |min w|``; every real block has
  :math:`\gamma \ge -\max w - \log n` (entropic; quadratic and p-norm bounds are tighter), the
  padded block :math:`\gamma \le -\max w - R - \log n - 10`.
* rank (:math:`1 + (c - 1) P_\Psi(-z/\varepsilon, \rho_c)`): padded anchors are 0 and padded
  scores lie :math:`2\max|s| + \log n + 10` below the smallest real score (real blocks have
  :math:`\gamma \ge \min s - 1 - \log n`).

Padded entries enter only through ``torch.where`` constants: their gradient is exactly zero.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..._base import Softness
from ..._mask import counts, real_first
from . import fast_soft_sort as fss


def _rho(c: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """Per-row anchors ``(c - 1 - i) / (c - 1)`` for ``i < c`` (1 when ``c = 1``), 0 after."""
    i = torch.arange(n, device=like.device, dtype=like.dtype)
    cf = c.to(like.dtype)
    rho = (cf - 1.0 - i) / (cf - 1.0).clamp(min=1.0)
    return torch.where(i < cf, rho.clamp(min=0.0), 0.0)


def _setup(
    z: torch.Tensor, mask: torch.Tensor, softness: Softness, mode: str, options: Any
) -> tuple[torch.Tensor, Softness, str, torch.Tensor, torch.Tensor]:
    z, eps, backend = fss._prepare(z, softness, mode, options)
    zw = fss._work_dtype(z)
    if isinstance(eps, torch.Tensor):
        eps = eps.to(zw.dtype)
    n = zw.shape[-1]
    return zw.reshape(-1, n), eps, backend, mask.reshape(-1, n), counts(mask.reshape(-1, n))


def masked_soft_sort(
    z: torch.Tensor,
    mask: torch.Tensor,
    softness: Softness,
    mode: str,
    *,
    descending: bool = False,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Soft sorted real scores of each row at positions ``< c`` (the tail is unspecified)."""
    out_dtype = z.dtype
    shape = z.shape
    flat, eps, backend, m, c = _setup(z, mask, softness, mode, options)
    n = flat.shape[-1]
    if flat.numel() == 0:
        return z.clone()
    order = real_first(flat, m, descending=True)
    real = torch.arange(n, device=flat.device) < c
    w = flat.gather(-1, order)
    # ``last`` keeps its gradient: the p-norm anchor shift reads the last column (a padded one)
    last = w.gather(-1, (c - 1).clamp(min=0))
    with torch.no_grad():
        wd = torch.where(real, w, last)
        big = 2.0 * (wd.amax(-1, keepdim=True).abs() + wd.amin(-1, keepdim=True).abs())
        s_pad = -(big + math.log(n) + 10.0)
    w = torch.where(real, w, last)
    s = torch.where(real, _rho(c, n, flat) / eps, s_pad)
    o = fss.project_sorted(s, w, mode, backend)
    if not descending:  # ascending position i < c is descending position c - 1 - i
        i = torch.arange(n, device=flat.device)
        o = o.gather(-1, torch.where(real, c - 1 - i, i))
    return o.reshape(shape).to(out_dtype)


def masked_soft_rank(
    z: torch.Tensor,
    mask: torch.Tensor,
    softness: Softness,
    mode: str,
    *,
    descending: bool = True,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Soft ranks in ``[1, c]`` of the real entries of each row (padded entries: 0)."""
    out_dtype = z.dtype
    shape = z.shape
    flat, eps, backend, m, c = _setup(z, mask, softness, mode, options)
    n = flat.shape[-1]
    if flat.numel() == 0:
        return z.clone()
    order = real_first(flat, m, descending=False)  # descending in -z / eps
    real = torch.arange(n, device=flat.device) < c
    s = (-flat / eps).gather(-1, order)
    with torch.no_grad():
        sd = torch.where(real, s, 0.0)
        lo = torch.where(real, sd, math.inf).amin(-1, keepdim=True)
        lo = torch.where(c > 0, lo, 0.0)
        s_pad = lo - (2.0 * sd.abs().amax(-1, keepdim=True) + math.log(n) + 10.0)
    s = torch.where(real, s, s_pad)
    o_sorted = fss.project_sorted(s, _rho(c, n, flat), mode, backend, w_nonneg=True)
    o = torch.zeros_like(o_sorted).scatter(-1, order, o_sorted)
    cf = c.to(o.dtype)
    rank = 1.0 + (cf - 1.0) * o
    if not descending:
        rank = (cf + 1.0) - rank
    return torch.where(m, rank, 0.0).reshape(shape).to(out_dtype)
