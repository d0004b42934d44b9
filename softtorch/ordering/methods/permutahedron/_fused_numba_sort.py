r"""Fused numba CPU kernels of ``fast_soft_sort``: sorted values (forward and closed-form backward,
parallel over rows and serial). Notation and the math: :mod:`._fused_numba`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._fused_numba import row_stats, sigmoid, std_backward
from ._pav_numba import _solve_rows

# numba's on-disk cache of a kernel is keyed on its own file only: a change of ``_solve_rows``
# (in ``_pav_numba``) must come with a change of this file, or stale cached kernels keep the old
# PAV (last: exact singleton blocks and the [min w, max w] clamp).

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
        mean, std = row_stats(x, r, n, standardize)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(n):  # perm is ascending; w descending
            xi = np.float64(x[r, perm[r, n - 1 - j]])
            w[r, j] = sigmoid((xi - mean) / std) if standardize else xi
        wlo = w[r, n - 1]  # the projection lies in [min w, max w] (kept against rounding)
        whi = w[r, 0]
        c = 0.0
        if reg >= 2 and not standardize and w[r, n - 1] < 0.0:
            c = w[r, n - 1]
            for j in range(n):
                w[r, j] -= c
        stats[r, 2] = c
        _solve_rows(s, w, reg, o, pi, aux, blk, r, r + 1, scr, start, 2)
        for j in range(n):
            v = min(max(o[r, j] + c, wlo), whi) if c != 0.0 else o[r, j]
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
            std_backward(x, r, n, mean, std, seg, gx, g_mean, g_std)


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
