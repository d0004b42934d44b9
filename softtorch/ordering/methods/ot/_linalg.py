r"""Batched linear solves with the Schur complement of the OT dual Hessian.

Both the Newton steps of the dual solver and the implicit backward pass need to solve

.. math::  S x = r, \qquad S = \mathrm{diag}(D^\top 1) - D^\top \mathrm{diag}(1 / (D 1)) D,

where ``D`` ``(B, n, m)`` holds the nonnegative curvatures :math:`\varphi'(s_{ij})` of the plan
:math:`Q = \varphi(\alpha_i + \beta_j - \hat C_{ij})`. ``S`` is the Schur complement of the
row-potential block of the dual Hessian (equivalently minus the Hessian of the semi-dual). It is
symmetric positive semi-definite with ``S 1 = 0`` (the gauge :math:`(\alpha, \beta) \to
(\alpha - c, \beta + c)`), and singular along one more direction per extra connected component of
the support of ``D`` (sparse plans). Every right-hand side we solve with sums to zero over each
component, so the system is consistent; we solve the regularised system

.. math::  (S + \gamma 1 1^\top + \delta I) x = r, \quad
           \gamma = \overline{D^\top 1} / m, \quad \delta = 10^{-10} \max_j (D^\top 1)_j,

whose solution differs from a solution of ``S x = r`` only by a gauge shift (the
:math:`\gamma` term) and a relative ``O(1e-10)`` damping of (near-)null directions. Solvers: a
dense Cholesky factorisation, and a diagonally preconditioned conjugate gradient (matrix-free, two
batched mat-vecs per iteration); see ``DENSE_ONLY`` / ``DENSE_MAX`` for which runs when.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Schur sizes up to DENSE_ONLY are always solved densely; up to DENSE_MAX CG gets CG_TRY
#: iterations (enough for well-conditioned, blurry plans) before the unconverged elements fall
#: back to the dense solve; above DENSE_MAX only CG is used (the dense O(B n m^2 + B m^3) cost
#: is prohibitive there).
DENSE_ONLY = 16
DENSE_MAX = 128
CG_TRY = 20
_RIDGE = 1e-10


def _regularisers(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauge weight ``gamma`` and ridge ``delta`` (both ``(B,)``) from the column curvatures."""
    m = c.shape[-1]
    cmax = c.amax(-1).clamp_min(1e-300)
    gamma = (c.mean(-1) / m).clamp_min(cmax * 1e-12)
    return gamma, _RIDGE * cmax


