r"""Numba CPU kernel of the signed pair sum of ``kendall_loss`` for a piecewise-linear soft sign,
:math:`O(n \log n)` per list (imported on first use: ``import softtorch`` never loads numba).

For one list with predictions ``z``, targets ``t`` and item weights ``w``, and the soft sign
:math:`\varphi(d) = \mathrm{clip}(d / h, -1, 1)` (``c0``; ``h = 0`` is the exact ``sign``),

.. math::

    N = \sum_{i \ne j} w_i w_j\, \mathrm{sign}(t_i - t_j)\, \varphi(z_i - z_j)
      = \sum_k w_k (L_k - H_k),

with :math:`L_k = \sum_{t_j < t_k} w_j \varphi(z_k - z_j)` and :math:`H_k` the same sum over
:math:`t_j > t_k`. A sweep over the items in ascending target order (a group of equal targets is
queried before any of its members is inserted, so ties in ``t`` pair with nothing) keeps two
Fenwick trees over the positions of the sorted ``z``, holding :math:`w_j` and :math:`w_j z_j` of
the items seen so far. For item ``k``, with ``a`` the number of sorted ``z <= z_k - h`` and
``b`` the number of ``z < z_k + h``,

.. math::

    L_k = W_{<a} - W_{\ge b} + \big(z_k (W_{<b} - W_{<a}) - (Z_{<b} - Z_{<a})\big) / h

(saturated at +1, saturated at -1, and the linear band; for ``h = 0``, ``a`` / ``b`` count the
``z < z_k`` / ``z <= z_k`` and the band is the ties, where the sign is 0). A second sweep in
descending order gives :math:`H_k`. The gradients are closed-form from the same sweeps:
:math:`\partial N / \partial w_k = 2 (L_k - H_k)` and
:math:`\partial N / \partial z_k = 2 w_k (B^<_k - B^>_k) / h`, with :math:`B^{<}_k`
(:math:`B^>_k`) the weight of the items of smaller (larger) target inside the band
:math:`|z_k - z_j| < h` (0 for ``h = 0``). Everything is in float64; ``z`` is centred per list
first (the soft sign depends on differences only) so the band sums do not cancel.

**Band + count** (:func:`band_sum_serial`, any soft sign that is exactly :math:`\pm 1` for
:math:`|d| \ge h`: ``smooth`` with :math:`h = 40 s`, ``c0`` / ``c1`` / ``c2`` with
:math:`h = 5 s`). The same sweeps with an empty band count the saturated pairs; the pairs with
:math:`|z_k - z_j| < h` (the band, tested as the rounded difference so both ends of a pair agree)
are a window of the sorted predictions and are summed directly, each unordered pair once
(:math:`\varphi` odd, :math:`\varphi'` even), with
:math:`\partial N / \partial z_k = 2 w_k \sum_j w_j\, \mathrm{sign}(t_k - t_j)\,
\varphi'(z_k - z_j)` over the band (saturated pairs have zero gradient). Cost
:math:`O(n \log n + P)` for :math:`P` band pairs; no centering is needed (the terms are
evaluated at the differences, as the dense formula does). ``c0`` rows with a wide band
(many pairs, not narrow against the spread) go to the moment sweep above.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def _add(tree, i, v, vz):  # noqa: ANN001, ANN202
    """Add ``(v, vz)`` at 0-based position ``i`` of the Fenwick tree ``tree`` ((n + 1, 2):
    the weights and the weighted predictions, traversed together)."""
    n = tree.shape[0] - 1
    k = i + 1
    while k <= n:
        tree[k, 0] += v
        tree[k, 1] += vz
        k += k & (-k)


@nb.njit(cache=True, inline="always")
def _prefix(tree, k):  # noqa: ANN001, ANN202
    """Both sums over the positions ``< k``."""
    s = 0.0
    sz = 0.0
    while k > 0:
        s += tree[k, 0]
        sz += tree[k, 1]
        k -= k & (-k)
    return s, sz


@nb.njit(cache=True)
def _sweep(zr, tr, wr, h, hard, order, pos, a, b, tree, dr, er, sign):  # noqa: ANN001, ANN202
    """One sweep over ``order`` (targets ascending): ``dr += sign * L``, ``er += sign * B``."""
    n = zr.shape[0]
    tree[:] = 0.0
    tot = 0.0
    g0 = 0
    while g0 < n:
        g1 = g0 + 1
        while g1 < n and tr[order[g1]] == tr[order[g0]]:
            g1 += 1
        for q in range(g0, g1):
            i = order[q]
            wa, za = _prefix(tree, a[i])
            wb, zb = _prefix(tree, b[i])
            v = wa - (tot - wb)
            if not hard:
                v += (zr[i] * (wb - wa) - (zb - za)) / h
                er[i] += sign * (wb - wa)
            dr[i] += sign * v
        for q in range(g0, g1):
            i = order[q]
            _add(tree, pos[i], wr[i], wr[i] * zr[i])
            tot += wr[i]
        g0 = g1


@nb.njit(cache=True)
def _row(z, t, w, h, hard, num, d, e, r):  # noqa: ANN001, ANN202, C901
    n = z.shape[1]
    zr = np.empty(n)
    m = 0.0
    for i in range(n):
        m += z[r, i]
    m /= n
    for i in range(n):
        zr[i] = z[r, i] - m
        d[r, i] = 0.0
        e[r, i] = 0.0
    tr = t[r]
    wr = w[r]
    oz = np.argsort(zr)
    pos = np.empty(n, np.int64)
    for k in range(n):
        pos[oz[k]] = k
    # a: how many z <= z_i - h (hard: z < z_i), b: how many z < z_i + h (hard: z <= z_i);
    # both non-decreasing along the sorted z: two pointers
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    p = 0
    q = 0
    for k in range(n):
        v = zr[oz[k]]
        if hard:
            while p < n and zr[oz[p]] < v:
                p += 1
            while q < n and zr[oz[q]] <= v:
                q += 1
        else:
            while p < n and zr[oz[p]] <= v - h:
                p += 1
            while q < n and zr[oz[q]] < v + h:
                q += 1
        a[oz[k]] = p
        b[oz[k]] = q
    ot = np.argsort(tr, kind="mergesort")
    tree = np.empty((n + 1, 2))
    dr = d[r]
    er = e[r]
    _sweep(zr, tr, wr, h, hard, ot, pos, a, b, tree, dr, er, 1.0)
    _sweep(zr, tr, wr, h, hard, ot[::-1], pos, a, b, tree, dr, er, -1.0)
    s = 0.0
    for i in range(n):
        s += wr[i] * dr[i]
        dr[i] *= 2.0
        if not hard:
            er[i] *= 2.0 * wr[i] / h
    num[r] = s


@nb.njit(cache=True)
def pair_sum_serial(z, t, w, h, hard, num, d, e):  # noqa: ANN001, ANN201
    """Every row on one thread: ``num`` (R,), ``d = dN/dw`` and ``e = dN/dz`` (R, n)."""
    for r in range(z.shape[0]):
        _row(z, t, w, h, hard, num, d, e, r)


@nb.njit(parallel=True, cache=True)
def pair_sum_par(z, t, w, h, hard, num, d, e):  # noqa: ANN001, ANN201
    """Same as :func:`pair_sum_serial`, rows in parallel."""
    for r in nb.prange(z.shape[0]):
        _row(z, t, w, h, hard, num, d, e, r)


# ------------------------------------------------------------------ band + count (smooth, c1, c2)
#: Codes of the soft signs of :func:`band_sum_serial` (``u`` = the pair distance / ``scale``).
SMOOTH, C0, C1, C2 = 0, 1, 2, 3
#: ``C0`` rows take the sweep only if the spread of their scores is at most this many ``h``.
C0_SWEEP_SPREAD = 1024.0


@nb.njit(cache=True, inline="always")
def _odd(u, code):  # noqa: ANN001, ANN202
    r""":math:`\varphi` and :math:`\varphi'` (per unit of ``u``) at ``u >= 0`` inside the band:
    ``smooth`` :math:`\tanh(u / 2)`; ``c0`` / ``c1`` / ``c2`` the odd polynomials
    :math:`u`, :math:`(3u - u^3)/2`, :math:`(15u - 10u^3 + 3u^5)/8` (``u < 1``)."""
    if code == SMOOTH:  # tanh(u / 2) = -m / (2 + m), m = exp(-u) - 1 (no cancellation)
        if u > 0.5:  # 1 - exp(-u) > 0.39: exp is enough (and cheaper than expm1)
            ex = math.exp(-u)
            q = 1.0 / (1.0 + ex)
            return (1.0 - ex) * q, 2.0 * ex * q * q
        m = math.expm1(-u)
        q = 1.0 / (2.0 + m)
        return -m * q, 2.0 * (1.0 + m) * q * q
    if code == C0:
        return u, 1.0
    v = u * u
    if code == C1:
        return u * (3.0 - v) * 0.5, 1.5 * (1.0 - v)
    c = 1.0 - v
    return u * (15.0 + v * (3.0 * v - 10.0)) * 0.125, 1.875 * c * c


@nb.njit(cache=True)
def _band_pairs(zs, ts, ws, bs, inv, code, ds, es, k0, k1):  # noqa: ANN001, ANN202
    """``ds``, ``es`` += the terms of ``D`` and ``E / inv`` of the band pairs ``(k, j)``,
    ``k0 <= k < k1``, ``k < j < bs[k]`` (sorted order; ``bs``: the end of each item's band),
    each unordered pair once: with ``c = sign(t_j - t_k)``, ``k`` gets ``w_j c f`` and
    ``-w_j c g``, ``j`` gets ``w_k c f`` and ``w_k c g``."""
    for k in range(k0, k1):
        zk = zs[k]
        tk = ts[k]
        wk = ws[k]
        dk = 0.0
        ek = 0.0
        for j in range(k + 1, bs[k]):
            tj = ts[j]
            c = (1.0 if tk < tj else 0.0) - (1.0 if tj < tk else 0.0)
            f, g = _odd((zs[j] - zk) * inv, code)
            cf = c * f
            cg = c * g
            dk += ws[j] * cf
            ek -= ws[j] * cg
            ds[j] += wk * cf
            es[j] += wk * cg
        ds[k] += dk
        es[k] += ek


@nb.njit(parallel=True, cache=True)
def _band_pairs_par(zs, ts, ws, bs, inv, code, ds, es, chunks):  # noqa: ANN001, ANN202
    """:func:`_band_pairs` of one long row in ``chunks`` ranges of ``k`` with about equal
    numbers of pairs, in parallel, each into its own buffers (summed at the end)."""
    n = zs.shape[0]
    cum = np.empty(n + 1)
    cum[0] = 0.0
    for k in range(n):
        cum[k + 1] = cum[k] + (bs[k] - k - 1)
    bounds = np.empty(chunks + 1, np.int64)
    for c in range(chunks + 1):
        bounds[c] = min(n, np.searchsorted(cum, cum[n] * c / chunks))
    bounds[chunks] = n
    bd = np.zeros((chunks, n))
    be = np.zeros((chunks, n))
    for c in nb.prange(chunks):
        _band_pairs(zs, ts, ws, bs, inv, code, bd[c], be[c], bounds[c], bounds[c + 1])
    for c in range(chunks):
        for k in range(n):
            ds[k] += bd[c, k]
            es[k] += be[c, k]


@nb.njit(cache=True)
def _band_row(z, t, w, h, scale, code, limit, chunks, num, d, e, r):  # noqa: ANN001, ANN202, C901
    n = z.shape[1]
    zr = z[r]
    tr = t[r]
    wr = w[r]
    dr = d[r]
    er = e[r]
    for i in range(n):
        dr[i] = 0.0
        er[i] = 0.0
    oz = np.argsort(zr, kind="mergesort")
    pos = np.empty(n, np.int64)
    for k in range(n):
        pos[oz[k]] = k
    # the band of item k: the j with |z_j - z_k| < h, as the rounded difference (the same
    # predicate from both ends of a pair, monotone along the sorted z); a: how many
    # z_k - z_j >= h, b: how many z_j - z_k < h
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    p = 0
    q = 0
    for k in range(n):
        v = zr[oz[k]]
        while p < n and v - zr[oz[p]] >= h:
            p += 1
        while q < n and zr[oz[q]] - v < h:
            q += 1
        a[oz[k]] = p
        b[oz[k]] = q
    if code == C0:
        inside = 0
        for i in range(n):
            inside += b[i] - a[i] - 1
        spread = zr[oz[n - 1]] - zr[oz[0]]
        # a wide band (many pairs, not narrow against the spread: the sweep's band moments then
        # keep about eps * spread / h): the sweep (C0 only)
        if inside > 2 * limit * n and spread <= C0_SWEEP_SPREAD * h:
            _row(z, t, w, h, False, num, d, e, r)
            return
    # the saturated pairs (+-1): counted by the sweeps with an empty band
    ot = np.argsort(tr, kind="mergesort")
    tree = np.empty((n + 1, 2))
    _sweep(zr, tr, wr, h, True, ot, pos, a, b, tree, dr, er, 1.0)
    _sweep(zr, tr, wr, h, True, ot[::-1], pos, a, b, tree, dr, er, -1.0)
    # the band pairs, each unordered pair once (phi odd, phi' even), in sorted order
    zs = np.empty(n)
    ts = np.empty(n)
    ws = np.empty(n)
    bs = np.empty(n, np.int64)
    for k in range(n):
        zs[k] = zr[oz[k]]
        ts[k] = tr[oz[k]]
        ws[k] = wr[oz[k]]
        bs[k] = b[oz[k]]
    ds = np.zeros(n)
    es = np.zeros(n)
    inv = 1.0 / scale
    if chunks > 1:
        _band_pairs_par(zs, ts, ws, bs, inv, code, ds, es, chunks)
    else:
        _band_pairs(zs, ts, ws, bs, inv, code, ds, es, 0, n)
    for k in range(n):
        dr[oz[k]] += ds[k]
        er[oz[k]] += es[k]
    s = 0.0
    for i in range(n):
        s += wr[i] * dr[i]
        dr[i] *= 2.0
        er[i] *= 2.0 * wr[i] * inv
    num[r] = s


@nb.njit(cache=True)
def band_sum_serial(z, t, w, h, scale, code, limit, chunks, num, d, e):  # noqa: ANN001, ANN201
    r"""The pair sum for a soft sign that is exactly :math:`\pm 1` beyond :math:`|z_i - z_j| \ge h`
    (``code``: :data:`SMOOTH`, :data:`C0`, :data:`C1`, :data:`C2`, evaluated at
    :math:`|z_i - z_j| / \mathrm{scale}`), every row on one thread: ``num`` (R,),
    ``d = dN/dw`` and ``e = dN/dz`` (R, n). ``C0`` rows whose band holds more than ``limit``
    pairs per item take the sweep (:func:`pair_sum_serial`, ``h = scale``) instead. ``chunks``
    > 1: the band pairs of each row in that many parallel parts (for few long rows)."""
    for r in range(z.shape[0]):
        _band_row(z, t, w, h, scale, code, limit, chunks, num, d, e, r)


@nb.njit(parallel=True, cache=True)
def band_sum_par(z, t, w, h, scale, code, limit, num, d, e):  # noqa: ANN001, ANN201
    """Same as :func:`band_sum_serial` (``chunks = 1``), rows in parallel."""
    for r in nb.prange(z.shape[0]):
        _band_row(z, t, w, h, scale, code, limit, 1, num, d, e, r)
