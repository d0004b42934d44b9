r"""CPU kernels (numba) of the fused entropic plan: write it once, stream it once in the backward.

The entropic plan of the rank-one cost (:mod:`.method`) is

.. math:: Q_{ij} = \exp(s_{ij}), \qquad s_{ij} = \alpha_i + \beta_j - a_i y_j,

with the solver's potentials ``alpha`` ``(B, n)``, ``beta`` ``(B, m)`` (float64). Both kernels see
it through the symmetric form ``s_rc = p_r + q_c - u_r v_c`` of a matrix with row scalars
``(p, u)`` and column scalars ``(q, v)``: ``(alpha, a)`` / ``(beta, y)`` for ``Q`` itself and the
swapped pair for ``Q^T`` (used when the incoming gradient is laid out like ``Q^T``).

* :func:`write_plan`: ``out[b, r, c] = exp(s_rc)``, the slack in the dtype of the scalars
  (float32 or float64) and the exponential in ``out``'s dtype (the vectorisable polynomial of
  :mod:`softtorch.kernels._numba_math`), each entry written once.
* :func:`plan_sums`: for an upstream gradient ``G`` (rows ``G[b, r]`` of length ``C`` or one
  value per row, broadcast) and ``GD = G * Q`` recomputed entry by entry (the same arithmetic as
  :func:`write_plan`), the float64 sums
  ``R_r = sum_c GD_rc``, ``C_c = sum_r GD_rc`` and either ``Rw_r = sum_c GD_rc v_c``
  (``wrow=True``) or ``Cw_c = sum_r GD_rc u_r`` (partial sums over at most ``CHUNK`` columns
  or ``FLUSH`` rows in the plan's dtype, so that the loops vectorise, then added in float64).
  These are the three sums of ``G D`` the implicit backward needs (``D = Q``;
  :mod:`._fusedplan`), in one pass over ``G`` without any ``n x m`` temporary.

The ``*_parallel`` variants split the rows of each batch row into ``nblk`` blocks and run the
``B * nblk`` blocks as ``prange`` iterations (each body one call of a plain kernel: no tuple
assignment or nested loop inside a ``prange`` body); column sums go to one private accumulator
per block, added up afterwards. The inner loops take row slices (fresh 1-D arrays) and may be
reassociated (``fastmath`` ``reassoc``) so that LLVM vectorises them; NaN / inf keep IEEE
semantics. This module imports numba at import time; :mod:`._fusedplan` imports it on first use.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ....kernels._numba_math import _c, _exp

_FM = {"contract", "reassoc", "nsz", "arcp"}
#: Columns per span of a row sum, and rows per column partial sum, in the plan's dtype.
CHUNK = 256
FLUSH = 32
_JIT = {"error_model": "numpy", "fastmath": _FM, "cache": True}


@nb.njit(**_JIT)
def _write_row(p, u, q, v, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    for c in range(out.shape[0]):
        out[c] = _exp(_c(out[0], (p + q[c]) - u * v[c]))


@nb.njit(**_JIT)
def _sum_cols(p, u, q, v, g, cb):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``(sum_c GD_c, sum_c GD_c v_c)`` of a span of one row (``g``'s dtype); ``cb[c] += GD_c``."""
    acc = _c(g[0], 0.0)
    accw = _c(g[0], 0.0)
    for c in range(g.shape[0]):
        gd = g[c] * _exp(_c(g[0], (p + q[c]) - u * v[c]))
        acc += gd
        accw += gd * _c(g[0], v[c])
        cb[c] += gd
    return acc, accw


