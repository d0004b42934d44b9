r"""The regularised OT plan as an autograd function with an implicit backward pass.

The scaled cost is rank one, ``Chat_ij = a_i y_j`` (``a = -2 (z - mean z) / softness``, ``y`` the
centred anchors), so the function takes ``a`` ``(B, n)`` and never builds a cost gradient.

Forward: solve the dual (:func:`._ot_solver.solve`), form ``Q = phi(alpha + beta - Chat)`` and
rescale it so that its columns (``normalise="col"``) or rows (``"row"``) sum exactly to their
targets. At convergence the rescaling is the identity, and the backward pass treats it as such.

Backward (implicit differentiation; the solver loop is never unrolled): at the optimum the
marginal conditions ``Q 1 = 1``, ``Q^T 1 = b`` hold, and ``dQ = D (dalpha + dbeta - dChat)`` with
``D = phi'(s)``. Differentiating the conditions gives
``H (dalpha, dbeta) = (rowsum(D dChat), colsum(D dChat))`` with the symmetric
``H = [[diag(D 1), D], [D^T, diag(D^T 1)]]``. For an upstream gradient ``G = dL/dQ`` let
``h = ((G D) 1, (G D)^T 1)`` and solve ``H (w_a, w_b) = h`` (via the Schur complement of
:mod:`._ot_linalg`: ``S w_b = h_b - D^T (h_a / D 1)``, ``w_a = (h_a - D w_b) / D 1``); then

.. math::
    \frac{\partial L}{\partial \hat C_{ij}} = D_{ij} (w_{a,i} + w_{b,j} - G_{ij}), \qquad
    \frac{\partial L}{\partial a_i} = w_{a,i} (D y)_i + (D (w_b \odot y))_i - ((G \odot D) y)_i.

Gradients w.r.t. the scores and the softness follow by autograd through ``a``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ._ot_linalg import schur_solve
from ._ot_solver import SolverOptions, curvature, plan, solve

#: float32 inputs are solved in float32 while ``max |Chat| * F32_NOISE <= tol`` (the rounding of
#: the slacks ``alpha + beta - Chat`` then stays well below the tolerance), in float64 otherwise.
F32_NOISE = 1e-6


def work_dtype(dtype: torch.dtype, cmax: float, tol: float, kind: int) -> torch.dtype:
    """The dtype the solver runs in.

    Newton steps (the p-norm solver, and the entropic fallback) always run in float64: their
    Armijo tests compare objectives of size ``~ n max |Chat|`` and their exact row solves need
    sums of many slacks accurate to well below the tolerance.
    """
    if dtype == torch.float64 or cmax * F32_NOISE > tol or kind > 0:
        return torch.float64
    return torch.float32


class OTPlan(torch.autograd.Function):
    """``Q = OTPlan.apply(a, y, b, kind, opts, beta0, normalise)``: plan ``(B, n, m)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        kind: int,
        opts: SolverOptions,
        beta0: torch.Tensor | None,
        normalise: str,
    ) -> torch.Tensor:
        cmax = float(a.detach().abs().amax()) * float(y.abs().amax())
        dtype = work_dtype(a.dtype, cmax, opts.tol, kind)
        floor = 16 * torch.finfo(torch.float64).eps * cmax  # rounding level of the slacks
        if floor > opts.tol:
            opts = SolverOptions(tol=floor, max_iter=opts.max_iter, what=opts.what)
        aw, yw, bw = a.detach().to(dtype), y.to(dtype), b.to(dtype)
        start = None if beta0 is None else beta0.to(dtype)
        sol = solve(aw, yw, bw, kind, opts, start, normalise)
        Q = sol.Q
        if Q is None:
            wd = sol.alpha.dtype
            s = (aw.to(wd).neg().unsqueeze(-1) * yw.to(wd)).add_(sol.alpha.unsqueeze(-1))
            s.add_(sol.beta.unsqueeze(-2))
            Q = plan(s, kind)
            if kind > 0:
                ctx.save_for_backward(s)
            tiny = torch.finfo(Q.dtype).tiny
            if normalise == "col":
                Q = Q * (bw.to(Q.dtype) / Q.sum(-2).clamp_min(tiny)).unsqueeze(-2)
            else:
                Q = Q / Q.sum(-1, keepdim=True).clamp_min(tiny)
        Q = Q.to(a.dtype)
        if kind == 0:
            ctx.save_for_backward(Q)
        ctx.kind, ctx.y, ctx.in_dtype = kind, y, a.dtype
        return Q

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, G: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (saved,) = ctx.saved_tensors
        dtype = torch.float64 if G.dtype == torch.float64 else torch.float32
        D = saved.to(dtype) if ctx.kind == 0 else curvature(saved, ctx.kind).to(dtype)
        G = G.to(dtype)
        y = ctx.y.to(dtype)
        r = D.sum(-1).clamp_min(torch.finfo(dtype).tiny)
        GD = G * D
        ha, hb = GD.sum(-1), GD.sum(-2)
        rhs = hb - torch.bmm((ha / r).unsqueeze(-2), D).squeeze(-2)
        rtol = 1e-10 if dtype == torch.float64 else 1e-5
        wb = schur_solve(D, r, rhs, rtol=rtol, max_iter=1000)
        cols = torch.stack([y.expand_as(wb), wb * y, wb], -1)  # (B, m, 3)
        Dc = torch.bmm(D, cols)  # D y, D (wb y), D wb
        wa = (ha - Dc[..., 2]) / r
        grad = wa * Dc[..., 0] + Dc[..., 1] - torch.bmm(GD, y.expand_as(wb).unsqueeze(-1))[..., 0]
        return grad.to(ctx.in_dtype), None, None, None, None, None, None
