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

import importlib.util

import numpy as np
import torch

from ....kernels import _kernel_guard

#: Whether numba is installed (checked without importing it), and whether to use it (tests
#: switch it off to check the torch version).
HAS_NUMBA: bool = importlib.util.find_spec("numba") is not None
USE_NUMBA = True
#: Newton iterations of :func:`row_potentials` (monotone convergence, usually a handful).
_ROW_MAX_ITER = 60
#: Backtracking steps of the Armijo line search and its sufficient-increase constant.
_LS_MAX = 40
_ARMIJO = 1e-4
#: Levenberg-Marquardt damping: start, lower and upper clamp (relative to the mean curvature).
_LAM0, _LAM_MIN, _LAM_MAX = 1e-4, 1e-12, 1e8


def outer(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The rank-one cost ``a_i y_j`` ``(B, n, m)`` for rows ``a`` ``(B, n)`` and anchors ``y``
    shared ``(m,)`` or per row ``(B, m)`` (masked ops: :mod:`._layout`)."""
    return a.unsqueeze(-1) * (y.unsqueeze(-2) if y.dim() > 1 else y)


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
    entry and from ``1 - max_j X_ij`` (a point above the root) elsewhere. On CPU (float64) the
    rows run one by one in a numba kernel (:mod:`._dual_numba`), each stopping when it has
    converged; elsewhere, or if numba is missing or fails to compile, in batched torch passes.
    """
    if kind == 0:
        return -torch.logsumexp(X, -1)
    if USE_NUMBA and HAS_NUMBA and X.device.type == "cpu" and X.dtype == torch.float64:

        def kernel() -> torch.Tensor:
            from . import _dual_numba  # numba imported on first use

            Xn = X.detach().reshape(-1, X.shape[-1]).contiguous().numpy()
            g = guess.detach().reshape(-1).contiguous().numpy() if guess is not None else Xn[:, 0]
            out = _dual_numba.row_potentials(Xn, kind, tol, g, guess is not None, _ROW_MAX_ITER)
            return torch.from_numpy(out).view(X.shape[:-1])

        return _kernel_guard.guarded(
            "OT row potentials", kernel, lambda: _row_potentials_torch(X, kind, tol, guess), "torch"
        )
    return _row_potentials_torch(X, kind, tol, guess)


def _row_potentials_torch(
    X: torch.Tensor, kind: int, tol: float, guess: torch.Tensor | None
) -> torch.Tensor:
    """The batched torch version of :func:`row_potentials` for ``kind > 0``."""
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


def numba_ok(*ts: torch.Tensor) -> bool:
    """Whether the numba kernels of :mod:`._dual_numba` run on ``ts`` (CPU, float64)."""
    return (
        USE_NUMBA
        and HAS_NUMBA
        and all(t.device.type == "cpu" and t.dtype == torch.float64 for t in ts)
    )


def fused_evaluate(
    a: torch.Tensor,
    y: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    tol: float,
    guess: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The dense p-norm semi-dual evaluation for the cost ``a y^T`` (``(B, n)``, ``(m,)``) in one
    numba pass per row (:mod:`._dual_numba`): ``(alpha, s, Q^T 1, sum_ij Q s)``, or ``None``
    where the kernel does not apply (the caller then runs the torch ops)."""
    if kind == 0 or not numba_ok(a, y, beta) or a.dim() != 2 or y.dim() != 1:
        return None

    def kernel() -> tuple[torch.Tensor, ...]:
        from . import _dual_numba  # numba imported on first use

        g = guess if guess is not None else a
        out = _dual_numba.evaluate(
            a.detach().contiguous().numpy(),
            y.detach().contiguous().numpy(),
            beta.detach().contiguous().numpy(),
            kind,
            tol,
            g.detach().to(torch.float64).contiguous().numpy(),
            guess is not None,
            _ROW_MAX_ITER,
        )
        return tuple(torch.from_numpy(t) for t in out)

    return _kernel_guard.guarded("OT semi-dual", kernel, lambda: None, "torch")  # type: ignore[return-value]


def ascending(y: torch.Tensor, b: torch.Tensor | None = None) -> bool:
    """Whether the anchors ``y`` ``(m,)`` are strictly ascending (the kernels of
    :mod:`._span_numba` then only visit each row's support); for per-row anchors ``(B, m)``
    of a compacted problem (capacities ``b`` ``(B, m)``, :func:`per_row`), each row's live
    anchors."""
    if y.dim() == 1:
        return bool((y[1:] > y[:-1]).all())
    if b is None:
        return False
    up = y[:, 1:] > y[:, :-1]
    return bool((up | (b[:, 1:] <= 0)).all())


def per_row(b: torch.Tensor | None) -> bool:
    """Whether the capacities ``b`` are per row (``(B, m)``): a *compacted* problem of a masked
    op (:mod:`._layout`), whose row ``b`` has ``nrow = sum_j b_j`` inputs (the first ones) and
    ``mcol = #{j : b_j > 0}`` anchors (the first ones). Such problems only run on the kernels
    here; where those do not apply the solvers raise :class:`PerRowUnsupported`."""
    return b is not None and b.dim() == 2


class PerRowUnsupported(RuntimeError):
    """A compacted per-row problem (:func:`per_row`) reached a solver step without a kernel for
    it (the caller then solves the masked op through the padded layout of :mod:`._layout`)."""


def kernel_rows(
    a: torch.Tensor, y: torch.Tensor, b: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y2, nrow, mcol)`` for the kernels: anchors ``(By, m)`` float64 and the per-row counts
    (every entry for shared capacities)."""
    B, n = a.shape
    y2 = y.detach().to(torch.float64).reshape(-1, y.shape[-1]).contiguous().numpy()
    if per_row(b):
        assert b is not None
        nrow = b.detach().sum(-1).round().long().contiguous().numpy()
        mcol = (b.detach() > 0).sum(-1).long().contiguous().numpy()
    else:
        nrow = np.full(B, n, dtype=np.int64)
        mcol = np.full(B, y.shape[-1], dtype=np.int64)
    return y2, nrow, mcol


def band_evaluate(
    a: torch.Tensor,
    y: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    tol: float,
    guess: torch.Tensor | None,
    b: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """:func:`fused_evaluate` without the ``(B, n, m)`` slacks, visiting only each row's support
    (:func:`._span_numba.evaluate_rows`): ``(alpha, Q^T 1, sum_ij Q s)``, or ``None`` where the
    kernel does not apply. The slacks' curvature then comes from :mod:`._runs`. Per-row
    capacities ``b`` (:func:`per_row`) give each row its own counts."""
    rows = per_row(b)
    if kind == 0 or not numba_ok(a, y, beta) or a.dim() != 2 or (y.dim() != 1 and not rows):
        return None

    def kernel() -> tuple[torch.Tensor, ...]:
        from . import _span_numba  # numba imported on first use

        g = guess if guess is not None else a
        y2, nrow, mcol = kernel_rows(a, y, b)
        out = _span_numba.evaluate_rows(
            a.detach().contiguous().numpy(),
            y2,
            beta.detach().contiguous().numpy(),
            kind,
            tol,
            g.detach().to(torch.float64).contiguous().numpy(),
            guess is not None,
            _ROW_MAX_ITER,
            ascending(y, b),
            nrow,
            mcol,
        )
        return tuple(torch.from_numpy(t) for t in out)

    return _kernel_guard.guarded("OT band semi-dual", kernel, lambda: None, "torch")  # type: ignore[return-value]


class BandedCurvature:
    """``D = phi'(s)`` ``(B, n, m)`` stored on each row's span of nonzeros (numba kernels of
    :mod:`._dual_numba`): mat-vecs cost the support of the plan, not ``n m``.

    Attributes:
        r: row sums ``D 1`` ``(B, n)`` (float64).
        c: column sums ``D^T 1`` ``(B, m)`` (float64).
    """

    def __init__(self, parts: tuple[torch.Tensor, ...], m: int):
        self._lo, self._ptr, self._vals, self.r, self.c = parts
        self._m = m

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``D v`` ``(B, n)`` for ``v`` ``(B, m)`` (float64)."""
        return band_mv(self._lo, self._ptr, self._vals, v)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        """``D^T u`` ``(B, m)`` for ``u`` ``(B, n)`` (float64)."""
        return band_rmv(self._lo, self._ptr, self._vals, u, self._m)

    def normal(self, v: torch.Tensor, rinv: torch.Tensor) -> torch.Tensor:
        """``D^T diag(rinv) D v`` ``(B, m)`` in one pass (float64)."""
        from . import _dual_numba  # numba imported on first use

        vv = v.detach().to(torch.float64).contiguous().numpy()
        ri = rinv.detach().to(torch.float64).contiguous().numpy()
        lo, ptr, vals = self._lo.numpy(), self._ptr.numpy(), self._vals.numpy()
        return torch.from_numpy(_dual_numba.band_normal_mv(lo, ptr, vals, ri, vv, self._m))


def band_mv(
    lo: torch.Tensor, ptr: torch.Tensor, vals: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """``A v`` for a row-span matrix ``(lo, ptr, vals)`` (:mod:`._dual_numba`); ``v`` ``(B, m)``
    or ``(B, m, r)`` (float64)."""
    from . import _dual_numba  # numba imported on first use

    if v.dim() == 3:
        return torch.stack([band_mv(lo, ptr, vals, v[..., k]) for k in range(v.shape[-1])], -1)
    vv = v.detach().to(torch.float64).contiguous().numpy()
    return torch.from_numpy(_dual_numba.band_mv(lo.numpy(), ptr.numpy(), vals.numpy(), vv))


def band_rmv(
    lo: torch.Tensor, ptr: torch.Tensor, vals: torch.Tensor, u: torch.Tensor, m: int
) -> torch.Tensor:
    """``A^T u`` for a row-span matrix ``(lo, ptr, vals)``; ``u`` ``(B, n)`` or ``(B, n, r)``."""
    from . import _dual_numba  # numba imported on first use

    if u.dim() == 3:
        return torch.stack([band_rmv(lo, ptr, vals, u[..., k], m) for k in range(u.shape[-1])], -1)
    uu = u.detach().to(torch.float64).contiguous().numpy()
    return torch.from_numpy(_dual_numba.band_rmv(lo.numpy(), ptr.numpy(), vals.numpy(), uu, m))


class BandedPlan:
    """The p-norm plan ``Q = phi(s)`` and curvature ``D = phi'(s)`` of given potentials on each
    row's span of positive slacks (:func:`._dual_numba.band_plan`), as mat-vec operators:
    ``mv`` / ``rmv`` apply ``D`` / ``D^T``, ``qmv`` / ``qrmv`` apply ``Q`` / ``Q^T``. Per-row
    capacities ``b`` (:func:`per_row`) restrict each row to its own counts."""

    def __init__(
        self,
        a: torch.Tensor,
        y: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        kind: int,
        b: torch.Tensor | None = None,
    ):
        from . import _dual_numba  # numba imported on first use

        def np64(t: torch.Tensor) -> object:
            return t.detach().to(torch.float64).contiguous().numpy()

        from . import _span_numba

        y2, nrow, mcol = kernel_rows(a, y, b)
        args = (np64(a), y2, np64(alpha), np64(beta))
        first, last = _span_numba.plan_spans_rows(*args, ascending(y, b), nrow, mcol)
        parts = _dual_numba.band_plan(*args, kind, first, last)
        self._lo, self._ptr, self._q, self._d = (torch.from_numpy(t) for t in parts)
        self._m = y.shape[-1]

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        return band_mv(self._lo, self._ptr, self._d, v)

    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        return band_rmv(self._lo, self._ptr, self._d, u, self._m)

    def qmv(self, v: torch.Tensor) -> torch.Tensor:
        return band_mv(self._lo, self._ptr, self._q, v)

    def qrmv(self, u: torch.Tensor) -> torch.Tensor:
        return band_rmv(self._lo, self._ptr, self._q, u, self._m)


def banded_curvature(s: torch.Tensor, kind: int) -> BandedCurvature | None:
    """:class:`BandedCurvature` of the slacks ``s`` ``(B, n, m)`` (``kind > 0``, CPU float64),
    or ``None`` where the kernels do not apply (the caller then uses the dense ``D``)."""
    if kind == 0 or not numba_ok(s) or s.dim() != 3:
        return None

    def kernel() -> BandedCurvature:
        from . import _dual_numba  # numba imported on first use

        parts = _dual_numba.band_curvature(s.detach().contiguous().numpy(), kind)
        band = BandedCurvature(tuple(torch.from_numpy(t) for t in parts), s.shape[-1])
        band.mv(band.r[:, :0].new_zeros(s.shape[0], s.shape[-1]))  # compile the mat-vecs here
        band.rmv(band.r)
        band.normal(band.r[:, :0].new_zeros(s.shape[0], s.shape[-1]), band.r)
        return band

    return _kernel_guard.guarded("OT banded curvature", kernel, lambda: None, "torch")  # type: ignore[return-value]


def dense_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    b: torch.Tensor,
    normalise: str,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """The rescaled p-norm plan ``(B, n, m)`` in ``dtype`` from the potentials in one numba pass
    (:func:`._dual_numba.dense_plan`), or ``None`` where the kernel does not apply."""
    rows = per_row(b)
    if kind == 0 or not numba_ok(alpha, beta) or a.device.type != "cpu":
        return None
    if y.dim() != 1 and not rows:
        return None

    def kernel() -> torch.Tensor:
        from . import _dual_numba  # numba imported on first use

        def np64(t: torch.Tensor) -> object:
            return t.detach().to(torch.float64).contiguous().numpy()

        from . import _span_numba

        out = torch.zeros(*a.shape, y.shape[-1], dtype=dtype)
        y2, nrow, mcol = kernel_rows(a, y, b)
        args = (np64(a), y2, np64(alpha), np64(beta))
        first, last = _span_numba.plan_spans_rows(*args, ascending(y, b), nrow, mcol)
        b2 = np64(b).reshape(-1, y.shape[-1])
        _dual_numba.dense_plan(*args, kind, b2, normalise == "col", out.numpy(), first, last)
        return out

    return _kernel_guard.guarded("OT plan", kernel, lambda: None, "torch")  # type: ignore[return-value]


def best_anchor(a: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``argmax_j (beta_j - a_i y_j)`` ``(B, n)`` (first maximum): one numba pass on CPU
    float64, the dense torch ``argmax`` elsewhere."""

    def fallback() -> torch.Tensor:
        return (beta.unsqueeze(-2) - outer(a, y)).argmax(-1)

    if not numba_ok(a, y, beta) or y.dim() != 1:
        return fallback()

    def kernel() -> torch.Tensor:
        from . import _dual_numba  # numba imported on first use

        def np64(t: torch.Tensor) -> object:
            return t.detach().contiguous().numpy()

        return torch.from_numpy(_dual_numba.best_anchor(np64(a), np64(y), np64(beta)))

    return _kernel_guard.guarded("OT best anchor", kernel, fallback, "torch")
