r"""Fused numba CPU kernels for ``fast_soft_sort`` sort values and ranks, standardization included.

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

from ._pav_numba import _solve_rows

VAR_EPS = 1e-6


@nb.njit(cache=True, inline="always")
def _stats(x, r, n, standardize):  # noqa: ANN001, ANN202
    if not standardize:
        return 0.0, 1.0
    m = 0.0
    for i in range(n):
        m += np.float64(x[r, i])
    m /= n
    v = 0.0
    for i in range(n):
        d = np.float64(x[r, i]) - m
        v += d * d
    return m, math.sqrt(v / n + VAR_EPS)


@nb.njit(cache=True, inline="always")
def _sigmoid(u: float) -> float:
    if u >= 0.0:
        return 1.0 / (1.0 + math.exp(-u))
    e = math.exp(u)
    return e / (1.0 + e)


@nb.njit(cache=True, inline="always")
def _std_backward(x, r, n, mean, std, gu, gx, g_mean, g_std):  # noqa: ANN001
    """Write ``g_x`` for row ``r`` from ``g_u`` (scratch, length n) and the direct terms."""
    su = 0.0
    sux = 0.0
    for i in range(n):
        xc = np.float64(x[r, i]) - mean
        su += gu[i]
        sux += gu[i] * xc
    a = su / (n * std)
    b = sux / (n * std * std * std)
    c = g_mean / n
    d = g_std / (n * std)
    for i in range(n):
        xc = np.float64(x[r, i]) - mean
        gx[r, i] = gu[i] / std - a - xc * b + c + xc * d


# ---------------------------------------------------------------------------------------- sort


@nb.njit(cache=True)
def _sort_fwd_rows(  # noqa: ANN201, C901, PLR0913
    x,
    perm,
    s,
    reg,
    standardize,
    descending,
    lo,
    hi,
    out,
    w,
    o,
    pi,
    aux,
    blk,
    ds,
    stats,
    r0,
    r1,
    scr,
    start,  # noqa: ANN001
):
    n = x.shape[1]
    for r in range(r0, r1):
        mean, std = _stats(x, r, n, standardize)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(n):  # perm is ascending; w descending
            xi = np.float64(x[r, perm[r, n - 1 - j]])
            w[r, j] = _sigmoid((xi - mean) / std) if standardize else xi
        c = 0.0
        if reg >= 2 and not standardize and w[r, n - 1] < 0.0:
            c = w[r, n - 1]
            for j in range(n):
                w[r, j] -= c
        stats[r, 2] = c
        _solve_rows(s, w, reg, o, pi, aux, blk, r, r + 1, scr, start, 2)
        for j in range(n):
            v = o[r, j] + c
            if standardize:
                # kept for the backward: logit (in o), its scale (in ds), sigmoid' (in w)
                vc = min(max(v, lo), hi)
                lg = math.log(vc / (1.0 - vc)) if v == v else v
                o[r, j] = lg
                ds[r, j] = std / (vc * (1.0 - vc)) if lo <= v <= hi else 0.0
                w[r, j] = w[r, j] * (1.0 - w[r, j])
                v = lg * std + mean
            if descending:
                out[r, j] = v
            else:
                out[r, n - 1 - j] = v


@nb.njit(parallel=True, cache=True)
def sort_fwd_par(
    x,
    perm,
    s,
    reg,
    standardize,
    descending,
    lo,
    hi,
    out,
    w,
    o,
    pi,
    aux,
    blk,
    ds,
    stats,  # noqa: ANN001, ANN201, PLR0913
    scr,
    start,
):
    r_tot = x.shape[0]
    chunks = scr.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _sort_fwd_rows(
            x,
            perm,
            s,
            reg,
            standardize,
            descending,
            lo,
            hi,
            out,
            w,
            o,
            pi,
            aux,
            blk,
            ds,
            stats,
            r0,
            r1,
            scr[k],
            start[k],
        )


@nb.njit(cache=True)
def sort_fwd_serial(
    x,
    perm,
    s,
    reg,
    standardize,
    descending,
    lo,
    hi,
    out,
    w,
    o,
    pi,
    aux,
    blk,  # noqa: ANN001, ANN201, PLR0913
    ds,
    stats,
    scr,
    start,
):
    _sort_fwd_rows(
        x,
        perm,
        s,
        reg,
        standardize,
        descending,
        lo,
        hi,
        out,
        w,
        o,
        pi,
        aux,
        blk,
        ds,
        stats,
        0,
        x.shape[0],
        scr[0],
        start[0],
    )


@nb.njit(cache=True)
def _sort_bwd_rows(  # noqa: ANN201, C901, PLR0913
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    lo,
    hi,
    o,
    pi,
    aux,
    blk,
    w,
    ds,
    stats,
    gx,
    r0,
    r1,
    tmp,
):
    n = x.shape[1]
    go = tmp[0]
    seg = tmp[1]
    gz = tmp[2]
    for r in range(r0, r1):
        mean = stats[r, 0]
        std = stats[r, 1]
        c = stats[r, 2]
        g_mean = 0.0
        g_std = 0.0
        for j in range(n):
            g = np.float64(gy[r, j] if descending else gy[r, n - 1 - j])
            if standardize:  # o holds the logit, ds its derivative scale (see the forward)
                g_mean += g
                g_std += g * o[r, j]
                g = g * ds[r, j]
            go[j] = g
        for j in range(n):
            seg[j] = 0.0
        # PAV vjp w.r.t. the anchors w (see fast_soft_sort._vjp)
        if reg == 0 or reg == 1:
            for j in range(n):
                seg[blk[r, j]] += go[j]
            for j in range(n):
                gz[j] = seg[blk[r, j]] * (pi[r, j] if reg == 0 else aux[r, j])
        else:
            for j in range(n):
                seg[blk[r, j]] += pi[r, j] * go[j]
            for j in range(n):
                gz[j] = seg[blk[r, j]]
        if c != 0.0:  # o + c with c = w_min: d c / d w_min = 1, and w - c shifts every anchor
            tot_o = 0.0
            tot_w = 0.0
            for j in range(n):
                tot_o += go[j]
                tot_w += gz[j]
            gz[n - 1] += tot_o - tot_w
        # scatter to input order (w_j = z[perm[n-1-j]]) and chain through the sigmoid
        for j in range(n):
            i = perm[r, n - 1 - j]
            if standardize:
                seg[i] = gz[j] * w[r, j]  # w holds z (1 - z) at sorted position j
            else:
                gx[r, i] = gz[j]
        if standardize:
            _std_backward(x, r, n, mean, std, seg, gx, g_mean, g_std)


@nb.njit(parallel=True, cache=True)
def sort_bwd_par(
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    lo,
    hi,
    o,
    pi,
    aux,
    blk,
    w,
    ds,
    stats,
    gx,  # noqa: ANN001, ANN201, PLR0913
    tmp,
):
    r_tot = x.shape[0]
    chunks = tmp.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _sort_bwd_rows(
            gy,
            x,
            perm,
            reg,
            standardize,
            descending,
            lo,
            hi,
            o,
            pi,
            aux,
            blk,
            w,
            ds,
            stats,
            gx,
            r0,
            r1,
            tmp[k],
        )


@nb.njit(cache=True)
def sort_bwd_serial(
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    lo,
    hi,
    o,
    pi,
    aux,
    blk,
    w,
    ds,
    stats,  # noqa: ANN001, ANN201, PLR0913
    gx,
    tmp,
):
    _sort_bwd_rows(
        gy,
        x,
        perm,
        reg,
        standardize,
        descending,
        lo,
        hi,
        o,
        pi,
        aux,
        blk,
        w,
        ds,
        stats,
        gx,
        0,
        x.shape[0],
        tmp[0],
    )


# ---------------------------------------------------------------------------------------- rank


@nb.njit(cache=True)
def _rank_fwd_rows(  # noqa: ANN201, PLR0913
    x,
    perm,
    rho,
    reg,
    standardize,
    descending,
    inv_eps,
    out,
    s,
    o,
    pi,
    aux,
    blk,
    stats,
    r0,
    r1,
    scr,
    start,  # noqa: ANN001
):
    n = x.shape[1]
    for r in range(r0, r1):
        mean, std = _stats(x, r, n, standardize)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(n):  # s = -z / eps descending = z ascending
            xi = np.float64(x[r, perm[r, j]])
            zi = _sigmoid((xi - mean) / std) if standardize else xi
            s[r, j] = -zi * inv_eps
        _solve_rows(s, rho, reg, o, pi, aux, blk, r, r + 1, scr, start, 1)
        for j in range(n):
            rk = 1.0 + (n - 1) * o[r, j]
            out[r, perm[r, j]] = rk if descending else (n + 1) - rk


@nb.njit(parallel=True, cache=True)
def rank_fwd_par(
    x,
    perm,
    rho,
    reg,
    standardize,
    descending,
    inv_eps,
    out,
    s,
    o,
    pi,
    aux,
    blk,  # noqa: ANN001, ANN201, PLR0913
    stats,
    scr,
    start,
):
    r_tot = x.shape[0]
    chunks = scr.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _rank_fwd_rows(
            x,
            perm,
            rho,
            reg,
            standardize,
            descending,
            inv_eps,
            out,
            s,
            o,
            pi,
            aux,
            blk,
            stats,
            r0,
            r1,
            scr[k],
            start[k],
        )


@nb.njit(cache=True)
def rank_fwd_serial(
    x,
    perm,
    rho,
    reg,
    standardize,
    descending,
    inv_eps,
    out,
    s,
    o,
    pi,
    aux,
    blk,  # noqa: ANN001, ANN201, PLR0913
    stats,
    scr,
    start,
):
    _rank_fwd_rows(
        x,
        perm,
        rho,
        reg,
        standardize,
        descending,
        inv_eps,
        out,
        s,
        o,
        pi,
        aux,
        blk,
        stats,
        0,
        x.shape[0],
        scr[0],
        start[0],
    )


@nb.njit(cache=True)
def _rank_bwd_rows(  # noqa: ANN201, PLR0913
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    inv_eps,
    pi,
    aux,
    blk,
    stats,
    s,
    gx,
    r0,
    r1,
    tmp,
):
    n = x.shape[1]
    go = tmp[0]
    seg = tmp[1]
    gu = tmp[2]
    sign = (n - 1.0) if descending else -(n - 1.0)
    for r in range(r0, r1):
        mean = stats[r, 0]
        std = stats[r, 1]
        for j in range(n):
            go[j] = np.float64(gy[r, perm[r, j]]) * sign
            seg[j] = 0.0
        # PAV vjp w.r.t. s (see fast_soft_sort._vjp)
        if reg == 0 or reg == 1:
            for j in range(n):
                seg[blk[r, j]] += go[j]
            for j in range(n):
                go[j] = go[j] - pi[r, j] * seg[blk[r, j]]
        else:
            for j in range(n):
                go[j] = aux[r, j] * go[j]
                seg[blk[r, j]] += go[j]
            for j in range(n):
                go[j] = go[j] - pi[r, j] * seg[blk[r, j]]
        for j in range(n):
            i = perm[r, j]
            gz = -go[j] * inv_eps
            if standardize:  # the forward's s holds -z / eps in sorted order
                zi = -s[r, j] / inv_eps
                gu[i] = gz * zi * (1.0 - zi)
            else:
                gx[r, i] = gz
        if standardize:
            _std_backward(x, r, n, mean, std, gu, gx, 0.0, 0.0)


@nb.njit(parallel=True, cache=True)
def rank_bwd_par(
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    inv_eps,
    pi,
    aux,
    blk,
    stats,
    s,
    gx,  # noqa: ANN001, ANN201, PLR0913
    tmp,
):
    r_tot = x.shape[0]
    chunks = tmp.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _rank_bwd_rows(
            gy,
            x,
            perm,
            reg,
            standardize,
            descending,
            inv_eps,
            pi,
            aux,
            blk,
            stats,
            s,
            gx,
            r0,
            r1,
            tmp[k],
        )


@nb.njit(cache=True)
def rank_bwd_serial(
    gy,
    x,
    perm,
    reg,
    standardize,
    descending,
    inv_eps,
    pi,
    aux,
    blk,
    stats,
    s,
    gx,  # noqa: ANN001, ANN201, PLR0913
    tmp,
):
    _rank_bwd_rows(
        gy,
        x,
        perm,
        reg,
        standardize,
        descending,
        inv_eps,
        pi,
        aux,
        blk,
        stats,
        s,
        gx,
        0,
        x.shape[0],
        tmp[0],
    )
