r"""CPU kernels (numba) of NeuralSort's soft pairwise sums, ``smooth`` mode, float64.

With :math:`\varphi(d) = d\,(2\sigma(d/s) - 1) = |d|\,\frac{1 - e}{1 + e}`,
:math:`e = e^{-|d|/s}` (the soft absolute value) and its derivative
:math:`\varphi'(d) = \mathrm{sign}(d)\left[\frac{1 - e}{1 + e} + \frac{2|d|}{s}\frac{e}{(1 + e)^2}
\right]`:

* :func:`abs_sums`: :math:`B_j = \sum_k \varphi(z_j - z_k)`;
* :func:`abs_sums_vjp`: :math:`\sum_k (h_m + h_k)\,\varphi'(z_m - z_k)`, the gradient of
  :math:`\langle h, B\rangle` w.r.t. ``z`` (``\varphi'`` is odd).

One pass over the ``n x n`` pairs, ``O(n)`` memory; the exponential is the vectorisable
polynomial of :mod:`softtorch.kernels._numba_kernels` and the inner sums may be reassociated
(``fastmath`` ``reassoc``) so that LLVM vectorises them. The ``*_parallel`` variants spread the
rows over torch's intra-op threads. This module imports numba at import time;
:mod:`._neuralsort_stream` imports it on the first CPU call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ...kernels._numba_kernels import _exp

_FM = {"contract", "reassoc", "nsz", "arcp"}


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _abs_row(row, zj, inv_s):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    acc = 0.0
    for k in range(row.shape[0]):
        d = abs(zj - row[k])
        e = _exp(-d * inv_s)
        acc += d * (1.0 - e) / (1.0 + e)
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _vjp_row(row, hr, zm, hm, inv_s):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    acc = 0.0
    for k in range(row.shape[0]):
        d = zm - row[k]
        a = abs(d)
        e = _exp(-a * inv_s)
        q = 1.0 / (1.0 + e)
        der = (1.0 - e) * q + 2.0 * a * inv_s * e * q * q
        acc += (hm + hr[k]) * np.copysign(der, d)
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def abs_sums(z: np.ndarray, inv_s: float) -> np.ndarray:  # pragma: no cover - compiled
    """``B[b, j] = sum_k phi(z[b, j] - z[b, k])`` for ``z`` of shape ``(batch, n)``."""
    nb_, n = z.shape
    out = np.empty_like(z)
    for b in range(nb_):
        for j in range(n):
            out[b, j] = _abs_row(z[b], z[b, j], inv_s)
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def abs_sums_parallel(z: np.ndarray, inv_s: float) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`abs_sums` with the ``batch * n`` rows spread over threads."""
    nb_, n = z.shape
    out = np.empty_like(z)
    for t in nb.prange(nb_ * n):
        b, j = t // n, t % n
        out[b, j] = _abs_row(z[b], z[b, j], inv_s)
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def abs_sums_vjp(z: np.ndarray, h: np.ndarray, inv_s: float) -> np.ndarray:  # pragma: no cover
    """``out[b, m] = sum_k (h[b, m] + h[b, k]) phi'(z[b, m] - z[b, k])``."""
    nb_, n = z.shape
    out = np.empty_like(z)
    for b in range(nb_):
        for m in range(n):
            out[b, m] = _vjp_row(z[b], h[b], z[b, m], h[b, m], inv_s)
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def abs_sums_vjp_parallel(
    z: np.ndarray, h: np.ndarray, inv_s: float
) -> np.ndarray:  # pragma: no cover
    """:func:`abs_sums_vjp` with the ``batch * n`` rows spread over threads."""
    nb_, n = z.shape
    out = np.empty_like(z)
    for t in nb.prange(nb_ * n):
        b, m = t // n, t % n
        out[b, m] = _vjp_row(z[b], h[b], z[b, m], h[b, m], inv_s)
    return out


