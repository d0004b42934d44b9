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
is ``O(window)`` per row. :func:`_threshold` is the closed form of :mod:`softtorch.simplex` on the
window (mean and centred moments of the scores).

* :func:`window_values`: :math:`y_m = \sum_j p_{mj} w_j` and the per-row ``lo``, ``hi``,
  :math:`\lambda`.
* :func:`window_values_vjp`: with :math:`h_j = e\,(\sigma_{mj} - \lambda_m)^{e-1}` on the support,
  the Jacobian of the projection is :math:`\mathrm{diag}(h) - h h^\top / \sum h`, so for the
  incoming gradient ``g``, :math:`\partial\sigma_{mj} = g_m h_j (w_j - \bar w_m)` with
  :math:`\bar w_m = \sum_j h_j w_j / \sum_j h_j`; then
  :math:`\nabla u_m \mathrel{-}= \partial\sigma_{mj}\,\mathrm{sign}(u_m - u_j)/s`,
  :math:`\nabla u_j \mathrel{+}= \partial\sigma_{mj}\,\mathrm{sign}(u_m - u_j)/s` and
  :math:`\nabla w_j \mathrel{+}= g_m p_{mj}`.

This module imports numba at import time; :mod:`._softsort_cstream` imports it on the first CPU
call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Floor of the closed forms (as :mod:`softtorch.simplex` for float64).
_TINY = float(np.finfo(np.float64).tiny) ** 0.25


@nb.njit(error_model="numpy", cache=False)
def _support(u, m, inv_s, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``(lo, hi)``: the support window of row ``m`` (merge outward from the peak)."""
    n = u.shape[0]
    um = u[m]
    lo = m
    hi = m
    k = 1.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    while True:
        dl = (um - u[lo - 1]) * inv_s if lo > 0 else np.inf
        dr = (u[hi + 1] - um) * inv_s if hi < n - 1 else np.inf
        d = min(dl, dr)
        if not d < 1.0:  # f_k >= d^e >= 1 (the peak's own term)
            break
        if e == 1:
            f = k * d - s1
        elif e == 2:
            f = (k * d - 2.0 * s1) * d + s2
        else:
            f = ((k * d - 3.0 * s1) * d + 3.0 * s2) * d - s3
        if not f < 1.0:
            break
        if dl <= dr:
            lo -= 1
        else:
            hi += 1
        k += 1.0
        s1 += d
        s2 += d * d
        s3 += d * d * d
    return lo, hi


@nb.njit(error_model="numpy", cache=False)
def _threshold(u, m, lo, hi, inv_s, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    r""":math:`\lambda_m` from the closed form on the window (see :mod:`softtorch.simplex`)."""
    um = u[m]
    size = float(hi - lo + 1)
    mu = 0.0
    for j in range(lo, hi + 1):
        mu += -abs(um - u[j]) * inv_s
    mu /= size
    if e == 1:
        return mu - 1.0 / size
    m2 = 0.0
    m3 = 0.0
    for j in range(lo, hi + 1):
        dd = -abs(um - u[j]) * inv_s - mu
        m2 += dd * dd
        m3 += dd * dd * dd
    if e == 2:
        return mu - np.sqrt(max((1.0 - m2) / size, _TINY))
    p = m2 / size
    q = (m3 - 1.0) / (2.0 * size)
    disc = np.sqrt(max(q * q + p * p * p, _TINY))
    c = max(disc - q, _TINY) ** (1.0 / 3.0)
    return mu - (c - p / c)


@nb.njit(error_model="numpy", cache=False)
def _power(r, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    if e == 1:
        return r
    if e == 2:
        return r * r
    return r * r * r


@nb.njit(error_model="numpy", cache=False)
def window_values(u, w, inv_s, e):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``(y, lo, hi, lam)`` for ``u``, ``w`` of shape ``(batch, n)`` (see the module docstring)."""
    nb_, n = u.shape
    y = np.empty_like(u)
    lam = np.empty_like(u)
    lo = np.empty((nb_, n), dtype=np.int64)
    hi = np.empty((nb_, n), dtype=np.int64)
    for b in range(nb_):
        ub = u[b]
        wb = w[b]
        for m in range(n):
            a, c = _support(ub, m, inv_s, e)
            lm = _threshold(ub, m, a, c, inv_s, e)
            um = ub[m]
            acc = 0.0
            for j in range(a, c + 1):
                r = -abs(um - ub[j]) * inv_s - lm
                if r > 0.0:
                    acc += _power(r, e) * wb[j]
            y[b, m] = acc
            lam[b, m] = lm
            lo[b, m] = a
            hi[b, m] = c
    return y, lo, hi, lam


@nb.njit(error_model="numpy", cache=False)
def window_values_vjp(u, w, g, lo, hi, lam, inv_s, e):  # noqa: ANN001, ANN201  # pragma: no cover
    """``(grad_u, grad_w)`` of ``<g, y>`` (see the module docstring)."""
    nb_, n = u.shape
    gu = np.zeros_like(u)
    gw = np.zeros_like(u)
    for b in range(nb_):
        ub = u[b]
        wb = w[b]
        for m in range(n):
            gm = g[b, m]
            if gm == 0.0:
                continue
            um = ub[m]
            lm = lam[b, m]
            a = lo[b, m]
            c = hi[b, m]
            hs = 0.0
            hw = 0.0
            for j in range(a, c + 1):
                r = -abs(um - ub[j]) * inv_s - lm
                if r > 0.0:
                    h = 1.0 if e == 1 else e * _power(r, e - 1)
                    hs += h
                    hw += h * wb[j]
            wbar = hw / hs
            acc = 0.0
            for j in range(a, c + 1):
                r = -abs(um - ub[j]) * inv_s - lm
                if r > 0.0:
                    h = 1.0 if e == 1 else e * _power(r, e - 1)
                    gw[b, j] += gm * _power(r, e)
                    diff = um - ub[j]
                    if diff != 0.0:
                        ds = gm * h * (wb[j] - wbar) * inv_s
                        ds = ds if diff > 0.0 else -ds
                        acc -= ds
                        gu[b, j] += ds
            gu[b, m] += acc
    return gu, gw
