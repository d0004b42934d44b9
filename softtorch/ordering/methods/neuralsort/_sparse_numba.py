r"""CPU kernels (numba, float64) of the band correction of NeuralSort's sparse-mode ``B``.

On ascending points :math:`u_1 \le \dots \le u_n` and with :math:`\psi(d) = d\,(2\sigma(d) - 1)`
the soft absolute value of the mode (``sigma`` the mode's sigmoidal with transition band
``|d| < w``, :func:`..._sigmoidal_math.step`), in :math:`x = d / w` inside the band
:math:`\psi = w\,Q(x)` with the even polynomial ``c0``: :math:`Q = x^2`; ``c1``
(:math:`\sigma = t^2 (3 - 2t)`, :math:`t = (1 + x)/2`): :math:`Q = (3x^2 - x^4)/2`; ``c2``
(:math:`\sigma = t^3 (t (6t - 15) + 10)`): :math:`Q = (15x^2 - 10x^4 + 3x^6)/8`. The correction is

.. math:: C_k = \sum_{j \ne k,\ |u_k - u_j| < w} \phi_{kj}(u_k - u_j), \qquad
          \phi_{kj}(d) = w\,\bigl(Q(d/w) - s_{kj}\, d/w\bigr),

with :math:`s_{kj} = \mathrm{sign}(k - j)` (``|d|`` on sorted points, written so that tied pairs
get the index sign, as the prefix sums of :mod:`._sparse`). The band ``lo_k..hi_k``
moves monotonically with ``k`` (two pointers), so each pass is ``O(n * band)``.

* :func:`band_correction`: ``C`` of ``u`` ``(batch, n)``.
* :func:`band_correction_vjp`: :math:`\nabla u_k = \sum_j \phi_{kj}'(u_k - u_j)\,(g_k + g_j)`
  (``phi'`` is odd in the pair, so both ends of a pair share the factor).
* :func:`lower_hull`: the lower convex envelope of the points ``(u_j, B_j)`` of each row, read at
  every ``u_j`` (monotone chain and interpolation, ``O(n)`` per row).

This module imports numba at import time; :mod:`._sparse` imports it on the first
CPU call.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=False)
def _side(ub, uk, a, c, sgn, w, e):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Sum of ``phi(u_k - u_j) / w = Q(x) - sgn x`` (``x = (u_k - u_j) / w``) over ``j`` in
    ``a..c-1``; one branch-free loop per mode, so each vectorises."""
    iw = 1.0 / w
    acc = 0.0
    if e == 0:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            acc += x * (x - sgn)
    elif e == 1:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            x2 = x * x
            acc += x2 * (1.5 - 0.5 * x2) - sgn * x
    else:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            x2 = x * x
            acc += x2 * (1.875 + x2 * (-1.25 + 0.375 * x2)) - sgn * x
    return acc * w


@nb.njit(error_model="numpy", fastmath={"reassoc", "contract"}, cache=False)
def _side_vjp(ub, gb, uk, gk, a, c, sgn, w, e):  # noqa: ANN001, ANN202  # pragma: no cover
    """Sum of ``phi'(u_k - u_j) (g_k + g_j) = (Q'(x) - sgn) (g_k + g_j)`` over ``j`` in
    ``a..c-1`` (one branch-free loop per mode)."""
    iw = 1.0 / w
    acc = 0.0
    if e == 0:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            acc += (2.0 * x - sgn) * (gk + gb[j])
    elif e == 1:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            acc += (x * (3.0 - 2.0 * x * x) - sgn) * (gk + gb[j])
    else:
        for j in range(a, c):
            x = (uk - ub[j]) * iw
            x2 = x * x
            acc += (x * (3.75 + x2 * (-5.0 + 2.25 * x2)) - sgn) * (gk + gb[j])
    return acc


@nb.njit(error_model="numpy", cache=False)
def _bands(ub, w):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``lo, hi``: per ``k``, the first ``j`` with ``u_k - u_j < w`` and one past the last ``j``
    with ``u_j - u_k < w`` (two pointers)."""
    n = ub.shape[0]
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    a = 0
    c = 0
    for k in range(n):
        while ub[k] - ub[a] >= w:
            a += 1
        c = max(c, k + 1)
        while c < n and ub[c] - ub[k] < w:
            c += 1
        lo[k] = a
        hi[k] = c
    return lo, hi


@nb.njit(error_model="numpy", cache=False)
def band_correction(u, w, e):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``C`` ``(batch, n)`` of ascending ``u`` (see the module docstring); ``e``: 0/1/2 for
    ``c0``/``c1``/``c2``."""
    out = np.zeros_like(u)
    for b in range(u.shape[0]):
        ub = u[b]
        lo, hi = _bands(ub, w)
        for k in range(ub.shape[0]):
            uk = ub[k]
            out[b, k] = _side(ub, uk, lo[k], k, 1.0, w, e) + _side(ub, uk, k + 1, hi[k], -1.0, w, e)
    return out


@nb.njit(error_model="numpy", cache=False)
def band_correction_vjp(u, g, w, e):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``grad_u`` of ``<g, C>`` (see the module docstring)."""
    gu = np.zeros_like(u)
    for b in range(u.shape[0]):
        ub = u[b]
        gb = g[b]
        lo, hi = _bands(ub, w)
        for k in range(ub.shape[0]):
            uk = ub[k]
            gk = gb[k]
            gu[b, k] = _side_vjp(ub, gb, uk, gk, lo[k], k, 1.0, w, e) + _side_vjp(
                ub, gb, uk, gk, k + 1, hi[k], -1.0, w, e
            )
    return gu


@nb.njit(error_model="numpy", cache=False)
def _hull_row(x, y, hull, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``out = min(y, env)`` with ``env`` the lower convex envelope of ``(x_j, y_j)`` (``x``
    ascending): the monotone chain (a vertex stays while the turn to the next point is strictly
    convex), then linear interpolation between consecutive vertices (a vertical pair: the
    lower of its two values)."""
    n = x.shape[0]
    h = 0
    for j in range(n):
        while h >= 2:
            i0 = hull[h - 2]
            i1 = hull[h - 1]
            cross = (x[i1] - x[i0]) * (y[j] - y[i0]) - (y[i1] - y[i0]) * (x[j] - x[i0])
            if cross > 0.0:
                break
            h -= 1
        hull[h] = j
        h += 1
    out[0] = y[0]
    for v in range(h - 1):
        p = hull[v]
        q = hull[v + 1]
        dx = x[q] - x[p]
        for j in range(p + 1, q):
            if dx > 0.0:
                env = (y[q] - y[p]) / dx * (x[j] - x[p]) + y[p]
            else:
                env = min(y[p], y[q])
            out[j] = min(y[j], env)
        out[q] = y[q]


@nb.njit(error_model="numpy", cache=False)
def lower_hull(x, y):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """:func:`_hull_row` of each row of ``x`` / ``y`` ``(batch, n)`` (float64, ``n >= 1``)."""
    out = np.empty_like(y)
    hull = np.empty(x.shape[1], np.int64)
    for b in range(x.shape[0]):
        _hull_row(x[b], y[b], hull, out[b])
    return out
