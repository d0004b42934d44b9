r"""CPU kernels (numba) applying the p-norm curvature ``D`` through prefix sums, in ``O(n + m)``.

On a run ``[lo, hi]`` of consecutive anchors where row ``i``'s slacks
``s_ij = alpha_i + beta_j - a_i y_j`` are positive, ``D_ij = phi'(s_ij) = k s_ij^(k - 1)`` is a
polynomial in ``(alpha_i, a_i)`` and ``(beta_j, y_j)``. With ``u_i = alpha_i + mu`` and
``w_j = beta_j - mu`` (``mu`` the mean of ``beta``: the same slacks with smaller numbers):

* ``k = 1``: ``D_ij = 1``;
* ``k = 2``: ``D_ij = 2 (u_i + w_j - a_i y_j)``;
* ``k = 3``: ``D_ij = 3 (u_i^2 + 2 u_i w_j - 2 u_i a_i y_j + w_j^2 - 2 a_i w_j y_j + a_i^2 y_j^2)``.

So ``(D v)_i`` is a sum over the row's runs of differences of the prefix sums of
``v, w v, y v, w^2 v, w y v, y^2 v``, and ``(D^T x)_j`` a combination of running sums of
difference arrays of ``x, u x, a x, u^2 x, u a x, a^2 x`` (added at ``lo``, removed after
``hi``): each mat-vec costs ``O(n + m)`` per batch element instead of the plan's support. The
expansion trades cancellation for that: its relative rounding is about
``eps (M / s)^(k - 1)`` with ``M`` the size of the potentials and ``s`` that of the slacks on
the support (``~1e-12`` for ``k = 3`` at softness 0.1, ``~1e-7`` at softness ``1e-4``), so
:class:`._runs.RunsCurvature` switches to :func:`runs_mv_exact` / :func:`runs_rmv_exact` (``D``
formed entry by entry on the runs, ``O(support)``; narrow supports are where the expansion
loses digits) when that estimate exceeds what its caller needs.

Runs come from :func:`curvature_runs` (each row's positive slacks within the candidate
interval of :mod:`._span_numba`, split where a slack inside is not positive). Anchors are
``y`` ``(By, m)``: shared (``By = 1``) or per row (masked ops, :mod:`._layout`).

This module imports numba at import time; :mod:`._runs` imports it on first use.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._pnorm_numba import dphi
from ._span_numba import _MARGIN, _absmax, _candidates, _hull, _row_setup, row_anchors


@nb.njit(cache=True)
def curvature_runs(
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    asc: bool,
    nrow: np.ndarray,
    mcol: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]:
    """The runs of positive slacks ``(beta_j - a_i y_j) + alpha_i``: ``(off (B + 1), row, lo,
    hi)``, the runs of batch element ``b`` at ``off[b]:off[b + 1]``, each a row index and its
    first and last anchor (ascending rows, then anchors), and ``(sum of the slacks, count)``
    over the runs (the scale that :class:`._runs.RunsCurvature` compares the potentials to).
    Anchors ``y`` ``(By, m)`` (``By`` 1 or ``B``); row ``b`` only has its first ``nrow[b]``
    inputs and ``mcol[b]`` anchors (:func:`._span_numba.evaluate_rows`)."""
    B, n = a.shape
    m = y.shape[1]
    cap = B * n + 16
    row = np.empty(cap, dtype=np.int64)
    lo = np.empty(cap, dtype=np.int64)
    hi = np.empty(cap, dtype=np.int64)
    off = np.zeros(B + 1, dtype=np.int64)
    hat_all = np.empty(m, dtype=np.float64)
    hv = np.empty(m, dtype=np.int64)
    cnt = 0
    ssum = 0.0
    scnt = 0
    for b in range(B):
        mb = mcol[b]
        if mb == 0:
            off[b + 1] = cnt
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
            j = c0
            while j <= c1:
                while j <= c1 and not ((bet[j] - ai * yb[j]) + al > 0):
                    j += 1
                if j > c1:
                    break
                start = j
                while j <= c1:
                    v = (bet[j] - ai * yb[j]) + al
                    if not v > 0:
                        break
                    ssum += v
                    j += 1
                scnt += j - start
                if cnt == cap:
                    cap *= 2
                    row = _grow(row, cnt, cap)
                    lo = _grow(lo, cnt, cap)
                    hi = _grow(hi, cnt, cap)
                row[cnt] = i
                lo[cnt] = start
                hi[cnt] = j - 1
                cnt += 1
        off[b + 1] = cnt
    return off, row[:cnt].copy(), lo[:cnt].copy(), hi[:cnt].copy(), ssum, scnt


@nb.njit(cache=True)
def _grow(x: np.ndarray, cnt: int, cap: int) -> np.ndarray:
    out = np.empty(cap, dtype=np.int64)
    out[:cnt] = x[:cnt]
    return out


@nb.njit(cache=True)
def runs_mv(
    off: np.ndarray,
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    kind: int,
    v: np.ndarray,
) -> np.ndarray:
    """``D v`` ``(B, n)`` for ``v`` ``(B, m)`` (module docstring; ``u``, ``w`` the shifted
    potentials)."""
    B, n = a.shape
    m = y.shape[1]
    out = np.zeros((B, n), dtype=np.float64)
    P = np.zeros((6, m + 1), dtype=np.float64)
    for b in range(B):
        yr = row_anchors(y, b)
        for j in range(m):
            vj = v[b, j]
            P[0, j + 1] = P[0, j] + vj
            if kind >= 2:
                wj = w[b, j]
                yj = yr[j]
                P[1, j + 1] = P[1, j] + wj * vj
                P[2, j + 1] = P[2, j] + yj * vj
                if kind == 3:
                    P[3, j + 1] = P[3, j] + wj * wj * vj
                    P[4, j + 1] = P[4, j] + wj * yj * vj
                    P[5, j + 1] = P[5, j] + yj * yj * vj
        for t in range(off[b], off[b + 1]):
            i = row[t]
            l = lo[t]
            h = hi[t] + 1
            s0 = P[0, h] - P[0, l]
            if kind == 1:
                out[b, i] += s0
                continue
            ui = u[b, i]
            ai = a[b, i]
            sw = P[1, h] - P[1, l]
            sy = P[2, h] - P[2, l]
            if kind == 2:
                out[b, i] += 2.0 * (ui * s0 + sw - ai * sy)
            else:
                sww = P[3, h] - P[3, l]
                swy = P[4, h] - P[4, l]
                syy = P[5, h] - P[5, l]
                out[b, i] += 3.0 * (
                    ui * (ui * s0 + 2.0 * (sw - ai * sy)) + sww - 2.0 * ai * swy + ai * ai * syy
                )
    return out


@nb.njit(cache=True)
def runs_rmv(
    off: np.ndarray,
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    kind: int,
    x: np.ndarray,
) -> np.ndarray:
    """``D^T x`` ``(B, m)`` for ``x`` ``(B, n)`` (module docstring)."""
    B, n = a.shape
    m = y.shape[1]
    out = np.empty((B, m), dtype=np.float64)
    T = np.zeros((6, m + 1), dtype=np.float64)
    acc = np.zeros(6, dtype=np.float64)
    nt = 1 if kind == 1 else (3 if kind == 2 else 6)
    for b in range(B):
        yr = row_anchors(y, b)
        T[:nt] = 0.0
        for t in range(off[b], off[b + 1]):
            i = row[t]
            l = lo[t]
            h = hi[t] + 1
            xi = x[b, i]
            if kind == 1:
                T[0, l] += xi
                T[0, h] -= xi
                continue
            ui = u[b, i]
            ai = a[b, i]
            if kind == 2:
                c0 = ui * xi
                c1 = xi
                c2 = ai * xi
                T[0, l] += c0
                T[0, h] -= c0
                T[1, l] += c1
                T[1, h] -= c1
                T[2, l] += c2
                T[2, h] -= c2
            else:
                ux = ui * xi
                ax = ai * xi
                cs = (ui * ux, ux, ui * ax, xi, ax, ai * ax)
                for q in range(6):
                    T[q, l] += cs[q]
                    T[q, h] -= cs[q]
        acc[:nt] = 0.0
        for j in range(m):
            for q in range(nt):
                acc[q] += T[q, j]
            if kind == 1:
                out[b, j] = acc[0]
            elif kind == 2:
                out[b, j] = 2.0 * (acc[0] + w[b, j] * acc[1] - yr[j] * acc[2])
            else:
                wj = w[b, j]
                yj = yr[j]
                out[b, j] = 3.0 * (
                    acc[0]
                    + 2.0 * (wj * acc[1] - yj * acc[2])
                    + wj * (wj * acc[3] - 2.0 * yj * acc[4])
                    + yj * yj * acc[5]
                )
    return out


@nb.njit(cache=True)
def runs_mv_exact(
    off: np.ndarray,
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kind: int,
    v: np.ndarray,
) -> np.ndarray:
    """``D v`` ``(B, n)`` with ``D`` formed entry by entry on the runs (``O(support)``)."""
    B, n = a.shape
    out = np.zeros((B, n), dtype=np.float64)
    for b in range(B):
        yr = row_anchors(y, b)
        for t in range(off[b], off[b + 1]):
            i = row[t]
            ai = a[b, i]
            al = alpha[b, i]
            acc = 0.0
            for j in range(lo[t], hi[t] + 1):
                acc += dphi((beta[b, j] - ai * yr[j]) + al, kind) * v[b, j]
            out[b, i] += acc
    return out


@nb.njit(cache=True)
def runs_rmv_exact(
    off: np.ndarray,
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kind: int,
    x: np.ndarray,
) -> np.ndarray:
    """``D^T x`` ``(B, m)`` with ``D`` formed entry by entry on the runs (``O(support)``)."""
    B, n = a.shape
    m = y.shape[1]
    out = np.zeros((B, m), dtype=np.float64)
    for b in range(B):
        yr = row_anchors(y, b)
        for t in range(off[b], off[b + 1]):
            i = row[t]
            ai = a[b, i]
            al = alpha[b, i]
            xi = x[b, i]
            for j in range(lo[t], hi[t] + 1):
                out[b, j] += dphi((beta[b, j] - ai * yr[j]) + al, kind) * xi
    return out


@nb.njit(cache=True)
def runs_gd(
    off: np.ndarray,
    row: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    kind: int,
    G: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """With ``GD = G * D`` (``D = phi'`` of the slacks ``(alpha_i - a_i y_j) + beta_j``, formed
    entry by entry on the runs) for a dense ``G`` ``(B, n, m)`` (any strides; only the runs are
    read): ``(GD 1 (B, n), GD^T 1 (B, m), GD y (B, n))`` in float64."""
    B, n = a.shape
    m = y.shape[1]
    ha = np.zeros((B, n), dtype=np.float64)
    hb = np.zeros((B, m), dtype=np.float64)
    gdy = np.zeros((B, n), dtype=np.float64)
    for b in range(B):
        yr = row_anchors(y, b)
        for t in range(off[b], off[b + 1]):
            i = row[t]
            ai = a[b, i]
            al = alpha[b, i]
            s1 = 0.0
            s2 = 0.0
            for j in range(lo[t], hi[t] + 1):
                v = (al - ai * yr[j]) + beta[b, j]
                if v <= 0:
                    continue
                gd = float(G[b, i, j]) * dphi(v, kind)
                s1 += gd
                s2 += gd * yr[j]
                hb[b, j] += gd
            ha[b, i] += s1
            gdy[b, i] += s2
    return ha, hb, gdy
