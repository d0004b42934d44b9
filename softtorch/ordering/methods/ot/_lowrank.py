r"""Entropic kernel sums for the rank-one cost without the ``n x m`` kernel (blockwise Taylor).

The entropic plan of :mod:`.method` is ``Q_ij = exp(alpha_i + beta_j - p_i q_j)`` (``p = a``,
``q = y``: the scaled cost is rank one). Its row sums and mat-vecs are sums over ``j`` of

.. math:: \sum_j e^{w_j - p_i q_j} v_j .

Cut the points ``q`` into ``nb`` blocks of half-width ``h = R / max_i |p_i|`` around centres
``c_b`` and put ``t_j = (q_j - c_b) / h`` in ``[-1, 1]``; inside a block
``exp(-p_i (q_j - c_b)) = sum_{k < K} (-p_i h)^k / k! t_j^k`` up to a relative truncation error
``e^{2R} R^K / K!`` (``|p_i (q_j - c_b)| <= R``). Hence, with block maxima
``m_b = max_{j in b} w_j`` and moments ``M_bk = sum_{j in b} e^{w_j - m_b} v_j t_j^k``,

.. math::
    \sum_j e^{w_j - p_i q_j} v_j = \sum_b e^{m_b - p_i c_b} \sum_{k<K} V_{ik} M_{bk},
    \qquad V_{ik} = \frac{(-p_i h)^k}{k!},

at cost ``O((n + m) K + n nb K)`` instead of ``O(n m)``, with
``nb = ceil(range(q) max|p| / (2R))``. Rounding: every Taylor term is bounded by the same sum
with ``e^{|p_i (q_j - c_b)|}``, so for nonnegative ``v`` the relative error is at most about
``K eps e^{2R}`` (``R = 3``, ``K = 30``, float64: ``~1e-12``); for signed ``v`` it is that
relative to ``sum_j e^{w_j - p_i q_j} |v_j|``, below a dense float32 mat-vec's.

:func:`sinkhorn` runs log-domain Sinkhorn with these sums: the same iteration as the stabilised
kernel Sinkhorn of :mod:`._solver` (same start, same order of updates, same stopping rule), so the
same iterates up to rounding, in ``O(B (n + m) K nb)`` per iteration and memory.
"""

from __future__ import annotations

import math

import torch

from ._solver import KERNEL_MAX, _slow

#: Largest ``|p_i (q_j - c_b)|`` inside a block, and the number of Taylor terms.
R_TAYLOR = 3.0
TERMS = 30
#: The blockwise sums are used when ``4 * TERMS * nb`` is at most ``n`` and ``m`` (and
#: ``n * m >= MIN_SIZE``); smaller or sharper problems keep the dense solvers.
MIN_SIZE = 1 << 16


def n_blocks(p: torch.Tensor, q: torch.Tensor) -> int:
    """Blocks of ``q`` needed for sums ``sum_j exp(-p_i q_j) ...`` (module docstring)."""
    pmax = float(p.abs().amax())
    span = float(q.amax()) - float(q.amin())
    return max(1, math.ceil(span * pmax / (2 * R_TAYLOR)))


def eligible(a: torch.Tensor, y: torch.Tensor, rows: bool = False) -> bool:
    """Whether the blockwise sums beat the dense kernel for the cost ``a y^T`` (``(B, n)``,
    ``(m,)``; finite). Per-row anchors ``(B, m)`` only with ``rows`` (the compacted problems
    of masked ops, :func:`._dual.per_row`); the padded layout keeps the dense solvers."""
    n, m = a.shape[-1], y.shape[-1]
    if n * m < MIN_SIZE or (y.dim() != 1 and not rows):
        return False
    nb = max(n_blocks(a, y), n_blocks(y, a))
    return 4 * TERMS * nb <= min(n, m)


