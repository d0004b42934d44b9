r"""CPU kernels (numba) of NeuralSort's streamed path (``smooth``): pairwise sums, band rows.

With :math:`\varphi(d) = d\,(2\sigma(d/s) - 1) = |d|\,\frac{1 - e}{1 + e}`,
:math:`e = e^{-|d|/s}` (the soft absolute value) and its derivative
:math:`\varphi'(d) = \mathrm{sign}(d)\left[\frac{1 - e}{1 + e} + \frac{2|d|}{s}\frac{e}{(1 + e)^2}
\right]`:

* :func:`abs_sums`: :math:`B_j = \sum_k \varphi(z_j - z_k)`;
* :func:`abs_sums_vjp`: :math:`\sum_k (h_m + h_k)\,\varphi'(z_m - z_k)`, the gradient of
  :math:`\langle h, B\rangle` w.r.t. ``z`` (``\varphi'`` is odd),

both for rows ``z`` sorted ascending: each pair ``j < k`` is evaluated once (``\varphi`` is even,
``\varphi'`` odd) and added to both ends; pairs with :math:`|d|/s >` :data:`CUT` contribute exactly
``|d|`` (``\varphi' = \pm 1``) in float64 and are summed by prefix sums; inside the window the
exponentials are products :math:`e^{-(z_k - z_r)/s}\,e^{(z_j - z_r)/s}` of one buffer per
reference ``z_r`` (rows within :data:`SPAN` softnesses of it) and one exponential per row. So the
cost is ``n^2 / 2`` pairs without exponentials at most, ``O(n)`` memory. The exponential is the
vectorisable polynomial of :mod:`softtorch.kernels._numba_kernels`; the inner loops take row
slices and may be reassociated (``fastmath`` ``reassoc``) so that LLVM vectorises them. The
``*_parallel`` variants deal the rows round-robin to private accumulators on torch's intra-op
threads. The band kernels evaluate the softmax rows on their bands (values, ranks, written rows
of ``P`` and their gradients); the written rows and their gradient have ``*_parallel`` variants
too (one contiguous range of rows per thread, private accumulators in the gradient). This
module imports numba at import time; :mod:`._smooth` imports it on the first CPU call.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ....kernels._numba_kernels import _exp

_FM = {"contract", "reassoc", "nsz", "arcp"}


#: Pairs with ``|d| / s`` beyond this contribute exactly ``|d|`` to the sums and ``sign(d)`` to
#: the derivative in float64 (``2 (|d| / s) e^{-|d| / s} < 2^{-54}``): prefix sums, no exponential.
CUT: float = 45.0
#: Rows sharing one reference of the exponentials span at most this many softnesses.
SPAN: float = 32.0


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _window_ends(z, inv_s):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``kend[j]``: the last ``k >= j`` with ``(z[k] - z[j]) / s <= CUT`` (``z`` ascending;
    non-decreasing in ``j``)."""
    n = z.shape[0]
    kend = np.empty(n, np.int64)
    k = 0
    for j in range(n):
        k = max(k, j)
        while k + 1 < n and (z[k + 1] - z[j]) * inv_s <= CUT:
            k += 1
        kend[j] = k
    return kend


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _fill(z, inv_s, j, kk, ref, filled, ebuf):  # noqa: ANN001, ANN202  # pragma: no cover
    """Row ``j``'s exponentials ``ebuf[k] = exp(-(z[k] - z[ref]) / s)`` up to ``kk`` (a new
    reference ``ref = j`` once the rows span ``SPAN`` softnesses); returns ``(ref, filled, c)``
    with ``c = exp((z[j] - z[ref]) / s)``, so that ``exp(-(z[k] - z[j]) / s) = ebuf[k] c``."""
    if ref < 0 or (z[j] - z[ref]) * inv_s > SPAN:
        ref, filled = j, j
    zr = z[ref]
    lo = max(filled + 1, j + 1)
    _exps(z[lo : kk + 1], zr, inv_s, ebuf[lo : kk + 1])
    return ref, max(filled, kk), _exp((z[j] - zr) * inv_s)


