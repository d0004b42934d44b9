r"""CPU kernel (numba) for the p-norm row potentials of :func:`._dual.row_potentials`.

For every row ``X_i`` (float64) it solves ``F(alpha) = sum_j max(alpha + X_ij, 0)^k = 1`` by the
same monotone Newton iteration as the torch version (start ``1 - max_j X_ij`` or the guess where
the guess has an active entry; step ``alpha - (F - 1) / F'``; restart at the start point where
``F' = 0``; stop when ``|F - 1| <= tol`` or after ``max_iter`` steps), but row by row: a row stops
as soon as it has converged and its data stays in cache, where the torch version runs whole-batch
passes until every row has converged. Results agree to the row tolerance.

This module imports numba at import time; :mod:`._dual` imports it on first use.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._pnorm_numba import compacted_sums, dphi, phi


@nb.njit(cache=True)
def _solve_row(
    x: np.ndarray,
    kind: int,
    tol: float,
    guess: float,
    has_guess: bool,
    max_iter: int,
    buf: np.ndarray,
) -> float:
    """The row potential of one row ``x`` (see :func:`row_potentials`). After the first step the
    iterate lies at or above the root and decreases, so the active set only shrinks: the
    candidate entries are compacted into ``buf`` (same terms, same order, same sums)."""
    W = x.shape[0]
    mx = -math.inf
    for j in range(W):
        if x[j] > mx:
            mx = x[j]
    start = 1.0 - mx
    al = start
    if has_guess and guess + mx > 0:
        al = guess
    cnt = W
    for j in range(W):
        buf[j] = x[j]
    for it in range(max_iter):
        F, dF, keep = compacted_sums(buf, cnt, al, kind, it > 0)
        if it > 0:
            cnt = keep
        res = F - 1.0
        if abs(res) <= tol:
            break
        al = al - res / dF if dF > 0 else start
    return al


@nb.njit(cache=True)
def row_potentials(
    X: np.ndarray, kind: int, tol: float, guess: np.ndarray, has_guess: bool, max_iter: int
) -> np.ndarray:
    """``alpha`` ``(R,)`` for the rows of ``X`` ``(R, W)`` (module docstring)."""
    R, W = X.shape
    out = np.empty(R, dtype=np.float64)
    buf = np.empty(W, dtype=np.float64)
    for r in range(R):
        out[r] = _solve_row(X[r], kind, tol, guess[r], has_guess, max_iter, buf)
    return out


@nb.njit(cache=True)
def evaluate(
    a: np.ndarray,
    y: np.ndarray,
    beta: np.ndarray,
    kind: int,
    tol: float,
    guess: np.ndarray,
    has_guess: bool,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The dense semi-dual evaluation of :func:`._solver._evaluate` in one pass per row:
    ``X = beta - Ch`` with ``Ch_ij = a_i y_j`` formed on the fly, the row potentials ``alpha``
    (as :func:`row_potentials`), the slacks ``s = X + alpha``, the column sums of ``Q = phi(s)``
    and ``sum_ij Q s`` per batch element.

    ``a`` ``(B, n)``, ``y`` ``(m,)``, ``beta`` ``(B, m)``, ``guess`` ``(B, n)``; all float64.
    """
    B, n = a.shape
    m = y.shape[0]
    alpha = np.empty((B, n), dtype=np.float64)
    s = np.empty((B, n, m), dtype=np.float64)
    col = np.zeros((B, m), dtype=np.float64)
    qs = np.zeros(B, dtype=np.float64)
    buf = np.empty(m, dtype=np.float64)
    for b in range(B):
        for i in range(n):
            row = s[b, i]
            for j in range(m):
                row[j] = beta[b, j] - a[b, i] * y[j]
            al = _solve_row(row, kind, tol, guess[b, i], has_guess, max_iter, buf)
            alpha[b, i] = al
            acc = 0.0
            for j in range(m):
                v = row[j] + al
                row[j] = v
                q = phi(v, kind)
                col[b, j] += q
                acc += q * v
            qs[b] += acc
    return alpha, s, col, qs


