r"""CPU kernels (numba, float64) of the sparse-mode SoftSort rows on sorted points.

For ascending points :math:`u_1 \le \dots \le u_n`, row ``m`` projects the scores
:math:`\sigma_{mj} = -|u_m - u_j|\,/\,s` onto the simplex with the p-norm regulariser of exponent
``e`` (``c0``: 1, ``c1``: 2, ``c2``: 3; :mod:`softtorch.simplex`),
:math:`p_{mj} = (\sigma_{mj} - \lambda_m)_+^e`, :math:`\sum_j p_{mj} = 1`.

The scores are unimodal in ``j`` with their peak ``0`` at ``j = m``, so the support is a window
``lo_m..hi_m`` around ``m``. :func:`_support` merges the left and right neighbours outward in
order of distance :math:`d_j = |u_m - u_j|/s` and keeps candidate ``k`` while
:math:`f_k = \sum_{j < k} (d_k - d_j)^e < 1` (the support test of
:func:`softtorch.simplex.project_simplex`, from running sums of :math:`d, d^2, d^3`), so the work
is ``O(window)`` per row; the threshold is the closed form of :mod:`softtorch.simplex` on the
window, from the same running sums (mean and centred moments of the scores).

* :func:`window_values`: :math:`y_m = \sum_j p_{mj} w_j` and the per-row ``lo``, ``hi``,
  :math:`\lambda` and :math:`\bar w` (below), ``O(n)`` saved for the backward.
* :func:`window_values_vjp`: with :math:`h_j = e\,(\sigma_{mj} - \lambda_m)^{e-1}` on the support,
  the Jacobian of the projection is :math:`\mathrm{diag}(h) - h h^\top / \sum h`, so for the
  incoming gradient ``g``, :math:`\partial\sigma_{mj} = g_m h_j (w_j - \bar w_m)` with
  :math:`\bar w_m = \sum_j h_j w_j / \sum_j h_j`; then
  :math:`\nabla u_m \mathrel{-}= \partial\sigma_{mj}\,\mathrm{sign}(u_m - u_j)/s`,
  :math:`\nabla u_j \mathrel{+}= \partial\sigma_{mj}\,\mathrm{sign}(u_m - u_j)/s` and
  :math:`\nabla w_j \mathrel{+}= g_m p_{mj}`; one pass over each window.
* :func:`window_rows` / :func:`window_rows_vjp`: selected rows of the projection written into a
  zero matrix (soft permutation rows), and the same backward with row ``m`` of the incoming
  gradient ``G`` in place of :math:`g_m w`.

This module imports numba at import time; :mod:`._sparse` imports it on the first CPU
call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Floor of the closed forms (as :mod:`softtorch.simplex` for float64).
_TINY = float(np.finfo(np.float64).tiny) ** 0.25


@nb.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=False)
def _ball_sums(u, um, lo, hi, inv_s):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Sums of ``d, d^2, d^3`` with ``d = |um - u_j| / s`` over ``lo..hi`` (vectorised)."""
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(lo, hi + 1):
        d = abs(um - u[j]) * inv_s
        s1 += d
        s2 += d * d
        s3 += d * d * d
    return s1, s2, s3


