r"""Batched solvers for the regularised OT problems behind ``method="ot"``.

All problems are stated in *permutation units*: the plan ``Q = n * Plan`` has row sums 1 (one per
input) and column sums ``b`` (anchor capacities, ``sum(b) = n``); ``Chat = C / softness`` is the
scaled cost ``(B, n, m)``. With regulariser ``Omega`` the primal is
``min <Q, Chat> + sum_ij omega(Q_ij)`` over those marginals, and its dual
``max_{alpha, beta} sum_i alpha_i + <b, beta> - sum_ij omega*(alpha_i + beta_j - Chat_ij)``
has the plan ``Q_ij = phi(s_ij)``, ``s_ij = alpha_i + beta_j - Chat_ij``, ``phi = (omega*)'``:

* ``kind = 0`` (entropic, ``omega(t) = t log t - t``): ``phi = exp``;
* ``kind = k in {1, 2, 3}`` (p-norm, ``omega(t) = t^p / p`` with ``p = 2, 3/2, 4/3``):
  ``phi(s) = max(s, 0)^k`` with ``k = 1 / (p - 1)``, ``omega*(s) = max(s, 0)^(k+1) / (k+1)``.
  These are the regularisers of the ``c0`` / ``c1`` / ``c2`` simplex projections, so a row of an
  unconstrained-column problem reduces to that projection; ``kind = 1`` gives sparse plans.

Solvers (no Python loop over batch rows; every step works on the whole batch):

* **Sinkhorn** (``kind = 0``): alternating exact maximisation over ``alpha`` and ``beta``, in the
  kernel domain (two batched mat-vecs per iteration) while ``|Chat| <= KERNEL_MAX``, in the log
  domain (log-sum-exp) otherwise. When its linear rate predicts many more iterations it hands over
  to Newton steps (the Sinkhorn-Newton scheme of Brauer et al. 2017).
* **Semi-dual Newton** (all kinds): ``alpha(beta)`` is solved exactly row by row (closed form for
  ``exp``, a monotone 1-D Newton iteration from above for the powers), and the concave semi-dual
  ``J(beta) = sum_i alpha_i(beta) + <b, beta> - sum_ij omega*(s_ij)`` is maximised with Newton steps
  ``S d = b - Q^T 1`` (``S`` = minus its Hessian, see :mod:`._ot_linalg`) and Armijo backtracking;
  on the plain sub-gradient generalised Hessian this is the semi-smooth Newton method for ``k = 1``.
  The p-norm problems use continuation: they are solved for the cost ``lam * Chat`` with ``lam``
  growing geometrically from ``1 / span(Chat)`` to 1, each stage warm-started from the last.

Convergence is measured as the largest column-marginal error ``max_j |(Q^T 1)_j - b_j|`` (rows are
exact by construction). Non-convergence emits :class:`OTConvergenceWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ._ot_linalg import DENSE_MAX, schur_solve

#: Largest ``|Chat|`` for which Sinkhorn runs in the kernel domain (``exp(-Chat)`` stays finite
#: and far from underflow in float32).
KERNEL_MAX = 30.0
_ROW_MAX_ITER = 60
_LS_MAX = 40
_ARMIJO = 1e-4


class OTConvergenceWarning(RuntimeWarning):
    """An OT solver stopped at its iteration cap before reaching its tolerance."""


@dataclass
class SolverOptions:
    """Tolerance (max column-marginal error, permutation units) and iteration cap."""

    tol: float
    max_iter: int
    what: str  # "sinkhorn" or "lbfgs": names the ot_kwargs keys in warnings


def plan(s: torch.Tensor, kind: int) -> torch.Tensor:
    """``phi(s)``: the plan entries for dual slacks ``s``."""
    if kind == 0:
        return torch.exp(s)
    sp = s.clamp_min(0.0)
    return sp if kind == 1 else sp**kind


def curvature(s: torch.Tensor, kind: int) -> torch.Tensor:
    """``phi'(s)``: derivative of the plan entries w.r.t. the slacks (generalised for k = 1)."""
    if kind == 0:
        return torch.exp(s)
    if kind == 1:
        return (s > 0).to(s.dtype)
    sp = s.clamp_min(0.0)
    return kind * (sp if kind == 2 else sp * sp)


