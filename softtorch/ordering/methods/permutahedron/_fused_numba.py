r"""Fused numba CPU kernels for ``fast_soft_sort`` sort values and ranks, standardization included.

This module holds the per-row helpers (statistics, sigmoid, the standardization backward, the
compaction of a masked row's order);
the kernels are in :mod:`._fused_numba_sort` and :mod:`._fused_numba_rank`.
One kernel call per direction replaces the chain standardize -> sort -> PAV -> inverse map (and
its backward) of about thirty small torch operations. The permutation comes from the radix
argsort of :mod:`._radix_numba` (numpy's ``argsort`` for short rows); everything else runs
row by row in float64: per-row statistics, the PAV of :mod:`._pav_numba` and the closed-form
backward.

Notation for one row ``x`` of length ``n`` (see :mod:`.fast_soft_sort` for the projection):
standardization :math:`\mu = \bar x`, :math:`\sigma = \sqrt{\mathrm{var}(x) + 10^{-6}}`,
:math:`u = (x - \mu)/\sigma`, :math:`z = \mathrm{sigmoid}(u)` (``z = x`` when not standardized).

* sort: ``w = z`` sorted descending, :math:`o = P(\rho/\varepsilon, w)` (``rho`` =
  ``linspace(1, 0, n)``), values :math:`y = \mathrm{logit}(\mathrm{clip}(o))\,\sigma + \mu`
  (``y = o`` when not standardized; p-norm modes shift negative anchors by ``c = min(0, min w)``).
* rank: ``s = -z/eps`` sorted descending, :math:`o = P(s, \rho)`, rank ``1 + (n - 1) o`` scattered
  back to the input order.

Backward of the standardization (``g_u`` the gradient w.r.t. ``u``, ``g_mu``, ``g_sigma`` the
direct gradients of the inverse map):
:math:`g_x = g_u/\sigma - \overline{g_u}/\sigma - x_c \langle g_u, x_c\rangle/(n\sigma^3)
+ g_\mu/n + g_\sigma x_c/(n\sigma)`, with :math:`x_c = x - \mu`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

VAR_EPS = 1e-6


@nb.njit(cache=True, inline="always")
def col(perm, r, j, masked):  # noqa: ANN001, ANN201
    """Input column of the ``j``-th real entry of row ``r`` (``j`` itself when not masked)."""
    return perm[r, j] if masked else j


@nb.njit(cache=True)
def compact(perm, mask, r, n):  # noqa: ANN001, ANN201
    """Keep the real entries of the ascending order ``perm[r]`` at its front (in place, order
    kept); return their count ``c``."""
    c = 0
    for j in range(n):
        p = perm[r, j]
        if mask[r, p]:
            perm[r, c] = p
            c += 1
    return c


@nb.njit(cache=True, inline="always")
def row_stats(x, perm, r, c, standardize, masked):  # noqa: ANN001, ANN201
    """Mean and ``sqrt(var + VAR_EPS)`` of the ``c`` real entries of row ``r``."""
    if not standardize:
        return 0.0, 1.0
    m = 0.0
    for j in range(c):
        m += np.float64(x[r, col(perm, r, j, masked)])
    m /= c
    v = 0.0
    for j in range(c):
        d = np.float64(x[r, col(perm, r, j, masked)]) - m
        v += d * d
    return m, math.sqrt(v / c + VAR_EPS)


@nb.njit(cache=True, inline="always")
def sigmoid(u: float) -> float:
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


@nb.njit(cache=True, inline="always")
def std_backward(x, perm, r, c, masked, mean, std, gu, gx, g_mean, g_std):  # noqa: ANN001
    """Write ``g_x`` at the ``c`` real entries of row ``r`` from ``g_u`` (scratch indexed by
    input column) and the direct terms."""
    su = 0.0
    sux = 0.0
    for j in range(c):
        i = col(perm, r, j, masked)
        xc = np.float64(x[r, i]) - mean
        su += gu[i]
        sux += gu[i] * xc
    a = su / (c * std)
    b = sux / (c * std * std * std)
    cm = g_mean / c
    d = g_std / (c * std)
    for j in range(c):
        i = col(perm, r, j, masked)
        xc = np.float64(x[r, i]) - mean
        gx[r, i] = gu[i] / std - a - xc * b + cm + xc * d
