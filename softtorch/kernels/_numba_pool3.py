r"""Windows of three positions (3x3 pooling, the common case) for the ``c0`` / ``c1`` / ``c2``
kernels of :mod:`._numba_pool`: the same steps as its block passes, for one window at a time
with its three scores in registers (a sort of three by compare-exchanges, the cumulative-sum
support test, the closed form and its reverse mode), in one loop over the windows of a block
that LLVM vectorises without the scratch rows and their aliasing checks.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._numba_math import _c

__all__ = ["backward3", "forward3"]

_IN = {"cache": True, "error_model": "numpy", "forceinline": True}


@intrinsic
def _f64_bits(typingctx: Any, v: Any) -> Any:
    """Reinterpret a float64 as int64."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _i64_float(typingctx: Any, v: Any) -> Any:
    """Reinterpret an int64 as float64."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _cbrt(x):  # noqa: ANN001, ANN202
    """x^(1/3) for positive normal x: an exponent-thirds first guess and four Newton steps, in
    float64. (Python body: the reference; kernels use the overload.)"""
    return np.cbrt(x)


@overload(_cbrt, jit_options={"error_model": "numpy", "forceinline": True})
def _ov_cbrt(x):  # noqa: ANN001, ANN202
    fl = np.float32 if x == types.float32 else np.float64

    def impl(x):  # noqa: ANN001, ANN202
        w = np.float64(x)
        third = np.int64(np.float64(_f64_bits(w)) * (1.0 / 3.0))  # a float product vectorises
        y = _i64_float(third + 0x2A9F7893782DA1CE)
        for _ in range(4):
            y = y - (y * y * y - w) / (3.0 * y * y)
        return fl(y)

    return impl



@nb.njit(**_IN)
def _cx(a, b):  # noqa: ANN001, ANN202
    """Compare-exchange, descending (as the block passes' network)."""
    return (a, b) if a >= b else (b, a)


@nb.njit(**_IN)
def _nanmax(a, b):  # noqa: ANN001, ANN202
    """``amax`` of two: NaN when either is NaN."""
    return a if (a > b or a != a) and b == b else b


@nb.njit(**_IN)
def _f(e, a, c1, c2, c3, kf):  # noqa: ANN001, ANN202
    """The support test value f_k from the float64 cumulative sums (as the block passes)."""
    if e == 1:
        return _c(a, c1) - kf * a
    if e == 2:
        return _c(a, c2) - _c(a, 2.0) * a * _c(a, c1) + kf * a * a
    return (_c(a, c3) - _c(a, 3.0) * a * _c(a, c2) + _c(a, 3.0) * a * a * _c(a, c1)
            - kf * a * a * a)


@nb.njit(**_IN)
def _state(s0, s1, s2, e, tiny):  # noqa: ANN001, ANN202
    """(top, u0, u1, u2, m0, m1, m2 (support, 0 / 1), K, mu, t, M2, P, Q, disc, c) of one
    window's scores."""
    one = _c(tiny, 1.0)
    zero = _c(tiny, 0.0)
    lo = _c(tiny, -1.5)
    top = _nanmax(_nanmax(s0, s1), s2)
    d0, d1, d2 = s0 - top, s1 - top, s2 - top
    u0 = lo if d0 < lo else d0
    u1 = lo if d1 < lo else d1
    u2 = lo if d2 < lo else d2
    nan = u0 != u0 or u1 != u1 or u2 != u2
    a, b = _cx(u0, u1)
    b, c = _cx(b, u2)
    a, b = _cx(a, b)
    c1 = np.float64(a)
    c2 = np.float64(a * a)
    c3 = np.float64(a * a * a)
    size = one if _f(e, a, c1, c2, c3, _c(tiny, 1)) < one else zero
    c1 += np.float64(b)
    c2 += np.float64(b * b)
    c3 += np.float64(b * b * b)
    size += one if _f(e, b, c1, c2, c3, _c(tiny, 2)) < one else zero
    c1 += np.float64(c)
    c2 += np.float64(c * c)
    c3 += np.float64(c * c * c)
    size += one if _f(e, c, c1, c2, c3, _c(tiny, 3)) < one else zero
    thr = b if one < size else a
    thr = c if _c(tiny, 2.0) < size else thr
    m0 = one if (u0 >= thr and not nan) else zero
    m1 = one if (u1 >= thr and not nan) else zero
    m2 = one if (u2 >= thr and not nan) else zero
    kk = (m0 + m1) + m2
    kk = kk if kk > one else one
    acc = ((zero + (u0 if m0 > zero else zero)) + (u1 if m1 > zero else zero)) + (
        u2 if m2 > zero else zero)
    mu = acc / kk
    sm2 = zero
    p = zero
    qq = zero
    disc = zero
    cc = zero
    if e == 1:
        t = one / kk
    else:
        e0 = u0 - mu if m0 > zero else zero
        e1 = u1 - mu if m1 > zero else zero
        e2 = u2 - mu if m2 > zero else zero
        sm2 = ((zero + e0 * e0) + e1 * e1) + e2 * e2
        sm3 = ((zero + e0 * e0 * e0) + e1 * e1 * e1) + e2 * e2 * e2
        if e == 2:
            aa = (one - sm2) / kk
            t = np.sqrt(aa if aa >= tiny else tiny)
        else:
            p = sm2 / kk
            qq = (sm3 - one) / (_c(tiny, 2.0) * kk)
            z = qq * qq + p * p * p
            disc = np.sqrt(z if z >= tiny else tiny)
            wc = disc - qq
            cc = _cbrt(wc if wc >= tiny else tiny)
            t = cc - p / cc
    return top, u0, u1, u2, m0, m1, m2, kk, mu, t, sm2, p, qq, disc, cc


@nb.njit(**_IN)
def _relu(d):  # noqa: ANN001, ANN202
    return d if (d > 0 or d != d) else _c(d, 0.0)


@nb.njit(**_IN)
def _pw(r, e):  # noqa: ANN001, ANN202
    if e == 1:
        return r
    if e == 2:
        return r * r
    return r * r * r


@nb.njit(**_IN)
def forward3(sc, v, nw, e, tiny, res):  # noqa: ANN001, ANN202
    """``res[w] = sum_q p_q v[q, w]`` for the block's windows (scores ``sc``)."""
    for w in range(nw):
        st = _state(sc[0, w], sc[1, w], sc[2, w], e, tiny)
        lam = st[8] - st[9]
        res[w] = ((_c(tiny, 0.0) + _pw(_relu(st[1] - lam), e) * v[0, w])
                  + _pw(_relu(st[2] - lam), e) * v[1, w]) + _pw(_relu(st[3] - lam), e) * v[2, w]


@nb.njit(**_IN)
def _gr(go, vq, r, e):  # noqa: ANN001, ANN202
    """Gradient of (u_q - lam) from the value term: g v_q (e r^(e-1)), 0 where r <= 0."""
    gp = go * vq
    if e == 2:
        gp = gp * (_c(r, 2.0) * r)
    elif e == 3:
        gp = gp * (_c(r, 3.0) * (r * r))
    return _c(r, 0.0) if r <= _c(r, 0.0) else gp


@nb.njit(**_IN)
def backward3(sc, v, gb, nw, e, s, tiny, con):  # noqa: ANN001, ANN202
    """``con[w, q]``: the gradient of window ``w``'s output (incoming ``gb[w]``) with respect
    to its position ``q`` (window-major: one interleaved store stream, which vectorises)."""
    zero = _c(s, 0.0)
    two = _c(s, 2.0)
    three = _c(s, 3.0)
    lo = _c(s, -1.5)
    for w in range(nw):
        go = gb[w]
        top, u0, u1, u2, m0, m1, m2, kk, mu, t, sm2, pp, qq, disc, c = _state(
            sc[0, w], sc[1, w], sc[2, w], e, tiny)
        lam = mu - t
        r0, r1, r2 = _relu(u0 - lam), _relu(u1 - lam), _relu(u2 - lam)
        g0, g1, g2 = _gr(go, v[0, w], r0, e), _gr(go, v[1, w], r1, e), _gr(go, v[2, w], r2, e)
        glam = ((zero - g0) - g1) - g2
        gt = -glam
        gmu = glam
        if e > 1:
            gm2 = zero
            gm3 = zero
            if e == 2:
                aa = (_c(s, 1.0) - sm2) / kk
                ga = gt / (two * t)
                gm2 = -(ga if aa >= tiny else zero) / kk
            else:
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
            d0, d1, d2 = u0 - mu, u1 - mu, u2 - mu
            gd0 = gm2 * (two * d0) + gm3 * (three * (d0 * d0)) if m0 > zero else zero
            gd1 = gm2 * (two * d1) + gm3 * (three * (d1 * d1)) if m1 > zero else zero
            gd2 = gm2 * (two * d2) + gm3 * (three * (d2 * d2)) if m2 > zero else zero
            g0 += gd0
            g1 += gd1
            g2 += gd2
            gmu = ((gmu - gd0) - gd1) - gd2
        gmk = gmu / kk
        gu0 = g0 + (gmk if m0 > zero else zero)
        gu1 = g1 + (gmk if m1 > zero else zero)
        gu2 = g2 + (gmk if m2 > zero else zero)
        con[w, 0] = go * _pw(r0, e) + (gu0 / s if sc[0, w] - top >= lo else zero)
        con[w, 1] = go * _pw(r1, e) + (gu1 / s if sc[1, w] - top >= lo else zero)
        con[w, 2] = go * _pw(r2, e) + (gu2 / s if sc[2, w] - top >= lo else zero)
