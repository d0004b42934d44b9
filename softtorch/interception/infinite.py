r"""Order statistics of inputs with infinite entries, as user code writes masked reductions:
``x.masked_fill(~m, -inf).max(-1)``, ``torch.where(m, x, -inf).sort(-1)``, ``topk``, ...

An infinite entry is infinitely far from every finite one, so every relaxation leaves it where
the exact order puts it and gives it zero probability among the finite entries. The handlers
therefore run the masked ordering ops (``mask=``, :mod:`softtorch.ordering._mask`) on the
finite (and NaN) entries alone:

* reductions towards the largest (``max``, ``amax``, ``argmax``) mask out the ``-inf`` entries,
  towards the smallest the ``+inf`` entries (an infinite entry of the other sign is torch's exact
  result, which the handlers keep);
* sort-like results (``sort``, ``msort``, ``kthvalue``, ``topk``) mask out every infinite
  entry and shift each slice's soft rows past the infinite entries that lead the order; rows of
  infinite entries are one-hot rows of torch's exact (stable) order, and their values torch's
  exact infinities.

So padded ``-inf`` entries get exactly zero probability and zero gradient, and values and
gradients stay finite. Inputs without infinite entries (and traced graphs) take the plain ops.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import canonical_dim
from ..ordering import ops


def _eager(x: Tensor) -> bool:
    return x.is_floating_point() and x.ndim > 0 and not torch.compiler.is_compiling()


def reduction_mask(x: Tensor, largest: bool) -> dict[str, Any]:
    """``{"mask": ...}`` without the infinities that can never be the extreme (``-inf`` for the
    largest), or ``{}`` when there are none."""
    if not _eager(x):
        return {}
    bad = x == (-math.inf if largest else math.inf)
    if not bool(bad.any()):
        return {}
    return {"mask": ~bad}


def has_inf(x: Tensor) -> bool:
    """Whether ``x`` (eager, floating) holds an infinite entry."""
    return _eager(x) and bool(torch.isinf(x).any())


def sort_rows(
    x: Tensor, dim: int, descending: bool, kw: dict[str, Any], k: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """Soft ``sort`` (first ``k`` rows: ``topk``) of ``x`` with infinite entries, layout of
    ``ops.sort`` / ``ops.topk`` (values and SoftIndex with the sorted axis at ``dim``)."""
    d = canonical_dim(dim, x.ndim)
    lead_val = math.inf if descending else -math.inf
    real = ~torch.isinf(x)
    if k is None:
        res = ops.sort(x, d, descending, **kw, mask=real)
    else:
        res = ops.topk(x, k, d, **kw, largest=descending, mask=real)
    xl = x.movedim(d, -1)
    n = xl.shape[-1]
    r = n if k is None else k
    lead = (xl == lead_val).sum(-1, keepdim=True)
    count = real.movedim(d, -1).sum(-1, keepdim=True)
    pos = torch.arange(r, device=x.device)
    src = pos - lead
    valid = (src >= 0) & (src < count)
    src = src.clamp(0, r - 1)
    v = res.values.movedim(d, -1)
    values = torch.where(valid, v.gather(-1, src), 0.0).movedim(-1, d)
    if res.indices is None:
        return values, None
    rows = res.indices.movedim(d, -2)
    exact = torch.sort(xl.detach(), dim=-1, descending=descending, stable=True).indices[..., :r]
    hot = F.one_hot(exact, n).to(rows.dtype)
    moved = rows.gather(-2, src.unsqueeze(-1).expand(*src.shape, n))
    idx = torch.where(valid.unsqueeze(-1), moved, hot)
    return values, idx.movedim(-2, d)