def row_potentials(
    X: torch.Tensor, kind: int, tol: float, upper: torch.Tensor | None = None
) -> torch.Tensor:
    """``alpha`` with ``sum_j phi(alpha_i + X_ij) = 1`` for every row.

    ``exp``: ``alpha = -logsumexp(X)``. Powers: ``F(alpha) = sum_j max(alpha + X_ij, 0)^k`` is convex
    and increasing, so Newton's method started above the root (``1 - max_j X_ij``, or ``upper``
    when it is a smaller valid upper bound) decreases monotonically to it; for ``k = 1`` it ends
    after finitely many steps (one per change of the active set).
    """
    if kind == 0:
        return -torch.logsumexp(X, -1)
    start = 1.0 - X.amax(-1)
    alpha = start if upper is None else torch.minimum(start, upper)
    for _ in range(_ROW_MAX_ITER):
        s = (alpha.unsqueeze(-1) + X).clamp_min(0.0)
        if kind == 1:
            F, dF = s.sum(-1), (s > 0).sum(-1).to(s.dtype)
        elif kind == 2:
            F, dF = (s * s).sum(-1), 2.0 * s.sum(-1)
        else:
            s2 = s * s
            F, dF = (s2 * s).sum(-1), 3.0 * s2.sum(-1)
        res = F - 1.0
        if bool((res.abs() <= tol).all()):
            break
        alpha = torch.where(dF > 0, alpha - res / torch.where(dF > 0, dF, 1.0), start)
    return alpha


@dataclass
class Solution:
    """Solver output: potentials, the plan when already formed, iterations and final error."""

    alpha: torch.Tensor
    beta: torch.Tensor
    Q: torch.Tensor | None
    iters: int
    err: float


@dataclass
class _State:
    """Semi-dual iterate: potentials, slacks, column sums, objective, marginal error and the
    Levenberg-Marquardt damping ``lam`` (relative to the mean column curvature)."""

    beta: torch.Tensor
    alpha: torch.Tensor
    s: torch.Tensor
    col: torch.Tensor
    J: torch.Tensor
    err: torch.Tensor
    lam: torch.Tensor

    def take(self, idx: torch.Tensor) -> _State:
        return _State(*(getattr(self, f)[idx] for f in _FIELDS))

    def put(self, idx: torch.Tensor, other: _State) -> None:
        for f in _FIELDS:
            getattr(self, f)[idx] = getattr(other, f)


_FIELDS = ("beta", "alpha", "s", "col", "J", "err", "lam")
_LAM0, _LAM_MIN, _LAM_MAX = 1e-4, 1e-12, 1e8


def _evaluate(
    Ch: torch.Tensor,
    b: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    row_tol: float,
    upper: torch.Tensor | None = None,
    lam: torch.Tensor | None = None,
) -> _State:
    X = beta.unsqueeze(-2) - Ch
    alpha = row_potentials(X, kind, row_tol, upper)
    s = alpha.unsqueeze(-1) + X
    Q = plan(s, kind)
    col = Q.sum(-2)
    J = alpha.sum(-1) + (b * beta).sum(-1)
    if kind > 0:
        J = J - (Q * s.clamp_min(0.0)).sum((-1, -2)) / (kind + 1)
    if lam is None:
        lam = torch.full_like(J, _LAM0)
    return _State(beta, alpha, s, col, J, (col - b).abs().amax(-1), lam)


def _row_tol(tol: float, dtype: torch.dtype) -> float:
    return max(1e-2 * tol, 64 * torch.finfo(dtype).eps)


def _newton_direction(st: _State, b: torch.Tensor, kind: int) -> torch.Tensor:
    """Damped Newton ascent direction: ``(S + lam * mean(c) I) d = b - Q^T 1``.

    For ``k = 1`` the generalised Hessian is singular whenever a group of rows is active on a
    single column only (the semi-dual is then locally linear in that column's potential); the
    Levenberg-Marquardt damping keeps such steps finite and adapts to the line-search outcome.
    Columns without any active entry get the step that makes their best entry active.
    """
    D = curvature(st.s, kind)
    r = D.sum(-1).clamp_min(1e-300)
    c = D.sum(-2)
    g = b - st.col
    d = schur_solve(D, r, g, shift=st.lam * c.mean(-1), rtol=1e-6, max_iter=200)
    if kind > 0:
        empty = c <= 0
        if bool(empty.any()):
            live = (~empty).to(d.dtype)
            d = d - (d * live).sum(-1, keepdim=True) / live.sum(-1, keepdim=True).clamp_min(1)
            lift = (b / st.s.shape[-2]) ** (1.0 / kind) - st.s.amax(-2)
            d = torch.where(empty, lift, d)
    return d


