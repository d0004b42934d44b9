r"""Fused CPU kernel (numba) of the ``smooth`` soft round that writes the value and the derivative
in one pass (the backward then only scales the saved derivative by the incoming gradient).

The staircase is :math:`\lfloor x\rfloor - r + \sum_t \sigma((z - t)/s)` over the ``k`` steps
of :func:`._numba_math._round_start`'s window (the steps outside it are saturated to below one
ulp). With :math:`E = e^{-z/s}` the step terms are :math:`a_t = E q_t`, :math:`q_t = e^{t/s}`
(scalars): one exponential per element. The steps go in groups of four with one division:
:math:`R = 1/\prod_t (1 + a_t)` gives every :math:`\sigma_t = 1/(1 + a_t)` as a product of
:math:`R` and the other three factors, and the derivative is
:math:`\sum_t \sigma_t(1 - \sigma_t)/s = \sum_t a_t\sigma_t^2/s` (no cancellation). Each
:math:`a_t` is capped at ``ROUND_BIG`` (a step below 1e-9 resp. 1e-75), so the product of four
factors stays finite (:math:`2^{120}` in float32, :math:`2^{1000}` in float64); a NaN stays NaN.
A remainder of two steps, or one, takes the same form with two factors, or one.

Conventions of :mod:`._numba_kernels` (range loops in blocks of ``ROUND_BLOCK``, ``prange``
drivers over ``CHUNK``-sized blocks, :func:`run`).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from ._numba_kernels import _LOOP, CHUNK, ROUND_BLOCK, _sl, run_loops
from ._numba_math import _ELEM, _c, _exp, _round_start

__all__ = ["run"]


@nb.njit(**_ELEM)
def _cap(a, big):  # noqa: ANN001, ANN202
    return big if a > big else a


@nb.njit(**_ELEM)
def _quad(e, q0, q1, q2, q3, big):  # noqa: ANN001, ANN202
    """(sum of four steps, sum of their derivatives times s) for the terms ``e q0 .. e q3``."""
    one = _c(e, 1)
    a, b = _cap(e * q0, big), _cap(e * q1, big)
    c, d = _cap(e * q2, big), _cap(e * q3, big)
    pa, pb, pc, pd = one + a, one + b, one + c, one + d
    pab = pa * pb
    pcd = pc * pd
    rr = one / (pab * pcd)
    ra = pcd * rr  # 1 / (pa pb)
    rc = pab * rr  # 1 / (pc pd)
    sa, sb, sc, sd = pb * ra, pa * ra, pd * rc, pc * rc
    # the value from the shared factors (not from sa .. sd): the same rounding (FMA contraction)
    # whether or not the derivative is computed too
    v = (pa + pb) * ra + (pc + pd) * rc
    return v, (a * sa * sa + b * sb * sb) + (c * sc * sc + d * sd * sd)


@nb.njit(**_ELEM)
def _duo(e, q0, q1, big):  # noqa: ANN001, ANN202
    """:func:`_quad` for two steps."""
    one = _c(e, 1)
    a, b = _cap(e * q0, big), _cap(e * q1, big)
    pa, pb = one + a, one + b
    rr = one / (pa * pb)
    sa, sb = pb * rr, pa * rr
    return (pa + pb) * rr, a * sa * sa + b * sb * sb


@nb.njit(**_ELEM)
def _uno(e, q0, big):  # noqa: ANN001, ANN202
    """:func:`_quad` for one step."""
    one = _c(e, 1)
    a = _cap(e * q0, big)
    sa = one / (one + a)
    return sa, a * sa * sa


@nb.njit(**_LOOP)
def _rs_fwd_grad(x, out, der, inv_s, big, r, k, cut):  # noqa: ANN001, ANN202
    """Value into ``out`` and derivative into ``der``, in blocks: one pass for the start values
    and :math:`E`, then one vectorised pass per group of steps."""
    zero = _c(inv_s, 0)
    eb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, ob, db = x[b0:b0 + ROUND_BLOCK], out[b0:b0 + ROUND_BLOCK], der[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            v, z = _round_start(xb[i], r, k, cut)
            ob[i] = v
            db[i] = zero
            eb[i] = _exp(-(z * inv_s))
        for t in range(0, k - 3, 4):
            q0, q1 = _c(inv_s, np.exp(t * inv_s)), _c(inv_s, np.exp((t + 1) * inv_s))
            q2, q3 = _c(inv_s, np.exp((t + 2) * inv_s)), _c(inv_s, np.exp((t + 3) * inv_s))
            for i in range(n):
                v, d = _quad(eb[i], q0, q1, q2, q3, big)
                ob[i] += v
                db[i] += d
        t0 = k - k % 4
        if k % 4 >= 2:
            q0, q1 = _c(inv_s, np.exp(t0 * inv_s)), _c(inv_s, np.exp((t0 + 1) * inv_s))
            for i in range(n):
                v, d = _duo(eb[i], q0, q1, big)
                ob[i] += v
                db[i] += d
        if k % 2 == 1:
            q0 = _c(inv_s, np.exp((k - 1) * inv_s))
            for i in range(n):
                v, d = _uno(eb[i], q0, big)
                ob[i] += v
                db[i] += d
        for i in range(n):
            db[i] *= inv_s


@nb.njit(**_LOOP)
def _rs_fwd(x, out, inv_s, big, r, k, cut):  # noqa: ANN001, ANN202
    """The value of :func:`_rs_fwd_grad` alone (the same arithmetic: the same values)."""
    eb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, ob = x[b0:b0 + ROUND_BLOCK], out[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            v, z = _round_start(xb[i], r, k, cut)
            ob[i] = v
            eb[i] = _exp(-(z * inv_s))
        for t in range(0, k - 3, 4):
            q0, q1 = _c(inv_s, np.exp(t * inv_s)), _c(inv_s, np.exp((t + 1) * inv_s))
            q2, q3 = _c(inv_s, np.exp((t + 2) * inv_s)), _c(inv_s, np.exp((t + 3) * inv_s))
            for i in range(n):
                ob[i] += _quad(eb[i], q0, q1, q2, q3, big)[0]
        t0 = k - k % 4
        if k % 4 >= 2:
            q0, q1 = _c(inv_s, np.exp(t0 * inv_s)), _c(inv_s, np.exp((t0 + 1) * inv_s))
            for i in range(n):
                ob[i] += _duo(eb[i], q0, q1, big)[0]
        if k % 2 == 1:
            q0 = _c(inv_s, np.exp((k - 1) * inv_s))
            for i in range(n):
                ob[i] += _uno(eb[i], q0, big)[0]


@nb.njit(parallel=True, **_LOOP)
def _par_rs_fwd_grad(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _rs_fwd_grad(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_rs_fwd(n, a0, a1, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _rs_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), *rest)


_LOOPS = {
    "round_smooth_fwd": (_rs_fwd, _par_rs_fwd),
    "round_smooth_fwd_grad": (_rs_fwd_grad, _par_rs_fwd_grad),
}


def run(name: str, n: int, args: tuple[Any, ...], threads: int) -> None:
    """Run kernel ``name`` (``round_smooth_fwd``: ``x, out, 1/s, big, r, k, cut``;
    ``round_smooth_fwd_grad``: ``x, out, der, 1/s, big, r, k, cut``)
    over ``n`` elements on up to ``threads`` threads (see :func:`._numba_kernels.run`)."""
    serial, parallel = _LOOPS[name]
    run_loops(serial, parallel, n, args, threads)
