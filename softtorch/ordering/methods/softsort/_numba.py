r"""CPU kernels (numba) of SoftSort's written soft permutation, ``smooth`` mode.

Row ``i`` of the permutation is :math:`P_{ij} = \exp(-|a_i - z_j| / s - \log D_i)` with the
anchors ``a`` and the ``O(n)`` log-normalisers :math:`\log D_i` (:mod:`._smooth`).

* :func:`perm_rows` writes each row in one pass, straight into the output;
* :func:`perm_rows_vjp` recomputes a row, reads the incoming gradient ``G`` of the row twice
  while it is in cache and accumulates, with :math:`r_i = \sum_j P_{ij} G_{ij}` and
  :math:`dS_{ij} = P_{ij}(G_{ij} - r_i)\,\mathrm{sign}(a_i - z_j)`,
  :math:`\nabla a_i = -\frac1s \sum_j dS_{ij}` and :math:`\nabla z_j = \frac1s \sum_i dS_{ij}`.

Everything is evaluated in the dtype of ``z`` (float32 or float64), as on the torch path. The
exponential is the vectorisable polynomial of :mod:`softtorch.kernels._numba_kernels`; the inner
loops take contiguous row slices (a strided gradient row is copied first) so that LLVM vectorises
them. The ``*_parallel`` variants split the rows into one contiguous range per thread (private
``gz`` accumulators in the backward). This module imports numba at import time;
:mod:`._smooth` imports it on the first CPU call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ....kernels._numba_kernels import _exp

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
def _fill_rows(a, z, logd, inv_s, out, r0, r1):  # noqa: ANN001, ANN202  # pragma: no cover
    """Rows ``r0 .. r1 - 1`` of the flattened ``(batch * m)`` rows of :func:`perm_rows`."""
    m = a.shape[1]
    for r in range(r0, r1):
        b = r // m
        i = r - b * m
        _fill(a[b, i], z[b], logd[b, i], inv_s, out[b, i])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _vjp_rows(a, z, logd, inv_s, g, r0, r1, ga, gz, buf, gr):  # noqa: ANN001, ANN202  # pragma: no cover
    """Rows ``r0 .. r1 - 1`` of :func:`perm_rows_vjp`: ``ga`` (final) and the unscaled ``gz``
    (``(batch, n)``, accumulated)."""
    m = a.shape[1]
    for r in range(r0, r1):
        b = r // m
        i = r - b * m
        _copy(g[b, i], gr)
        dot = _probs_dot(a[b, i], z[b], logd[b, i], inv_s, gr, buf)
        ga[b, i] = -inv_s * _row_grads(a[b, i], z[b], gr, buf, dot, gz[b])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def perm_rows(a, z, logd, inv_s, out):  # noqa: ANN001, ANN201  # pragma: no cover - compiled
    """``out[b, i, j] = exp(-|a[b, i] - z[b, j]| * inv_s - logd[b, i])`` (``inv_s`` of ``z``'s
    dtype)."""
    _fill_rows(a, z, logd, inv_s, out, 0, a.shape[0] * a.shape[1])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def perm_rows_parallel(a, z, logd, inv_s, out, threads):  # noqa: ANN001, ANN201  # pragma: no cover
    """:func:`perm_rows` with the flattened rows split into ``threads`` contiguous ranges."""
    rows = a.shape[0] * a.shape[1]
    for t in nb.prange(threads):
        r0 = (np.int64(t) * rows) // threads
        r1 = ((np.int64(t) + 1) * rows) // threads
        _fill_rows(a, z, logd, inv_s, out, r0, r1)


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
    _vjp_rows(a, z, logd, inv_s, g, 0, nb_ * m, ga, gz, buf, gr)
    for b in range(nb_):
        for j in range(n):
            gz[b, j] *= inv_s
    return ga, gz


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _reduce(part, scale, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``out = scale * part.sum(0)`` (``part`` ``(threads, batch, n)``)."""
    for b in range(out.shape[0]):
        for j in range(out.shape[1]):
            acc = part[0, b, j]
            for t in range(1, part.shape[0]):
                acc += part[t, b, j]
            out[b, j] = scale * acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def perm_rows_vjp_parallel(a, z, logd, inv_s, g, threads):  # noqa: ANN001, ANN201  # pragma: no cover
    """:func:`perm_rows_vjp` with the rows split into ``threads`` contiguous ranges, each with
    a private ``gz`` accumulator (summed at the end)."""
    nb_, m = a.shape
    n = z.shape[1]
    rows = nb_ * m
    ga = np.zeros((nb_, m), z.dtype)
    part = np.zeros((threads, nb_, n), z.dtype)
    buf = np.empty((threads, n), z.dtype)
    gr = np.empty((threads, n), z.dtype)
    for t in nb.prange(threads):
        r0 = (np.int64(t) * rows) // threads
        r1 = ((np.int64(t) + 1) * rows) // threads
        _vjp_rows(a, z, logd, inv_s, g, r0, r1, ga, part[t], buf[t], gr[t])
    gz = np.empty((nb_, n), z.dtype)
    _reduce(part, inv_s, gz)
    return ga, gz
