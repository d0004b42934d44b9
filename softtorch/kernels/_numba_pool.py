r"""CPU kernels (numba) of soft max pooling over evenly strided windows along one dim.

The input is viewed as ``x[o, l, i]`` (outer, pooled dim, inner), the output as ``out[o, j, i]``;
window ``j`` holds positions :math:`l = j\,\mathrm{stride} - \mathrm{pad} + q\,\mathrm{dil}`,
:math:`q < k`, those outside ``[0, L)`` being padding. Per window (the values of
:func:`softtorch.kernels.pool.strided_composite`, with the same floating point steps where
they decide anything discrete):

* ``smooth`` (exponent 0): with :math:`m` the window's maximum (padding ``-inf``) and
  :math:`z_q = (x_q - m)/s`, :math:`\mathrm{out} = m + s(\mathrm{LSE}(z) - \log|W|)`; gradient
  :math:`e^{z_q - \mathrm{LSE}(z)}` (``m`` is detached);
* ``c0`` / ``c1`` / ``c2`` (exponent :math:`e = 1, 2, 3`): the projection of
  :func:`softtorch.simplex.project_simplex` of the scores :math:`x_q/s` (padding ``-inf``):
  :math:`u = \max(x/s - \max_q x_q/s, -1.5)`, the support from the sorted :math:`u` and the
  cumulative-sum test :math:`f_k < 1` (float64 sums, as torch's CPU ``cumsum``; a window with a
  NaN score has an empty support, as torch sorts NaN first), the closed form
  :math:`\lambda = \mu - t` on it, :math:`p_q = (u_q - \lambda)_+^e`;
  :math:`\mathrm{out} = \sum_q p_q v_q` with :math:`v` the values (padding 0). The backward is
  reverse mode through that closed form on the fixed support (what autograd computes on the
  composite), recomputed from ``x``.

Windows are processed in blocks of about :data:`BLOCK` as structure-of-arrays passes: every loop
runs over the windows of a block (the innermost index), with selects instead of branches (the
sort is an odd-even transposition network), so LLVM vectorises them. ``exp`` and the cube root
are plain-arithmetic approximations of about one ulp (``_exp`` of :mod:`._numba_math`,
:func:`_cbrt` here). No fastmath: NaN / inf are IEEE and
the support test rounds like the composite. Windows of three take the register version of
:mod:`._numba_pool3`.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from ._numba_kernels import PARALLEL_MIN_ELEMENTS, parallel_guard
from ._numba_math import _c, _exp
from ._numba_pool3 import _cbrt, backward3, forward3

__all__ = ["BLOCK", "run"]

#: Windows per block of the structure-of-arrays passes (their scratch stays in L1).
BLOCK = 512
_LOOP = {"cache": True, "error_model": "numpy"}
_IN = {"cache": True, "error_model": "numpy", "forceinline": True}


# ----------------------------------------------------------------------------- block passes


@nb.njit(**_IN)
def _gather(x, o0, no, j0, nj, k, stride, dil, pad, s, e, sc, v):  # noqa: ANN001, ANN202
    """Rows ``sc[q, w]`` = the scores ``x / s`` (smooth: ``x``; padding -inf) and ``v[q, w]``
    = the values (padding 0) of the block's windows ``w = ((o - o0) nj + j - j0) n_i + i``."""
    n, n_i = x.shape[1], x.shape[2]
    ninf = _c(s, -np.inf)
    zero = _c(s, 0.0)
    if n_i == 1:  # pooling the last dim: one strided loop per row
        for q in range(k):
            for oo in range(no):
                o = o0 + oo
                base = oo * nj
                for jj in range(nj):
                    p = (j0 + jj) * stride - pad + q * dil
                    ok = p >= 0 and p < n
                    xv = x[o, p if ok else 0, 0]
                    if e == 0:
                        sc[q, base + jj] = xv if ok else ninf
                    else:
                        sc[q, base + jj] = xv / s if ok else ninf
                        v[q, base + jj] = xv if ok else zero
        return
    for q in range(k):
        for oo in range(no):
            o = o0 + oo
            for jj in range(nj):
                p = (j0 + jj) * stride - pad + q * dil
                base = (oo * nj + jj) * n_i
                if p >= 0 and p < n:
                    if e == 0:
                        for i in range(n_i):
                            sc[q, base + i] = x[o, p, i]
                    else:
                        for i in range(n_i):
                            xv = x[o, p, i]
                            sc[q, base + i] = xv / s
                            v[q, base + i] = xv
                else:
                    for i in range(n_i):
                        sc[q, base + i] = ninf
                        v[q, base + i] = zero