def _powers(t: torch.Tensor, ks: torch.Tensor | None) -> torch.Tensor:
    """``t^k`` (``ks`` None) or ``t^k / k!`` (``ks = 1 .. TERMS - 1``) for ``k < TERMS``, shape
    ``t.shape + (TERMS,)``, by running products (``pow`` with a tensor of exponents costs far
    more)."""
    out = t.new_empty(*t.shape, TERMS)
    out[..., 0] = 1.0
    step = t.unsqueeze(-1).expand(*t.shape, TERMS - 1)
    torch.cumprod(step if ks is None else step / ks, -1, out=out[..., 1:])
    return out


class Rank1Sums:
    """Sums ``sum_j exp(w_j - p_i q_j) v_j`` for fixed points ``p`` ``(Bp, P)`` and ``q``
    ``(Bq, Q)`` (``Bp, Bq in {1, B}``) and varying weights (module docstring); float64."""

    def __init__(self, p: torch.Tensor, q: torch.Tensor):
        p, q = p.double(), q.double()
        pmax = max(float(p.abs().amax()), 1e-300)
        qlo, qhi = float(q.amin()), float(q.amax())
        self.h = h = R_TAYLOR / pmax
        self.nb = nb = max(1, math.ceil((qhi - qlo) / (2 * h)))
        start = 0.5 * (qlo + qhi) - nb * h
        centres = start + h * (2 * torch.arange(nb, dtype=q.dtype, device=q.device) + 1)
        bid = ((q - start) / (2 * h)).floor_().clamp_(0, nb - 1).long()
        t = (q - centres[bid]) / h
        self.T = _powers(t, None)  # (Bq, Q, K)
        ks = torch.arange(1, TERMS, dtype=p.dtype, device=p.device)
        self.V = _powers((-h) * p, ks)  # (Bp, P, K): (-h p)^k / k!
        self.pc = p.unsqueeze(-1) * centres  # (Bp, P, nb)
        self.bid = bid
        self.p, self.q = p, q

    def _moments(self, w: torch.Tensor, v: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Block maxima ``m`` ``(B, nb)`` and moments ``M`` ``(B, K, nb * r)``."""
        B, Q = w.shape
        nb = self.nb
        bid = self.bid.expand(B, Q)
        m = torch.full((B, nb), -math.inf, dtype=w.dtype, device=w.device)
        m = m.scatter_reduce(1, bid, w, "amax", include_self=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.exp(w - m.gather(1, bid))  # (B, Q)
        T = self.T.expand(B, Q, TERMS)
        if v is None:
            vals = (T * e.unsqueeze(-1)).unsqueeze(-1)  # (B, Q, K, 1)
        else:
            vals = T.unsqueeze(-1) * (e.unsqueeze(-1) * v).unsqueeze(-2)  # (B, Q, K, r)
        r = vals.shape[-1]
        flat = (bid + nb * torch.arange(B, device=w.device).unsqueeze(-1)).flatten()
        M = torch.zeros(B * nb, TERMS * r, dtype=w.dtype, device=w.device)
        M.index_add_(0, flat, vals.reshape(B * Q, TERMS * r))
        M = M.view(B, nb, TERMS, r).permute(0, 2, 1, 3).reshape(B, TERMS, nb * r)
        return m, M

    def lse(self, w: torch.Tensor) -> torch.Tensor:
        """``log sum_j exp(w_j - p_i q_j)`` ``(B, P)`` for log-weights ``w`` ``(B, Q)``."""
        m, M = self._moments(w, None)
        S = torch.matmul(self.V, M)  # (B, P, nb)
        L = torch.log(S.clamp_min(0.0)) + (m.unsqueeze(-2) - self.pc)
        return torch.logsumexp(L, -1)

    def dot(self, la: torch.Tensor, lb: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``sum_j exp(la_i + lb_j - p_i q_j) v_jr`` ``(B, P, r)`` for ``v`` ``(B, Q, r)``."""
        m, M = self._moments(lb, v)
        r = v.shape[-1]
        S = torch.matmul(self.V, M).view(*la.shape, self.nb, r)
        E = torch.exp((la.unsqueeze(-1) + m.unsqueeze(-2)) - self.pc)  # (B, P, nb)
        return (S * E.unsqueeze(-1)).sum(-2)


def _anchor_rows(y: torch.Tensor) -> torch.Tensor:
    """Anchors as ``(By, m)``: shared ``(1, m)`` or per row."""
    return y.reshape(-1, y.shape[-1])


class PlanOperator:
    """The entropic plan ``D_ij = exp(alpha_i + beta_j - a_i y_j)`` as a matrix-free operator
    (anchors ``y`` ``(m,)`` or per row ``(B, m)``; entries with a ``-inf`` potential vanish)."""

    def __init__(self, a: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor):
        self.rows = Rank1Sums(a, _anchor_rows(y))  # sums over anchors j
        self.cols = Rank1Sums(_anchor_rows(y), a)  # sums over inputs i
        self.alpha, self.beta = alpha, beta

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``D v`` for ``v`` ``(B, m, r)`` (or ``(B, m)``)."""
        if v.dim() == 2:
            return self.mv(v.unsqueeze(-1)).squeeze(-1)
        return self.rows.dot(self.alpha, self.beta, v)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        """``D^T u`` for ``u`` ``(B, n, r)`` (or ``(B, n)``)."""
        if u.dim() == 2:
            return self.rmv(u.unsqueeze(-1)).squeeze(-1)
        return self.cols.dot(self.beta.expand(u.shape[0], -1), self.alpha, u)

    # the entropic plan is its own curvature: Q = D
    qmv = mv
    qrmv = rmv


def sinkhorn(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    beta0: torch.Tensor | None,
    tol: float,
    max_iter: int,
    normalise: str,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Log-domain Sinkhorn for the cost ``a y^T`` with blockwise sums: potentials
    ``(alpha, beta)`` (float64) or ``None`` when it does not converge fast (the caller then runs
    the dense solvers of :mod:`._solver`).

    Starts like :func:`._solver._sinkhorn` (``beta = 0`` when ``max |a y^T| <= KERNEL_MAX``,
    else the warm start ``beta0``), alternates exact row and column updates and stops when the
    column error (rows exact) is at most ``tol``; with ``normalise="col"`` a last column update
    makes the columns exact instead.

    Per-row capacities ``b`` ``(B, m)`` (a compacted problem of a masked op,
    :func:`._dual.per_row`): row ``b`` has the first ``sum_j b_j`` inputs and the anchors with
    ``b_j > 0``; the others get the potential ``-inf`` (no mass in any sum).
    """
    a, y, b = a.double(), y.double(), b.double()
    ya = _anchor_rows(y)
    rows = Rank1Sums(a, ya)
    cols = Rank1Sums(ya, a)
    B = a.shape[0]
    if float(a.abs().amax()) * float(y.abs().amax()) <= KERNEL_MAX or beta0 is None:
        beta = a.new_zeros(B, y.shape[-1])
    else:
        beta = beta0.double().clone()
    live_in = live_b = None
    if b.dim() == 2:
        live_b = b > 0
        live_in = torch.arange(a.shape[-1], device=a.device) < b.sum(-1, keepdim=True).round()
        beta = torch.where(live_b, beta, -math.inf)

    def row_update(beta: torch.Tensor) -> torch.Tensor:
        alpha = -rows.lse(beta)
        return alpha if live_in is None else torch.where(live_in, alpha, -math.inf)

    def col_update(lcol: torch.Tensor) -> torch.Tensor:
        beta = logb - lcol
        return beta if live_b is None else torch.where(live_b, beta, -math.inf)

    logb = b.log()
    alpha = row_update(beta)
    errs: list[float] = []
    for _ in range(max_iter):
        lcol = cols.lse(alpha)  # (B, m): log sum_i exp(alpha_i - a_i y_j)
        err = float((torch.exp(beta + lcol) - b).abs().amax())
        if not math.isfinite(err):
            return None
        if err <= tol:
            if normalise == "col":
                beta = col_update(lcol)
            return alpha, beta
        errs.append(err)
        beta = col_update(lcol)
        alpha = row_update(beta)
        if _slow(errs, tol, y.shape[-1]):
            return None
    return None
