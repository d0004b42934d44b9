r"""CPU kernels (numba) of soft 2x2 max pooling with stride 2 (``MaxPool2d(2)``) in one pass.

The input is viewed as ``x[r, h, w]`` (``r`` a row pair of the pooled plane, ``h`` in ``{0, 1}``
its two rows, ``w`` the column), the output as ``out[r, j]``. With the one-sided soft clamp of a
pair :math:`P(a, b) = a + R(b - a) + \mathrm{shift}` (:func:`softtorch.kernels.fused.pair_max`:
``R`` the ramp, gated for the sparse modes), window ``(r, j)`` is

.. math::
    r_0 = P(x_{r0,2j}, x_{r1,2j}),\quad r_1 = P(x_{r0,2j+1}, x_{r1,2j+1}),\quad
    \mathrm{out}_{rj} = P(r_0, r_1),

the two passes of :mod:`softtorch.kernels.pool` (pairs along the rows, then along the columns)
with the same floating point steps, without the intermediate tensor. The backward recomputes
the window from ``x``: with :math:`q = R'(r_1 - r_0)`, :math:`g_1 = g\,q`, :math:`g_0 = g - g_1`,
and per column pair :math:`\partial_b = g_c R'(b - a)`, :math:`\partial_a = g_c - \partial_b`.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from ._numba_kernels import CHUNK, PARALLEL_MIN_ELEMENTS, parallel_guard
from ._numba_math import _FM, RAMP, _unary

__all__ = ["run"]

_LOOP = {"cache": True, "fastmath": _FM, "error_model": "numpy"}


@nb.njit(**_LOOP)
def _quad_fwd(x, out, shift, s, w10, mt, gt):  # noqa: ANN001, ANN202
    """``out[r, j]`` = the pair of the column pairs of window ``(r, j)`` (see the module): per
    row pair, the row pairs of all columns into a scratch row (contiguous, vectorised), then the
    pairs of its neighbours."""
    mode, op = mt.ndim - 1, RAMP + gt.ndim - 1
    n_r, n_j = out.shape
    rr = np.empty(2 * n_j, x.dtype)
    for r in range(n_r):
        x0 = x[r, 0]
        x1 = x[r, 1]
        for k in range(2 * n_j):
            a = x0[k]
            rr[k] = (a + _unary(x1[k] - a, s, w10, mode, op)[0]) + shift
        o = out[r]
        for j in range(n_j):
            r0 = rr[2 * j]
            o[j] = (r0 + _unary(rr[2 * j + 1] - r0, s, w10, mode, op)[0]) + shift


@nb.njit(**_LOOP)
def _quad_bwd(x, g, gx, shift, s, w10, mt, gt):  # noqa: ANN001, ANN202
    """``gx`` (every position of the window rows) from ``g`` (see the module): per row pair,
    scratch rows of the row pairs' values and derivatives and of the column pairs' gradients,
    then one store stream per loop (two stores in one loop stop the vectoriser)."""
    mode, op = mt.ndim - 1, RAMP + gt.ndim - 1
    n_r, n_j = g.shape
    n = 2 * n_j
    rr = np.empty(n, x.dtype)
    dd = np.empty(n, x.dtype)
    t0 = np.empty(n_j, x.dtype)
    t1 = np.empty(n_j, x.dtype)
    for r in range(n_r):
        x0 = x[r, 0]
        x1 = x[r, 1]
        for k in range(n):
            a = x0[k]
            p = _unary(x1[k] - a, s, w10, mode, op)
            rr[k] = (a + p[0]) + shift
            dd[k] = p[1]
        gr = g[r]
        for j in range(n_j):
            r0 = rr[2 * j]
            g1 = gr[j] * _unary(rr[2 * j + 1] - r0, s, w10, mode, op)[1]
            t1[j] = g1
            t0[j] = gr[j] - g1
        g0r = gx[r, 0]
        g1r = gx[r, 1]
        for k in range(n):
            gc = t1[k >> 1] if k & 1 else t0[k >> 1]
            g1r[k] = gc * dd[k]
        for k in range(n):
            gc = t1[k >> 1] if k & 1 else t0[k >> 1]
            g0r[k] = gc - g1r[k]


@nb.njit(parallel=True, **_LOOP)
def _par_quad_fwd(x, out, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, CHUNK // max(1, out.shape[1]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        _quad_fwd(x[c * step:(c + 1) * step], out[c * step:(c + 1) * step], *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_quad_bwd(x, g, gx, *rest):  # noqa: ANN001, ANN002, ANN202
    step = max(1, CHUNK // max(1, g.shape[1]))
    for c in nb.prange((x.shape[0] + step - 1) // step):
        _quad_bwd(x[c * step:(c + 1) * step], g[c * step:(c + 1) * step],
                  gx[c * step:(c + 1) * step], *rest)


_KERNELS = {"fwd": (_quad_fwd, _par_quad_fwd), "bwd": (_quad_bwd, _par_quad_bwd)}


def run(name: str, arrays: tuple[Any, ...], scalars: tuple[Any, ...], threads: int) -> None:
    """Run ``fwd`` (``arrays = (x, out)``) or ``bwd`` (``(x, g, gx)``) on up to ``threads``
    threads: in parallel row blocks from :data:`PARALLEL_MIN_ELEMENTS` input elements on.

    Args:
        name: ``"fwd"`` or ``"bwd"``.
        arrays: C-contiguous arrays of one float dtype, ``x`` of shape ``(rows, 2, 2 n)``, the
            output / incoming gradient ``(rows, n)``, ``gx`` like ``x``.
        scalars: ``(shift, s, w10, mode tag, gated tag)`` (floats of the arrays' dtype).
        threads: torch's intra-op thread count.
    """
    serial, parallel = _KERNELS[name]
    x = arrays[0]
    threads = min(threads, nb.config.NUMBA_NUM_THREADS)
    if x.size >= PARALLEL_MIN_ELEMENTS and threads > 1 and x.shape[0] > 1:
        with parallel_guard():
            nb.set_num_threads(threads)
            parallel(*arrays, *scalars)
    else:
        serial(*arrays, *scalars)