def _newton_step(Ch: torch.Tensor, b: torch.Tensor, st: _State, kind: int, tol: float) -> _State:
    """One damped Newton step on every batch element of ``st`` (Armijo backtracking)."""
    d = _newton_direction(st, b, kind)
    slope = ((b - st.col) * d).sum(-1)
    eps = torch.finfo(st.J.dtype).eps
    slack = 16 * eps * (st.alpha.abs().sum(-1) + (b * st.beta).abs().sum(-1) + st.col.sum(-1))
    row_tol = _row_tol(tol, Ch.dtype)
    new = _State(*(getattr(st, f).clone() for f in _FIELDS))
    pending = torch.ones_like(st.J, dtype=torch.bool)
    t = torch.ones_like(st.J)
    dmin = d.amin(-1)
    for _ in range(_LS_MAX):
        idx = pending.nonzero().squeeze(-1)
        ti = t[idx]
        upper = st.alpha[idx] - (ti * dmin[idx]).unsqueeze(-1) if kind > 0 else None
        beta = st.beta[idx] + ti.unsqueeze(-1) * d[idx]
        trial = _evaluate(Ch[idx], b, beta, kind, row_tol, upper, st.lam[idx])
        ok = (trial.J >= st.J[idx] + _ARMIJO * ti * slope[idx] - slack[idx]) & torch.isfinite(
            trial.J
        )
        acc = idx[ok]
        if acc.numel():
            new.put(acc, trial.take(ok.nonzero().squeeze(-1)))
        pending[acc] = False
        if not bool(pending.any()):
            break
        t = torch.where(pending, 0.5 * t, t)
    # Levenberg-Marquardt update: relax after full steps, stiffen after backtracking.
    lam = torch.where(t >= 1.0, st.lam * 0.25, st.lam * 2.0 / t)
    new.lam = torch.where(pending, st.lam * 100.0, lam).clamp(_LAM_MIN, _LAM_MAX)
    return new


def _newton(
    Ch: torch.Tensor, b: torch.Tensor, st: _State, kind: int, tol: float, budget: int
) -> tuple[_State, int]:
    """Newton iterations on the elements with ``err > tol``; returns the state and steps used."""
    used = 0
    while used < budget:
        active = st.err > tol
        if not bool(active.any()):
            break
        idx = active.nonzero().squeeze(-1)
        st.put(idx, _newton_step(Ch[idx], b, st.take(idx), kind, tol))
        used += 1
    return st, used


def _sinkhorn_kernel(
    a: torch.Tensor, y: torch.Tensor, b: torch.Tensor, tol: float, max_iter: int, normalise: str
) -> tuple[Solution, str]:
    """Kernel-domain Sinkhorn from ``beta = 0`` (two batched mat-vecs per iteration) on the
    kernel ``K = exp(-a y^T)``.

    Returns the iterate and a status: ``"converged"`` (with the plan ``Q = diag(u) K diag(v)``
    whose columns (``normalise="col"``) or rows (``"row"``) are exact), ``"slow"`` (hand over to
    Newton), ``"overflow"`` or ``"capped"``.
    """
    K = torch.exp_(a.neg().unsqueeze(-1) * y)
    v = torch.ones_like(a[..., :1].expand(*a.shape[:-1], y.shape[-1]))
    errs: list[float] = []
    for it in range(1, max_iter + 1):
        u = 1.0 / torch.bmm(K, v.unsqueeze(-1)).squeeze(-1)
        Ktu = torch.bmm(u.unsqueeze(-2), K).squeeze(-2)
        err = float(((v * Ktu) - b).abs().amax())
        if not math.isfinite(err):
            return Solution(torch.zeros_like(u), torch.zeros_like(v), None, it, err), "overflow"
        if err <= tol:
            if normalise == "col":
                v = b / Ktu
            Q = K.mul_(u.unsqueeze(-1)).mul_(v.unsqueeze(-2))
            return Solution(torch.log(u), torch.log(v), Q, it, err), "converged"
        errs.append(err)
        v = b / Ktu
        if _slow(errs, tol, y.shape[-1]):
            return Solution(torch.log(u), torch.log(v), None, it, err), "slow"
    return Solution(torch.log(u), torch.log(v), None, max_iter, errs[-1]), "capped"