@nb.njit(**_IN)
def _top(sc, nw, k, top):  # noqa: ANN001, ANN202
    """``top[w]`` = max_q sc[q, w], NaN when any is NaN (``amax``)."""
    for w in range(nw):
        top[w] = sc[0, w]
    for q in range(1, k):
        for w in range(nw):
            a = sc[q, w]
            t = top[w]
            top[w] = a if (a > t or a != a) and t == t else t


@nb.njit(**_IN)
def _smooth(sc, nw, k, s, top, lse, tmp):  # noqa: ANN001, ANN202
    """``top`` and ``lse[w]`` = logsumexp_q((sc[q, w] - top[w]) / s) (torch's: the maximum
    subtracted, 0 when infinite); ``tmp``: scratch (its row 0)."""
    _top(sc, nw, k, top)
    zero = _c(s, 0.0)
    for w in range(nw):
        lse[w] = _c(s, -np.inf)  # the maximum of z, then the sum
    for q in range(k):
        for w in range(nw):
            z = (sc[q, w] - top[w]) / s
            mz = lse[w]
            lse[w] = z if (z > mz or z != z) and mz == mz else mz
    for w in range(nw):
        mz = lse[w]
        top_z = zero if abs(mz) == np.inf else mz
        lse[w] = top_z
    for w in range(nw):
        tmp[0, w] = zero
    for q in range(k):
        for w in range(nw):
            tmp[0, w] += _exp((sc[q, w] - top[w]) / s - lse[w])
    for w in range(nw):
        lse[w] = np.log(tmp[0, w]) + lse[w]


@nb.njit(**_IN)
def _project(sc, nw, k, e, tiny, top, u, srt, msk, f64, fl):  # noqa: ANN001, ANN202
    """The projection's state of a block: ``u``, the support ``msk``, and per window in
    ``fl``: 0 size K, 1 mu, 2 t, 3 m2, 4 P, 5 Q, 6 disc, 7 c, 8 lam, 9 NaN flag."""
    one = _c(tiny, 1.0)
    zero = _c(tiny, 0.0)
    lo = _c(tiny, -1.5)
    _top(sc, nw, k, top)
    for w in range(nw):
        fl[9, w] = zero
    for q in range(k):
        for w in range(nw):
            d = sc[q, w] - top[w]
            d = lo if d < lo else d
            u[q, w] = d
            srt[q, w] = d
            fl[9, w] = one if d != d else fl[9, w]
    for r in range(k):  # odd-even transposition sort, descending (NaN windows: masked below)
        for i in range(r % 2, k - 1, 2):
            for w in range(nw):
                a = srt[i, w]
                b = srt[i + 1, w]
                srt[i, w] = a if a >= b else b
                srt[i + 1, w] = b if a >= b else a
    for w in range(nw):  # cumulative sums c1, c2, c3 and the support size, then threshold
        f64[0, w] = 0.0
        f64[1, w] = 0.0
        f64[2, w] = 0.0
        fl[0, w] = zero
    for i in range(k):
        kf = _c(tiny, i + 1)
        for w in range(nw):
            a = srt[i, w]
            f64[0, w] += np.float64(a)
            c1 = _c(tiny, f64[0, w])
            if e == 1:
                f = c1 - kf * a
            elif e == 2:
                f64[1, w] += np.float64(a * a)
                f = _c(tiny, f64[1, w]) - _c(tiny, 2.0) * a * c1 + kf * a * a
            else:
                f64[1, w] += np.float64(a * a)
                f64[2, w] += np.float64(a * a * a)
                f = (_c(tiny, f64[2, w]) - _c(tiny, 3.0) * a * _c(tiny, f64[1, w])
                     + _c(tiny, 3.0) * a * a * c1 - kf * a * a * a)
            fl[0, w] += one if f < one else zero
    for w in range(nw):
        fl[1, w] = srt[0, w]  # the threshold srt[size - 1]
    for i in range(1, k):
        ip = _c(tiny, i)
        for w in range(nw):
            fl[1, w] = srt[i, w] if ip < fl[0, w] else fl[1, w]
    for w in range(nw):
        fl[0, w] = zero
        fl[2, w] = zero
    for q in range(k):
        for w in range(nw):
            m = u[q, w] >= fl[1, w] and fl[9, w] == zero
            msk[q, w] = m
            fl[0, w] += one if m else zero
            fl[2, w] += u[q, w] if m else zero
    for w in range(nw):
        kk = fl[0, w] if fl[0, w] > one else one
        fl[0, w] = kk
        fl[1, w] = fl[2, w] / kk
        fl[3, w] = zero
        fl[4, w] = zero  # m3 for now
    if e > 1:
        for q in range(k):
            for w in range(nw):
                d = u[q, w] - fl[1, w] if msk[q, w] else zero
                fl[3, w] += d * d
                fl[4, w] += d * d * d
    for w in range(nw):
        kk = fl[0, w]
        if e == 1:
            t = one / kk
        elif e == 2:
            a = (one - fl[3, w]) / kk
            t = np.sqrt(a if a >= tiny else tiny)
        else:
            p = fl[3, w] / kk
            qq = (fl[4, w] - one) / (_c(tiny, 2.0) * kk)
            z = qq * qq + p * p * p
            disc = np.sqrt(z if z >= tiny else tiny)
            wc = disc - qq
            c = _cbrt(wc if wc >= tiny else tiny)
            t = c - p / c
            fl[4, w] = p
            fl[5, w] = qq
            fl[6, w] = disc
            fl[7, w] = c
        fl[2, w] = t
        fl[8, w] = fl[1, w] - t


