r"""CPU kernels (numba) for the p-norm OT plans that only visit each row's support.

With anchors ``y`` in ascending order the slacks of row ``i`` are ``s_ij = alpha_i + x_ij`` with
``x_ij = beta_j - a_i y_j``. Let ``hat beta`` be the upper concave envelope of the points
``(y_j, beta_j)`` (so ``hat beta >= beta``, with equality on the envelope's vertices). Then
``hat x_ij = hat beta_j - a_i y_j`` is concave in ``j`` and ``hat x_ij >= x_ij``, so every anchor
with ``s_ij > 0`` lies in the interval

.. math:: I_i(\alpha) = \{ j : \hat x_{ij} + \alpha > -\tau_i \}

around the peak of ``hat x_i`` (the envelope vertex maximising ``x_ij``, a binary search over the
vertices), whose ends are two more binary searches. The margin
``tau_i = 64 eps (max |beta| + |a_i| max |y| + |alpha|)`` covers the rounding of ``hat x``.
Scanning ``I_i`` in ascending ``j`` visits every positive slack in the order of a scan over all
``m`` anchors, so every sum equals the dense one term for term: the kernels here return what
the dense kernels of :mod:`._dual_numba` return, in ``O(support)`` instead of ``O(m)`` per row.
For anchors that are not in ascending order (``asc=False``) the interval is all anchors.

The optimal plans of these 1-D problems are supported on short intervals of anchors (about
10-35 % of them at ``n = 1000``, softness 0.1), which is what these kernels exploit:

* :func:`evaluate_band`: the semi-dual evaluation of :func:`._dual_numba.evaluate` (row
  potentials by the same monotone Newton iteration, column sums, ``sum Q s``) without the
  ``(B, n, m)`` slacks;
* :func:`plan_spans`: each row's span of positive slacks (for :func:`._dual_numba.band_plan` and
  :func:`._dual_numba.dense_plan`).

The ``*_rows`` forms take per-row anchors ``y`` ``(B, m)`` and per-row counts: row ``b`` is the
problem of its first ``nrow[b]`` inputs and ``mcol[b]`` anchors (the masked ops compact each
slice's real entries to the front, :mod:`._layout`), so a slice costs its own length.

This module imports numba at import time; :mod:`._dual` imports it on first use.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._pnorm_numba import compacted_sums, phi, row_terms

_EPS = 2.220446049250313e-16
_MARGIN = 64.0 * _EPS


@nb.njit(cache=True)
def _absmax(v: np.ndarray) -> float:
    out = 0.0
    for j in range(v.shape[0]):
        if abs(v[j]) > out:
            out = abs(v[j])
    return out


@nb.njit(cache=True)
def _hull(y: np.ndarray, beta: np.ndarray, hat: np.ndarray, hv: np.ndarray) -> int:
    """Upper concave envelope of ``(y_j, beta_j)`` (``y`` strictly ascending): its vertex
    indices ``hv[:k]`` (returns ``k``) and its values ``hat`` at every ``y_j``, raised to
    ``beta_j`` where rounding put the interpolation below it."""
    m = y.shape[0]
    k = 0
    for j in range(m):
        while k >= 2:
            p = hv[k - 2]
            q = hv[k - 1]
            # drop q when it lies on or below the segment from p to j
            if (beta[q] - beta[p]) * (y[j] - y[p]) <= (beta[j] - beta[p]) * (y[q] - y[p]):
                k -= 1
            else:
                break
        hv[k] = j
        k += 1
    for t in range(k - 1):
        p = hv[t]
        q = hv[t + 1]
        hat[p] = beta[p]
        sl = (beta[q] - beta[p]) / (y[q] - y[p])
        for j in range(p + 1, q):
            h = beta[p] + sl * (y[j] - y[p])
            hat[j] = h if h > beta[j] else beta[j]
    hat[hv[k - 1]] = beta[hv[k - 1]]
    return k


@nb.njit(cache=True, inline="always")
def _peak(y: np.ndarray, beta: np.ndarray, hv: np.ndarray, k: int, ai: float) -> int:
    """The envelope vertex maximising ``beta_j - ai y_j`` (binary search: unimodal along the
    vertices; the first of tied vertices)."""
    lo = 0
    hi = k - 1
    while lo < hi:
        mid = (lo + hi) // 2
        p = hv[mid]
        q = hv[mid + 1]
        if beta[q] - ai * y[q] > beta[p] - ai * y[p]:
            lo = mid + 1
        else:
            hi = mid
    return hv[lo]


@nb.njit(cache=True, inline="always")
def _span(
    y: np.ndarray, hat: np.ndarray, ai: float, al: float, tau: float, jp: int
) -> tuple[int, int]:
    """``[lo, hi]``: the anchors around the peak ``jp`` with ``hat_j - ai y_j + al > -tau``
    (``hat x`` is concave, so two binary searches; at least ``[jp, jp]``)."""
    m = y.shape[0]
    thr = -tau - al
    if not (hat[jp] - ai * y[jp] > thr):
        return jp, jp
    if hat[0] - ai * y[0] > thr:
        lo = 0
    else:
        L = 0
        R = jp
        while R - L > 1:
            mid = (L + R) // 2
            if hat[mid] - ai * y[mid] > thr:
                R = mid
            else:
                L = mid
        lo = R
    if hat[m - 1] - ai * y[m - 1] > thr:
        hi = m - 1
    else:
        L = jp
        R = m - 1
        while R - L > 1:
            mid = (L + R) // 2
            if hat[mid] - ai * y[mid] > thr:
                L = mid
            else:
                R = mid
        hi = L
    return lo, hi


@nb.njit(cache=True, inline="always")
def _candidates(
    y: np.ndarray,
    hat: np.ndarray,
    ai: float,
    al: float,
    scale: float,
    jp: int,
    asc: bool,
) -> tuple[int, int]:
    """The anchors that may carry a positive slack at row potential ``al`` (all if not ``asc``)."""
    if not asc:
        return 0, y.shape[0] - 1
    return _span(y, hat, ai, al, scale + _MARGIN * abs(al), jp)


@nb.njit(cache=True, inline="always")
def _row_setup(
    y: np.ndarray,
    beta: np.ndarray,
    hv: np.ndarray,
    k: int,
    ai: float,
    asc: bool,
) -> tuple[int, float]:
    """The peak anchor and ``max_j (beta_j - ai y_j)`` of a row."""
    if asc:
        jp = _peak(y, beta, hv, k, ai)
        return jp, beta[jp] - ai * y[jp]
    mx = -math.inf
    jp = 0
    for j in range(y.shape[0]):
        v = beta[j] - ai * y[j]
        if v > mx:
            mx = v
            jp = j
    return jp, mx


@nb.njit(cache=True)
def _solve_row(
    y: np.ndarray,
    beta: np.ndarray,
    hat: np.ndarray,
    ai: float,
    jp: int,
    mx: float,
    scale: float,
    asc: bool,
    kind: int,
    tol: float,
    guess: float,
    has_guess: bool,
    max_iter: int,
    buf: np.ndarray,
) -> float:
    """The row potential of :func:`._dual_numba._solve_row` (same iterates, same sums) scanning
    only the candidate anchors: the first iterate's, then (the iterates decrease from the second
    one on, so the active set only shrinks) the second iterate's, compacted as there."""
    start = 1.0 - mx
    al = start
    if has_guess and guess + mx > 0:
        al = guess
    lo, hi = _candidates(y, hat, ai, al, scale, jp, asc)
    F = 0.0
    dF = 0.0
    for j in range(lo, hi + 1):
        v = (beta[j] - ai * y[j]) + al
        if v > 0:
            q, d = row_terms(v, kind)
            F += q
            dF += d
    res = F - 1.0
    if abs(res) <= tol or max_iter <= 1:
        if abs(res) > tol:
            al = al - res / dF if dF > 0 else start
        return al
    al = al - res / dF if dF > 0 else start
    lo, hi = _candidates(y, hat, ai, al, scale, jp, asc)
    cnt = 0
    for j in range(lo, hi + 1):
        buf[cnt] = beta[j] - ai * y[j]
        cnt += 1
    for _ in range(1, max_iter):
        F, dF, cnt = compacted_sums(buf, cnt, al, kind, True)
        res = F - 1.0
        if abs(res) <= tol:
            break
        al = al - res / dF if dF > 0 else start
    return al