@nb.njit(**_JIT)
def _sum_cols_t(p, u, q, v, g, cb, cw):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``sum_c GD_c`` of a span of one row (``g``'s dtype); ``cb[c] += GD_c``,
    ``cw[c] += GD_c u``."""
    acc = _c(g[0], 0.0)
    uw = _c(g[0], u)
    for c in range(g.shape[0]):
        gd = g[c] * _exp(_c(g[0], (p + q[c]) - u * v[c]))
        acc += gd
        cb[c] += gd
        cw[c] += gd * uw
    return acc


@nb.njit(**_JIT)
def _sum_row(p, u, q, v, g, cb, cw, wrow):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Float64 ``(sum_c GD_c, sum_c GD_c v_c)`` (``wrow``) or ``(sum_c GD_c, 0)`` of one row, from
    spans of ``CHUNK`` columns summed in ``g``'s dtype (vectorised); ``cb``, ``cw`` as in
    :func:`_sum_cols` / :func:`_sum_cols_t`."""
    acc = 0.0
    accw = 0.0
    ncol = g.shape[0]
    for lo in range(0, ncol, CHUNK):
        hi = min(ncol, lo + CHUNK)
        if wrow:
            sums = _sum_cols(p, u, q[lo:hi], v[lo:hi], g[lo:hi], cb[lo:hi])
            acc += np.float64(sums[0])
            accw += np.float64(sums[1])
        else:
            acc += np.float64(_sum_cols_t(p, u, q[lo:hi], v[lo:hi], g[lo:hi], cb[lo:hi], cw[lo:hi]))
    return acc, accw


@nb.njit(**_JIT)
def _flush(src, dst):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``dst += src`` (float64), ``src = 0``."""
    for c in range(src.shape[0]):
        dst[c] += np.float64(src[c])
        src[c] = 0


@nb.njit(**_JIT)
def _bounds(k, nblk, rows):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Batch row and row range of block ``k`` (``nblk`` blocks per batch row)."""
    b = k // nblk
    t = k - b * nblk
    step = (rows + nblk - 1) // nblk
    lo = min(rows, t * step)
    return b, lo, min(rows, lo + step)


@nb.njit(**_JIT)
def _write_block(p, u, q, v, out, k, nblk):  # noqa: ANN001, ANN202  # pragma: no cover
    b, lo, hi = _bounds(k, nblk, p.shape[1])
    for r in range(lo, hi):
        _write_row(p[b, r], u[b, r], q[b], v[b], out[b, r])


@nb.njit(**_JIT)
def _sum_block(p, u, q, v, g, k, nblk, wrow, rs, rw, cs, cw):  # noqa: ANN001, ANN202  # pragma: no cover
    """Block ``k`` of :func:`plan_sums`: ``rs`` / ``rw`` ``(B, R)``, ``cs`` / ``cw`` ``(K, C)``
    (row ``k`` is this block's accumulator; column sums are kept in ``g``'s dtype over at most
    ``FLUSH`` rows, then added in float64)."""
    b, lo, hi = _bounds(k, nblk, p.shape[1])
    gb = b if g.shape[0] > 1 else 0
    ncol = q.shape[1]
    buf = np.empty(ncol, g.dtype)
    cb = np.zeros(ncol, g.dtype)
    cwb = np.zeros(0 if wrow else ncol, g.dtype)
    for r in range(lo, hi):
        gr = g[gb, r if g.shape[1] > 1 else 0]
        if gr.shape[0] == ncol:
            row = gr
        else:  # one value per row (a gradient expanded along the columns)
            buf[:] = gr[0]
            row = buf
        sums = _sum_row(p[b, r], u[b, r], q[b], v[b], row, cb, cwb, wrow)
        rs[b, r] = sums[0]
        if wrow:
            rw[b, r] = sums[1]
        if (r - lo) % FLUSH == FLUSH - 1 or r == hi - 1:
            _flush(cb, cs[k])
            _flush(cwb, cw[k])


@nb.njit(**_JIT)
def write_plan(p, u, q, v, out):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """``out[b, r, c] = exp(p[b, r] + q[b, c] - u[b, r] v[b, c])`` (``p``, ``u`` ``(B, R)``,
    ``q``, ``v`` ``(B, C)`` float32 or float64; ``out`` ``(B, R, C)`` float32 or float64,
    C-contiguous)."""
    for k in range(p.shape[0]):
        _write_block(p, u, q, v, out, k, 1)
    return out


@nb.njit(parallel=True, cache=True)
def write_plan_parallel(p, u, q, v, out, nblk):  # noqa: ANN001, ANN202  # pragma: no cover
    """:func:`write_plan` over ``B * nblk`` row blocks in parallel."""
    for k in nb.prange(p.shape[0] * nblk):
        _write_block(p, u, q, v, out, k, nblk)
    return out


@nb.njit(**_JIT)
def plan_sums(p, u, q, v, g, wrow, rs, rw, cs, cw):  # noqa: ANN001, ANN202  # pragma: no cover
    """The sums of ``GD = g * exp(s)`` (module docstring) into ``rs``, ``rw`` ``(B, R)`` and the
    accumulators ``cs``, ``cw`` ``(B, C)`` (zeroed by the caller); ``g`` ``(Bg, Rg, Cg)`` with
    ``Bg in {1, B}``, ``Rg in {1, R}``, ``Cg in {1, C}`` (broadcast), C-contiguous."""
    for k in range(p.shape[0]):
        _sum_block(p, u, q, v, g, k, 1, wrow, rs, rw, cs, cw)


@nb.njit(parallel=True, cache=True)
def plan_sums_parallel(p, u, q, v, g, nblk, wrow, rs, rw, cs, cw):  # noqa: ANN001, ANN202  # pragma: no cover
    """:func:`plan_sums` over ``B * nblk`` row blocks in parallel; ``cs``, ``cw``
    ``(B * nblk, C)``, block ``k`` of batch row ``k // nblk`` accumulating into row ``k``."""
    for k in nb.prange(p.shape[0] * nblk):
        _sum_block(p, u, q, v, g, k, nblk, wrow, rs, rw, cs, cw)