def _sinkhorn_log(
    Ch: torch.Tensor, b: torch.Tensor, beta: torch.Tensor, tol: float, max_iter: int
) -> tuple[Solution, str]:
    """Log-domain Sinkhorn from ``beta``; same returns as :func:`_sinkhorn_kernel`."""
    logb = torch.log(b)
    errs: list[float] = []
    alpha = torch.zeros_like(Ch[..., 0])
    err = math.inf
    for it in range(1, max_iter + 1):
        alpha = -_lse(beta.unsqueeze(-2) - Ch, -1)
        lc = _lse(alpha.unsqueeze(-1) - Ch, -2)
        err = float((torch.exp(beta + lc) - b).abs().amax())
        if err <= tol:
            return Solution(alpha, beta, None, it, err), "converged"
        errs.append(err)
        beta = logb - lc
        if _slow(errs, tol, Ch.shape[-1]):
            return Solution(alpha, beta, None, it, err), "slow"
    return Solution(alpha, beta, None, max_iter, err), "capped"


def _lse(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``logsumexp`` along ``dim`` for finite ``x`` (consumes ``x``; faster than torch's)."""
    mx = x.amax(dim, keepdim=True)
    return x.sub_(mx).exp_().sum(dim).log_().add_(mx.squeeze(dim))


def _slow(errs: list[float], tol: float, m: int) -> bool:
    """Whether Sinkhorn's observed linear rate predicts many more iterations than Newton needs."""
    if len(errs) < 8:
        return False
    rate = (errs[-1] / max(errs[-6], 1e-300)) ** 0.2
    if rate >= 1.0:
        return True
    remaining = math.log(tol / errs[-1]) / math.log(rate)
    return remaining > (30 if m <= DENSE_MAX else 150)


def _warn(opts: SolverOptions, err: float, iters: int) -> None:
    warnings.warn(
        f"ot: the {'Sinkhorn' if opts.what == 'sinkhorn' else 'p-norm dual'} solver stopped after "
        f"{iters} iterations with marginal error {err:.3g} > tol {opts.tol:.3g}; raise "
        f"ot_kwargs['{opts.what}_max_iter'], loosen ot_kwargs['{opts.what}_tol'] or increase "
        "softness",
        OTConvergenceWarning,
        stacklevel=5,
    )


def solve(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    opts: SolverOptions,
    beta0: torch.Tensor | None = None,
    normalise: str = "col",
) -> Solution:
    """Dual potentials (``(B, n)``, ``(B, m)``) of the problem with cost ``Chat = a y^T``.

    ``a`` ``(B, n)`` (``B >= 1``) and ``y`` ``(m,)`` are finite; ``b`` ``(m,)`` positive with sum
    ``n``; ``beta0`` an optional warm start for ``beta`` (used by the log-domain and Newton
    solvers). Sinkhorn runs in ``a``'s dtype (the caller picks float64 when float32 cannot reach
    ``opts.tol``); Newton steps always run in float64. ``normalise`` only affects the plan the
    kernel Sinkhorn returns directly.
    """
    tol, row_tol = opts.tol, _row_tol(opts.tol, torch.float64)
    used = 0
    if kind == 0:
        status = "overflow"
        if float(a.abs().amax()) * float(y.abs().amax()) <= KERNEL_MAX:
            sol, status = _sinkhorn_kernel(a, y, b, tol, opts.max_iter, normalise)
            used = sol.iters
        if status == "converged":
            return sol
        Ch = a.unsqueeze(-1) * y
        if status == "overflow" and used < opts.max_iter:
            start = torch.zeros_like(Ch[..., 0, :]) if beta0 is None else beta0
            sol, status = _sinkhorn_log(Ch, b, start, tol, opts.max_iter - used)
            sol.iters += used
            if status == "converged":
                return sol
        Ch, b = Ch.double(), b.double()
        st = _evaluate(Ch, b, sol.beta.double(), 0, row_tol)
        st, more = _newton(Ch, b, st, 0, tol, opts.max_iter - sol.iters)
        used = sol.iters + more
    else:
        Ch, b = (a.unsqueeze(-1) * y).double(), b.double()
        start = torch.zeros_like(Ch[..., 0, :]) if beta0 is None else beta0.double()
        st = _evaluate(Ch, b, start, kind, row_tol)
        st, used = _newton(Ch, b, st, kind, tol, opts.max_iter)
    err = float(st.err.amax())
    if not err <= tol:
        _warn(opts, err, used)
    return Solution(st.alpha, st.beta, None, used, err)