# the inner loops take slices (fresh arrays) so that LLVM vectorises them


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _exps(zk, zr, inv_s, ek):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for k in range(zk.shape[0]):
        ek[k] = _exp(-(zk[k] - zr) * inv_s)


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _sum_pairs(zk, ek, ok, zj, c):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    acc = 0.0
    for k in range(zk.shape[0]):
        a = zk[k] - zj
        e = ek[k] * c
        v = a * (1.0 - e) / (1.0 + e)
        acc += v
        ok[k] += v
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _vjp_pairs(zk, hk, ek, ok, zj, hj, c, inv_s):  # noqa: ANN001, ANN202  # pragma: no cover
    acc = 0.0
    for k in range(zk.shape[0]):
        a = zk[k] - zj
        e = ek[k] * c
        q = 1.0 / (1.0 + e)
        w = (hj + hk[k]) * ((1.0 - e) * q + 2.0 * a * inv_s * e * q * q)
        acc += w
        ok[k] += w
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _sum_rows(z, kend, inv_s, start, step, out, ebuf):  # noqa: ANN001, ANN202  # pragma: no cover
    """``out[j] += sum_k phi(z_k - z_j)``, ``out[k] += phi(...)`` over the pairs
    ``j < k <= kend[j]`` of the rows ``start, start + step, ...`` (each pair once: ``phi`` is
    even)."""
    n = z.shape[0]
    ref, filled = -1, -1
    for j in range(start, n, step):
        kk = kend[j]
        if kk <= j:
            continue
        ref, filled, c = _fill(z, inv_s, j, kk, ref, filled, ebuf)
        r = slice(j + 1, kk + 1)
        out[j] += _sum_pairs(z[r], ebuf[r], out[r], z[j], c)


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _vjp_rows(z, h, kend, inv_s, start, step, out, ebuf):  # noqa: ANN001, ANN202  # pragma: no cover
    """The pairs of :func:`_sum_rows` for the gradient: ``w = (h_j + h_k) phi'(z_k - z_j)``,
    ``out[k] += w``, ``out[j] -= w`` (``phi'`` is odd)."""
    n = z.shape[0]
    ref, filled = -1, -1
    for j in range(start, n, step):
        kk = kend[j]
        if kk <= j:
            continue
        ref, filled, c = _fill(z, inv_s, j, kk, ref, filled, ebuf)
        r = slice(j + 1, kk + 1)
        out[j] -= _vjp_pairs(z[r], h[r], ebuf[r], out[r], z[j], h[j], c, inv_s)


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _prefix(t, base):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``pre[i] = sum_{k < i} (t[k] - base)``, ``n + 1`` entries."""
    n = t.shape[0]
    pre = np.empty(n + 1)
    pre[0] = 0.0
    for i in range(n):
        pre[i + 1] = pre[i] + (t[i] - base)
    return pre


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _tails(z, w, kend, sign, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """The pairs ``j < k`` beyond the windows (``k > kend[j]``) by prefix sums of ``w``.

    Sums (``sign = 1``, ``w = z``, shifted by ``z[0]``): each pair adds ``phi = w_k - w_j`` to both
    ``out[j]`` and ``out[k]``. Gradient (``sign = -1``, ``w = h``): ``phi' = 1``, each pair adds
    ``h_j + h_k`` to ``out[k]`` and subtracts it from ``out[j]``. The rows ``j`` having ``k`` in
    their tail are ``j < J_k`` (``kend`` is non-decreasing)."""
    n = z.shape[0]
    base = z[0] if sign > 0 else 0.0
    pre = _prefix(w, base)
    for j in range(n):
        cnt = n - 1 - kend[j]
        if cnt > 0:
            rest = pre[n] - pre[kend[j] + 1]
            out[j] += sign * rest - cnt * (w[j] - base)
    jj = 0
    for k in range(n):
        while jj < n and kend[jj] < k:
            jj += 1
        if jj > 0:
            out[k] += jj * (w[k] - base) - sign * pre[jj]


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def abs_sums(z: np.ndarray, inv_s: float) -> np.ndarray:  # pragma: no cover - compiled
    """``B[b, j] = sum_k phi(z[b, j] - z[b, k])`` for ``z`` ``(batch, n)`` sorted ascending."""
    nb_, n = z.shape
    out = np.zeros_like(z)
    ebuf = np.empty(n)
    for b in range(nb_):
        kend = _window_ends(z[b], inv_s)
        _sum_rows(z[b], kend, inv_s, 0, 1, out[b], ebuf)
        _tails(z[b], z[b], kend, 1.0, out[b])
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def abs_sums_parallel(z: np.ndarray, inv_s: float, threads: int) -> np.ndarray:  # pragma: no cover
    """:func:`abs_sums` with the rows dealt round-robin to ``threads`` private accumulators."""
    nb_, n = z.shape
    kend = np.empty((nb_, n), np.int64)
    for b in range(nb_):
        kend[b] = _window_ends(z[b], inv_s)
    part = np.zeros((threads, nb_, n))
    for t in nb.prange(threads):
        ebuf = np.empty(n)
        for b in range(nb_):
            _sum_rows(z[b], kend[b], inv_s, t, threads, part[t, b], ebuf)
    out = np.zeros_like(z)
    for b in range(nb_):
        for t in range(threads):
            out[b] += part[t, b]
        _tails(z[b], z[b], kend[b], 1.0, out[b])
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def abs_sums_vjp(z: np.ndarray, h: np.ndarray, inv_s: float) -> np.ndarray:  # pragma: no cover
    """``out[b, m] = sum_k (h[b, m] + h[b, k]) phi'(z[b, m] - z[b, k])``, ``z`` sorted ascending."""
    nb_, n = z.shape
    out = np.zeros_like(z)
    ebuf = np.empty(n)
    for b in range(nb_):
        kend = _window_ends(z[b], inv_s)
        _vjp_rows(z[b], h[b], kend, inv_s, 0, 1, out[b], ebuf)
        _tails(z[b], h[b], kend, -1.0, out[b])
    return out


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def abs_sums_vjp_parallel(
    z: np.ndarray, h: np.ndarray, inv_s: float, threads: int
) -> np.ndarray:  # pragma: no cover
    """:func:`abs_sums_vjp` with the rows dealt round-robin to ``threads`` accumulators."""
    nb_, n = z.shape
    kend = np.empty((nb_, n), np.int64)
    for b in range(nb_):
        kend[b] = _window_ends(z[b], inv_s)
    part = np.zeros((threads, nb_, n))
    for t in nb.prange(threads):
        ebuf = np.empty(n)
        for b in range(nb_):
            _vjp_rows(z[b], h[b], kend[b], inv_s, t, threads, part[t, b], ebuf)
    out = np.zeros_like(z)
    for b in range(nb_):
        for t in range(threads):
            out[b] += part[t, b]
        _tails(z[b], h[b], kend[b], -1.0, out[b])
    return out