# ----------------------------------------------------------------------------------------------
# banded softmax rows: row i of batch b covers the sorted columns lo[b, i] .. hi[b, i]
# (scores s_j = (c_i zs_j - bs_j) / s; see :mod:`._neuralsort_stream`)
# ----------------------------------------------------------------------------------------------


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _row_probs(zs, bs, c, lo, hi, inv_s, buf):  # noqa: ANN001, ANN202  # pragma: no cover
    """Fill ``buf[: hi - lo + 1]`` with the unnormalised ``exp(s_j - max)``; return their sum."""
    w = hi - lo + 1
    top = -np.inf
    for t in range(w):
        v = (c * zs[lo + t] - bs[lo + t]) * inv_s
        buf[t] = v
        top = max(top, v)
    tot = 0.0
    for t in range(w):
        e = _exp(buf[t] - top)
        buf[t] = e
        tot += e
    return tot


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_values(zs, bs, xs, coef, lo, hi, inv_s):  # noqa: ANN001, ANN201  # pragma: no cover
    """``y[b, i] = sum_j P_ij xs[b, j]`` over the band of each row."""
    nb_, m = lo.shape
    y = np.empty((nb_, m))
    buf = np.empty(zs.shape[1])
    for b in range(nb_):
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            acc = 0.0
            for t in range(e - a + 1):
                acc += buf[t] * xs[b, a + t]
            y[b, i] = acc / tot
    return y


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_values_vjp(zs, bs, xs, coef, lo, hi, inv_s, y, g):  # noqa: ANN001, ANN201  # pragma: no cover
    """Sorted gradients ``(gx, gz, gb)`` of ``sum_i g_i y_i`` w.r.t. ``xs``, ``zs`` (direct) and
    ``bs``."""
    nb_, m = lo.shape
    n = zs.shape[1]
    gx = np.zeros((nb_, n))
    gz = np.zeros((nb_, n))
    gb = np.zeros((nb_, n))
    buf = np.empty(n)
    for b in range(nb_):
        gxr, gzr, gbr, xr = gx[b], gz[b], gb[b], xs[b]
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            gi = g[b, i] / tot
            yi = y[b, i]
            cz = coef[i] * inv_s
            for t in range(e - a + 1):
                pg = buf[t] * gi
                ds = pg * (xr[a + t] - yi)
                gxr[a + t] += pg
                gzr[a + t] += ds * cz
                gbr[a + t] -= ds * inv_s
    return gx, gz, gb


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_colsums(zs, bs, coef, lo, hi, inv_s):  # noqa: ANN001, ANN201  # pragma: no cover
    """Column sums ``(num, den)``: ``num_j = sum_i (i + 1) P_ij``, ``den_j = sum_i P_ij``."""
    nb_, m = lo.shape
    n = zs.shape[1]
    num = np.zeros((nb_, n))
    den = np.zeros((nb_, n))
    buf = np.empty(n)
    for b in range(nb_):
        nr, dr = num[b], den[b]
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            inv = 1.0 / tot
            pos = (i + 1) * inv
            for t in range(e - a + 1):
                nr[a + t] += buf[t] * pos
                dr[a + t] += buf[t] * inv
    return num, den


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_colsums_vjp(zs, bs, coef, lo, hi, inv_s, dnum, dden):  # noqa: ANN001, ANN201  # pragma: no cover
    """Sorted gradients ``(gz, gb)`` of ``<dnum, num> + <dden, den>`` (direct ``zs`` part)."""
    nb_, m = lo.shape
    n = zs.shape[1]
    gz = np.zeros((nb_, n))
    gb = np.zeros((nb_, n))
    buf = np.empty(n)
    for b in range(nb_):
        gzr, gbr, dn, dd = gz[b], gb[b], dnum[b], dden[b]
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            inv = 1.0 / tot
            pos = float(i + 1)
            dot = 0.0
            for t in range(e - a + 1):
                dot += buf[t] * (pos * dn[a + t] + dd[a + t])
            dot *= inv
            cz = coef[i] * inv_s
            for t in range(e - a + 1):
                ds = buf[t] * inv * (pos * dn[a + t] + dd[a + t] - dot)
                gzr[a + t] += ds * cz
                gbr[a + t] -= ds * inv_s
    return gz, gb
