r"""Fused CPU kernels (numba) for the elementwise relaxations: one pass forward, one pass backward.

This module imports numba at import time; :mod:`softtorch.kernels.fused` imports it on the first
CPU call, so ``import softtorch`` never pays for numba.

Every kernel reads flat contiguous float32 / float64 arrays and computes in their own precision
(the precision of the composite torch code), with the per-element helpers of
:mod:`._numba_math` (vectorisable ``exp`` and ``log1p``, about one ulp).

Kernels run on one thread below ``PARALLEL_MIN_ELEMENTS`` and otherwise in ``CHUNK``-sized blocks
under ``prange``, on torch's intra-op thread count (``torch.set_num_threads`` governs them too);
:func:`parallel_guard` serialises parallel launches under numba's ``workqueue`` threading layer
(it aborts when two Python threads launch parallel kernels at once). Only FMA
contraction is allowed (``fastmath={"contract"}``): NaN / inf semantics are IEEE.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numba as nb
import numpy as np

from ._numba_math import (
    _ELEM,
    _FM,
    ABS,
    CMP,
    EQ,
    GATED,
    MODE_CODES,
    NE,
    RAMP,
    ROUND_BIG,
    SIGN,
    SMOOTH_CUTOFF,
    STEP,
    _binary,
    _c,
    _clamp,
    _exp,
    _pair_steps,
    _round_start,
    _sig,
    _unary,
)

__all__ = [
    "ABS", "CMP", "EQ", "GATED", "MODE_CODES", "NE", "RAMP", "ROUND_BIG", "SIGN", "SMOOTH_CUTOFF",
    "STEP",
    "parallel_guard", "run", "run_loops", "tag",
]

#: Below this many elements a kernel runs on one thread (waking the pool costs more).
PARALLEL_MIN_ELEMENTS = 1 << 16
#: Elements per parallel block.
CHUNK = 1 << 14
#: Elements per block of ``round``'s passes (stays in L1).
ROUND_BLOCK = 1024
_LOOP = {"cache": True, "fastmath": _FM, "error_model": "numpy"}

_PARALLEL_LOCK = threading.Lock()
_LAYER_SAFE: bool | None = None


def parallel_guard() -> contextlib.AbstractContextManager[object]:
    """Context for one call of a ``parallel=True`` kernel: a process-wide lock unless numba's
    threading layer is thread-safe (``tbb``, ``omp``).

    (The same rule as ``softtorch.ordering._pav_numba.parallel_guard``; that copy should import
    this one once the ordering package may depend on ``softtorch.kernels``.)"""
    global _LAYER_SAFE
    if _LAYER_SAFE is None:
        try:
            _LAYER_SAFE = nb.threading_layer() in ("tbb", "omp")
        except ValueError:  # no parallel kernel has run yet: the layer is not chosen
            return _PARALLEL_LOCK
    return contextlib.nullcontext() if _LAYER_SAFE else _PARALLEL_LOCK


# ----------------------------------------------------------------------------- range loops
# Each loop runs over its slice of the arrays. The mode and op codes arrive as *tags*: tiny
# arrays with ``code + 1`` dimensions, so the code is part of the signature and a constant of the
# compiled loop; the branches on it fold away after inlining and the loop vectorises (a runtime
# code, or a literal one, keeps the branches and costs 3-10x; tuples would do too but cannot
# enter a prange body).


@nb.njit(**_ELEM)
def _bound(b, i, kind):  # noqa: ANN001, ANN202
    """Element ``i`` of a bound or of the incoming gradient: kind 0 absent (unused), 1 one
    value (a scalar operand, a gradient expanded from one value), 2 one value per element."""
    return b[i] if kind == 2 else b[0]


@nb.njit(**_LOOP)
def _unary_fwd(x, out, s, w10, mt, ot):  # noqa: ANN001, ANN202
    mode, op = mt.ndim - 1, ot.ndim - 1
    for i in range(x.size):
        out[i] = _unary(x[i], s, w10, mode, op)[0]


@nb.njit(**_LOOP)
def _unary_bwd(x, g, gx, s, w10, mt, ot, gt):  # noqa: ANN001, ANN202
    mode, op, gs = mt.ndim - 1, ot.ndim - 1, gt.ndim - 1
    for i in range(x.size):
        gx[i] = _bound(g, i, 2 - gs) * _unary(x[i], s, w10, mode, op)[1]


@nb.njit(**_LOOP)
def _binary_fwd(x, y, out, shift, tol, s, w10, mt, ot):  # noqa: ANN001, ANN202
    mode, op = mt.ndim - 1, ot.ndim - 1
    if y.size == x.size:
        for i in range(x.size):
            out[i] = _binary(x[i], y[i], shift, tol, s, w10, mode, op)[0]
    else:
        y0 = y[0]
        for i in range(x.size):
            out[i] = _binary(x[i], y0, shift, tol, s, w10, mode, op)[0]


@nb.njit(**_LOOP)
def _binary_bwd(x, y, g, gx, shift, tol, s, w10, mt, ot, gt):  # noqa: ANN001, ANN202
    mode, op, gs = mt.ndim - 1, ot.ndim - 1, gt.ndim - 1
    if y.size == x.size:
        for i in range(x.size):
            gx[i] = _bound(g, i, 2 - gs) * _binary(x[i], y[i], shift, tol, s, w10, mode, op)[1]
    else:
        y0 = y[0]
        for i in range(x.size):
            gx[i] = _bound(g, i, 2 - gs) * _binary(x[i], y0, shift, tol, s, w10, mode, op)[1]


@nb.njit(**_LOOP)
def _clamp_fwd(x, lo, hi, out, s, w10, mt, gt, lt, ht):  # noqa: ANN001, ANN202
    mode, gated, lk, hk = mt.ndim - 1, gt.ndim == 2, lt.ndim - 1, ht.ndim - 1
    for i in range(x.size):
        out[i] = _clamp(x[i], _bound(lo, i, lk), _bound(hi, i, hk), lk > 0, hk > 0, s, w10,
                        mode, gated)[0]


@nb.njit(**_LOOP)
def _clamp_bwd(x, lo, hi, g, gx, glo, ghi, s, w10, mt, gt, lt, ht, gst):  # noqa: ANN001, ANN202
    """One loop per gradient (several stores in one loop stop the vectoriser)."""
    mode, gated, lk, hk = mt.ndim - 1, gt.ndim == 2, lt.ndim - 1, ht.ndim - 1
    gk = 2 - (gst.ndim - 1)
    for i in range(x.size):
        gx[i] = _bound(g, i, gk) * _clamp(x[i], _bound(lo, i, lk), _bound(hi, i, hk), lk > 0,
                                          hk > 0, s, w10, mode, gated)[1]
    if glo.size > 0:
        for i in range(x.size):
            glo[i] = _bound(g, i, gk) * _clamp(x[i], _bound(lo, i, lk), _bound(hi, i, hk),
                                               lk > 0, hk > 0, s, w10, mode, gated)[2]
    if ghi.size > 0:
        for i in range(x.size):
            ghi[i] = _bound(g, i, gk) * _clamp(x[i], _bound(lo, i, lk), _bound(hi, i, hk),
                                               lk > 0, hk > 0, s, w10, mode, gated)[3]


@nb.njit(**_LOOP)
def _round_fwd(x, out, s, w10, mt, r, k, cut):  # noqa: ANN001, ANN202
    """Soft round in blocks of ``ROUND_BLOCK``: one pass for the start values and the first
    step's argument ``z`` (``smooth``: :math:`E = e^{-z/s}`), then the ``k`` steps as ``k``
    vectorised passes over the block. ``smooth`` step ``t`` is :math:`1 / (1 + E q^t)` with the
    scalar :math:`q^t = e^{t/s}`: one exponential per element instead of one per step (an
    overflow of :math:`E q^t` to ``inf`` is a step of exactly 0, as it should be)."""
    mode = mt.ndim - 1
    one = _c(s, 1)
    zb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, ob = x[b0:b0 + ROUND_BLOCK], out[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            v, z = _round_start(xb[i], r, k, cut)
            ob[i] = v
            zb[i] = _exp(-(z / s)) if mode == 0 else z
        for t in range(k):
            if mode == 0:
                qt = _c(s, np.exp(t / s))
                for i in range(n):
                    ob[i] += one / (one + zb[i] * qt)
            else:
                for i in range(n):
                    ob[i] += _sig(zb[i] - _c(s, t), s, w10, mode)[0]


@nb.njit(**_LOOP)
def _round_bwd(x, g, gx, s, w10, mt, r, k, cut, gt):  # noqa: ANN001, ANN202
    r"""The derivative :math:`\sum_t \sigma_s'(z - t)` of :func:`_round_fwd`'s steps
    (``smooth``: :math:`\sigma(1 - \sigma)/s` with :math:`\sigma = 1/(1 + E q^t)`), times ``g``."""
    mode = mt.ndim - 1
    one = _c(s, 1)
    zb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, gb, ob = x[b0:b0 + ROUND_BLOCK], g[b0:b0 + ROUND_BLOCK], gx[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            z = _round_start(xb[i], r, k, cut)[1]
            ob[i] = _c(s, 0)
            zb[i] = _exp(-(z / s)) if mode == 0 else z
        for t in range(k):
            if mode == 0:
                qt = _c(s, np.exp(t / s))
                for i in range(n):
                    sg = one / (one + zb[i] * qt)
                    ob[i] += sg * (one - sg) / s
            else:
                for i in range(n):
                    ob[i] += _sig(zb[i] - _c(s, t), s, w10, mode)[1]
        if gt.ndim == 2:
            for i in range(n):
                ob[i] *= g[0]
        else:
            for i in range(n):
                ob[i] *= gb[i]


@nb.njit(**_LOOP)
def _pair_fwd(x, out, shift, s, w10, mt, gt):  # noqa: ANN001, ANN202
    """out[p, t] = a + R(b - a) + shift with a = x[p, 0, t], b = x[p, 1, t] (pairs of a
    pooling window of 2; R the ramp, gated with a 2-d ``gt``). Plain indexing, no per-row
    views (their reference counting cost 50x)."""
    mode, op = mt.ndim - 1, RAMP + gt.ndim - 1
    n_p, n_t = out.shape
    if n_t == 1:
        for p in range(n_p):
            a = x[p, 0, 0]
            out[p, 0] = (a + _unary(x[p, 1, 0] - a, s, w10, mode, op)[0]) + shift
    else:
        for p in range(n_p):
            for t in range(n_t):
                a = x[p, 0, t]
                out[p, t] = (a + _unary(x[p, 1, t] - a, s, w10, mode, op)[0]) + shift


@nb.njit(**_LOOP)
def _pair_bwd(x, g, gx, shift, s, w10, mt, gt):  # noqa: ANN001, ANN202
    """gx[p, 1] = g R'(b - a), gx[p, 0] = g - gx[p, 1]: one store per loop (two stores in one
    loop stopped the vectoriser)."""
    mode, op = mt.ndim - 1, RAMP + gt.ndim - 1
    n_p, n_t = g.shape
    if n_t == 1:
        for p in range(n_p):
            a = x[p, 0, 0]
            gx[p, 1, 0] = g[p, 0] * _unary(x[p, 1, 0] - a, s, w10, mode, op)[1]
        for p in range(n_p):
            gx[p, 0, 0] = g[p, 0] - gx[p, 1, 0]
    else:
        for p in range(n_p):
            for t in range(n_t):
                a = x[p, 0, t]
                gx[p, 1, t] = g[p, t] * _unary(x[p, 1, t] - a, s, w10, mode, op)[1]
            for t in range(n_t):
                gx[p, 0, t] = g[p, t] - gx[p, 1, t]


@nb.njit(**_LOOP)
def _round_smooth_fwd(x, out, inv_s, big, r, k, cut):  # noqa: ANN001, ANN202
    """``smooth`` soft round (see :func:`_round_fwd`) with its steps in pairs: one division per
    two steps (:func:`._numba_math._pair_steps`)."""
    one = _c(inv_s, 1)
    eb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, ob = x[b0:b0 + ROUND_BLOCK], out[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            v, z = _round_start(xb[i], r, k, cut)
            ob[i] = v
            eb[i] = _exp(-(z * inv_s))
        for t in range(0, k - 1, 2):
            qa, qb = _c(inv_s, np.exp(t * inv_s)), _c(inv_s, np.exp((t + 1) * inv_s))
            for i in range(n):
                ob[i] += _pair_steps(eb[i], qa, qb, big)[0]
        if k % 2 == 1:
            q = _c(inv_s, np.exp((k - 1) * inv_s))
            for i in range(n):
                ob[i] += one / (one + eb[i] * q)


@nb.njit(**_LOOP)
def _round_smooth_bwd(x, g, gx, inv_s, big, r, k, cut, gt):  # noqa: ANN001, ANN202
    r"""The derivative of :func:`_round_smooth_fwd`, :math:`\sum_t a_t / (1 + a_t)^2 / s`
    (:math:`a_t = e^{-z_t/s}`), in pairs, times ``g``."""
    one, zero = _c(inv_s, 1), _c(inv_s, 0)
    eb = np.empty(min(ROUND_BLOCK, x.size), x.dtype)
    for b0 in range(0, x.size, ROUND_BLOCK):
        xb, gb, ob = x[b0:b0 + ROUND_BLOCK], g[b0:b0 + ROUND_BLOCK], gx[b0:b0 + ROUND_BLOCK]
        n = xb.size
        for i in range(n):
            z = _round_start(xb[i], r, k, cut)[1]
            ob[i] = zero
            eb[i] = _exp(-(z * inv_s))
        for t in range(0, k - 1, 2):
            qa, qb = _c(inv_s, np.exp(t * inv_s)), _c(inv_s, np.exp((t + 1) * inv_s))
            for i in range(n):
                ob[i] += _pair_steps(eb[i], qa, qb, big)[1]
        if k % 2 == 1:
            q = _c(inv_s, np.exp((k - 1) * inv_s))
            for i in range(n):
                a = eb[i] * q
                a = big if a > big else a
                ob[i] += a / ((one + a) * (one + a))
        if gt.ndim == 2:
            for i in range(n):
                ob[i] *= g[0] * inv_s
        else:
            for i in range(n):
                ob[i] *= gb[i] * inv_s


@nb.njit(parallel=True, **_LOOP)
def _par_pair_fwd(n, x, out, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, CHUNK // max(1, out.shape[1]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        _pair_fwd(x[c * step:(c + 1) * step], out[c * step:(c + 1) * step], *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_pair_bwd(n, x, g, gx, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, CHUNK // max(1, g.shape[1]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        lo, hi = c * step, (c + 1) * step
        _pair_bwd(x[lo:hi], g[lo:hi], gx[lo:hi], *rest)


_RANGES = {
    "unary_fwd": _unary_fwd, "unary_bwd": _unary_bwd, "binary_fwd": _binary_fwd,
    "binary_bwd": _binary_bwd, "clamp_fwd": _clamp_fwd, "clamp_bwd": _clamp_bwd,
    "round_fwd": _round_fwd, "round_bwd": _round_bwd, "pair_fwd": _pair_fwd,
    "pair_bwd": _pair_bwd, "round_smooth_fwd": _round_smooth_fwd,
    "round_smooth_bwd": _round_smooth_bwd,
}


@nb.njit(**_ELEM)
def _sl(a, lo, hi, n):  # noqa: ANN001, ANN202
    """Block [lo, hi) of an n-element array; a smaller array (a scalar operand, an absent
    output) whole."""
    return a[lo:hi] if a.size == n else a


@nb.njit(parallel=True, **_LOOP)
def _par_unary_fwd(n, a0, a1, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _unary_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_unary_bwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _unary_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_binary_fwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _binary_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_binary_bwd(n, a0, a1, a2, a3, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _binary_bwd(
            _sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), _sl(a3, lo, hi, n), *rest
        )


@nb.njit(parallel=True, **_LOOP)
def _par_clamp_fwd(n, a0, a1, a2, a3, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _clamp_fwd(
            _sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), _sl(a3, lo, hi, n), *rest
        )


@nb.njit(parallel=True, **_LOOP)
def _par_clamp_bwd(n, a0, a1, a2, a3, a4, a5, a6, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _clamp_bwd(
            _sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), _sl(a3, lo, hi, n),
            _sl(a4, lo, hi, n), _sl(a5, lo, hi, n), _sl(a6, lo, hi, n), *rest
        )


@nb.njit(parallel=True, **_LOOP)
def _par_round_fwd(n, a0, a1, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _round_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_round_bwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _round_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_round_smooth_fwd(n, a0, a1, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _round_smooth_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_round_smooth_bwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _round_smooth_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


_PARALLEL = {
    "unary_fwd": _par_unary_fwd, "unary_bwd": _par_unary_bwd, "binary_fwd": _par_binary_fwd,
    "binary_bwd": _par_binary_bwd, "clamp_fwd": _par_clamp_fwd, "clamp_bwd": _par_clamp_bwd,
    "round_fwd": _par_round_fwd, "round_bwd": _par_round_bwd, "pair_fwd": _par_pair_fwd,
    "pair_bwd": _par_pair_bwd,
    "round_smooth_fwd": _par_round_smooth_fwd, "round_smooth_bwd": _par_round_smooth_bwd,
}


_TAGS = [np.zeros((1,) * (k + 1), np.int8) for k in range(8)]


def tag(code: int) -> np.ndarray:
    """The tag of a mode / op code: a one-element array with ``code + 1`` dimensions (see the
    range loops)."""
    return _TAGS[int(code)]


def run(name: str, n: int, args: tuple[Any, ...], threads: int) -> None:
    """Run kernel ``name`` over ``n`` elements on up to ``threads`` threads (the caller passes
    torch's intra-op thread count); ``args`` are its arrays, its float scalars (already of the
    arrays' dtype) and its tags."""
    run_loops(_RANGES[name], _PARALLEL[name], n, args, threads)


def run_loops(serial: Any, parallel: Any, n: int, args: tuple[Any, ...], threads: int) -> None:
    """Run the range loop ``serial`` over all ``n`` elements, or its ``prange`` driver
    ``parallel`` (called with ``n`` first) from ``PARALLEL_MIN_ELEMENTS`` elements on, on up to
    ``threads`` threads."""
    threads = min(threads, nb.config.NUMBA_NUM_THREADS)
    if n >= PARALLEL_MIN_ELEMENTS and threads > 1:
        with parallel_guard():
            nb.set_num_threads(threads)
            parallel(n, *args)
    else:
        serial(*args)
