r"""Faster soft max pooling with the values of :mod:`softtorch.interception.ops_pool`.

The interception layer reduces each pooling window :math:`W` once per spatial dim:

* ``smooth``: the log-mean-exp :math:`s\log\frac1{|W|}\sum_{j\in W} e^{x_j/s}`;
* ``c0`` / ``c1`` / ``c2``: :math:`\sum_j p_j x_j` with :math:`p` the mode's sparse projection of
  :math:`x_W/s` onto the simplex.

Two faster routes to the same values:

* **pairs** (windows of 2 with stride 2, no padding or dilation: ``MaxPool2d(2)``): for two
  points :math:`a, b` with :math:`d = b - a`, the log-mean-exp is
  :math:`a + R_s(d) - s\log 2` with :math:`R_s` the smooth soft relu (softplus), and the sparse
  projections' weight of :math:`b` is a sigmoidal of :math:`d`: ``c0`` (sparsemax)
  :math:`\mathrm{clip}(\tfrac12 + d/2s, 0, 1)` = the ``c0`` sigmoidal at softness :math:`s/5`,
  ``c1`` / ``c2`` the ``_c1_pnorm`` / ``_c2_pnorm`` sigmoidals at :math:`s`, so the expectation is
  :math:`a + d\,\sigma(d)` (the gated soft relu). Both are a one-sided soft clamp
  :math:`a + R(b - a)`, one fused kernel pass each way (:func:`softtorch.kernels.fused.clamp`).
* **strided windows** (any other window): ``Tensor.unfold`` views of the padded input instead of
  an advanced-index gather, so the backward is one ``unfold_backward`` instead of an index-put.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._sigmoidal_math import BAND
from ..simplex import project_simplex
from . import fused

#: Pair mode (sigmoidal mode, softness factor) of each pooling mode's 2-point projection.
PAIR_MODES: dict[str, tuple[str, float]] = {
    "c0": ("c0", 1.0 / BAND), "c1": ("_c1_pnorm", 1.0), "c2": ("_c2_pnorm", 1.0),
}


def _geometry(pos: Tensor, valid: Tensor, length: int) -> tuple[int, int, int] | None:
    """(stride, dilation, left padding) of torch-style windows ``pos`` (m, k), or None when the
    windows are not evenly strided (adaptive pooling)."""
    m, k = pos.shape
    first = int(valid[0].nonzero()[0])
    dil = int(pos[0, first + 1] - pos[0, first]) if k > 1 and first + 1 < k and bool(
        valid[0, first + 1]) else 1
    pad = first * dil - int(pos[0, first])
    stride = 1
    if m > 1:
        j = int(valid[1].nonzero()[0])
        stride = int(pos[1, j]) - (j * dil - pad)
    starts = torch.arange(m, device=pos.device) * stride - pad
    want = starts.unsqueeze(1) + torch.arange(k, device=pos.device) * dil
    ok = (want >= 0) & (want < length)
    if not torch.equal(ok, valid) or not torch.equal(want.clamp(0, length - 1), pos):
        return None
    return stride, dil, pad


def _pair(x: Tensor, dim: int, softness: float | Tensor, mode: str) -> Tensor:
    if x.shape[dim] % 2:
        x = x.narrow(dim, 0, x.shape[dim] - 1)  # floor mode drops the last position
    if mode == "smooth":
        return fused.pair_max(x, dim, softness, "smooth", shift=-softness * math.log(2.0))
    smode, factor = PAIR_MODES[mode]
    return fused.pair_max(x, dim, softness * factor, smode, gated=True)


def _strided(x: Tensor, dim: int, pos: Tensor, valid: Tensor, geo: tuple[int, int, int],
             softness: float | Tensor, mode: str) -> Tensor:
    stride, dil, pad = geo
    m, k = pos.shape
    xm = x.movedim(dim, -1)
    length = xm.shape[-1]
    span = dil * (k - 1) + 1
    right = max(0, (m - 1) * stride + span - pad - length)
    if mode == "smooth":
        xp = F.pad(xm, (pad, right), value=float("-inf")) if pad or right else xm
        g = xp.unfold(-1, span, stride)[..., :m, ::dil]
        top = g.amax(-1, keepdim=True).detach()
        count = valid.sum(-1).to(g.dtype)
        out = top.squeeze(-1) + softness * (torch.logsumexp((g - top) / softness, -1)
                                            - torch.log(count))
    else:
        xs = F.pad(xm, (pad, right), value=float("-inf")) if pad or right else xm
        xv = F.pad(xm, (pad, right), value=0.0) if pad or right else xm
        gs = xs.unfold(-1, span, stride)[..., :m, ::dil]
        gv = xv.unfold(-1, span, stride)[..., :m, ::dil]
        p = project_simplex(gs / softness, mode)
        out = (p * gv).sum(-1)
    return out.movedim(-1, dim)


def _reduce(x: Tensor, dim: int, pos: Tensor, valid: Tensor, softness: float | Tensor,
            mode: str) -> Tensor | None:
    m, k = pos.shape
    if k == 2 and bool(valid.all()) and torch.equal(
        pos, torch.arange(2 * m, device=pos.device).reshape(m, 2)
    ):
        return _pair(x, dim, softness, mode)
    geo = _geometry(pos, valid, x.shape[dim])
    if geo is None:
        return None
    return _strided(x, dim, pos, valid, geo, softness, mode)


def pool(
    x: Tensor, windows: list[tuple[Tensor, Tensor]], c: Any,
    fallback: Callable[[Tensor, int, Tensor, Tensor, Any], Tensor],
) -> Tensor:
    """Drop-in for ``softtorch.interception.ops_pool._pool``: reduce ``x`` over ``windows``
    (per spatial dim: positions ``(m, k)`` and their validity) in the mode and softness of the
    context ``c``; the same values, faster.

    Args:
        x: the input (``N, C, *spatial`` or ``C, *spatial``).
        windows: per trailing spatial dim, ``(pos, valid)`` as built by ``ops_pool``.
        c: the interception context (``c.mode``, ``c.softness``).
        fallback: ``ops_pool._reduce(x, dim, pos, valid, c)``, for windows that are not evenly
            strided (adaptive pooling).
    """
    mode, softness = c.mode, c.softness
    xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    nd = len(windows)
    for i, (pos, valid) in enumerate(windows):
        dim = xc.ndim - nd + i
        out = _reduce(xc, dim, pos, valid, softness, mode)
        xc = fallback(xc, dim, pos, valid, c) if out is None else out
    return xc.to(x.dtype)