# ----------------------------------------------------------------------------------------------
# banded softmax rows: row i of batch b covers the sorted columns lo[b, i] .. hi[b, i]
# (scores s_j = (c_i zs_j - bs_j) / s; see :mod:`._smooth`)
# ----------------------------------------------------------------------------------------------


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _probs(zr, br, c, inv_s, p):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``p = exp(s - max s)`` for the band's scores ``s = (c zr - br) / s``; returns their sum."""
    top = -np.inf
    for t in range(zr.shape[0]):
        v = (c * zr[t] - br[t]) * inv_s
        p[t] = v
        top = max(top, v)
    tot = 0.0
    for t in range(p.shape[0]):
        e = _exp(p[t] - top)
        p[t] = e
        tot += e
    return tot


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _row_probs(zs, bs, c, lo, hi, inv_s, buf):  # noqa: ANN001, ANN202  # pragma: no cover
    """Fill ``buf[: hi - lo + 1]`` with the unnormalised ``exp(s_j - max)``; return their sum.
    (The inner loops below take slices of the band, so that LLVM vectorises them.)"""
    return _probs(zs[lo : hi + 1], bs[lo : hi + 1], c, inv_s, buf[: hi - lo + 1])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _dot(p, x):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    acc = 0.0
    for t in range(p.shape[0]):
        acc += p[t] * x[t]
    return acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _add_ds(ds, cz, inv_s, gz, gb):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``gz += ds c / s``, ``gb -= ds / s`` (the score gradient ``ds`` of a band)."""
    for t in range(ds.shape[0]):
        gz[t] += ds[t] * cz
        gb[t] -= ds[t] * inv_s


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _softmax_ds(p, gv, dot, scale):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``p <- scale p (gv - dot)`` in place (``dS = P (G - <P, G>)``)."""
    for t in range(p.shape[0]):
        p[t] = scale * p[t] * (gv[t] - dot)


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
            y[b, i] = _dot(buf[: e - a + 1], xs[b, a : e + 1]) / tot
    return y


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _values_acc(p, xr, yi, gi, cz, inv_s, gx, gz, gb):  # noqa: ANN001, ANN202  # pragma: no cover
    for t in range(p.shape[0]):
        pg = p[t] * gi
        ds = pg * (xr[t] - yi)
        gx[t] += pg
        gz[t] += ds * cz
        gb[t] -= ds * inv_s


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
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            r = slice(a, e + 1)
            _values_acc(
                buf[: e - a + 1], xs[b, r], y[b, i], g[b, i] / tot, coef[i] * inv_s, inv_s,
                gx[b, r], gz[b, r], gb[b, r],
            )  # fmt: skip
    return gx, gz, gb


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _colsums_acc(p, pos, inv, nr, dr):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for t in range(p.shape[0]):
        nr[t] += p[t] * pos
        dr[t] += p[t] * inv


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_colsums(zs, bs, coef, lo, hi, inv_s):  # noqa: ANN001, ANN201  # pragma: no cover
    """Column sums ``(num, den)``: ``num_j = sum_i (i + 1) P_ij``, ``den_j = sum_i P_ij``."""
    nb_, m = lo.shape
    n = zs.shape[1]
    num = np.zeros((nb_, n))
    den = np.zeros((nb_, n))
    buf = np.empty(n)
    for b in range(nb_):
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            inv = 1.0 / _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            r = slice(a, e + 1)
            _colsums_acc(buf[: e - a + 1], (i + 1) * inv, inv, num[b, r], den[b, r])
    return num, den


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _colsums_g(dn, dd, pos, gv):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for t in range(dn.shape[0]):
        gv[t] = pos * dn[t] + dd[t]


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_colsums_vjp(zs, bs, coef, lo, hi, inv_s, dnum, dden):  # noqa: ANN001, ANN201  # pragma: no cover
    """Sorted gradients ``(gz, gb)`` of ``<dnum, num> + <dden, den>`` (direct ``zs`` part)."""
    nb_, m = lo.shape
    n = zs.shape[1]
    gz = np.zeros((nb_, n))
    gb = np.zeros((nb_, n))
    buf = np.empty(n)
    gbuf = np.empty(n)
    for b in range(nb_):
        for i in range(m):
            a, e = lo[b, i], hi[b, i]
            w = e - a + 1
            inv = 1.0 / _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
            r = slice(a, e + 1)
            p, gv = buf[:w], gbuf[:w]
            _colsums_g(dnum[b, r], dden[b, r], float(i + 1), gv)
            _softmax_ds(p, gv, _dot(p, gv) * inv, inv)
            _add_ds(p, coef[i] * inv_s, inv_s, gz[b, r], gb[b, r])
    return gz, gb


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _put_row(buf, pr, a, e, inv, row):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``row = 0`` then ``row[pr[a + t]] = buf[t] * inv`` over the band ``a..e``."""
    row[:] = 0.0
    for t in range(e - a + 1):
        row[pr[a + t]] = buf[t] * inv


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _band_rows_range(zs, bs, coef, lo, hi, inv_s, perm, out, r0, r1, buf):  # noqa: ANN001, ANN202  # pragma: no cover
    """Rows ``r0 .. r1 - 1`` of the flattened ``(batch * m)`` rows of :func:`band_rows`."""
    m = lo.shape[1]
    for r in range(r0, r1):
        b = r // m
        i = r - b * m
        a = lo[b, i]
        e = hi[b, i]
        tot = _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
        _put_row(buf, perm[b], a, e, 1.0 / tot, out[b, i])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_rows(zs, bs, coef, lo, hi, inv_s, perm, out):  # noqa: ANN001, ANN201  # pragma: no cover
    """``out[b, i]`` (``(batch, m, n)``, float32 / float64): zeros plus row ``i``'s band, each
    row zeroed and filled while it is in cache."""
    buf = np.empty(zs.shape[1])
    _band_rows_range(zs, bs, coef, lo, hi, inv_s, perm, out, 0, lo.shape[0] * lo.shape[1], buf)


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def band_rows_parallel(zs, bs, coef, lo, hi, inv_s, perm, out, threads):  # noqa: ANN001, ANN201  # pragma: no cover
    """:func:`band_rows` with the flattened rows split into ``threads`` contiguous ranges."""
    rows = lo.shape[0] * lo.shape[1]
    buf = np.empty((threads, zs.shape[1]))
    for t in nb.prange(threads):
        r0 = (np.int64(t) * rows) // threads
        r1 = ((np.int64(t) + 1) * rows) // threads
        _band_rows_range(zs, bs, coef, lo, hi, inv_s, perm, out, r0, r1, buf[t])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _get_band(gr, pr, a, w, gv):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``gv[t] = gr[pr[a + t]]`` for ``t < w`` (the incoming gradient on a band)."""
    for t in range(w):
        gv[t] = gr[pr[a + t]]


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _band_vjp_range(zs, bs, coef, lo, hi, inv_s, perm, g, r0, r1, gz, gb, buf, gbuf):  # noqa: ANN001, ANN202  # pragma: no cover
    """Rows ``r0 .. r1 - 1`` of :func:`band_rows_vjp`, accumulated into ``gz`` / ``gb``."""
    m = lo.shape[1]
    for r in range(r0, r1):
        b = r // m
        i = r - b * m
        a = lo[b, i]
        e = hi[b, i]
        inv = 1.0 / _row_probs(zs[b], bs[b], coef[i], a, e, inv_s, buf)
        w = e - a + 1
        _get_band(g[b, i], perm[b], a, w, gbuf)
        p = buf[:w]
        gv = gbuf[:w]
        _softmax_ds(p, gv, _dot(p, gv) * inv, inv)
        _add_ds(p, coef[i] * inv_s, inv_s, gz[b, a : e + 1], gb[b, a : e + 1])


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def band_rows_vjp(zs, bs, coef, lo, hi, inv_s, perm, g):  # noqa: ANN001, ANN201  # pragma: no cover
    """Sorted gradients ``(gz, gb)`` (direct ``zs`` part) of ``<g, P_rows>``: ``G`` is ``g`` read
    on the bands only (``g`` may have any strides, e.g. an expanded gradient),
    ``dS = P (G - <P, G>)``."""
    nb_, m = lo.shape
    n = zs.shape[1]
    gz = np.zeros((nb_, n))
    gb = np.zeros((nb_, n))
    buf = np.empty(n)
    gbuf = np.empty(n)
    _band_vjp_range(zs, bs, coef, lo, hi, inv_s, perm, g, 0, nb_ * m, gz, gb, buf, gbuf)
    return gz, gb


