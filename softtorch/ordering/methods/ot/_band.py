r"""Banded pre-solver for the p-norm OT problems with many anchors.

The cost ``Chat_ij = a_i y_j`` is submodular, and the optimal p-norm plans of these 1-D problems
are supported, row by row, on short intervals of consecutive anchors (in ascending ``y``): about
``(n^2 softness)^(1/3)`` wide for standardized scores, e.g. 40-130 of 300 anchors at softness
0.1. The pre-solver runs the semi-dual Newton method of :mod:`._solver` on per-row windows of
``W`` consecutive anchors, so a pass costs ``O(B n W)`` instead of ``O(B n m)``: window slacks
are gathered from ``beta`` and ``y``, column sums and ``D^T u`` are scatter-adds, and the Newton
systems are solved by the matrix-free CG of :mod:`._linalg`. A window follows its row's active
interval and all windows widen when an active set reaches a window edge.

The result is only a warm start: :func:`._solver.solve` evaluates it on the full problem
and continues with dense Newton steps if it is not yet within tolerance, so the banded
assumption never affects the answer, only the speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._dual import (
    _ARMIJO,
    _LAM0,
    _LAM_MAX,
    _LAM_MIN,
    _LS_MAX,
    best_anchor,
    curvature,
    numba_ok,
    plan,
    row_potentials,
)
from ._linalg import cg

_W0 = 64
_MAX_FILL = 0.5
#: With the numba kernels of :mod:`._dual_numba` and at most ``_DENSE_CHEAP`` anchors the dense
#: solver is cheap enough that the windows only pay off for short supports.
_MAX_FILL_NUMBA = 0.125
_DENSE_CHEAP = 2048
_MAX_REWINDOW = 8


@dataclass
class _Band:
    """Windowed iterate: potentials, window starts/indices, slacks, column sums, objective."""

    beta: torch.Tensor  # (B, m)
    alpha: torch.Tensor  # (B, n)
    start: torch.Tensor  # (B, n) first anchor of each window
    J: torch.Tensor  # (B, n, W) anchor indices
    s: torch.Tensor  # (B, n, W) slacks on the windows
    col: torch.Tensor  # (B, m)
    obj: torch.Tensor  # (B,)
    err: torch.Tensor  # (B,)
    edge: torch.Tensor  # (B, n) an active entry sits on an inner window edge

    def where(self, mask: torch.Tensor, other: _Band) -> _Band:
        """Elementwise ``other if mask else self`` over the batch."""

        def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), y, x)

        return _Band(
            *(pick(getattr(self, f), getattr(other, f)) for f in _BAND_FIELDS)  # type: ignore[arg-type]
        )


_BAND_FIELDS = ("beta", "alpha", "start", "J", "s", "col", "obj", "err", "edge")


class _Problem:
    """The windowed semi-dual for cost ``a y^T`` (``y`` ascending) and capacities ``b``."""

    def __init__(
        self, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor, kind: int, row_tol: float
    ):
        self.a, self.y, self.b, self.kind, self.row_tol = a, y, b, kind, row_tol
        self.B, self.n = a.shape
        self.m = y.shape[0]

    def windows(self, center: torch.Tensor, W: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = (center - W // 2).clamp(0, self.m - W)
        return start, start.unsqueeze(-1) + torch.arange(W, device=center.device)

    def scatter(self, J: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.B, self.m, dtype=vals.dtype, device=vals.device)
        return out.scatter_add_(1, J.flatten(1), vals.flatten(1))

    def gather(self, v: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        return v.gather(1, J.flatten(1)).view(J.shape)

    def evaluate(
        self,
        beta: torch.Tensor,
        start: torch.Tensor,
        J: torch.Tensor,
        guess: torch.Tensor | None = None,
    ) -> _Band:
        X = self.gather(beta, J) - self.a.unsqueeze(-1) * self.y[J]
        alpha = row_potentials(X, self.kind, self.row_tol, guess)
        s = X.add_(alpha.unsqueeze(-1))
        Q = plan(s, self.kind)
        col = self.scatter(J, Q)
        obj = alpha.sum(-1) + (self.b * beta).sum(-1) - (Q * s).sum((-1, -2)) / (self.kind + 1)
        W = J.shape[-1]
        edge = ((s[..., 0] > 0) & (start > 0)) | ((s[..., -1] > 0) & (start + W < self.m))
        return _Band(beta, alpha, start, J, s, col, obj, (col - self.b).abs().amax(-1), edge)

    def rewindow(self, st: _Band) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Windows centred on the active intervals, widened to twice the widest one (or by half
        when that does not grow them); ``None`` when they would not be much narrower than ``m``."""
        W = st.J.shape[-1]
        pos = torch.arange(W, device=st.s.device)
        act = st.s > 0
        lo = torch.where(act, pos, W).amin(-1)
        hi = torch.where(act, pos, -1).amax(-1)
        center = st.start + torch.where(hi >= lo, (lo + hi) // 2, W // 2)
        width = int((hi - lo + 1).clamp_min(0).amax())
        W_new = max(2 * width + 16, W + (W // 2 if bool(st.edge.any()) else 0))
        small = self.m <= _DENSE_CHEAP and numba_ok(st.s.new_empty(0))
        fill = _MAX_FILL_NUMBA if small else _MAX_FILL
        if W_new > self.m * fill:  # too wide to pay off: leave the rest to the dense solver
            return None
        return self.windows(center, W_new)

    def direction(self, st: _Band, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Damped Newton direction and first-order row-potential change (as the dense solver);
        ``None`` when a column without mass lies outside every window."""
        D = curvature(st.s, self.kind).float()  # an inexact direction suffices
        r = D.sum(-1).clamp_min(torch.finfo(D.dtype).tiny)
        c = self.scatter(st.J, D)

        def apply_d(v: torch.Tensor) -> torch.Tensor:
            return (D * self.gather(v, st.J)).sum(-1)

        def apply_dt(u: torch.Tensor) -> torch.Tensor:
            return self.scatter(st.J, D * u.unsqueeze(-1))

        g = (self.b - st.col).float()
        d, _ = cg(apply_d, apply_dt, c, r, g, (lam * c.mean(-1)).float(), 1e-4, 200)
        d = d.to(st.beta.dtype)
        empty = c <= 0
        if bool(empty.any()):
            top = torch.full_like(st.col, -torch.inf)
            top = top.scatter_reduce(1, st.J.flatten(1), st.s.flatten(1), "amax")
            if bool((empty & torch.isinf(top)).any()):
                return None
            live = (~empty).to(d.dtype)
            d = d - (d * live).sum(-1, keepdim=True) / live.sum(-1, keepdim=True).clamp_min(1)
            d = torch.where(empty, (self.b / self.n) ** (1.0 / self.kind) - top, d)
        return d, -apply_d(d.float()).to(d.dtype) / r


def _step(
    pb: _Problem, st: _Band, lam: torch.Tensor, todo: torch.Tensor
) -> tuple[_Band, torch.Tensor] | None:
    """One damped Newton step (Armijo backtracking) on the elements ``todo``."""
    dirn = pb.direction(st, lam)
    if dirn is None:
        return None
    d, dalpha = dirn
    slope = ((pb.b - st.col) * d).sum(-1)
    eps = torch.finfo(st.alpha.dtype).eps
    slack = 16 * eps * (st.alpha.abs().sum(-1) + (pb.b * st.beta).abs().sum(-1) + st.col.sum(-1))
    pending = todo.clone()
    t = torch.ones_like(st.obj)
    new = st
    for _ in range(_LS_MAX):
        tt = t.unsqueeze(-1)
        trial = pb.evaluate(st.beta + tt * d, st.start, st.J, st.alpha + tt * dalpha)
        ok = pending & torch.isfinite(trial.obj)
        ok &= trial.obj >= st.obj + _ARMIJO * t * slope - slack
        new = new.where(ok, trial)
        pending &= ~ok
        if not bool(pending.any()):
            break
        t = torch.where(pending, 0.5 * t, t)
    lam = torch.where(t >= 1.0, lam * 0.25, lam * 2.0 / t)
    lam = torch.where(pending, lam * 50.0, lam).clamp(_LAM_MIN, _LAM_MAX)
    return new, lam


def band_presolve(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    tol: float,
    row_tol: float,
    max_iter: int,
    beta0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Row and anchor potentials ``(B, n)``, ``(B, m)`` from the windowed Newton method, and the
    steps used.

    Stops at ``tol`` (measured on the windows), after ``max_iter`` steps, or early when the
    windows cannot represent the problem (left to the dense solver).
    """
    order = torch.argsort(y)
    pb = _Problem(a, y[order], b[order], kind, row_tol)
    beta = beta0[:, order]
    center = best_anchor(a, pb.y, beta)  # best anchor of each row
    st = pb.evaluate(beta, *pb.windows(center, min(pb.m, _W0)))
    lam = torch.full_like(st.obj, _LAM0)
    used = rewindows = 0
    while used < max_iter:
        if bool(st.edge.any()):
            new = pb.rewindow(st) if rewindows < _MAX_REWINDOW else None
            if new is None:
                break
            st = pb.evaluate(st.beta, *new, st.alpha)
            rewindows += 1
            continue
        todo = st.err > tol
        if not bool(todo.any()):
            break
        out = _step(pb, st, lam, todo)
        if out is None:
            break
        st, lam = out
        used += 1
    beta = torch.empty_like(st.beta)
    beta[:, order] = st.beta
    return st.alpha, beta, used
