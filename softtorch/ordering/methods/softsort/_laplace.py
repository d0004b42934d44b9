r"""Laplace-kernel smoothing on sorted points in ``O(n)`` memory and ``O(n b)`` work.

For points :math:`u_1 \le \dots \le u_n` (last axis), the kernel
:math:`K_{ij} = e^{-|u_i - u_j| / s}` and weights ``w``,

.. math:: y_i = \frac{(K w)_i}{(K \mathbf 1)_i}
   = \sum_j \mathrm{softmax}_j\!\left(-\frac{|u_i - u_j|}{s}\right) w_j,

which is SoftSort's row ``i`` applied to ``w`` when the anchors are the sorted scores themselves
(:mod:`.softsort`). Sorted order splits every sum into a left and a right part, each a linear
recurrence

.. math:: L_m = e^{-(u_m - u_{m-1})/s} L_{m-1} + v_m, \qquad
   R_m = e^{-(u_{m+1} - u_m)/s} R_{m+1} + v_m,

evaluated in blocks of ``b`` points: inside a block by a dense ``b x b`` triangle of
:math:`e^{-(u_m - u_j)/s}` (no products of factors: each weight is one ``exp`` of a difference), and
across blocks by the same recurrence on the block ends (recursively), so the work is ``O(n b)``
and nothing ``n x n`` exists. With equal points grouped (``start(m)`` / ``end(m)``: the first and
last index of ``m``'s group), the strict sums are
:math:`L^<_m = e^{-(u_{start} - u_{start-1})/s} L_{start - 1}` and
:math:`R^>_m = e^{-(u_{end+1} - u_{end})/s} R_{end + 1}`, and

.. math:: (K v)_m = L_{end(m)} + R^>_m, \qquad
   (K^{\pm} v)_m = \sum_j \mathrm{sign}(u_m - u_j) K_{mj} v_j = L^<_m - R^>_m.

Gradient (``g`` the incoming gradient, :math:`D = K \mathbf 1`, :math:`a = g / D`,
:math:`b = -g\,y / D`; :math:`K` is symmetric and :math:`\partial_{u}|u| = \mathrm{sign}(u)`,
``0`` at ties like torch's ``abs``):

.. math:: \nabla_w = K a, \qquad
   \nabla_{u_m} = -\frac{1}{s}\left[a_m (K^{\pm} w)_m + b_m (K^{\pm} \mathbf 1)_m
   + w_m (K^{\pm} a)_m + (K^{\pm} b)_m\right].

Everything is computed in float64 (except on devices without it) and cast back. Inputs must be
finite and the softness a Python float (callers fall back to the dense path otherwise).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

#: Points per block of the scans (work ``O(n * BLOCK)``, memory ``O(n * BLOCK)`` for one level).
BLOCK: int = 16


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def _dense_lscan(u: torch.Tensor, v: torch.Tensor, inv_s: float) -> torch.Tensor:
    """Inclusive left sums for short rows: ``u`` (..., q, b), ``v`` (..., k, q, b)."""
    b = u.shape[-1]
    expo = (u.unsqueeze(-1) - u.unsqueeze(-2)) * (-inv_s)  # (..., q, m, j): -(u_m - u_j) / s
    tril = torch.ones(b, b, dtype=torch.bool, device=u.device).tril()
    e = torch.where(tril, expo, -torch.inf).exp_()
    return torch.einsum("...qmj,...kqj->...kqm", e, v)


def lscan(u: torch.Tensor, v: torch.Tensor, inv_s: float, block: int = BLOCK) -> torch.Tensor:
    r""":math:`L_m = \sum_{j \le m} e^{-(u_m - u_j)/s} v_j` along the last axis.

    Args:
        u: ascending points ``(..., n)``.
        v: weights ``(..., k, n)`` (``k`` weight vectors per row of ``u``).
        inv_s: ``1 / s``.
        block: points per dense block.
    """
    n = u.shape[-1]
    if n <= block:
        return _dense_lscan(u.unsqueeze(-2), v.unsqueeze(-2), inv_s).squeeze(-2)
    nb = -(-n // block)
    pad = nb * block - n
    if pad:
        u = torch.cat((u, u[..., -1:].expand(*u.shape[:-1], pad)), dim=-1)
        v = torch.cat((v, v.new_zeros(*v.shape[:-1], pad)), dim=-1)
    ub = u.unflatten(-1, (nb, block))
    intra = _dense_lscan(ub, v.unflatten(-1, (nb, block)), inv_s)  # (..., k, nb, block)
    ends = ub[..., -1]  # (..., nb)
    carry = lscan(ends, intra[..., -1], inv_s, block)  # L at each block end
    prev = torch.cat((torch.zeros_like(carry[..., :1]), carry[..., :-1]), dim=-1)
    uprev = torch.cat((ub[..., :1, 0], ends[..., :-1]), dim=-1)  # first block: factor * 0
    factor = ((ub - uprev.unsqueeze(-1)) * (-inv_s)).exp_()  # (..., nb, block)
    out = intra + factor.unsqueeze(-3) * prev.unsqueeze(-1)
    return out.flatten(-2)[..., :n]


def rscan(u: torch.Tensor, v: torch.Tensor, inv_s: float, block: int = BLOCK) -> torch.Tensor:
    r""":math:`R_m = \sum_{j \ge m} e^{-(u_j - u_m)/s} v_j` (the left scan of the reflection)."""
    return lscan(-u.flip(-1), v.flip(-1), inv_s, block).flip(-1)


def _groups(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start, end)``: first and last index of each point's group of equal values."""
    n = u.shape[-1]
    idx = torch.arange(n, device=u.device).expand_as(u)
    same = u[..., 1:] == u[..., :-1]
    true = torch.ones_like(same[..., :1])
    is_start = torch.cat((true, ~same), dim=-1)
    is_end = torch.cat((~same, true), dim=-1)
    start = torch.where(is_start, idx, 0).cummax(-1).values
    end = torch.where(is_end, idx, n - 1).flip(-1).cummin(-1).values.flip(-1)
    return start, end


