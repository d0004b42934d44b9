r"""The regularised OT plan as an autograd function with an implicit backward pass.

The scaled cost is rank one, ``Chat_ij = a_i y_j`` (``a = -2 (z - mean z) / softness``, ``y`` the
centred anchors), so the function takes ``a`` ``(B, n)`` and never builds a cost gradient.

Forward: solve the dual (:func:`._solver.solve`), form ``Q = phi(alpha + beta - Chat)`` and
rescale it so that its columns (``normalise="col"``) or rows (``"row"``) sum exactly to their
targets. At convergence the rescaling is the identity, and the backward pass treats it as such.

Backward (implicit differentiation; the solver loop is never unrolled): at the optimum the
marginal conditions ``Q 1 = 1``, ``Q^T 1 = b`` hold, and ``dQ = D (dalpha + dbeta - dChat)`` with
``D = phi'(s)``. Differentiating the conditions gives
``H (dalpha, dbeta) = (rowsum(D dChat), colsum(D dChat))`` with the symmetric
``H = [[diag(D 1), D], [D^T, diag(D^T 1)]]``. For an upstream gradient ``G = dL/dQ`` let
``h = ((G D) 1, (G D)^T 1)`` and solve ``H (w_a, w_b) = h`` (via the Schur complement of
:mod:`._linalg`: ``S w_b = h_b - D^T (h_a / D 1)``, ``w_a = (h_a - D w_b) / D 1``); then

.. math::
    \frac{\partial L}{\partial \hat C_{ij}} = D_{ij} (w_{a,i} + w_{b,j} - G_{ij}), \qquad
    \frac{\partial L}{\partial a_i} = w_{a,i} (D y)_i + (D (w_b \odot y))_i - ((G \odot D) y)_i.

Gradients w.r.t. the scores and the softness follow by autograd through ``a`` (the plan depends
on ``z`` and ``softness`` only through ``Chat = a y^T``).

**Higher order and ``torch.func``.** Let ``p* = (alpha*, beta*)`` be the solver's potentials
(constants) and ``F(p, a) = (Q 1 - 1, Q^T 1 - b)`` the optimality conditions. Two Newton steps

.. math:: p_{k+1} = p_k - H(p_k, a)^{-1} \big(F(p_k, a) - [F(p_k, a)]\big), \qquad p_0 = p^*,

where ``[.]`` is the value held constant (so every step has value exactly zero and
``p_2 = p*``), reproduce the derivatives of the implicit function ``p(a)`` exactly up to third
order (each Newton step squares the error, which vanishes to second order after the first step).
:func:`newton_plan` evaluates ``Q = phi(p_2 - Chat)`` this way with dense, differentiable torch
ops. It is used

* for ``create_graph=True`` backward passes of :class:`OTPlan` (the vector-Jacobian product is
  differentiated through it, so double backward is exact);
* (its linearisation, :func:`plan_jvp`) for the forward-mode ``jvp`` of :class:`OTPlan`;
* instead of :class:`OTPlan` under ``torch.func`` transforms (``vmap``, ``grad``, ``jvp``,
  ``jacrev``, ``jacfwd``, ``hessian``; :func:`transform_plan`): the solver runs on the unwrapped
  values in :class:`Potentials` (whose ``vmap`` rule folds the vmapped dimension into the batch of
  rows the solver already handles) and everything differentiable is plain torch.

Under ``torch.compile`` the same forward solve and implicit backward (:func:`solve_plan`,
:func:`plan_vjp`) run as the custom ops of :mod:`._ops` instead of :class:`OTPlan`.

The dense path costs ``O(B (n m^2 + m^3))`` per Newton step (the Schur complement), so it is meant
for transforms and higher-order derivatives of moderate sizes; plain first-order backward passes
keep the matrix-free solve above.
"""

from __future__ import annotations

from typing import Any

import torch

from ....kernels import _kernel_guard
from . import _lowrank as lowrank
from ._dual import curvature, dense_plan, numba_ok, outer, plan
from ._linalg import DENSE_MAX, cg, schur_solve
from ._runs import RunsCurvature
from ._solver import SolverOptions, solve

#: float32 inputs are solved in float32 while ``max |Chat| * F32_NOISE <= tol`` (the rounding of
#: the slacks ``alpha + beta - Chat`` then stays well below the tolerance), in float64 otherwise.
F32_NOISE = 1e-6
_RIDGE = 1e-10