@nb.njit(error_model="numpy", fastmath=_FM, cache=False)
def _sum_parts(part, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``out = part.sum(0)`` (``part`` ``(threads, batch, n)``)."""
    for b in range(out.shape[0]):
        for j in range(out.shape[1]):
            acc = part[0, b, j]
            for t in range(1, part.shape[0]):
                acc += part[t, b, j]
            out[b, j] = acc


@nb.njit(error_model="numpy", fastmath=_FM, cache=False, parallel=True)
def band_rows_vjp_parallel(zs, bs, coef, lo, hi, inv_s, perm, g, threads):  # noqa: ANN001, ANN201  # pragma: no cover
    """:func:`band_rows_vjp` with the rows split into ``threads`` contiguous ranges, each with
    private ``gz`` / ``gb`` accumulators (summed at the end)."""
    nb_, m = lo.shape
    n = zs.shape[1]
    rows = nb_ * m
    pz = np.zeros((threads, nb_, n))
    pb = np.zeros((threads, nb_, n))
    buf = np.empty((threads, n))
    gbuf = np.empty((threads, n))
    for t in nb.prange(threads):
        r0 = (np.int64(t) * rows) // threads
        r1 = ((np.int64(t) + 1) * rows) // threads
        _band_vjp_range(
            zs, bs, coef, lo, hi, inv_s, perm, g, r0, r1, pz[t], pb[t], buf[t], gbuf[t]
        )
    gz = np.empty((nb_, n))
    gb = np.empty((nb_, n))
    _sum_parts(pz, gz)
    _sum_parts(pb, gb)
    return gz, gb