@nb.njit(**_IN)
def _pow_e(r, e):  # noqa: ANN001, ANN202
    if e == 1:
        return r
    if e == 2:
        return r * r
    return r * r * r


@nb.njit(**_IN)
def _relu(d):  # noqa: ANN001, ANN202
    """``torch.relu``: NaN stays NaN."""
    return d if (d > 0 or d != d) else _c(d, 0.0)


@nb.njit(**_IN)
def _log_count(n, j, k, stride, dil, pad, s):  # noqa: ANN001, ANN202
    """log of the number of valid positions of window ``j``."""
    cnt = 0
    for q in range(k):
        p = j * stride - pad + q * dil
        cnt += 1 if (p >= 0 and p < n) else 0
    return np.log(_c(s, cnt))


@nb.njit(**_LOOP)
def _window_fwd(x, out, k, stride, dil, pad, s, tiny, et):  # noqa: ANN001, ANN202
    e = et.ndim - 1
    n_o, n, n_i = x.shape
    m = out.shape[1]
    ob, jb, cap = _blocks(n_o, m, n_i)
    dt = x.dtype
    sc = np.empty((k, cap), dt)
    v = np.empty((k, cap), dt)
    u = np.empty((k, cap), dt)
    srt = np.empty((k, cap), dt)
    msk = np.empty((k, cap), np.bool_)
    f64 = np.empty((3, cap), np.float64)
    fl = np.empty((10, cap), dt)
    top = np.empty(cap, dt)
    lse = np.empty(cap, dt)
    flat = out.reshape(out.size)
    for o0 in range(0, n_o, ob):
        no = min(ob, n_o - o0)
        for j0 in range(0, m, jb):
            nj = min(jb, m - j0)
            nw = no * nj * n_i
            start = (o0 * m + j0) * n_i
            res = flat[start:start + nw]
            _gather(x, o0, no, j0, nj, k, stride, dil, pad, s, e, sc, v)
            if e == 0:
                _smooth(sc, nw, k, s, top, lse, u)
                for jj in range(nj):
                    lc = _log_count(n, j0 + jj, k, stride, dil, pad, s)
                    for oo in range(no):
                        base = (oo * nj + jj) * n_i
                        for i in range(n_i):
                            w = base + i
                            res[w] = top[w] + s * (lse[w] - lc)
                continue
            if k == 3:
                forward3(sc, v, nw, e, tiny, res)
                continue
            _project(sc, nw, k, e, tiny, top, u, srt, msk, f64, fl)
            for w in range(nw):
                res[w] = _c(s, 0.0)
            for q in range(k):
                for w in range(nw):
                    res[w] += _pow_e(_relu(u[q, w] - fl[8, w]), e) * v[q, w]


