r"""Contractions of the entropic plan (soft sorted values, soft ranks) without the ``n x m`` plan.

With the entropic plan ``Q_ij = exp(alpha_i + beta_j - a_i y_j)`` (potentials from the solver)
renormalised as in :mod:`._autograd` (``Qn``), the values the ``sort`` / ``rank`` ops need are
mat-vecs:

* ``normalise="col"`` (soft sorted values): ``out_j = sum_i Qn_ij x_i`` with
  ``Qn = Q diag(b / Q^T 1)``;
* ``normalise="row"`` (soft ranks): ``out_i = sum_j Qn_ij x_j`` with ``Qn = diag(1 / Q 1) Q``.

Both are evaluated by the blockwise sums of :mod:`._lowrank` (the normalisation folded into the
potentials), in ``O(B (n + m) K nb)`` time and memory.

Backward: exactly the implicit differentiation of :class:`._autograd.OTPlan` (the plan treated
as converged, ``D = Qn``), specialised to the rank-one upstream gradient of a contraction:
``dL/dQn = u v^T`` with ``(u, v) = (x, g)`` (col) or ``(g, x)`` (row), so ``GD = diag(u) D
diag(v)`` and every quantity of :func:`._autograd.implicit_vjp` is a mat-vec with ``D`` or
``D^T``: ``h = (u (D v), v (D^T u))``, ``S w_b = h_b - D^T (h_a / r)`` (matrix-free CG of
:mod:`._linalg`), ``w_a = (h_a - D w_b) / r`` and

.. math:: \frac{\partial L}{\partial a} = w_a (D y) + D (w_b y) - u (D (v y)),

plus ``dL/dx = D g`` (col) or ``D^T g`` (row). ``create_graph=True`` backward passes and forward
mode differentiate the dense Newton form of :mod:`._autograd` instead (as :class:`OTPlan` does).
"""

from __future__ import annotations

from typing import Any

import torch

from ._autograd import newton_plan, plan_jvp
from ._dual import BandedPlan, per_row
from ._linalg import cg
from ._lowrank import PlanOperator
from ._runs import RunsCurvature, runs_curvature
from ._solver import live_columns

_F64 = torch.float64