def _dense(
    D: torch.Tensor, r: torch.Tensor, rhs: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Cholesky solve, always in float64; returns ``rhs``'s dtype."""
    out_dtype = rhs.dtype
    D, r, rhs, shift = D.double(), r.double(), rhs.double(), shift.double()
    c = D.sum(-2)
    gamma, delta = _regularisers(c)
    delta = delta + shift
    S = torch.diag_embed(c + delta.unsqueeze(-1)) - (D / r.unsqueeze(-1)).transpose(-1, -2) @ D
    S = S + gamma[:, None, None]
    L, info = torch.linalg.cholesky_ex(S)
    bad = info != 0
    if bool(bad.any()):  # loss of definiteness from rounding: retry with a stronger ridge
        eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
        for scale in (1e-7, 1e-4, 1e-1):
            Sb = S[bad] + (scale * c[bad].amax(-1).clamp_min(1e-300))[:, None, None] * eye
            Lb, info_b = torch.linalg.cholesky_ex(Sb)
            L[bad] = Lb
            still = bad.clone()
            still[bad] = info_b != 0
            bad = still
            if not bool(bad.any()):
                break
    return torch.cholesky_solve(rhs.unsqueeze(-1), L).squeeze(-1).to(out_dtype)


def cg(
    apply_d: Callable[[torch.Tensor], torch.Tensor],
    apply_dt: Callable[[torch.Tensor], torch.Tensor],
    c: torch.Tensor,
    r: torch.Tensor,
    rhs: torch.Tensor,
    shift: torch.Tensor,
    rtol: float,
    max_iter: int,
    apply_normal: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preconditioned CG on the regularised Schur system, matrix-free.

    ``apply_d(v)`` computes ``D v`` ``(B, n)`` and ``apply_dt(u)`` computes ``D^T u`` ``(B, m)``;
    ``c = D^T 1``, ``r = D 1``; ``apply_normal(v, 1 / r)``, if given, computes
    ``D^T diag(1 / r) D v`` in one go. Returns the solution and the mask of unconverged elements.
    """
    gamma, delta = _regularisers(c)
    delta = delta + shift
    rinv = 1.0 / r
    cd = c + delta.unsqueeze(-1)
    g = gamma.unsqueeze(-1)
    # Diagonal preconditioner: the column masses (the exact diagonal of S costs a full pass
    # over D * D and did not reduce the iteration counts in our tests).
    minv = 1.0 / (cd + g)
    tiny = torch.finfo(rhs.dtype).tiny

    def matvec(v: torch.Tensor) -> torch.Tensor:
        if apply_normal is not None:
            out = apply_normal(v, rinv).neg_()
        else:
            out = apply_dt(apply_d(v).mul_(rinv)).neg_()  # -D^T (D v / r)
        return out.addcmul_(cd, v).addcmul_(g, v.sum(-1, keepdim=True))

    x = torch.zeros_like(rhs)
    res = rhs.clone()
    z = res * minv
    p = z.clone()
    rz = torch.linalg.vecdot(res, z)
    target2 = (rtol * rtol) * torch.linalg.vecdot(rhs, rhs)
    active = torch.linalg.vecdot(res, res) > target2
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        Ap = matvec(p)
        pAp = torch.linalg.vecdot(p, Ap)
        live = active & (pAp > 0)
        step = (rz / pAp.clamp_min(tiny)).mul_(live).unsqueeze(-1)
        x.addcmul_(step, p)
        res.addcmul_(step, Ap, value=-1.0)
        active = live & (torch.linalg.vecdot(res, res) > target2)
        z = res * minv
        rz_new = torch.linalg.vecdot(res, z)
        beta = (rz_new / rz.clamp_min(tiny)).unsqueeze(-1)
        p = p.mul_(beta).add_(z)
        rz = rz_new
    return x, active


def _cg(
    D: torch.Tensor,
    r: torch.Tensor,
    rhs: torch.Tensor,
    shift: torch.Tensor,
    rtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cg` with a dense ``D`` ``(B, n, m)`` (two batched mat-vecs per iteration)."""

    def apply_d(v: torch.Tensor) -> torch.Tensor:
        return torch.bmm(D, v.unsqueeze(-1)).squeeze(-1)

    def apply_dt(u: torch.Tensor) -> torch.Tensor:
        return torch.bmm(u.unsqueeze(-2), D).squeeze(-2)

    return cg(apply_d, apply_dt, D.sum(-2), r, rhs, shift, rtol, max_iter)


def schur_solve(
    D: torch.Tensor,
    r: torch.Tensor,
    rhs: torch.Tensor,
    *,
    shift: torch.Tensor | None = None,
    rtol: float = 1e-10,
    max_iter: int = 500,
) -> torch.Tensor:
    """Solve the regularised Schur system (module docstring) for ``x`` ``(B, m)``.

    Args:
        D: curvatures ``(B, n, m)``, nonnegative (CG runs in their dtype, dense in float64).
        r: row sums of ``D`` ``(B, n)``, positive.
        rhs: right-hand sides ``(B, m)``, summing to zero over each connected component.
        shift: optional ``(B,)`` Levenberg-Marquardt damping added to the diagonal.
        rtol: relative residual target of the CG path (the dense path is exact).
        max_iter: CG iteration cap.
    """
    if shift is None:
        shift = torch.zeros_like(rhs[..., 0])
    m = D.shape[-1]
    if m <= DENSE_ONLY:
        return _dense(D, r, rhs, shift)
    x, left = _cg(D, r, rhs, shift, rtol, max_iter if m > DENSE_MAX else CG_TRY)
    if m <= DENSE_MAX and bool(left.any()):
        x[left] = _dense(D[left], r[left], rhs[left], shift[left])
    return x
