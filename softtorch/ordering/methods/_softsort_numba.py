r"""CPU kernels (numba) of SoftSort's written soft permutation, ``smooth`` mode.

Row ``i`` of the permutation is :math:`P_{ij} = \exp(-|a_i - z_j| / s - \log D_i)` with the
anchors ``a`` and the ``O(n)`` log-normalisers :math:`\log D_i` (:mod:`._softsort_stream`).

* :func:`perm_rows` writes each row in one pass, straight into the output;
* :func:`perm_rows_vjp` recomputes a row, reads the incoming gradient ``G`` of the row twice
  while it is in cache and accumulates, with :math:`r_i = \sum_j P_{ij} G_{ij}` and
  :math:`dS_{ij} = P_{ij}(G_{ij} - r_i)\,\mathrm{sign}(a_i - z_j)`,
  :math:`\nabla a_i = -\frac1s \sum_j dS_{ij}` and :math:`\nabla z_j = \frac1s \sum_i dS_{ij}`.

Everything is evaluated in the dtype of ``z`` (float32 or float64), as on the torch path. The
exponential is the vectorisable polynomial of :mod:`softtorch.kernels._numba_kernels`; the inner
loops take contiguous row slices (a strided gradient row is copied first) so that LLVM vectorises
them. This module imports numba at import time; :mod:`._softsort_stream` imports it on the first
CPU call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ...kernels._numba_kernels import _exp

_FM = {"contract", "reassoc", "nsz", "arcp"}


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _fill(ai, zr, ld, inv_s, row):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for j in range(zr.shape[0]):
        row[j] = _exp(-abs(ai - zr[j]) * inv_s - ld)


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _probs_dot(ai, zr, ld, inv_s, gr, buf):  # noqa: ANN001, ANN202  # pragma: no cover
    """``buf = P_i``; returns :math:`\\sum_j P_{ij} G_{ij}` (in ``zr``'s dtype)."""
    acc = zr[0] * 0
    for j in range(zr.shape[0]):
        p = _exp(-abs(ai - zr[j]) * inv_s - ld)
        buf[j] = p
        acc += p * gr[j]
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _row_grads(ai, zr, gr, buf, r, gz):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``gz[j] += dS_ij``; returns :math:`\\sum_j dS_{ij}` (without the ``1/s`` factors)."""
    acc = zr[0] * 0
    for j in range(zr.shape[0]):
        d = ai - zr[j]
        sg = np.sign(d)
        ds = buf[j] * (gr[j] - r) * sg
        acc += ds
        gz[j] += ds
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _copy(src, dst):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for j in range(src.shape[0]):
        dst[j] = src[j]


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def perm_rows(a, z, logd, inv_s, out):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``out[b, i, j] = exp(-|a[b, i] - z[b, j]| * inv_s - logd[b, i])`` (``inv_s`` of ``z``'s
    dtype)."""
    nb_, m = a.shape
    for b in range(nb_):
        for i in range(m):
            _fill(a[b, i], z[b], logd[b, i], inv_s, out[b, i])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def perm_rows_vjp(a, z, logd, inv_s, g):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``(ga, gz)`` (``z``'s dtype) of ``<g, P>`` for :func:`perm_rows`; ``g`` ``(batch, m, n)`` may
    have any strides."""
    nb_, m = a.shape
    n = z.shape[1]
    ga = np.zeros((nb_, m), z.dtype)
    gz = np.zeros((nb_, n), z.dtype)
    buf = np.empty(n, z.dtype)
    gr = np.empty(n, z.dtype)  # the row of g, contiguous (g may be strided / expanded)
    s = inv_s
    for b in range(nb_):
        for i in range(m):
            _copy(g[b, i], gr)
            r = _probs_dot(a[b, i], z[b], logd[b, i], inv_s, gr, buf)
            ga[b, i] = -s * _row_grads(a[b, i], z[b], gr, buf, r, gz[b])
        for j in range(n):
            gz[b, j] *= s
    return ga, gz