@nb.njit(cache=True)
def full_counts(B: int, size: int) -> np.ndarray:
    """``(B,)`` int64 filled with ``size``: every row of a batch uses all its entries."""
    return np.full(B, size, dtype=np.int64)


@nb.njit(cache=True, inline="always")
def row_anchors(y: np.ndarray, b: int) -> np.ndarray:
    """Row ``b``'s anchors of ``y`` ``(By, m)`` (``By = 1``: shared by every row)."""
    return y[b if y.shape[0] > 1 else 0]


@nb.njit(cache=True)
def evaluate_band(
    a: np.ndarray,
    y: np.ndarray,
    beta: np.ndarray,
    kind: int,
    tol: float,
    guess: np.ndarray,
    has_guess: bool,
    max_iter: int,
    asc: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`evaluate_rows` for anchors ``y`` ``(m,)`` shared by every row and every entry
    real."""
    B, n = a.shape
    m = y.shape[0]
    y2 = y.reshape(1, m)
    return evaluate_rows(
        a, y2, beta, kind, tol, guess, has_guess, max_iter, asc, full_counts(B, n),
        full_counts(B, m),
    )  # fmt: skip


@nb.njit(cache=True)
def evaluate_rows(
    a: np.ndarray,
    y: np.ndarray,
    beta: np.ndarray,
    kind: int,
    tol: float,
    guess: np.ndarray,
    has_guess: bool,
    max_iter: int,
    asc: bool,
    nrow: np.ndarray,
    mcol: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`._dual_numba.evaluate` without the slacks: ``(alpha (B, n), Q^T 1 (B, m),
    sum_ij Q s (B,))`` for ``a`` ``(B, n)``, anchors ``y`` ``(By, m)`` (``By`` 1 or ``B``),
    ``beta`` ``(B, m)`` (float64). Row ``b`` of the batch is the problem of its first
    ``nrow[b]`` inputs and first ``mcol[b]`` anchors (masked ops, compacted: :mod:`._layout`);
    the other entries get ``alpha = 0`` and column sums ``0``.

    Without a ``guess`` each row's iteration starts from ``alpha_i = g - max_j x_ij`` with the
    gap ``g = alpha + max_j x`` of the row before (rows of one problem have similar gaps; the
    first row starts at the upper bound ``1 - max_j x_ij``), not from that upper bound: the
    same root to the row tolerance in fewer steps."""
    B, n = a.shape
    m = y.shape[1]
    alpha = np.zeros((B, n), dtype=np.float64)
    col = np.zeros((B, m), dtype=np.float64)
    qs = np.zeros(B, dtype=np.float64)
    buf = np.empty(m, dtype=np.float64)
    hat_all = np.empty(m, dtype=np.float64)
    hv = np.empty(m, dtype=np.int64)
    for b in range(B):
        mb = mcol[b]
        if mb == 0:
            continue
        yb = row_anchors(y, b)[:mb]
        bet = beta[b, :mb]
        hat = hat_all[:mb]
        k = _hull(yb, bet, hat, hv) if asc else 0
        ymax = _absmax(yb)
        bmax = _absmax(bet)
        gap = -1.0
        for i in range(nrow[b]):
            ai = a[b, i]
            jp, mx = _row_setup(yb, bet, hv, k, ai, asc)
            scale = _MARGIN * (bmax + abs(ai) * ymax)
            g = guess[b, i]
            use = has_guess
            if not has_guess and gap > 0:  # the previous row's alpha + max x: a close guess
                g = gap - mx
                use = True
            al = _solve_row(
                yb, bet, hat, ai, jp, mx, scale, asc, kind, tol, g, use, max_iter, buf
            )
            alpha[b, i] = al
            gap = al + mx
            lo, hi = _candidates(yb, hat, ai, al, scale, jp, asc)
            acc = 0.0
            for j in range(lo, hi + 1):
                v = (bet[j] - ai * yb[j]) + al
                q = phi(v, kind)
                col[b, j] += q
                acc += q * v
            qs[b] += acc
    return alpha, col, qs


@nb.njit(cache=True)
def plan_spans(
    a: np.ndarray, y: np.ndarray, alpha: np.ndarray, beta: np.ndarray, asc: bool
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`plan_spans_rows` for anchors ``y`` ``(m,)`` shared by every row, all entries
    real."""
    B, n = a.shape
    m = y.shape[0]
    return plan_spans_rows(
        a, y.reshape(1, m), alpha, beta, asc, full_counts(B, n), full_counts(B, m)
    )


@nb.njit(cache=True)
def plan_spans_rows(
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    asc: bool,
    nrow: np.ndarray,
    mcol: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(first, last)`` ``(B, n)``: each row's span of positive slacks
    ``(alpha_i - a_i y_j) + beta_j`` (as :func:`._dual_numba.band_plan` forms them;
    ``first = m``, ``last = -1`` for a row without one, and for the inputs ``i >= nrow[b]``),
    anchors ``y`` ``(By, m)`` and counts as in :func:`evaluate_rows`."""
    B, n = a.shape
    m = y.shape[1]
    first = np.full((B, n), m, dtype=np.int64)
    last = np.full((B, n), -1, dtype=np.int64)
    hat_all = np.empty(m, dtype=np.float64)
    hv = np.empty(m, dtype=np.int64)
    for b in range(B):
        mb = mcol[b]
        if mb == 0:
            continue
        yb = row_anchors(y, b)[:mb]
        bet = beta[b, :mb]
        hat = hat_all[:mb]
        k = _hull(yb, bet, hat, hv) if asc else 0
        ymax = _absmax(yb)
        bmax = _absmax(bet)
        for i in range(nrow[b]):
            ai = a[b, i]
            al = alpha[b, i]
            jp, _ = _row_setup(yb, bet, hv, k, ai, asc)
            c0, c1 = _candidates(yb, hat, ai, al, _MARGIN * (bmax + abs(ai) * ymax), jp, asc)
            for j in range(c0, c1 + 1):
                if (al - ai * yb[j]) + bet[j] > 0:
                    first[b, i] = j
                    break
            if first[b, i] < m:
                for j in range(c1, first[b, i] - 1, -1):
                    if (al - ai * yb[j]) + bet[j] > 0:
                        last[b, i] = j
                        break
    return first, last
