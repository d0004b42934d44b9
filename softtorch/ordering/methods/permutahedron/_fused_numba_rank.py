r"""Fused numba CPU kernels of ``fast_soft_sort``: ranks (forward and closed-form backward,
parallel over rows and serial). Notation and the math: :mod:`._fused_numba`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._fused_numba import row_stats, sigmoid, std_backward
from ._pav_numba import _solve_rows

# numba's on-disk cache of a kernel is keyed on its own file only: a change of ``_solve_rows``
# (in ``_pav_numba``) must come with a change of this file, or stale cached kernels keep the old
# PAV (last: exact singleton blocks and the [min w, max w] clamp).

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
        mean, std = row_stats(x, r, n, standardize)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(n):  # s = -z / eps descending = z ascending
            xi = np.float64(x[r, perm[r, j]])
            zi = sigmoid((xi - mean) / std) if standardize else xi
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
            std_backward(x, r, n, mean, std, gu, gx, 0.0, 0.0)


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
