r"""Fused numba CPU kernels of ``fast_soft_sort``: ranks (forward and closed-form backward,
parallel over rows and serial). Notation and the math: :mod:`._fused_numba`.

Masked rows (``masked=True``, ``mask`` (R, n) bool): the forward compacts the ascending order
``perm[r]`` to the row's ``c`` real entries (in place; ``cnt[r] = c``), standardizes over them and
solves the projection of length ``c`` against the row's anchors ``rho[r]`` (``rho_c``); ranks
are ``1 + (c - 1) o`` at real entries and 0 at padded ones, whose gradient is 0.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._fused_numba import compact, row_stats, sigmoid, std_backward
from ._pav_numba import solve_prefix

# numba's on-disk cache of a kernel is keyed on its own file only: a change of ``solve_prefix``
# (in ``_pav_numba``) must come with a change of this file, or stale cached kernels keep the old
# PAV (last: the per-row prefix length of masked rows).

# ---------------------------------------------------------------------------------------- rank


@nb.njit(cache=True)
def _rank_fwd_rows(  # noqa: ANN201, PLR0913
    x, perm, rho, reg, standardize, descending, inv_eps, out, s, o, pi, aux, blk, stats,  # noqa: ANN001
    mask, masked, cnt, r0, r1, scr, start,  # noqa: ANN001
):
    n = x.shape[1]
    for r in range(r0, r1):
        c = n
        if masked:
            c = compact(perm, mask, r, n)
            for i in range(n):
                out[r, i] = 0.0
        cnt[r] = c
        if c == 0:
            continue
        mean, std = row_stats(x, perm, r, c, standardize, masked)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(c):  # s = -z / eps descending = z ascending
            xi = np.float64(x[r, perm[r, j]])
            zi = sigmoid((xi - mean) / std) if standardize else xi
            s[r, j] = -zi * inv_eps
        solve_prefix(s, rho, reg, o, pi, aux, blk, r, c, scr, start, 1)
        for j in range(c):
            rk = 1.0 + (c - 1) * o[r, j]
            out[r, perm[r, j]] = rk if descending else (c + 1) - rk


@nb.njit(parallel=True, cache=True)
def rank_fwd_par(  # noqa: ANN201, PLR0913
    x, perm, rho, reg, standardize, descending, inv_eps, out, s, o, pi, aux, blk, stats,  # noqa: ANN001
    mask, masked, cnt, scr, start,  # noqa: ANN001
):
    r_tot = x.shape[0]
    chunks = scr.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _rank_fwd_rows(
            x, perm, rho, reg, standardize, descending, inv_eps, out, s, o, pi, aux, blk, stats,
            mask, masked, cnt, r0, r1, scr[k], start[k],
        )  # fmt: skip


@nb.njit(cache=True)
def rank_fwd_serial(  # noqa: ANN201, PLR0913
    x, perm, rho, reg, standardize, descending, inv_eps, out, s, o, pi, aux, blk, stats,  # noqa: ANN001
    mask, masked, cnt, scr, start,  # noqa: ANN001
):
    _rank_fwd_rows(
        x, perm, rho, reg, standardize, descending, inv_eps, out, s, o, pi, aux, blk, stats,
        mask, masked, cnt, 0, x.shape[0], scr[0], start[0],
    )  # fmt: skip


@nb.njit(cache=True)
def _rank_bwd_rows(  # noqa: ANN201, PLR0913
    gy, x, perm, reg, standardize, descending, inv_eps, pi, aux, blk, stats, s, gx,  # noqa: ANN001
    masked, cnt, r0, r1, tmp,  # noqa: ANN001
):
    n = x.shape[1]
    go = tmp[0]
    seg = tmp[1]
    gu = tmp[2]
    for r in range(r0, r1):
        c = cnt[r]
        if masked:
            for i in range(n):
                gx[r, i] = 0.0
        if c == 0:
            continue
        sign = (c - 1.0) if descending else -(c - 1.0)
        mean = stats[r, 0]
        std = stats[r, 1]
        for j in range(c):
            go[j] = np.float64(gy[r, perm[r, j]]) * sign
            seg[j] = 0.0
        # PAV vjp w.r.t. s (see fast_soft_sort._vjp)
        if reg == 0 or reg == 1:
            for j in range(c):
                seg[blk[r, j]] += go[j]
            for j in range(c):
                go[j] = go[j] - pi[r, j] * seg[blk[r, j]]
        else:
            for j in range(c):
                go[j] = aux[r, j] * go[j]
                seg[blk[r, j]] += go[j]
            for j in range(c):
                go[j] = go[j] - pi[r, j] * seg[blk[r, j]]
        for j in range(c):
            i = perm[r, j]
            gz = -go[j] * inv_eps
            if standardize:  # the forward's s holds -z / eps in sorted order
                zi = -s[r, j] / inv_eps
                gu[i] = gz * zi * (1.0 - zi)
            else:
                gx[r, i] = gz
        if standardize:
            std_backward(x, perm, r, c, masked, mean, std, gu, gx, 0.0, 0.0)


@nb.njit(parallel=True, cache=True)
def rank_bwd_par(  # noqa: ANN201, PLR0913
    gy, x, perm, reg, standardize, descending, inv_eps, pi, aux, blk, stats, s, gx,  # noqa: ANN001
    masked, cnt, tmp,  # noqa: ANN001
):
    r_tot = x.shape[0]
    chunks = tmp.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _rank_bwd_rows(
            gy, x, perm, reg, standardize, descending, inv_eps, pi, aux, blk, stats, s, gx,
            masked, cnt, r0, r1, tmp[k],
        )  # fmt: skip


@nb.njit(cache=True)
def rank_bwd_serial(  # noqa: ANN201, PLR0913
    gy, x, perm, reg, standardize, descending, inv_eps, pi, aux, blk, stats, s, gx,  # noqa: ANN001
    masked, cnt, tmp,  # noqa: ANN001
):
    _rank_bwd_rows(
        gy, x, perm, reg, standardize, descending, inv_eps, pi, aux, blk, stats, s, gx,
        masked, cnt, 0, x.shape[0], tmp[0],
    )  # fmt: skip
