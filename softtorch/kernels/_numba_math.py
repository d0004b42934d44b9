r"""Per-element numba helpers of the fused elementwise kernels (:mod:`._numba_kernels`): the
mode's sigmoidal :math:`\sigma_s` and its derivative, the ramp, and the unary / binary / clamp /
round families, each returning (value, derivative) for one element (see :mod:`softtorch.kernels`
for the formulas).

The exponential and :math:`\log(1 + e)` are evaluated with range reduction and polynomials written
in plain arithmetic (``_exp``, ``_log1p_unit``), so that LLVM vectorises the loops calling them:
libm's scalar ``exp`` would cost 4-6x more than torch's vectorised sigmoid. Their error is about
one ulp. All helpers are inlined into the loops (``forceinline``); only FMA contraction is allowed
(``fastmath={"contract"}``): NaN / inf semantics are IEEE.

numba's on-disk cache keys a compiled loop by its own source file: after editing this module,
clear ``softtorch/kernels/__pycache__/_numba_kernels*.nb*`` (the loops inline these helpers).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

#: Mode codes of the kernels, in :data:`softtorch._checks.SIGMOIDAL_MODES` spelling.
MODE_CODES: dict[str, int] = {
    "smooth": 0, "c0": 1, "c1": 2, "c2": 3, "_c1_pnorm": 4, "_c2_pnorm": 5,
}
#: Unary op codes: sigmoidal / heaviside, sign, abs, integral of sigmoidal (relu), gated relu.
STEP, SIGN, ABS, RAMP, GATED = 0, 1, 2, 3, 4
#: Binary op codes: sigma(x - y + shift), soft eq and soft not_equal with tolerance ``tol``.
CMP, EQ, NE = 0, 1, 2
#: ``smooth`` sigmoid arguments beyond this many softnesses are saturated in ``round``'s window
#: (float32 / float64): the sigmoid then rounds to exactly 1 and its tail is below one ulp.
SMOOTH_CUTOFF = {np.float32: 20.0, np.float64: 40.0}
_FM = {"contract"}
#: Per-element helpers: inlined by LLVM, numpy error model (no ZeroDivisionError branches,
#: which would stop the loops from vectorising).
_ELEM = {"cache": True, "fastmath": _FM, "error_model": "numpy", "forceinline": True}


@intrinsic
def _bits_f32(typingctx: Any, v: Any) -> Any:
    """Reinterpret an int32 as float32 (for 2**n in :func:`_exp`)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bits_f64(typingctx: Any, v: Any) -> Any:
    """Reinterpret an int64 as float64 (for 2**n in :func:`_exp`)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _c(like, v):  # noqa: ANN001, ANN202
    """``v`` as the float type of ``like`` (a compile-time cast for constants). The Python body
    is the reference for plain calls; compiled kernels use the overload below."""
    return np.asarray(like).dtype.type(v)


@overload(_c, jit_options={"error_model": "numpy", "forceinline": True})
def _ov_c(like, v):  # noqa: ANN001, ANN202
    if like == types.float32:
        return lambda like, v: np.float32(v)
    return lambda like, v: np.float64(v)


_P32 = tuple(np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1))
_P64 = tuple(np.float64(1.0 / math.factorial(k)) for k in range(13, -1, -1))
_Q32 = tuple(np.float32(2.0 / (2 * k + 1)) for k in range(8, -1, -1))
_Q64 = tuple(np.float64(2.0 / (2 * k + 1)) for k in range(18, -1, -1))
_E32 = (np.float32(1.4426950408889634), np.float32(0.693359375), np.float32(-2.12194440e-4),
        np.float32(88.72), np.float32(-87.33))
_E64 = (np.float64(1.4426950408889634), np.float64(6.93147180369123816490e-01),
        np.float64(1.90821492927058770002e-10), np.float64(709.78), np.float64(-708.39))


@nb.njit(**_ELEM)
def _poly(r: Any, c: Any) -> Any:
    p = c[0]
    for k in range(1, len(c)):
        p = p * r + c[k]
    return p


def _exp(x):  # noqa: ANN001, ANN202
    """exp(x) = 2**n * poly(r), |r| <= ln2 / 2 (Cody-Waite); inf / 0 outside the float range;
    NaN stays NaN. Plain arithmetic, so loops calling it vectorise. (Python body: the reference
    for plain calls; compiled kernels use the overload below.)"""
    return np.exp(x)


@overload(_exp, jit_options={"error_model": "numpy", "forceinline": True, "fastmath": _FM})
def _ov_exp(x):  # noqa: ANN001, ANN202
    f32 = x == types.float32
    e = _E32 if f32 else _E64
    poly = _P32 if f32 else _P64
    fl = np.float32 if f32 else np.float64
    it = np.int32 if f32 else np.int64
    bits = _bits_f32 if f32 else _bits_f64
    bias, mant = (it(127), it(23)) if f32 else (it(1023), it(52))
    log2e, ln2hi, ln2lo, xhi, xlo = e
    half, zero, inf = fl(0.5), fl(0.0), fl(np.inf)

    def impl(x):  # noqa: ANN001, ANN202
        xc = xhi if x > xhi else (xlo if x < xlo else x)
        n = np.floor(xc * log2e + half)
        r = (xc - n * ln2hi) - n * ln2lo
        y = _poly(r, poly) * bits((it(n) + bias) << mant)
        y = inf if x > xhi else y
        y = zero if x < xlo else y
        return x if x != x else y

    return impl


def _log1p_unit(e):  # noqa: ANN001, ANN202
    """log(1 + e) for e in [0, 1]: 2 atanh(e / (2 + e)) as an odd series (plain arithmetic).
    (Python body: the reference for plain calls; compiled kernels use the overload below.)"""
    return np.log1p(e)


@overload(_log1p_unit, jit_options={"error_model": "numpy", "forceinline": True, "fastmath": _FM})
def _ov_log1p(e):  # noqa: ANN001, ANN202
    q = _Q32 if e == types.float32 else _Q64
    two = np.float32(2.0) if e == types.float32 else np.float64(2.0)

    def impl(e):  # noqa: ANN001, ANN202
        s = e / (two + e)
        return s * _poly(s * s, q)

    return impl


#: Centre of the radicand range [1/2, 0.5295] of the ``_c2_pnorm`` midpoint, and its v^(-1/3).
_V0 = 0.51476
_Y0 = _V0 ** (-1.0 / 3.0)
#: Taylor coefficients of (1 + u)^(-1/3), highest first (|u| <= 0.029: truncation 3e-9).
_BINOM = (35.0 / 243.0, -14.0 / 81.0, 2.0 / 9.0, -1.0 / 3.0, 1.0)


@nb.njit(**_ELEM)
def _cbrt_mid(v):  # noqa: ANN001, ANN202
    """(v^(1/3), v^(-1/3)) for v in [1/2, 0.53] (the ``_c2_pnorm`` midpoint's radicand), without
    a division: y = v^(-1/3) from its degree-4 Taylor polynomial at ``_V0`` (relative error
    below 3e-9) and one division-free Newton step y (4 - v y^3) / 3 (error below 1e-16), then
    v^(1/3) = v y^2, in float64. Plain arithmetic, so that the loops vectorise (``**`` calls
    libm's ``pow``, and divisions are the slowest vector operation)."""
    w = np.float64(v)  # float32 too: then both results are rounded once (no division)
    u = w * (1.0 / _V0) - 1.0
    p = _BINOM[0]
    for k in range(1, len(_BINOM)):
        p = p * u + _BINOM[k]
    y = p * _Y0
    y = y * (4.0 - w * y * y * y) * (1.0 / 3.0)
    return _c(v, w * y * y), _c(v, y)


@nb.njit(**_ELEM)
def _sig(x: Any, s: Any, w10: Any, mode: int) -> tuple[Any, Any]:
    """(sigma_s(x), d sigma_s / dx) in ``mode``; ``w10 = 10 s``."""
    zero, half, one, two, three = _c(x, 0), _c(x, 0.5), _c(x, 1), _c(x, 2), _c(x, 3)
    if mode == 0:
        sg = one / (one + _exp(-(x / s)))
        return sg, sg * (one - sg) / s
    if mode <= 3:
        traw = half + x / w10
        t = zero if traw < zero else (one if traw > one else traw)
        inside = (traw >= zero) and (traw <= one)
        if mode == 1:
            v, d = t, one
        elif mode == 2:
            v, d = t * t * (three - two * t), _c(x, 6) * t * (one - t)
        else:
            v = t * t * t * (t * (_c(x, 6) * t - _c(x, 15)) + _c(x, 10))
            d = _c(x, 30) * t * t * (one - t) * (one - t)
        return v, (d / w10 if inside else zero)
    u = x / s
    uc = -one if u < -one else (one if u > one else u)
    inside = (u >= -one) and (u <= one)
    h = uc / two
    if mode == 4:
        m = math.sqrt(max(half - h * h, _c(x, 0.25)))
        mh = m + h
        v = mh * mh
        d = two * mh * (one - h / m)
    else:
        h2 = h * h
        r6 = math.sqrt(_c(x, 0.0625) + h2 * h2 * h2)
        c, ic = _cbrt_mid(_c(x, 0.25) + r6)
        m = c - h2 * ic
        mh = m + h
        # exactly 0 / 1 when saturated (m + h = 0 to rounding: no -1e-50 that -inf turns to +inf)
        v = _c(x, 0) if u <= -one else (one if u >= one else mh * mh * mh)
        ic2 = ic * ic
        dc = h2 * h2 * h * ic2 / r6
        dm = dc * (one + h2 * ic2) - two * h * ic
        d = three * mh * mh * (dm + one)
    return v, (d * half / s if inside else zero)


@nb.njit(**_ELEM)
def _ramp(x: Any, s: Any, w10: Any, mode: int) -> tuple[Any, Any]:
    """(R(x), R'(x)) with R the integral of sigma_s (smooth: torch's softplus threshold 20)."""
    zero, half, one, two = _c(x, 0), _c(x, 0.5), _c(x, 1), _c(x, 2)
    if mode == 0:
        z = x / s
        e = _exp(-abs(z))
        sp = (z if z > zero else zero) + _log1p_unit(e)
        sg = (one if z >= zero else e) / (one + e)
        big = z > _c(x, 20)
        return (z * s if big else sp * s), (one if big else sg)
    sg, _ = _sig(x, s, w10, mode)
    if mode <= 3:
        w = w10 * half
        traw = half + x / w10
        t = zero if traw < zero else (one if traw > one else traw)
        if mode == 1:
            inner = w * t * t
        elif mode == 2:
            inner = two * w * t * t * t * (one - half * t)
        else:
            inner = two * w * t * t * t * t * (t * (t - _c(x, 3)) + _c(x, 2.5))
        return (x if x >= w else inner), sg
    u = x / s
    uc = -one if u < -one else (one if u > one else u)
    if mode == 4:
        q = max(two - uc * uc, one)
        inner = uc / two - q * math.sqrt(q) / _c(x, 6) + _c(x, 2 / 3)
    else:
        h = uc / two
        h2 = h * h
        c, ic = _cbrt_mid(_c(x, 0.25) + math.sqrt(_c(x, 0.0625) + h2 * h2 * h2))
        m = c - h2 * ic
        m2 = m * m
        inner = h - (m + m2 * m2) / two + h2 * h2 / two + _c(x, 0.75)
    return (x if u >= one else inner * s), sg


@nb.njit(**_ELEM)
def _unary(x: Any, s: Any, w10: Any, mode: int, op: int) -> tuple[Any, Any]:
    """(f(x), f'(x)) for the unary op code ``op``."""
    one, two = _c(x, 1), _c(x, 2)
    if op == RAMP:
        return _ramp(x, s, w10, mode)
    sg, d = _sig(x, s, w10, mode)
    xd = _c(x, 0) if d == _c(x, 0) else x * d  # saturated: 0, also for x = +-inf
    if op == GATED:
        return x * sg, sg + xd
    if op == STEP:
        return sg, d
    sn = two * sg - one
    if op == SIGN:
        return sn, two * d
    return x * sn, sn + two * xd


@nb.njit(**_ELEM)
def _binary(x: Any, y: Any, shift: Any, tol: Any, s: Any, w10: Any, mode: int,
            op: int) -> tuple[Any, Any]:
    """(f(d), f'(d)) for d = x - y + shift: the step (CMP), soft eq (EQ) or not_equal (NE).

    Equal operands have ``x - y = 0`` (``inf`` vs ``inf`` too, not NaN; there the derivative is 0,
    as :func:`softtorch.comparison.greater`'s masked difference); EQ / NE with an infinite
    difference are exactly 0 / 1 with a zero derivative (an infinite operand is close only to
    itself)."""
    zero, one, two = _c(x, 0), _c(x, 1), _c(x, 2)
    same = x == y
    diff = x - y
    inf_eq = same and diff != diff
    dx = (zero if same else diff) + shift
    if op == CMP:
        v, d = _sig(dx, s, w10, mode)
        return v, (zero if inf_eq else d)
    a, da = _unary(dx, s, w10, mode, ABS)
    sg, d = _sig(tol - a, s, w10, mode)
    v = two * sg
    inf = _c(x, np.inf)
    far = (abs(x) == inf or abs(y) == inf) and not same
    g = zero if (v > one or same or far) else -two * d * da
    v = one if v > one else v
    v = zero if far else v
    if op == EQ:
        return v, g
    return one - v, -g


@nb.njit(**_ELEM)
def _clamp(x: Any, lo: Any, hi: Any, has_lo: bool, has_hi: bool, s: Any, w10: Any, mode: int,
           gated: bool) -> tuple[Any, Any, Any, Any]:
    """(value, d/dx, d/dlo, d/dhi) of the soft clamp as soft ``min(max(x, lo), hi)``: first
    ``m = lo + R(x - lo)``, then ``hi - R(hi - m)`` (the order of :func:`softtorch.clamp`, so the
    rounding is the same). A bound ``lo = -inf`` / ``hi = +inf`` is dropped, ``lo = +inf`` gives
    ``m = +inf`` and ``hi = -inf`` gives ``-inf`` (never ``inf - inf``)."""
    zero, one, inf = _c(x, 0), _c(x, 1), _c(x, np.inf)
    op = GATED if gated else RAMP
    m, dmx, dml = x, one, zero
    if has_lo and lo != -inf:
        if lo == inf:
            m, dmx, dml = lo, zero, one
        else:
            r1, d1 = _unary(x - lo, s, w10, mode, op)
            m, dmx, dml = lo + r1, d1, one - d1
    if has_hi and hi != inf:
        if hi == -inf:
            return hi, zero, zero, one
        r2, d2 = _unary(hi - m, s, w10, mode, op)
        return hi - r2, d2 * dmx, d2 * dml, one - d2
    return m, dmx, dml, zero


@nb.njit(**_ELEM)
def _round_start(x, r, k, cut):  # noqa: ANN001, ANN202
    """(start value, frac - j0 - 1/2) of the soft round of ``x``.

    The staircase is floor(x) - r + sum_j sigma_s(frac - j - 1/2), j in [-r, r), frac = x -
    floor(x). Only the ``k`` steps from ``j0 = ceil(frac - 1/2 - cut)`` on are evaluated; those
    below are saturated at 1 (exactly in c-modes and p-norm modes, to below one ulp in smooth)
    and counted in the start value, those above are 0 (to below one ulp). NaN / inf give NaN.
    """
    half = _c(x, 0.5)
    base = np.floor(x)
    frac = x - base  # NaN for NaN and +-inf
    jf = np.ceil(frac - half - cut)
    lo, hi = _c(x, -r), _c(x, r - k)
    jf = lo if jf < lo else (hi if jf > hi else jf)
    jf = lo if jf != jf else jf
    return (base - _c(x, r)) + (jf + _c(x, r)) + (frac - frac), frac - (jf + half)


@nb.njit(**_ELEM)
def _sig_inv(x: Any, s: Any, inv_s: Any, w10: Any, mode: int) -> tuple[Any, Any]:
    """:func:`_sig` with the ``smooth`` sigmoid scaled by ``inv_s = 1/s``: one division instead
    of three (divisions are the slowest vector operation; the argument differs by an ulp)."""
    if mode == 0:
        one = _c(x, 1)
        sg = one / (one + _exp(-(x * inv_s)))
        return sg, sg * (one - sg) * inv_s
    return _sig(x, s, w10, mode)


@nb.njit(**_ELEM)
def _close(x: Any, y: Any, rtol: Any, tol0: Any, s: Any, inv_s: Any, w10: Any,
           mode: int) -> tuple[Any, Any, Any]:
    r"""(v, dv/dx, dv/dy) of the soft ``isclose`` :math:`v = \min(1, 2\sigma_s(\tau - |d|_s))`,
    :math:`d = x - y`, :math:`\tau = \tau_0 + r|y|` (``r|y|`` is 0 where ``y == 0`` or ``r = 0``),
    :math:`|d|_s = d(2\sigma_s(d) - 1)`; ``rtol = 0`` is soft ``eq``.

    Equal operands (``inf`` vs ``inf`` too) have ``d = 0`` with no gradient through ``d``; an
    infinite operand is close only to itself (``v = 0`` with zero gradients); where the clamp at
    1 is active both gradients are 0 (``0 * inf`` never becomes NaN, ``rtol = inf`` included).
    """
    zero, one, two, inf = _c(x, 0), _c(x, 1), _c(x, 2), _c(x, np.inf)
    same = x == y
    far = (abs(x) == inf or abs(y) == inf) and not same
    d = zero if (same or far) else x - y
    ay = abs(y)
    tol = tol0 + (zero if (ay == zero or rtol == zero) else rtol * ay)
    sg1, d1 = _sig_inv(d, s, inv_s, w10, mode)
    sn = two * sg1 - one
    xd = zero if d1 == zero else d * d1  # saturated: 0
    da = sn + two * xd
    sg, dg = _sig_inv(tol - d * sn, s, inv_s, w10, mode)
    v = two * sg
    live = not (v > one or far)
    gt = two * dg if live else zero
    gd = zero if same else -gt * da
    sy = one if y > zero else (-one if y < zero else y)  # sign, NaN for NaN
    gy = -gd + (zero if (ay == zero or gt == zero or rtol == zero) else gt * rtol * sy)
    v = one if v > one else v
    return (zero if far else v), gd, gy


@nb.njit(**_ELEM)
def _gmean2(a: Any, b: Any, eps: Any) -> tuple[Any, Any, Any]:
    r"""(v, dv/da, dv/db) of the soft AND as a geometric mean,
    :math:`v = \mathrm{clip}(\sqrt{(a + \epsilon)(b + \epsilon)} - \epsilon, 0, 1)` (the
    :math:`\exp` of the mean :math:`\log`, without logs); the derivative
    :math:`\sqrt{\cdot}/(2(a + \epsilon))` inside the clip (ends included), else 0. A negative
    :math:`a + \epsilon` gives NaN (as the log does)."""
    zero, one, half = _c(a, 0), _c(a, 1), _c(a, 0.5)
    pa, pb = a + eps, b + eps
    nan = _c(a, np.nan)
    g = math.sqrt(pa * pb) if (pa >= zero and pb >= zero) else nan
    v = g - eps
    live = (v >= zero) and (v <= one)
    h = half * g if live else zero
    ga = zero if h == zero else h / pa
    gb = zero if h == zero else h / pb
    v = zero if v < zero else (one if v > one else v)
    return v, ga, gb


#: Largest smooth step term ``e^{-z/s}`` kept in ``round``'s paired steps (float32 / float64):
#: beyond it the step is below 1e-9 resp. 1e-75 and the squared pair denominators stay finite.
ROUND_BIG = {np.float32: float(2.0**30), np.float64: float(2.0**250)}


@nb.njit(**_ELEM)
def _pair_steps(e: Any, qa: Any, qb: Any, big: Any) -> tuple[Any, Any]:
    r"""Two ``smooth`` steps :math:`1/(1 + a) + 1/(1 + b)` and their derivatives' sum
    :math:`a/(1+a)^2 + b/(1+b)^2` (times :math:`s`) with one division each, for
    :math:`a = e q_a`, :math:`b = e q_b` (each capped at ``big``; a NaN stays NaN)."""
    one, two = _c(e, 1), _c(e, 2)
    a = e * qa
    a = big if a > big else a
    b = e * qb
    b = big if b > big else b
    pa, pb = one + a, one + b
    den = pa * pb
    return (two + a + b) / den, (a * pb * pb + b * pa * pa) / (den * den)


#: Taylor coefficients of exp(-w), highest first: degree 8 (float32) / 16 (float64) on
#: [0, 0.557] (truncation below 3e-8 resp. 5e-18 relative).
_W32 = tuple(np.float32((-1.0) ** k / math.factorial(k)) for k in range(8, -1, -1))
_W64 = tuple(np.float64((-1.0) ** k / math.factorial(k)) for k in range(16, -1, -1))


def _exp_short(w):  # noqa: ANN001, ANN202
    """exp(-w) for w in [0, 0.557] as a polynomial without range reduction. (Python body: the
    reference for plain calls; compiled kernels use the overload below.)"""
    return np.exp(-w)


@overload(_exp_short, jit_options={"error_model": "numpy", "forceinline": True, "fastmath": _FM})
def _ov_exp_short(w):  # noqa: ANN001, ANN202
    c = _W32 if w == types.float32 else _W64

    def impl(w):  # noqa: ANN001, ANN202
        return _poly(w, c)

    return impl


@nb.njit(**_ELEM)
def _eq_smooth(x: Any, y: Any, tol_c: Any, inv_s: Any) -> tuple[Any, Any]:
    r"""(v, dv/dx) of ``smooth`` soft ``eq`` with a constant tolerance :math:`\tau`
    (:func:`_close` with ``rtol = 0``; ``dv/dy = -dv/dx``) from one full exponential:
    with :math:`z = |d|/s`, :math:`e = e^{-z}`, :math:`|d|_s/s = z\tanh(z/2) = z - w`,
    :math:`w = 2ze/(1+e) \in [0, 0.557]`, so
    :math:`v = 2\sigma(\tau/s - z + w) = 2e / (e + c\,e^{-w})` with the scalar
    :math:`c = e^{-\tau/s}` (``tol_c``, > 0) and :math:`e^{-w}` a short polynomial;
    :math:`dv/dd = -2p(1 - p)\,\mathrm{sign}(d)(\tanh(z/2) + w/(1+e))/s` with
    :math:`p = v/2 = e/(e + c\,e^{-w}) \le 1/2` where the derivative is not 0 (no cancellation
    in :math:`1 - p`; the value shares no product with the derivative, so the kernels that also
    write the derivative round the value the same way)."""
    zero, one, two = _c(x, 0), _c(x, 1), _c(x, 2)
    same = x == y
    d = zero if same else x - y
    z = abs(d) * inv_s  # inf for an infinite operand: e = w = 0, so v = 0 and dv = 0 exactly
    e = _exp(-z)
    r1 = one / (one + e)
    t = e * r1
    w = zero if t == zero else two * z * t  # z = inf (d overflowed): e = 0, no inf * 0
    p = e / (e + tol_c * _exp_short(w))
    v = two * p
    live = not (v > one or same)
    sd = one if d > zero else (-one if d < zero else d)
    gd = -(two * p * (one - p) * inv_s) * sd * ((one - e) * r1 + w * r1)
    v = one if v > one else v
    return v, (gd if live else zero)
