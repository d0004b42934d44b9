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

* **Sinkhorn** (``kind = 0``): alternating exact maximisation over ``alpha`` and ``beta`` in the
  stabilised kernel domain (Schmitzer 2019: two batched mat-vecs per iteration, scalings absorbed
  into log-domain potentials before they can overflow), so it is as stable as log-domain
  Sinkhorn at any softness. When its observed linear rate predicts many more iterations (small
  softness, near ties) it hands over to Newton steps (the Sinkhorn-Newton scheme of Brauer et al.
  2017).
* **Semi-dual Newton** (all kinds): ``alpha(beta)`` is solved exactly row by row (closed form for
  ``exp``, a monotone 1-D Newton iteration for the powers), and the concave semi-dual
  ``J(beta) = sum_i alpha_i(beta) + <b, beta> - sum_ij omega*(s_ij)`` is maximised with damped
  Newton steps ``(S + mu I) d = b - Q^T 1`` (``S`` = minus its generalised Hessian, see
  :mod:`._linalg`; ``mu`` a Levenberg-Marquardt damping) and Armijo backtracking: a
  semi-smooth Newton method for ``k = 1``, whose semi-dual is only piecewise quadratic.

Both start from ``beta0``, the potentials of the unregularised (hard) assignment computed by the
caller, i.e. the ``softness -> 0`` limit; this makes small softness cheap (a near-hard plan is
found in one or two steps), while large-softness problems converge in a few steps from anywhere.
The plans' supports are short intervals of anchors. On CPU with more than ``DENSE_MAX``
anchors in ascending order the p-norm solver's passes only visit them (numba kernels of
:mod:`._span_numba`: the semi-dual evaluation without the ``(B, n, m)`` slacks, the Newton
systems' CG on each row's span of nonzero curvatures); otherwise, with ``m >= BAND_MIN``
anchors, it first runs the windowed pre-solver of :mod:`._band` and then checks / polishes its
result on the full problem with dense passes (numba kernels of :mod:`._dual_numba`, one pass
per row for the semi-dual evaluation). The torch ops are the fallback.