def kernel_sums(
    u: torch.Tensor, v: torch.Tensor, inv_s: float, block: int = BLOCK
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(K v, K^{\pm} v)`` for ascending ``u`` (..., n) and weights ``v`` (..., k, n)."""
    lft = lscan(u, v, inv_s, block)
    rgt = rscan(u, v, inv_s, block)
    start, end = _groups(u)
    zero = torch.zeros_like(u[..., :1])
    # factor between neighbours: f_m = exp(-(u_m - u_{m-1}) / s) (f_0 multiplies a zero)
    f = torch.cat((zero, (u[..., 1:] - u[..., :-1]) * (-inv_s)), dim=-1).exp_()
    zv = torch.zeros_like(v[..., :1])
    strict_l_at = f.unsqueeze(-2) * torch.cat((zv, lft[..., :-1]), dim=-1)  # at group starts
    f_next = torch.cat((f[..., 1:], zero), dim=-1)
    strict_r_at = f_next.unsqueeze(-2) * torch.cat((rgt[..., 1:], zv), dim=-1)  # at group ends
    s_idx = start.unsqueeze(-2).expand_as(v)
    e_idx = end.unsqueeze(-2).expand_as(v)
    strict_l = strict_l_at.gather(-1, s_idx)
    strict_r = strict_r_at.gather(-1, e_idx)
    return lft.gather(-1, e_idx) + strict_r, strict_l - strict_r


def _work(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, w)`` detached in the work dtype, ``w`` expanded to ``u``'s shape."""
    wd = _work_dtype(u)
    ud = u.detach().to(wd)
    return ud, w.detach().to(wd).expand_as(ud)


class _LaplaceSmooth(torch.autograd.Function):
    """``y = (K w) / (K 1)`` on sorted ``u``; saves ``u``, ``w`` and ``O(n)`` sums only (saved
    tensors: freed after backward, seen by saved-tensor hooks)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, u: torch.Tensor, w: torch.Tensor, inv_s: float, block: int
    ) -> torch.Tensor:
        ud, wd = _work(u, w)
        v = torch.stack((wd, torch.ones_like(ud)), dim=-2)
        k_v, ks_v = kernel_sums(ud, v, inv_s, block)
        y = k_v[..., 0, :] / k_v[..., 1, :]
        ctx.save_for_backward(u, w, k_v, ks_v)  # y is recomputed from k_v (not an output alias)
        ctx.inv_s, ctx.block = inv_s, block
        return y.to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        u, w, k_v, ks_v = ctx.saved_tensors
        ud, wd = _work(u, w)
        den = k_v[..., 1, :]
        y = k_v[..., 0, :] / den
        gd = g.to(ud.dtype)
        a = gd / den
        b = -a * y
        k_ab, ks_ab = kernel_sums(ud, torch.stack((a, b), dim=-2), ctx.inv_s, ctx.block)
        gu = gw = None
        if ctx.needs_input_grad[0]:
            gu = a * ks_v[..., 0, :] + b * ks_v[..., 1, :] + wd * ks_ab[..., 0, :]
            gu = (gu + ks_ab[..., 1, :]) * (-ctx.inv_s)
            gu = gu.to(u.dtype)
        if ctx.needs_input_grad[1]:
            gw = k_ab[..., 0, :].to(w.dtype)
            if gw.shape != w.shape:
                gw = gw.sum_to_size(w.shape)
        return gu, gw, None, None


def laplace_smooth(
    u: torch.Tensor, w: torch.Tensor, softness: float, block: int = BLOCK
) -> torch.Tensor:
    r""":math:`y_i = \sum_j \mathrm{softmax}_j(-|u_i - u_j|/s)\, w_j` for ascending ``u``.

    Args:
        u: finite points sorted ascending along the last axis, ``(..., n)``.
        w: weights broadcastable to ``u``.
        softness: ``s > 0`` (a Python float).
        block: points per dense block of the scans.

    Returns:
        ``y`` of ``u``'s shape and dtype (first-order gradients w.r.t. ``u`` and ``w``).
    """
    return _LaplaceSmooth.apply(u, w, 1.0 / softness, block)
