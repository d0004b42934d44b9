r"""The dual primitives shared by the OT solvers (:mod:`._solver`, :mod:`._band`).

In permutation units (see :mod:`._solver`) the plan of dual slacks
``s_ij = alpha_i + beta_j - Chat_ij`` is ``Q_ij = phi(s_ij)`` with ``phi = (omega*)'``:
``phi = exp`` for the entropic regulariser (``kind = 0``) and ``phi(s) = max(s, 0)^k`` for the
p-norm ones (``kind = k in {1, 2, 3}``). :func:`plan` is ``phi``, :func:`curvature` is ``phi'``
(the generalised derivative for ``k = 1``) and :func:`row_potentials` solves the row marginals
``sum_j phi(alpha_i + X_ij) = 1`` for ``alpha``. The line-search and damping constants of the
Newton solvers live here too, so the dense and the banded solver share one set.
"""

from __future__ import annotations

import torch

#: Newton iterations of :func:`row_potentials` (monotone convergence, usually a handful).
_ROW_MAX_ITER = 60
#: Backtracking steps of the Armijo line search and its sufficient-increase constant.
_LS_MAX = 40
_ARMIJO = 1e-4
#: Levenberg-Marquardt damping: start, lower and upper clamp (relative to the mean curvature).
_LAM0, _LAM_MIN, _LAM_MAX = 1e-4, 1e-12, 1e8


def plan(s: torch.Tensor, kind: int) -> torch.Tensor:
    """``phi(s)``: the plan entries for dual slacks ``s``."""
    if kind == 0:
        return torch.exp(s)
    sp = s.clamp_min(0.0)
    if kind == 1:
        return sp
    return sp * sp if kind == 2 else sp.square().mul_(sp)


def curvature(s: torch.Tensor, kind: int) -> torch.Tensor:
    """``phi'(s)``: derivative of the plan entries w.r.t. the slacks (generalised for k = 1)."""
    if kind == 0:
        return torch.exp(s)
    if kind == 1:
        return torch.sign(s).clamp_min_(0.0)
    sp = s.clamp_min(0.0)
    return sp.mul_(2.0) if kind == 2 else sp.square_().mul_(3.0)


def row_potentials(
    X: torch.Tensor, kind: int, tol: float, guess: torch.Tensor | None = None
) -> torch.Tensor:
    """``alpha`` with ``sum_j phi(alpha_i + X_ij) = 1`` for every row.

    ``exp``: ``alpha = -logsumexp(X)``. Powers: ``F(alpha) = sum_j max(alpha + X_ij, 0)^k`` is
    convex and increasing, so from any point with ``F' > 0`` one Newton step lands at or above
    the root and the iterates then decrease monotonically to it (for ``k = 1`` after finitely
    many steps, one per change of the active set). Starts from ``guess`` where it has an active
    entry and from ``1 - max_j X_ij`` (a point above the root) elsewhere.
    """
    if kind == 0:
        return -torch.logsumexp(X, -1)
    start = 1.0 - X.amax(-1)
    alpha = start
    if guess is not None:
        alpha = torch.where(guess + X.amax(-1) > 0, guess, start)
    buf = torch.empty_like(X)  # reused across iterations (fresh large allocations are slow)
    for _ in range(_ROW_MAX_ITER):
        sp = torch.add(X, alpha.unsqueeze(-1), out=buf).clamp_min_(0.0)
        if kind == 1:
            F = sp.sum(-1)
            dF = sp.sign_().sum(-1)
        elif kind == 2:
            dF = 2.0 * sp.sum(-1)
            F = sp.square_().sum(-1)
        else:
            s2 = sp.square()
            dF = 3.0 * s2.sum(-1)
            F = s2.mul_(sp).sum(-1)
        res = F - 1.0
        if bool((res.abs() <= tol).all()):
            break
        alpha = torch.where(dF > 0, alpha - res / torch.where(dF > 0, dF, 1.0), start)
    return alpha