@nb.njit(error_model="numpy", cache=False)
def _f(k, d, s1, s2, s3, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """The support test value of a candidate at distance ``d`` given the sums of the closer ones."""
    if e == 1:
        return k * d - s1
    if e == 2:
        return (k * d - 2.0 * s1) * d + s2
    return ((k * d - 3.0 * s1) * d + 3.0 * s2) * d - s3


@nb.njit(error_model="numpy", cache=False)
def _support(u, m, inv_s, e, rho, lo, hi):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``(lo, hi, lam, radius)``: the support window of row ``m`` and its threshold.

    Starts from the ball of distance ``rho`` around ``u_m`` (the previous row's radius; its
    limits found by moving the previous ``lo``, ``hi``), then drops its farthest points while they
    fail the support test or merges outward from it in order of distance while the next one
    passes, so the window is the dense one whatever the start.
    """
    n = u.shape[0]
    um = u[m]
    lo = min(lo, m)
    hi = max(hi, m)
    while lo < m and (um - u[lo]) * inv_s > rho:
        lo += 1
    while lo > 0 and (um - u[lo - 1]) * inv_s <= rho:
        lo -= 1
    while hi > m and (u[hi] - um) * inv_s > rho:
        hi -= 1
    while hi < n - 1 and (u[hi + 1] - um) * inv_s <= rho:
        hi += 1
    s1, s2, s3 = _ball_sums(u, um, lo, hi, inv_s)
    k = float(hi - lo + 1)
    shrunk = False
    while k > 1.0:  # drop the farthest point while it fails the test (it is in the sums)
        dl = (um - u[lo]) * inv_s
        dr = (u[hi] - um) * inv_s
        d = max(dl, dr)
        if _f(k, d, s1, s2, s3, e) < 1.0:
            break
        shrunk = True
        if dl >= dr:
            lo += 1
        else:
            hi -= 1
        k -= 1.0
        s1 -= d
        s2 -= d * d
        s3 -= d * d * d
    while not shrunk:  # merge outward while the next point passes
        dl = (um - u[lo - 1]) * inv_s if lo > 0 else np.inf
        dr = (u[hi + 1] - um) * inv_s if hi < n - 1 else np.inf
        d = min(dl, dr)
        if not d < 1.0:  # f >= d^e >= 1 (the peak's own term)
            break
        if not _f(k, d, s1, s2, s3, e) < 1.0:
            break
        if dl <= dr:
            lo -= 1
        else:
            hi += 1
        k += 1.0
        s1 += d
        s2 += d * d
        s3 += d * d * d
    radius = max(um - u[lo], u[hi] - um) * inv_s
    # closed form of softtorch.simplex on the scores -d: mean -dbar, centred moments m2, m3
    dbar = s1 / k
    if e == 1:
        return lo, hi, -dbar - 1.0 / k, radius
    m2 = max(s2 - s1 * dbar, 0.0)
    if e == 2:
        return lo, hi, -dbar - np.sqrt(max((1.0 - m2) / k, _TINY)), radius
    m3 = -(s3 - 3.0 * dbar * s2 + 2.0 * k * dbar * dbar * dbar)
    p = m2 / k
    q = (m3 - 1.0) / (2.0 * k)
    disc = np.sqrt(max(q * q + p * p * p, _TINY))
    c = max(disc - q, _TINY) ** (1.0 / 3.0)
    return lo, hi, -dbar - (c - p / c), radius


@nb.njit(error_model="numpy", cache=False)
def _power(r, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    if e == 1:
        return r
    if e == 2:
        return r * r
    return r * r * r


@nb.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=False)
def _row_sums(ub, wb, um, a, c, lm, inv_s, e):  # noqa: ANN001, ANN202  # pragma: no cover
    """``(sum p w, sum h, sum h w)`` over a window (branch-free, so it vectorises)."""
    acc = 0.0
    hs = 0.0
    hw = 0.0
    for j in range(a, c + 1):
        r = max(-abs(um - ub[j]) * inv_s - lm, 0.0)
        if e == 1:
            rp = 1.0 if r > 0.0 else 0.0
        elif e == 2:
            rp = r
        else:
            rp = r * r
        acc += rp * r * wb[j]
        hs += e * rp
        hw += e * rp * wb[j]
    return acc, hs, hw


@nb.njit(error_model="numpy", cache=False)
def window_values(u, w, inv_s, e):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``(y, lo, hi, lam, wbar)`` for ``u``, ``w`` of shape ``(batch, n)`` (see the module
    docstring; ``wbar`` is the per-row mean that the backward needs)."""
    nb_, n = u.shape
    y = np.empty_like(u)
    lam = np.empty_like(u)
    wbar = np.empty_like(u)
    lo = np.empty((nb_, n), dtype=np.int64)
    hi = np.empty((nb_, n), dtype=np.int64)
    for b in range(nb_):
        ub = u[b]
        wb = w[b]
        a, c, rad = 0, 0, 0.0
        for m in range(n):
            a, c, lm, rad = _support(ub, m, inv_s, e, rad, a, c)
            acc, hs, hw = _row_sums(ub, wb, ub[m], a, c, lm, inv_s, e)
            y[b, m] = acc
            lam[b, m] = lm
            wbar[b, m] = hw / hs
            lo[b, m] = a
            hi[b, m] = c
    return y, lo, hi, lam, wbar


@nb.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=False)
def _row_vjp(ub, wb, gu, gw, m, a, c, lm, wm, gm, inv_s, e):  # noqa: ANN001, ANN202  # pragma: no cover
    """Row ``m``'s share of the backward (branch-free over the window, so it vectorises)."""
    um = ub[m]
    acc = 0.0
    for j in range(a, c + 1):
        diff = um - ub[j]
        r = max(-abs(diff) * inv_s - lm, 0.0)
        if e == 1:
            rp = 1.0 if r > 0.0 else 0.0
        elif e == 2:
            rp = r
        else:
            rp = r * r
        gw[j] += gm * rp * r
        ds = gm * e * rp * (wb[j] - wm) * inv_s * np.sign(diff)
        acc -= ds
        gu[j] += ds
    gu[m] += acc