@nb.njit(cache=True)
def band_curvature(
    s: np.ndarray, kind: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``D = phi'(s)`` stored row by row on the span ``[lo_i, hi_i]`` of its nonzeros:
    ``(lo (B, n), ptr (B n + 1), vals (float32), D 1 (B, n), D^T 1 (B, m))`` (sums in float64).

    The p-norm plans of these 1-D problems are supported on short intervals of anchors, so the
    mat-vecs :func:`band_mv` / :func:`band_rmv` cost the support, not ``n m``.
    """
    B, n, m = s.shape
    lo = np.empty((B, n), dtype=np.int64)
    ptr = np.zeros(B * n + 1, dtype=np.int64)
    for b in range(B):
        for i in range(n):
            first = m
            last = -1
            for j in range(m):
                if s[b, i, j] > 0:
                    if first == m:
                        first = j
                    last = j
            lo[b, i] = first
            k = b * n + i
            ptr[k + 1] = ptr[k] + max(0, last - first + 1)
    vals = np.empty(ptr[B * n], dtype=np.float32)
    r = np.zeros((B, n), dtype=np.float64)
    c = np.zeros((B, m), dtype=np.float64)
    for b in range(B):
        for i in range(n):
            k = b * n + i
            acc = 0.0
            for t in range(ptr[k + 1] - ptr[k]):
                j = lo[b, i] + t
                d = dphi(s[b, i, j], kind)
                vals[ptr[k] + t] = d
                acc += d
                c[b, j] += d
            r[b, i] = acc
    return lo, ptr, vals, r, c


@nb.njit(cache=True)
def band_mv(lo: np.ndarray, ptr: np.ndarray, vals: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``D v`` ``(B, n)`` for the banded ``D`` of :func:`band_curvature` and ``v`` ``(B, m)``."""
    B, n = lo.shape
    out = np.zeros((B, n), dtype=np.float64)
    for b in range(B):
        for i in range(n):
            k = b * n + i
            acc = 0.0
            j0 = lo[b, i]
            for t in range(ptr[k + 1] - ptr[k]):
                acc += vals[ptr[k] + t] * v[b, j0 + t]
            out[b, i] = acc
    return out


@nb.njit(cache=True)
def band_rmv(
    lo: np.ndarray, ptr: np.ndarray, vals: np.ndarray, u: np.ndarray, m: int
) -> np.ndarray:
    """``D^T u`` ``(B, m)`` for the banded ``D`` of :func:`band_curvature` and ``u`` ``(B, n)``."""
    B, n = lo.shape
    out = np.zeros((B, m), dtype=np.float64)
    for b in range(B):
        for i in range(n):
            k = b * n + i
            ui = u[b, i]
            j0 = lo[b, i]
            for t in range(ptr[k + 1] - ptr[k]):
                out[b, j0 + t] += vals[ptr[k] + t] * ui
    return out


@nb.njit(cache=True)
def band_plan(
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kind: int,
    first: np.ndarray,
    last: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The p-norm plan ``Q = phi(s)`` and its curvature ``D = phi'(s)`` of the slacks
    ``s_ij = alpha_i + beta_j - a_i y_j``, stored like :func:`band_curvature` (``lo``, ``ptr`` and
    the float64 values of ``Q`` and ``D`` on each row's span ``[first, last]`` of positive
    slacks, from :func:`._span_numba.plan_spans_rows`); anchors ``y`` ``(By, m)``, shared
    (``By = 1``) or per row."""
    B, n = a.shape
    lo = first.copy()
    ptr = np.zeros(B * n + 1, dtype=np.int64)
    for b in range(B):
        for i in range(n):
            k = b * n + i
            ptr[k + 1] = ptr[k] + max(0, last[b, i] - first[b, i] + 1)
    qv = np.empty(ptr[B * n], dtype=np.float64)
    dv = np.empty(ptr[B * n], dtype=np.float64)
    for b in range(B):
        yr = y[b if y.shape[0] > 1 else 0]
        for i in range(n):
            k = b * n + i
            for t in range(ptr[k + 1] - ptr[k]):
                j = lo[b, i] + t
                v = (alpha[b, i] - a[b, i] * yr[j]) + beta[b, j]
                qv[ptr[k] + t] = phi(v, kind)
                dv[ptr[k] + t] = dphi(v, kind)
    return lo, ptr, qv, dv


@nb.njit(cache=True)
def band_normal_mv(
    lo: np.ndarray, ptr: np.ndarray, vals: np.ndarray, rinv: np.ndarray, v: np.ndarray, m: int
) -> np.ndarray:
    """``D^T diag(rinv) D v`` ``(B, m)`` in one pass over each row's span (the Schur mat-vec of
    the CG in :mod:`._linalg`, which otherwise makes two passes)."""
    B, n = lo.shape
    out = np.zeros((B, m), dtype=np.float64)
    for b in range(B):
        for i in range(n):
            k = b * n + i
            j0 = lo[b, i]
            w = ptr[k + 1] - ptr[k]
            acc = 0.0
            for t in range(w):
                acc += vals[ptr[k] + t] * v[b, j0 + t]
            acc *= rinv[b, i]
            for t in range(w):
                out[b, j0 + t] += vals[ptr[k] + t] * acc
    return out


@nb.njit(cache=True)
def dense_plan(
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kind: int,
    b: np.ndarray,
    by_col: bool,
    out: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> None:
    """``Q = phi(alpha_i + beta_j - a_i y_j)`` rescaled to exact columns ``b`` (``by_col``) or
    unit rows, written into the zero-filled ``out`` ``(B, n, m)`` (any float dtype) on each
    row's span ``[first, last]`` of positive slacks (:func:`._span_numba.plan_spans_rows`; the
    entries outside are zero); sums in float64. Anchors ``y`` and capacities ``b`` ``(By, m)``,
    shared (``By = 1``) or per row."""
    B, n = a.shape
    m = y.shape[1]
    tiny = 2.2250738585072014e-308
    row = np.empty(m, dtype=np.float64)
    col = np.zeros(m, dtype=np.float64)
    for bb in range(B):
        yr = y[bb if y.shape[0] > 1 else 0]
        br = b[bb if b.shape[0] > 1 else 0]
        col[:] = 0.0
        for i in range(n):
            acc = 0.0
            j0 = first[bb, i]
            j1 = last[bb, i] + 1
            for j in range(j0, j1):
                q = phi((alpha[bb, i] - a[bb, i] * yr[j]) + beta[bb, j], kind)
                row[j] = q
                acc += q
                col[j] += q
            scale = 1.0 if by_col else 1.0 / max(acc, tiny)
            for j in range(j0, j1):
                out[bb, i, j] = row[j] * scale
        if by_col:
            for j in range(m):
                col[j] = br[j] / max(col[j], tiny)
            for i in range(n):
                for j in range(first[bb, i], last[bb, i] + 1):
                    out[bb, i, j] = out[bb, i, j] * col[j]


@nb.njit(cache=True)
def best_anchor(a: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``argmax_j (beta_j - a_i y_j)`` ``(B, n)`` (first maximum), without the ``(B, n, m)``
    array."""
    B, n = a.shape
    m = y.shape[0]
    out = np.zeros((B, n), dtype=np.int64)
    for b in range(B):
        for i in range(n):
            best = -math.inf
            arg = 0
            for j in range(m):
                v = beta[b, j] - a[b, i] * y[j]
                if v > best:
                    best = v
                    arg = j
            out[b, i] = arg
    return out