@nb.njit(**_IN)
def _scatter(gx, o0, no, j0, nj, k, stride, dil, pad, con):  # noqa: ANN001, ANN202
    """``gx[o, p, i] += con[q, w]`` for the valid positions of the block's windows."""
    n, n_i = gx.shape[1], gx.shape[2]
    if n_i == 1:
        for q in range(k):
            for oo in range(no):
                o = o0 + oo
                base = oo * nj
                for jj in range(nj):
                    p = (j0 + jj) * stride - pad + q * dil
                    if p >= 0 and p < n:
                        gx[o, p, 0] += con[q, base + jj]
        return
    for q in range(k):
        for oo in range(no):
            o = o0 + oo
            for jj in range(nj):
                p = (j0 + jj) * stride - pad + q * dil
                if p >= 0 and p < n:
                    base = (oo * nj + jj) * n_i
                    for i in range(n_i):
                        gx[o, p, i] += con[q, base + i]


@nb.njit(**_IN)
def _blocks(n_o, m, n_i):  # noqa: ANN001, ANN202
    """(outer rows, windows along the dim) per block, and the scratch capacity: whole rows of
    ``m * n_i`` windows when they are short, else blocks of windows within one row."""
    ob = max(1, BLOCK // (m * n_i))
    jb = m if ob > 1 else max(1, BLOCK // n_i)
    return ob, jb, max(ob * m * n_i if ob > 1 else 0, jb * n_i)


@nb.njit(**_LOOP)
def _window_bwd(x, g, gx, k, stride, dil, pad, s, tiny, et):  # noqa: ANN001, ANN202
    """``gx`` (zeroed by the caller) += the gradient of every window of ``x`` given ``g``."""
    e = et.ndim - 1
    n_o, n, n_i = x.shape
    m = g.shape[1]
    ob, jb, cap = _blocks(n_o, m, n_i)
    dt = x.dtype
    zero = _c(s, 0.0)
    two = _c(s, 2.0)
    three = _c(s, 3.0)
    sc = np.empty((k, cap), dt)
    v = np.empty((k, cap), dt)
    u = np.empty((k, cap), dt)
    srt = np.empty((k, cap), dt)
    msk = np.empty((k, cap), np.bool_)
    f64 = np.empty((3, cap), np.float64)
    fl = np.empty((10, cap), dt)
    top = np.empty(cap, dt)
    lse = np.empty(cap, dt)
    con = np.empty((k, cap), dt)
    con3 = np.empty((cap, 3), dt)
    gl = np.empty((4, cap), dt)
    gflat = g.reshape(g.size)
    for o0 in range(0, n_o, ob):
        no = min(ob, n_o - o0)
        for j0 in range(0, m, jb):
            nj = min(jb, m - j0)
            nw = no * nj * n_i
            start = (o0 * m + j0) * n_i
            gb = gflat[start:start + nw]
            _gather(x, o0, no, j0, nj, k, stride, dil, pad, s, e, sc, v)
            if e == 0:
                _smooth(sc, nw, k, s, top, lse, u)
                for q in range(k):
                    for w in range(nw):
                        con[q, w] = gb[w] * s * _exp((sc[q, w] - top[w]) / s - lse[w]) / s
                _scatter(gx, o0, no, j0, nj, k, stride, dil, pad, con)
                continue
            if k == 3:
                backward3(sc, v, gb, nw, e, s, tiny, con3)
                _scatter(gx, o0, no, j0, nj, k, stride, dil, pad, con3.T)
                continue
            _project(sc, nw, k, e, tiny, top, u, srt, msk, f64, fl)
            for w in range(nw):
                gl[0, w] = zero  # grad of lam
            for q in range(k):
                for w in range(nw):
                    r = _relu(u[q, w] - fl[8, w])
                    gp = gb[w] * v[q, w]
                    if e == 2:
                        gp = gp * (two * r)
                    elif e == 3:
                        gp = gp * (three * (r * r))
                    gp = zero if r <= zero else gp
                    con[q, w] = gp
                    gl[0, w] -= gp
            for w in range(nw):
                glam = gl[0, w]
                kk = fl[0, w]
                gt = -glam
                gm2 = zero
                gm3 = zero
                if e == 2:
                    a = (_c(s, 1.0) - fl[3, w]) / kk
                    ga = gt / (two * fl[2, w])
                    ga = ga if a >= tiny else zero
                    gm2 = -ga / kk
                elif e == 3:
                    pp, qq, disc, c = fl[4, w], fl[5, w], fl[6, w], fl[7, w]
                    gc = gt + gt * pp / (c * c)
                    gpp = -gt / c
                    wc = disc - qq
                    gw = gc / (three * (c * c))
                    gw = gw if wc >= tiny else zero
                    gqq = -gw
                    z = qq * qq + pp * pp * pp
                    gz = gw / (two * disc)
                    gz = gz if z >= tiny else zero
                    gqq = gqq + gz * (two * qq)
                    gpp = gpp + gz * (three * pp * pp)
                    gm3 = gqq / (two * kk)
                    gm2 = gpp / kk
                gl[1, w] = glam  # grad of mu
                gl[2, w] = gm2
                gl[3, w] = gm3
            if e > 1:
                for q in range(k):
                    for w in range(nw):
                        d = u[q, w] - fl[1, w]
                        gd = gl[2, w] * (two * d) + gl[3, w] * (three * (d * d))
                        gd = gd if msk[q, w] else zero
                        con[q, w] += gd
                        gl[1, w] -= gd
            lo = _c(s, -1.5)
            for q in range(k):
                for w in range(nw):
                    gu = con[q, w] + (gl[1, w] / fl[0, w] if msk[q, w] else zero)
                    gs = gu / s if sc[q, w] - top[w] >= lo else zero
                    con[q, w] = gb[w] * _pow_e(_relu(u[q, w] - fl[8, w]), e) + gs
            _scatter(gx, o0, no, j0, nj, k, stride, dil, pad, con)


@nb.njit(parallel=True, **_LOOP)
def _par_window_fwd(x, out, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, (1 << 14) // max(1, out.shape[1] * out.shape[2]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        _window_fwd(x[c * step:(c + 1) * step], out[c * step:(c + 1) * step], *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_window_bwd(x, g, gx, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, (1 << 14) // max(1, g.shape[1] * g.shape[2]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        lo, hi = c * step, (c + 1) * step
        _window_bwd(x[lo:hi], g[lo:hi], gx[lo:hi], *rest)


_TAGS = [np.zeros((1,) * (e + 1), np.int8) for e in range(4)]
_KERNELS = {"fwd": (_window_fwd, _par_window_fwd), "bwd": (_window_bwd, _par_window_bwd)}


def run(name: str, exponent: int, arrays: tuple[Any, ...], geometry: tuple[int, int, int, int],
        softness: float, threads: int) -> None:
    """Run ``fwd`` (``arrays = (x, out)``) or ``bwd`` (``(x, g, gx)``, ``gx`` zeroed) on up to
    ``threads`` threads.

    Args:
        name: ``"fwd"`` or ``"bwd"``.
        exponent: 0 (``smooth``), 1, 2, 3 (``c0``, ``c1``, ``c2``).
        arrays: C-contiguous 3-d arrays of one float dtype.
        geometry: ``(k, stride, dilation, left padding)``.
        softness: s > 0.
        threads: torch's intra-op thread count.
    """
    x = arrays[0]
    ft = x.dtype.type
    tiny = ft(np.finfo(x.dtype).tiny ** 0.25)
    serial, parallel = _KERNELS[name]
    args = (*arrays, *geometry, ft(softness), tiny, _TAGS[exponent])
    threads = min(threads, nb.config.NUMBA_NUM_THREADS)
    if x.size >= PARALLEL_MIN_ELEMENTS and threads > 1 and x.shape[0] > 1:
        with parallel_guard():
            nb.set_num_threads(threads)
            parallel(*args)
    else:
        serial(*args)
