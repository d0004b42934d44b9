r"""Fused numba CPU kernels of ``fast_soft_sort``: sorted values (forward and closed-form backward,
parallel over rows and serial). Notation and the math: :mod:`._fused_numba`.

Masked rows (``masked=True``, ``mask`` (R, n) bool): the forward compacts the ascending order
``perm[r]`` to the row's ``c`` real entries (in place, :func:`._fused_numba.compact`; ``cnt[r] =
c``), standardizes over them and solves the projection of length ``c`` with the row's anchors
``s[r]`` (``rho_c / eps``); output positions ``>= c`` are 0 and padded entries get gradient 0.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._fused_numba import compact, row_stats, sigmoid, std_backward
from ._pav_numba import solve_prefix

# numba's on-disk cache of a kernel is keyed on its own file only: a change of ``solve_prefix``
# (in ``_pav_numba``) must come with a change of this file, or stale cached kernels keep the old
# PAV (last: the per-row prefix length of masked rows).

# ---------------------------------------------------------------------------------------- sort


@nb.njit(cache=True)
def _sort_fwd_rows(  # noqa: ANN201, C901, PLR0913
    x, perm, s, reg, standardize, descending, lo, hi, out, w, o, pi, aux, blk, ds, stats,  # noqa: ANN001
    mask, masked, cnt, r0, r1, scr, start,  # noqa: ANN001
):
    n = x.shape[1]
    for r in range(r0, r1):
        c = n
        if masked:
            c = compact(perm, mask, r, n)
            for j in range(c, n):
                out[r, j] = 0.0
        cnt[r] = c
        if c == 0:
            continue
        mean, std = row_stats(x, perm, r, c, standardize, masked)
        stats[r, 0] = mean
        stats[r, 1] = std
        for j in range(c):  # perm is ascending; w descending
            xi = np.float64(x[r, perm[r, c - 1 - j]])
            w[r, j] = sigmoid((xi - mean) / std) if standardize else xi
        wlo = w[r, c - 1]  # the projection lies in [min w, max w] (kept against rounding)
        whi = w[r, 0]
        sh = 0.0
        if reg >= 2 and not standardize and w[r, c - 1] < 0.0:
            sh = w[r, c - 1]
            for j in range(c):
                w[r, j] -= sh
        stats[r, 2] = sh
        solve_prefix(s, w, reg, o, pi, aux, blk, r, c, scr, start, 2)
        for j in range(c):
            v = min(max(o[r, j] + sh, wlo), whi) if sh != 0.0 else o[r, j]
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
                out[r, c - 1 - j] = v


@nb.njit(parallel=True, cache=True)
def sort_fwd_par(  # noqa: ANN201, PLR0913
    x, perm, s, reg, standardize, descending, lo, hi, out, w, o, pi, aux, blk, ds, stats,  # noqa: ANN001
    mask, masked, cnt, scr, start,  # noqa: ANN001
):
    r_tot = x.shape[0]
    chunks = scr.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _sort_fwd_rows(
            x, perm, s, reg, standardize, descending, lo, hi, out, w, o, pi, aux, blk, ds, stats,
            mask, masked, cnt, r0, r1, scr[k], start[k],
        )  # fmt: skip


@nb.njit(cache=True)
def sort_fwd_serial(  # noqa: ANN201, PLR0913
    x, perm, s, reg, standardize, descending, lo, hi, out, w, o, pi, aux, blk, ds, stats,  # noqa: ANN001
    mask, masked, cnt, scr, start,  # noqa: ANN001
):
    _sort_fwd_rows(
        x, perm, s, reg, standardize, descending, lo, hi, out, w, o, pi, aux, blk, ds, stats,
        mask, masked, cnt, 0, x.shape[0], scr[0], start[0],
    )  # fmt: skip


@nb.njit(cache=True)
def _sort_bwd_rows(  # noqa: ANN201, C901, PLR0913
    gy, x, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats, gx,  # noqa: ANN001
    masked, cnt, r0, r1, tmp,  # noqa: ANN001
):
    n = x.shape[1]
    go = tmp[0]
    seg = tmp[1]
    gz = tmp[2]
    for r in range(r0, r1):
        c = cnt[r]
        if masked:
            for i in range(n):
                gx[r, i] = 0.0
        if c == 0:
            continue
        mean = stats[r, 0]
        std = stats[r, 1]
        sh = stats[r, 2]
        g_mean = 0.0
        g_std = 0.0
        for j in range(c):
            g = np.float64(gy[r, j] if descending else gy[r, c - 1 - j])
            if standardize:  # o holds the logit, ds its derivative scale (see the forward)
                g_mean += g
                g_std += g * o[r, j]
                g = g * ds[r, j]
            go[j] = g
        for j in range(c):
            seg[j] = 0.0
        # PAV vjp w.r.t. the anchors w (see fast_soft_sort._vjp)
        if reg == 0 or reg == 1:
            for j in range(c):
                seg[blk[r, j]] += go[j]
            for j in range(c):
                gz[j] = seg[blk[r, j]] * (pi[r, j] if reg == 0 else aux[r, j])
        else:
            for j in range(c):
                seg[blk[r, j]] += pi[r, j] * go[j]
            for j in range(c):
                gz[j] = seg[blk[r, j]]
        if sh != 0.0:  # o + sh with sh = w_min: d sh / d w_min = 1, and w - sh shifts every anchor
            tot_o = 0.0
            tot_w = 0.0
            for j in range(c):
                tot_o += go[j]
                tot_w += gz[j]
            gz[c - 1] += tot_o - tot_w
        # scatter to input order (w_j = z[perm[c-1-j]]) and chain through the sigmoid
        for j in range(c):
            i = perm[r, c - 1 - j]
            if standardize:
                seg[i] = gz[j] * w[r, j]  # w holds z (1 - z) at sorted position j
            else:
                gx[r, i] = gz[j]
        if standardize:
            std_backward(x, perm, r, c, masked, mean, std, seg, gx, g_mean, g_std)


@nb.njit(parallel=True, cache=True)
def sort_bwd_par(  # noqa: ANN201, PLR0913
    gy, x, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats, gx,  # noqa: ANN001
    masked, cnt, tmp,  # noqa: ANN001
):
    r_tot = x.shape[0]
    chunks = tmp.shape[0]
    for k in nb.prange(chunks):
        r0 = (np.int64(k) * r_tot) // chunks
        r1 = ((np.int64(k) + 1) * r_tot) // chunks
        _sort_bwd_rows(
            gy, x, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats, gx,
            masked, cnt, r0, r1, tmp[k],
        )  # fmt: skip


@nb.njit(cache=True)
def sort_bwd_serial(  # noqa: ANN201, PLR0913
    gy, x, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats, gx,  # noqa: ANN001
    masked, cnt, tmp,  # noqa: ANN001
):
    _sort_bwd_rows(
        gy, x, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats, gx,
        masked, cnt, 0, x.shape[0], tmp[0],
    )  # fmt: skip