@nb.njit(error_model="numpy", cache=False)
def window_values_vjp(u, w, g, lo, hi, lam, wbar, inv_s, e):  # noqa: ANN001, ANN201  # pragma: no cover
    """``(grad_u, grad_w)`` of ``<g, y>`` (see the module docstring)."""
    nb_, n = u.shape
    gu = np.zeros_like(u)
    gw = np.zeros_like(u)
    for b in range(nb_):
        for m in range(n):
            gm = g[b, m]
            if gm != 0.0:
                _row_vjp(u[b], w[b], gu[b], gw[b], m, lo[b, m], hi[b, m], lam[b, m], wbar[b, m],
                         gm, inv_s, e)  # fmt: skip
    return gu, gw


@nb.njit(error_model="numpy", cache=False)
def window_rows(u, rows, perm, inv_s, e, out):  # noqa: ANN001, ANN201  # pragma: no cover
    """Rows ``rows`` (ascending indices) of the projection written into the zero-filled ``out``
    ``(batch, r, n)`` (any float dtype) at the original columns ``perm[b, j]`` of the sorted
    points; returns ``lo, hi, lam`` of each written row."""
    nb_, n = u.shape
    r_ = rows.shape[0]
    lam = np.empty((nb_, r_), dtype=u.dtype)
    lo = np.empty((nb_, r_), dtype=np.int64)
    hi = np.empty((nb_, r_), dtype=np.int64)
    for b in range(nb_):
        ub = u[b]
        a, c, rad = rows[0], rows[0], 0.0
        for i in range(r_):
            m = rows[i]
            a, c, lm, rad = _support(ub, m, inv_s, e, rad, a, c)
            um = ub[m]
            for j in range(a, c + 1):
                r = -abs(um - ub[j]) * inv_s - lm
                if r > 0.0:
                    out[b, i, perm[b, j]] = _power(r, e)
            lam[b, i] = lm
            lo[b, i] = a
            hi[b, i] = c
    return lo, hi, lam


@nb.njit(error_model="numpy", cache=False)
def window_rows_vjp(u, rows, perm, g, lo, hi, lam, inv_s, e):  # noqa: ANN001, ANN201  # pragma: no cover
    """``(grad_u, grad_a)`` of ``<G, P_rows>`` for ``G`` ``(batch, r, n)`` in the original column
    order: ``grad_u`` through the columns, ``grad_a`` through each row's anchor ``u[rows[i]]``."""
    nb_, n = u.shape
    gu = np.zeros_like(u)
    ga = np.zeros((nb_, rows.shape[0]), dtype=u.dtype)
    for b in range(nb_):
        ub = u[b]
        for i in range(rows.shape[0]):
            m = rows[i]
            um = ub[m]
            lm = lam[b, i]
            hs = 0.0
            hg = 0.0
            for j in range(lo[b, i], hi[b, i] + 1):
                r = -abs(um - ub[j]) * inv_s - lm
                if r > 0.0:
                    h = 1.0 if e == 1 else e * _power(r, e - 1)
                    hs += h
                    hg += h * g[b, i, perm[b, j]]
            gbar = hg / hs
            acc = 0.0
            for j in range(lo[b, i], hi[b, i] + 1):
                diff = um - ub[j]
                r = -abs(diff) * inv_s - lm
                if r > 0.0 and diff != 0.0:
                    h = 1.0 if e == 1 else e * _power(r, e - 1)
                    ds = h * (g[b, i, perm[b, j]] - gbar) * inv_s
                    if diff < 0.0:
                        ds = -ds
                    acc -= ds
                    gu[b, j] += ds
            ga[b, i] = acc
    return gu, ga