def work_dtype(dtype: torch.dtype, cmax: float, tol: float, kind: int) -> torch.dtype:
    """The dtype the solver runs in.

    Newton steps (the p-norm solver, and the entropic fallback) always run in float64: their
    Armijo tests compare objectives of size ``~ n max |Chat|`` and their exact row solves need
    sums of many slacks accurate to well below the tolerance.
    """
    if dtype == torch.float64 or cmax * F32_NOISE > tol or kind > 0:
        return torch.float64
    return torch.float32


def floored(a: torch.Tensor, y: torch.Tensor, opts: SolverOptions) -> tuple[SolverOptions, float]:
    """``(opts, cmax)``: the tolerance raised to the rounding level of the slacks
    (``16 eps cmax``, float64) and the problem scale ``cmax = max |a| max |y|``."""
    cmax = float(a.abs().amax()) * float(y.abs().amax())
    floor = 16 * torch.finfo(torch.float64).eps * cmax
    if floor > opts.tol:
        opts = SolverOptions(tol=floor, max_iter=opts.max_iter, what=opts.what)
    return opts, cmax


def solve_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    opts: SolverOptions,
    beta0: torch.Tensor | None,
    normalise: str,
    want_plan: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the solver on plain (detached) tensors: ``(Q, alpha, beta)``, ``Q`` in ``a``'s dtype and
    the potentials in the work dtype (float64 from the blockwise Sinkhorn of :mod:`._lowrank`).
    ``want_plan=False`` returns an empty ``Q`` where the solver did not form it anyway."""
    opts, cmax = floored(a, y, opts)
    dtype = work_dtype(a.dtype, cmax, opts.tol, kind)
    if kind == 0 and lowrank.eligible(a, y, b.dim() == 2):  # blockwise Sinkhorn (._lowrank)
        pot = lowrank.sinkhorn(a, y, b, beta0, opts.tol, opts.max_iter, normalise)
        if pot is not None:
            alpha, beta = pot
            if not want_plan:
                return a.new_empty(0), alpha, beta
            return entropic_plan(a, y, alpha, beta, dtype), alpha, beta
    aw, yw, bw = a.to(dtype), y.to(dtype), b.to(dtype)
    start = None if beta0 is None else beta0.to(dtype)
    sol = solve(aw, yw, bw, kind, opts, start, normalise)
    Q = sol.Q
    if Q is None and not want_plan:
        Q = a.new_empty(0)
    elif Q is None and kind > 0:
        Q = dense_plan(aw, yw, sol.alpha, sol.beta, kind, bw, normalise, a.dtype)
    if Q is None:
        s = _slacks(aw.to(sol.alpha.dtype), yw.to(sol.alpha.dtype), sol.alpha, sol.beta)
        Q = plan(s, kind)
        tiny = torch.finfo(Q.dtype).tiny
        if normalise == "col":
            Q = Q * (bw.to(Q.dtype) / Q.sum(-2).clamp_min(tiny)).unsqueeze(-2)
        else:
            Q = Q / Q.sum(-1, keepdim=True).clamp_min(tiny)
    # beta may be the warm start itself (an input): return a fresh tensor
    return Q.to(a.dtype), sol.alpha, sol.beta.clone()


def entropic_plan(
    a: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``exp(alpha + beta - a y^T)`` in ``a``'s dtype, its slacks formed in ``dtype`` (row blocks
    when ``dtype`` is wider, so no full-size temporary of the wider dtype is built)."""
    if dtype == a.dtype:
        return _slacks(a, y.to(dtype), alpha.to(dtype), beta.to(dtype)).exp_()
    B, n = a.shape
    out = a.new_empty(B, n, y.shape[-1])
    step = max(1, (1 << 22) // max(1, B * y.shape[-1]))
    aw, yw, al, be = a.to(dtype), y.to(dtype), alpha.to(dtype), beta.to(dtype)
    for i in range(0, n, step):
        out[:, i : i + step] = _slacks(aw[:, i : i + step], yw, al[:, i : i + step], be).exp_()
    return out


def _slacks(
    a: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """``s = alpha + beta - a y^T`` ``(B, n, m)`` (in place on a fresh tensor: no autograd)."""
    s = outer(a.neg(), y).add_(alpha.unsqueeze(-1))
    return s.add_(beta.unsqueeze(-2))


def curvature_of(
    a: torch.Tensor,
    y: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    Q: torch.Tensor | None,
) -> torch.Tensor:
    """``D = phi'(s)`` at the solution: the plan itself for ``kind = 0`` (``Q``), else from the
    slacks recomputed in the potentials' dtype."""
    if kind == 0 and Q is not None:
        return Q
    wd = alpha.dtype
    return curvature(_slacks(a.detach().to(wd), y.to(wd), alpha, beta), kind)


def implicit_vjp(D: torch.Tensor, GD: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""``dL/da`` from the curvatures ``D`` and ``GD = G * D`` (module docstring): with
    ``r = D 1``, ``h = (GD 1, GD^T 1)``, ``S w_b = h_b - D^T (h_a / r)``,
    ``w_a = (h_a - D w_b) / r``, the gradient is ``w_a (D y) + D (w_b y) - (GD) y``."""
    dtype = D.dtype
    r = D.sum(-1).clamp_min(torch.finfo(dtype).tiny)
    ha, hb = GD.sum(-1), GD.sum(-2)
    rhs = hb - torch.bmm((ha / r).unsqueeze(-2), D).squeeze(-2)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    wb = schur_solve(D, r, rhs, rtol=rtol, max_iter=1000)
    cols = torch.stack([y.expand_as(wb), wb * y, wb], -1)  # (B, m, 3)
    Dc = torch.bmm(D, cols)  # D y, D (wb y), D wb
    wa = (ha - Dc[..., 2]) / r
    return wa * Dc[..., 0] + Dc[..., 1] - torch.bmm(GD, y.expand_as(wb).unsqueeze(-1))[..., 0]


def plan_vjp(
    G: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    Q: torch.Tensor | None,
    log: bool = False,
) -> torch.Tensor:
    """``dL/da`` for the upstream gradient ``G`` of the plan ``Q`` or, with ``log``, of
    ``log Q`` (``G * D = G_log`` since ``D = Q``); ``Q`` is needed for ``kind = 0`` only."""
    if kind > 0 and not log:
        grad = band_plan_vjp(G, a, y, kind, alpha, beta)
        if grad is not None:
            return grad
    dtype = torch.float64 if G.dtype == torch.float64 else torch.float32
    D = curvature_of(a, y, kind, alpha, beta, Q).to(dtype)
    G = G.to(dtype)
    return implicit_vjp(D, G if log else G * D, y.to(dtype)).to(a.dtype)


def band_plan_vjp(
    G: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
) -> torch.Tensor | None:
    """:func:`implicit_vjp` of a p-norm plan (``kind > 0``) without the dense curvature
    (:class:`._runs.RunsCurvature`; numba, CPU, more than ``DENSE_MAX`` anchors), or ``None``
    where that does not apply: the sums of ``G * D`` read only the plan's support in the dense
    ``G`` and the Schur system is solved by the matrix-free CG with ``O(n + m)`` mat-vecs, in
    float64 (relative residual ``1e-10`` for float64 ``G``, ``1e-5`` otherwise, as the dense
    version)."""
    f64 = torch.float64
    if (
        y.dim() != 1
        or y.shape[-1] <= DENSE_MAX
        or a.dim() != 2
        or G.device.type != "cpu"
        or not numba_ok(alpha, beta)
    ):
        return None

    def kernel() -> torch.Tensor:
        y64 = y.to(f64)
        rtol = 1e-10 if G.dtype == f64 else 1e-5
        op = RunsCurvature(a.detach().to(f64), y64, alpha, beta, kind, max_err=1e-2 * rtol)
        ha, hb, gdy = op.gd_sums(G)
        r = op.r.clamp_min(torch.finfo(f64).tiny)
        rhs = hb - op.rmv(ha / r)
        zero = torch.zeros_like(rhs[..., 0])
        wb, _ = cg(op.mv, op.rmv, op.c, r, rhs, zero, rtol, 1000, op.normal)
        yb = y64.expand_as(wb)
        Dc = op.mv(torch.stack([yb, wb * yb, wb], -1))  # D y, D (wb y), D wb
        wa = (ha - Dc[..., 2]) / r
        return (wa * Dc[..., 0] + Dc[..., 1] - gdy).to(a.dtype)

    return _kernel_guard.guarded("OT band backward", kernel, lambda: None, "torch")  # type: ignore[return-value]


class OTPlan(torch.autograd.Function):
    """``Q, alpha, beta = OTPlan.apply(a, y, b, kind, opts, beta0, normalise)``: the plan
    ``(B, n, m)`` (differentiable in ``a``) and the dual potentials (not differentiable).

    Eager tensors only (see :func:`transform_plan` for ``torch.func`` transforms)."""

    @staticmethod
    def forward(  # type: ignore[override]
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        kind: int,
        opts: SolverOptions,
        beta0: torch.Tensor | None,
        normalise: str,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return solve_plan(a.detach(), y, b, kind, opts, beta0, normalise)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        a, y, b, kind, _, _, normalise = inputs
        Q, alpha, beta = output
        ctx.mark_non_differentiable(alpha, beta)
        # the entropic curvature is the plan itself; the p-norm slacks are recomputed. Every
        # tensor is a saved tensor (freed after backward, seen by saved-tensor hooks)
        ctx.save_for_backward(a, y, b, alpha, beta, Q if kind == 0 else None)
        ctx.save_for_forward(a, y, b, alpha, beta)
        ctx.kind, ctx.normalise = kind, normalise

    @staticmethod
    def backward(ctx: Any, G: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        none = (None,) * 6
        if G is None or not ctx.needs_input_grad[0]:
            return (None, *none)
        a, y, b, alpha, beta, Q = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable vector-Jacobian product
            with torch.enable_grad():
                Qn = newton_plan(a, y, b, ctx.kind, alpha, beta, ctx.normalise)
                (grad,) = torch.autograd.grad(Qn, a, G.to(Qn.dtype), create_graph=True)
            return (grad, *none)
        return (plan_vjp(G, a, y, ctx.kind, alpha, beta, Q), *none)

    @staticmethod
    def jvp(ctx: Any, da: torch.Tensor | None, *_: Any) -> tuple[torch.Tensor | None, ...]:
        a, y, b, alpha, beta = ctx.saved_tensors
        if da is None:
            return None, None, None
        dQ = plan_jvp(a, da, y, b, ctx.kind, alpha, beta, ctx.normalise)
        return dQ, None, None


class Potentials(torch.autograd.Function):
    """``alpha, beta = Potentials.apply(a, y, b, kind, opts, beta0, normalise)``: the solver's
    dual potentials (constants: no derivatives), with a ``vmap`` rule."""

    @staticmethod
    def forward(  # type: ignore[override]
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        kind: int,
        opts: SolverOptions,
        beta0: torch.Tensor | None,
        normalise: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, alpha, beta = solve_plan(a.detach(), y, b, kind, opts, beta0, normalise, False)
        return alpha, beta

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        ctx.mark_non_differentiable(*output)

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple[None, ...]:
        return (None,) * 7

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> tuple[None, None]:
        return None, None

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[Any, ...],
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        kind: int,
        opts: SolverOptions,
        beta0: torch.Tensor | None,
        normalise: str,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[int, int]]:
        k = info.batch_size
        ad, yd, bd, _, _, b0d, _ = in_dims

        def at(x: torch.Tensor | None, d: int | None, i: int) -> torch.Tensor | None:
            return x if x is None or d is None else x.select(d, i)

        per_row = y.dim() - (yd is not None) == 2  # per-row anchors (B, m): fold them too
        if bd is not None or (yd is not None and not per_row):  # shared anchors vary: one by one
            outs = [
                Potentials.apply(
                    at(a, ad, i),
                    at(y, yd, i),
                    at(b, bd, i),
                    kind,
                    opts,
                    at(beta0, b0d, i),
                    normalise,
                )
                for i in range(k)
            ]
            return (torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])), (0, 0)
        a = a.unsqueeze(0).expand(k, *a.shape) if ad is None else a.movedim(ad, 0)
        rows = a.shape[1]
        m = y.shape[-1]
        if per_row:
            y = y.unsqueeze(0).expand(k, *y.shape) if yd is None else y.movedim(yd, 0)
            y = y.reshape(k * rows, m)
        if beta0 is not None:
            beta0 = (
                beta0.unsqueeze(0).expand(k, *beta0.shape) if b0d is None else beta0.movedim(b0d, 0)
            )
            beta0 = beta0.reshape(k * rows, m)
        alpha, beta = Potentials.apply(a.reshape(k * rows, -1), y, b, kind, opts, beta0, normalise)
        return (alpha.reshape(k, rows, -1), beta.reshape(k, rows, m)), (0, 0)


def _phi(s: torch.Tensor, kind: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable plan entries ``phi(s)`` and curvatures ``phi'(s)``."""
    if kind == 0:
        q = torch.exp(s)
        return q, q
    sp = torch.relu(s)
    if kind == 1:
        return sp, (s > 0).to(s.dtype)
    if kind == 2:
        return sp * sp, 2.0 * sp
    sq = sp * sp
    return sq * sp, 3.0 * sq


def _kkt_step(
    D: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense differentiable solve of ``H (da, db) = (fa, fb)`` (``H`` as in the module docstring)
    through the regularised Schur complement (see :mod:`._linalg`)."""
    r = D.sum(-1).clamp_min(torch.finfo(D.dtype).tiny)
    c = D.sum(-2)
    m = c.shape[-1]
    cmax = c.amax(-1, keepdim=True).clamp_min(1e-300)
    gamma = (c.mean(-1, keepdim=True) / m).clamp_min(cmax * 1e-12)
    Dr = D / r.unsqueeze(-1)
    S = torch.diag_embed(c + _RIDGE * cmax) - Dr.transpose(-1, -2) @ D + gamma.unsqueeze(-1)
    rhs = fb - (Dr.transpose(-1, -2) @ fa.unsqueeze(-1)).squeeze(-1)
    db = torch.linalg.solve(S, rhs.unsqueeze(-1)).squeeze(-1)
    da = (fa - (D @ db.unsqueeze(-1)).squeeze(-1)) / r
    return da, db


def newton_potentials(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    steps: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Potentials with the value of the solver's ``(alpha, beta)`` and the derivatives in ``a``
    of the implicit function (exact up to order ``steps + 1``; module docstring)."""
    wd = alpha.dtype
    ch = outer(a.to(wd), y.to(wd))
    alpha, beta = alpha.detach(), beta.detach()
    for _ in range(steps):
        q, d = _phi(alpha.unsqueeze(-1) + beta.unsqueeze(-2) - ch, kind)
        fa, fb = q.sum(-1), q.sum(-2)
        da, db = _kkt_step(d, fa - fa.detach(), fb - fb.detach())
        alpha, beta = alpha - da, beta - db
    return alpha, beta


def newton_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    normalise: str,
    steps: int = 2,
    log: bool = False,
) -> torch.Tensor:
    """The plan (or, with ``log``, the entropic log-plan) of :class:`OTPlan` as a differentiable
    function of ``a`` around the solver's potentials (dense; module docstring), in ``a``'s dtype."""
    wd = alpha.dtype
    alpha, beta = newton_potentials(a, y, b, kind, alpha, beta, steps)
    s = alpha.unsqueeze(-1) + beta.unsqueeze(-2) - outer(a.to(wd), y.to(wd))
    bw = b.to(wd)
    if log:
        if normalise == "col":
            return (s - torch.logsumexp(s, -2, keepdim=True) + bw.log()).to(a.dtype)
        return (s - torch.logsumexp(s, -1, keepdim=True)).to(a.dtype)
    Q, _ = _phi(s, kind)
    tiny = torch.finfo(wd).tiny
    if normalise == "col":
        Q = Q * (bw / Q.sum(-2).clamp_min(tiny)).unsqueeze(-2)
    else:
        Q = Q / Q.sum(-1, keepdim=True).clamp_min(tiny)
    return Q.to(a.dtype)


def plan_jvp(
    a: torch.Tensor,
    da: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    normalise: str,
) -> torch.Tensor:
    r"""Forward-mode derivative of the plan along ``da`` (dense; first order): with
    ``dChat = da y^T``, ``H (dalpha, dbeta) = ((D y) da, y (D^T da))``,
    ``dQ = D (dalpha + dbeta - dChat)``, then the derivative of the marginal rescaling."""
    wd = alpha.dtype
    aw, daw, yw, bw = a.detach().to(wd), da.to(wd), y.to(wd), b.to(wd)
    q, d = _phi(alpha.unsqueeze(-1) + beta.unsqueeze(-2) - outer(aw, yw), kind)
    fa = (d @ yw.unsqueeze(-1)).squeeze(-1) * daw
    fb = (d.transpose(-1, -2) @ daw.unsqueeze(-1)).squeeze(-1) * yw
    dalpha, dbeta = _kkt_step(d, fa, fb)
    dq = d * (dalpha.unsqueeze(-1) + dbeta.unsqueeze(-2) - outer(daw, yw))
    tiny = torch.finfo(wd).tiny
    if normalise == "col":
        c = q.sum(-2, keepdim=True).clamp_min(tiny)
        dq = (dq - q * (dq.sum(-2, keepdim=True) / c)) * (bw / c.squeeze(-2)).unsqueeze(-2)
    else:
        r = q.sum(-1, keepdim=True).clamp_min(tiny)
        dq = (dq - q * (dq.sum(-1, keepdim=True) / r)) / r
    return dq.to(a.dtype)


def transform_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    opts: SolverOptions,
    beta0: torch.Tensor | None,
    normalise: str,
    log: bool = False,
) -> torch.Tensor:
    """The plan of :class:`OTPlan` for ``torch.func``-wrapped ``a`` (``vmap``, ``jvp``, ``grad``
    and their compositions): solver potentials from :class:`Potentials`, derivatives from
    :func:`newton_plan`."""
    alpha, beta = Potentials.apply(a.detach(), y, b, kind, opts, beta0, normalise)
    return newton_plan(a, y, b, kind, alpha, beta, normalise, log=log)