Convergence is measured as the largest column-marginal error ``max_j |(Q^T 1)_j - b_j|`` (rows are
exact by construction). Non-convergence emits :class:`OTConvergenceWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._band import band_presolve
from ._dual import (
    _ARMIJO,
    _LAM0,
    _LAM_MAX,
    _LAM_MIN,
    _LS_MAX,
    PerRowUnsupported,
    ascending,
    band_evaluate,
    banded_curvature,
    curvature,
    fused_evaluate,
    numba_ok,
    outer,
    per_row,
    plan,
    row_potentials,
)
from ._linalg import DENSE_MAX, cg, schur_solve
from ._runs import runs_curvature

#: Largest ``|Chat|`` for which Sinkhorn starts from the plain kernel ``exp(-Chat)`` (finite and
#: far from underflow in float32); larger costs start from the warm-start potentials.
KERNEL_MAX = 30.0
#: Scalings beyond ``exp(+-_ABSORB)`` are absorbed into the Sinkhorn potentials.
_ABSORB = 15.0
#: The p-norm solver first runs the banded pre-solver of :mod:`._band` from this many anchors.
BAND_MIN = 256


class OTConvergenceWarning(RuntimeWarning):
    """An OT solver stopped at its iteration cap before reaching its tolerance."""


@dataclass
class SolverOptions:
    """Tolerance (max column-marginal error, permutation units) and iteration cap."""

    tol: float
    max_iter: int
    what: str  # "sinkhorn" or "lbfgs": names the ot_kwargs keys in warnings


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
    """Semi-dual iterate: potentials, slacks (``None`` when the banded evaluation did not form
    them: :func:`_slacks` rebuilds them), column sums, objective, marginal error and the
    Levenberg-Marquardt damping ``lam`` (relative to the mean column curvature)."""

    beta: torch.Tensor
    alpha: torch.Tensor
    s: torch.Tensor | None
    col: torch.Tensor
    J: torch.Tensor
    err: torch.Tensor
    lam: torch.Tensor

    def take(self, idx: torch.Tensor) -> _State:
        return _State(*(_index(getattr(self, f), idx) for f in _FIELDS))

    def put(self, idx: torch.Tensor, other: _State) -> None:
        for f in _FIELDS:
            mine, theirs = getattr(self, f), getattr(other, f)
            if mine is None or theirs is None:  # slacks not formed (banded evaluation)
                setattr(self, f, None)
            else:
                mine[idx] = theirs


def _index(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t[idx]


_FIELDS = ("beta", "alpha", "s", "col", "J", "err", "lam")


class Cost:
    """The scaled cost ``Chat = a y^T`` of a batch: rows ``a`` ``(B, n)``, anchors ``y`` ``(m,)``
    (or per row, ``(B, m)``),
    and optionally the dense ``Chat`` already formed (built on demand otherwise; the numba
    evaluation of :mod:`._dual_numba` never needs it)."""

    def __init__(self, a: torch.Tensor, y: torch.Tensor, dense: torch.Tensor | None = None):
        self.a, self.y, self._dense = a, y, dense

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    def dense(self) -> torch.Tensor:
        """``Chat`` ``(B, n, m)``."""
        return self._dense if self._dense is not None else outer(self.a, self.y)

    def __getitem__(self, idx: torch.Tensor) -> Cost:
        y = self.y[idx] if self.y.dim() > 1 else self.y
        return Cost(self.a[idx], y, None if self._dense is None else self._dense[idx])


def _evaluate(
    Ch: Cost,
    b: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    row_tol: float,
    guess: torch.Tensor | None = None,
    lam: torch.Tensor | None = None,
) -> _State:
    banded = None
    rows = per_row(b)
    if kind > 0 and (beta.shape[-1] > DENSE_MAX or rows):  # banded direction: no slacks needed
        banded = band_evaluate(Ch.a, Ch.y, beta, kind, row_tol, guess, b)
    if rows and banded is None:
        raise PerRowUnsupported("per-row OT problems need the numba kernels")
    fused = None
    if kind > 0 and banded is None:
        fused = fused_evaluate(Ch.a, Ch.y, beta, kind, row_tol, guess)
    if banded is not None:
        alpha, col, qs = banded
        s = None
        J = alpha.sum(-1) + (b * beta).sum(-1) - qs / (kind + 1)
    elif fused is not None:
        alpha, s, col, qs = fused
        J = alpha.sum(-1) + (b * beta).sum(-1) - qs / (kind + 1)
    else:
        X = beta.unsqueeze(-2) - Ch.dense()
        alpha = row_potentials(X, kind, row_tol, guess)
        s = X.add_(alpha.unsqueeze(-1))
        Q = plan(s, kind)
        col = Q.sum(-2)
        J = alpha.sum(-1) + (b * beta).sum(-1)
        if kind > 0:  # Q vanishes where s < 0, so sum(Q s) = sum(s_+^(k+1))
            J = J - (Q * s).sum((-1, -2)) / (kind + 1)
    if lam is None:
        lam = torch.full_like(alpha[..., 0], _LAM0)
    return _State(beta, alpha, s, col, J, (col - b).abs().amax(-1), lam)


def _slacks(Ch: Cost, st: _State) -> torch.Tensor:
    """The slacks ``s`` ``(B, n, m)`` of ``st`` (formed as :func:`_evaluate` forms them)."""
    if st.s is not None:
        return st.s
    return (st.beta.unsqueeze(-2) - Ch.dense()).add_(st.alpha.unsqueeze(-1))


def live_columns(c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The column curvatures ``c`` for the CG of a compacted problem (per-row capacities ``b``,
    :func:`._dual.per_row`): padded anchors (``b = 0``, no curvature) get the row's largest
    one, so that they stay decoupled (their right-hand sides are 0) and well conditioned."""
    fill = c.amax(-1, keepdim=True).clamp_min(1.0)
    return torch.where(b > 0, c, fill)


def _row_tol(tol: float, dtype: torch.dtype) -> float:
    return max(1e-2 * tol, 64 * torch.finfo(dtype).eps)


def _newton_direction(
    st: _State, b: torch.Tensor, kind: int, Ch: Cost
) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped Newton ascent direction ``d``: ``(S + lam * mean(c) I) d = b - Q^T 1``, and the
    first-order change of the row potentials along it, ``-(D d) / (D 1)``.

    For ``k = 1`` the generalised Hessian is singular whenever a group of rows is active on a
    single column only (the semi-dual is then locally linear in that column's potential); the
    Levenberg-Marquardt damping keeps such steps finite and adapts to the line-search outcome.
    Columns without any active entry get the step that makes their best entry active.
    """
    m = st.beta.shape[-1]
    band = None
    rows = per_row(b)
    if kind > 0 and (m > DENSE_MAX or rows):
        if st.s is None:  # from the potentials: O(n + m) mat-vecs (._runs)
            band = runs_curvature(Ch.a, Ch.y, st.alpha, st.beta, kind, max_err=1e-6, b=b)
        else:
            band = banded_curvature(st.s, kind)
    if rows and band is None:
        raise PerRowUnsupported("per-row OT problems need the numba kernels")
    g = b - st.col
    if band is not None:  # matrix-free CG on the plan's support (numba)
        r = band.r.clamp_min(torch.finfo(band.r.dtype).tiny)
        c = band.c
        shift = st.lam * c.mean(-1)
        cc = c
        if rows:  # mean over each row's own anchors; padded anchors inert (live_columns)
            shift = st.lam * c.sum(-1) / (b > 0).sum(-1).clamp_min(1)
            cc = live_columns(c, b)
        d, _ = cg(band.mv, band.rmv, cc, r, g, shift, 1e-4, 200, band.normal)
        if rows:
            d = torch.where(b > 0, d, 0.0)
        apply_d = band.mv
    else:
        D = curvature(_slacks(Ch, st), kind)
        r = D.sum(-1).clamp_min(torch.finfo(D.dtype).tiny)
        c = D.sum(-2)
        shift = st.lam * c.mean(-1)
        if m > DENSE_MAX:  # an inexact direction suffices: run the CG in float32
            f32 = torch.float32
            d = schur_solve(
                D.to(f32), r.to(f32), g.to(f32), shift=shift.to(f32), rtol=1e-4, max_iter=200
            )
            d = d.to(D.dtype)
        else:
            d = schur_solve(D, r, g, shift=shift, rtol=1e-4, max_iter=200)

        def apply_d(v: torch.Tensor) -> torch.Tensor:
            return torch.bmm(D, v.unsqueeze(-1)).squeeze(-1)

    if kind > 0:
        empty = (c <= 0) & (b > 0)
        if bool(empty.any()):
            live = (~empty).to(d.dtype)
            d = d - (d * live).sum(-1, keepdim=True) / live.sum(-1, keepdim=True).clamp_min(1)
            lift = (b / st.alpha.shape[-1]) ** (1.0 / kind) - _slacks(Ch, st).amax(-2)
            d = torch.where(empty, lift, d)
    return d, -apply_d(d) / r


def _newton_step(Ch: Cost, b: torch.Tensor, st: _State, kind: int, tol: float) -> _State:
    """One damped Newton step on every batch element of ``st`` (Armijo backtracking).

    Updates ``st`` in place (accepted elements only) and returns it. Per-row capacities ``b``
    (:func:`._dual.per_row`) are taken along with the elements.
    """
    d, dalpha = _newton_direction(st, b, kind, Ch)
    slope = ((b - st.col) * d).sum(-1)
    eps = torch.finfo(st.alpha.dtype).eps
    slack = 16 * eps * (st.alpha.abs().sum(-1) + (b * st.beta).abs().sum(-1) + st.col.sum(-1))
    row_tol = _row_tol(tol, Ch.dtype)
    lam0 = st.lam.clone()
    pending = torch.ones_like(st.J, dtype=torch.bool)
    t = torch.ones_like(st.J)
    for _ in range(_LS_MAX):
        full = bool(pending.all())
        idx = torch.arange(pending.numel(), device=t.device) if full else pending.nonzero()[:, 0]

        def sel(x: Any, idx: torch.Tensor = idx, full: bool = full) -> Any:
            return x if full else x[idx]

        ti = sel(t).unsqueeze(-1)
        guess = sel(st.alpha) + ti * sel(dalpha) if kind > 0 else None
        beta = sel(st.beta) + ti * sel(d)
        bi = sel(b) if per_row(b) else b
        trial = _evaluate(sel(Ch), bi, beta, kind, row_tol, guess, sel(lam0))
        ok = trial.J >= sel(st.J) + _ARMIJO * ti.squeeze(-1) * sel(slope) - sel(slack)
        ok = ok & torch.isfinite(trial.J)
        if full and bool(ok.all()):
            st = trial
            pending.zero_()
            break
        acc = idx[ok]
        if acc.numel():
            st.put(acc, trial.take(ok.nonzero()[:, 0]))
        pending[acc] = False
        if not bool(pending.any()):
            break
        t = torch.where(pending, 0.5 * t, t)
    # Levenberg-Marquardt update: relax after full steps, stiffen after backtracking.
    lam = torch.where(t >= 1.0, lam0 * 0.25, lam0 * 2.0 / t)
    st.lam = torch.where(pending, lam0 * 100.0, lam).clamp(_LAM_MIN, _LAM_MAX)
    return st


def _newton(
    Ch: Cost, b: torch.Tensor, st: _State, kind: int, tol: float, budget: int
) -> tuple[_State, int]:
    """Newton iterations on the elements with ``err > tol``; returns the state and steps used."""
    used = 0
    while used < budget:
        active = st.err > tol
        if not bool(active.any()):
            break
        if bool(active.all()):
            st = _newton_step(Ch, b, st, kind, tol)
        else:
            idx = active.nonzero()[:, 0]
            bi = b[idx] if per_row(b) else b
            st.put(idx, _newton_step(Ch[idx], bi, st.take(idx), kind, tol))
        used += 1
    return st, used


def _sinkhorn(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    beta0: torch.Tensor | None,
    tol: float,
    max_iter: int,
    normalise: str,
) -> tuple[Solution, str]:
    """Stabilised kernel-domain Sinkhorn (Schmitzer 2019) on the cost ``Chat = a y^T``.

    The plan is kept as ``diag(u) K diag(v)`` with ``K = exp(alpha + beta - Chat)``; an iteration
    is two batched mat-vecs. When ``|log u|`` or ``|log v|`` exceeds ``_ABSORB`` the scalings are
    absorbed into the potentials and ``K`` is recomputed, so nothing overflows; entries of ``K``
    that underflow can grow by at most ``exp(2 _ABSORB)`` before the next recomputation, so they
    never matter. Small costs (``max |Chat| <= KERNEL_MAX``) start from ``K = exp(-Chat)``; larger
    ones from the warm start ``beta0`` with exact rows.

    Returns the iterate and a status: ``"converged"`` (with the plan, whose columns
    (``normalise="col"``) or rows (``"row"``) are exact), ``"slow"`` (hand over to Newton),
    ``"overflow"`` or ``"capped"``.
    """
    Ch: torch.Tensor | None = None
    alpha = torch.zeros_like(a)
    beta = torch.zeros_like(a[..., :1].expand(*a.shape[:-1], y.shape[-1]))
    if float(a.abs().amax()) * float(y.abs().amax()) <= KERNEL_MAX:
        K = torch.exp_(outer(a.neg(), y))
    else:
        Ch = outer(a, y)
        if beta0 is not None:
            beta = beta0
        alpha = -torch.logsumexp(beta.unsqueeze(-2) - Ch, -1)
        K = torch.exp_((alpha.unsqueeze(-1) + beta.unsqueeze(-2)).sub_(Ch))
    v = torch.ones_like(beta)
    u = 1.0 / torch.bmm(K, v.unsqueeze(-1)).squeeze(-1)
    errs: list[float] = []

    def potentials() -> tuple[torch.Tensor, torch.Tensor]:
        return alpha + torch.log(u), beta + torch.log(v)

    for it in range(1, max_iter + 1):
        Ktu = torch.bmm(u.unsqueeze(-2), K).squeeze(-2)
        err = float(((v * Ktu) - b).abs().amax())
        if not math.isfinite(err):
            return Solution(alpha, beta, None, it, err), "overflow"
        if err <= tol:
            if normalise == "col":
                v = b / Ktu
            Q = K.mul_(u.unsqueeze(-1)).mul_(v.unsqueeze(-2))
            return Solution(*potentials(), Q, it, err), "converged"
        errs.append(err)
        v = b / Ktu
        u = 1.0 / torch.bmm(K, v.unsqueeze(-1)).squeeze(-1)
        if _slow(errs, tol, y.shape[-1]):
            return Solution(*potentials(), None, it, err), "slow"
        ulo, uhi = torch.aminmax(u)
        vlo, vhi = torch.aminmax(v)
        lo, hi = torch.stack([torch.minimum(ulo, vlo), torch.maximum(uhi, vhi)]).tolist()
        if not (hi < math.exp(_ABSORB) and lo > math.exp(-_ABSORB)):
            alpha, beta = potentials()
            if Ch is None:
                Ch = outer(a, y)
            K = torch.exp_((alpha.unsqueeze(-1) + beta.unsqueeze(-2)).sub_(Ch))
            v = torch.ones_like(v)
            u = 1.0 / torch.bmm(K, v.unsqueeze(-1)).squeeze(-1)
    return Solution(*potentials(), None, max_iter, errs[-1]), "capped"


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


def _spans_cheap(a: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the evaluations and Newton systems of the full problem already only visit the
    plan's support (numba kernels of :mod:`._span_numba`, ascending anchors): the windowed
    pre-solver of :mod:`._band` then saves nothing."""
    return numba_ok(a, y) and y.shape[-1] > DENSE_MAX and ascending(y)


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
    ``n``; ``beta0`` an optional warm start for ``beta`` (ignored by Sinkhorn when the cost is
    small enough to start from the plain kernel). Sinkhorn runs in ``a``'s dtype (the caller picks
    float64 when float32 cannot reach ``opts.tol``); the entropic Newton fallback always runs in
    float64, the p-norm solver in ``a``'s dtype (float64 by the caller's choice). ``normalise``
    only affects the plan Sinkhorn returns directly (``Solution.Q``).
    """
    tol, row_tol = opts.tol, _row_tol(opts.tol, a.dtype)
    used = 0
    if kind == 0 and per_row(b):  # compacted problems: blockwise Sinkhorn only (._lowrank)
        raise PerRowUnsupported("per-row entropic OT problems need the blockwise Sinkhorn")
    if kind == 0:
        sol, status = _sinkhorn(a, y, b, beta0, tol, opts.max_iter, normalise)
        if status == "converged":
            return sol
        Ch, b = Cost(a.double(), y.double(), outer(a, y).double()), b.double()
        beta = sol.beta if status != "overflow" or beta0 is None else beta0
        st = _evaluate(Ch, b, beta.double(), 0, _row_tol(tol, torch.float64))
        st, more = _newton(Ch, b, st, 0, tol, opts.max_iter - sol.iters)
        used = sol.iters + more
    else:
        start = torch.zeros_like(a[..., :1].expand(*a.shape[:-1], y.shape[-1]))
        guess = None
        if beta0 is not None:
            start = beta0
            if y.shape[-1] >= BAND_MIN and y.dim() == 1 and not _spans_cheap(a, y):
                guess, start, used = band_presolve(
                    a, y, b, kind, tol, row_tol, opts.max_iter, beta0
                )
        Ch = Cost(a, y)
        st = _evaluate(Ch, b, start, kind, row_tol, guess)
        st, more = _newton(Ch, b, st, kind, tol, opts.max_iter - used)
        used += more
    err = float(st.err.amax())
    if not err <= tol:
        _warn(opts, err, used)
    return Solution(st.alpha, st.beta, None, used, err)