def _ones(like: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(like)


def operator(
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    b: torch.Tensor | None = None,
) -> PlanOperator | BandedPlan:
    """The plan of the potentials as mat-vecs: blockwise sums (entropic) or row spans (p-norm);
    per-row capacities ``b`` restrict each row to its own entries (:func:`._dual.per_row`)."""
    if kind == 0:
        return PlanOperator(a, y, alpha, beta)
    return BandedPlan(a, y, alpha, beta, kind, b if per_row(b) else None)


def _inverse(t: torch.Tensor, num: torch.Tensor | float) -> torch.Tensor:
    """``num / t``, ``0`` where ``t`` is ``0`` (the padded entries of a compacted problem carry
    no mass; elsewhere ``t > 0``)."""
    return torch.where(t > 0, num / torch.where(t > 0, t, 1.0), 0.0)


def contract(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    x: torch.Tensor,
    normalise: str,
    kind: int,
) -> tuple[torch.Tensor, PlanOperator | BandedPlan, torch.Tensor]:
    """``(out, op, scale)``: the contraction (float64), the operator of the backward curvature
    ``D`` and the marginal rescaling (``b / Q^T 1`` or ``1 / Q 1``). Entropic: ``D = Qn`` (the
    rescaling folded into the potentials, as :class:`._autograd.OTPlan` saves ``Qn``); p-norm:
    ``D = phi'(s)`` at the solver's potentials (as :func:`._autograd.curvature_of`)."""
    op = operator(a, y, alpha, beta, kind, b)
    if normalise == "col":
        both = op.qrmv(torch.stack([x, _ones(x)], -1))
        scale = _inverse(both[..., 1], b)
        out = both[..., 0] * scale
        if kind == 0:
            op = operator(a, y, alpha, beta + scale.log(), 0)
    else:
        both = op.qmv(torch.stack([x, _ones(x)], -1))
        scale = _inverse(both[..., 1], 1.0)
        out = both[..., 0] * scale
        if kind == 0:
            op = operator(a, y, alpha + scale.log(), beta, 0)
    return out, op, scale


def contraction_vjp(
    g: torch.Tensor,
    op: PlanOperator | BandedPlan | RunsCurvature,
    x: torch.Tensor,
    y: torch.Tensor,
    normalise: str,
    rtol: float,
    b: torch.Tensor | None = None,
) -> torch.Tensor:
    """``dL/da`` for the upstream gradient ``g`` of the contraction (module docstring), with
    ``op`` applying the curvature ``D``; all float64. Per-row capacities ``b`` (a compacted
    problem) keep its padded anchors out of the Schur system (:func:`._solver.live_columns`)."""
    u, v = (x, g) if normalise == "col" else (g, x)
    yb = y.expand_as(v)
    Dv = op.mv(torch.stack([v, v * yb, _ones(v), yb], -1))
    Dtu = op.rmv(torch.stack([u, _ones(u)], -1))
    r = Dv[..., 2].clamp_min(torch.finfo(_F64).tiny)
    c = Dtu[..., 1]
    if per_row(b):
        assert b is not None
        c = live_columns(c, b)
    ha, hb = u * Dv[..., 0], v * Dtu[..., 0]
    rhs = hb - op.rmv(ha / r)
    shift = torch.zeros_like(rhs[..., 0])
    normal = op.normal if isinstance(op, RunsCurvature) else None
    wb, _ = cg(op.mv, op.rmv, c, r, rhs, shift, rtol, 1000, normal)
    D2 = op.mv(torch.stack([wb * yb, wb], -1))
    wa = (ha - D2[..., 1]) / r
    return wa * Dv[..., 3] + D2[..., 0] - u * Dv[..., 1]


def _dense_out(Qn: torch.Tensor, x: torch.Tensor, normalise: str) -> torch.Tensor:
    if normalise == "col":
        return (Qn.transpose(-1, -2) @ x.unsqueeze(-1)).squeeze(-1)
    return (Qn @ x.expand(Qn.shape[0], -1).unsqueeze(-1)).squeeze(-1)


class OTContract(torch.autograd.Function):
    """``OTContract.apply(a, x, y, b, alpha, beta, normalise, kind)``: ``Qn^T x`` (``"col"``,
    ``x`` ``(B, n)``) or ``Qn x`` (``"row"``, ``x`` ``(m,)`` or ``(B, m)``) for the plan of the
    potentials ``alpha``, ``beta`` (constants); differentiable in ``a`` and ``x``."""

    @staticmethod
    def forward(  # type: ignore[override]
        a: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        normalise: str,
        kind: int,
    ) -> torch.Tensor:
        B = a.shape[0]
        a64, x64 = a.detach().to(_F64), x.detach().to(_F64)
        if normalise == "row":
            x64 = x64.expand(B, -1)
        al, be = alpha.to(_F64), beta.to(_F64).expand(B, -1)
        out, _, _ = contract(a64, y.to(_F64), b.to(_F64), al, be, x64, normalise, kind)
        return out.to(x.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        a, x, y, b, alpha, beta, normalise, kind = inputs
        # every tensor a saved tensor (freed after backward, seen by saved-tensor hooks)
        ctx.save_for_backward(a, x, y, b, alpha, beta)
        ctx.save_for_forward(a, x, y, b, alpha, beta)
        ctx.normalise, ctx.kind = normalise, kind

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, x, y, b, alpha, beta = ctx.saved_tensors
        none = (None,) * 6
        if torch.is_grad_enabled():  # create_graph=True: the dense differentiable Newton form
            with torch.enable_grad():
                Qn = newton_plan(a, y, b, ctx.kind, alpha, beta, ctx.normalise)
                out = _dense_out(Qn, x.to(Qn.dtype), ctx.normalise)
                want = [t for t, need in zip((a, x), ctx.needs_input_grad[:2]) if need]
                grads = iter(torch.autograd.grad(out, want, g.to(out.dtype), create_graph=True))
            ga = next(grads) if ctx.needs_input_grad[0] else None
            gx = next(grads) if ctx.needs_input_grad[1] else None
            return (ga, gx, *none)
        B = a.shape[0]
        a64, y64, b64 = a.detach().to(_F64), y.to(_F64), b.to(_F64)
        x64 = x.detach().to(_F64)
        if ctx.normalise == "row":
            x64 = x64.expand(B, -1)
        al, be = alpha.to(_F64), beta.to(_F64).expand(B, -1)
        _, op, scale = contract(a64, y64, b64, al, be, x64, ctx.normalise, ctx.kind)
        g64 = g.to(_F64)
        ga = gx = None
        if ctx.needs_input_grad[0]:
            rtol = 1e-10 if g.dtype == _F64 else 1e-5
            curv = None
            if ctx.kind > 0:
                curv = runs_curvature(a64, y64, al, be, ctx.kind, 1e-2 * rtol, b64)
            curv = op if curv is None else curv  # p-norm: O(n + m) mat-vecs with D (._runs)
            ga = contraction_vjp(g64, curv, x64, y64, ctx.normalise, rtol, b64).to(a.dtype)
        if ctx.needs_input_grad[1]:
            if ctx.kind == 0:  # op is the rescaled plan itself
                gx = op.mv(g64) if ctx.normalise == "col" else op.rmv(g64)
            elif ctx.normalise == "col":
                gx = op.qmv(g64 * scale)
            else:
                gx = op.qrmv(g64 * scale)
            gx = gx.to(x.dtype)
            if gx.shape != x.shape:
                gx = gx.sum(0).reshape(x.shape)
        return (ga, gx, *none)

    @staticmethod
    def jvp(ctx: Any, da: torch.Tensor | None, dx: torch.Tensor | None, *_: Any) -> torch.Tensor:
        a, x, y, b, alpha, beta = ctx.saved_tensors
        kind = ctx.kind
        Qn = newton_plan(a.detach(), y, b, kind, alpha, beta, ctx.normalise)
        xd = x.detach().to(Qn.dtype)
        B = a.shape[0]
        rows = y.shape[-1] if ctx.normalise == "col" else a.shape[-1]
        out = torch.zeros(B, rows, dtype=Qn.dtype, device=Qn.device)
        if da is not None:
            dQ = plan_jvp(a, da, y, b, kind, alpha, beta, ctx.normalise)
            out = out + _dense_out(dQ.to(Qn.dtype), xd, ctx.normalise)
        if dx is not None:
            out = out + _dense_out(Qn, dx.to(Qn.dtype), ctx.normalise)
        return out.to(x.dtype)
