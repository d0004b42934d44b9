r"""Fused CPU kernels (numba) of the two-operand relaxations with both gradients in one pass:
soft ``eq`` / ``not_equal`` / ``isclose`` (:func:`._numba_math._close`, and for ``smooth`` with a
constant tolerance the one-exponential :func:`._numba_math._eq_smooth`) and the geometric-mean
soft AND (:func:`._numba_math._gmean2`). Soft ``eq`` / ``not_equal`` (``dv/dy = -dv/dx``) can
also write ``dv/dx`` in the forward (``*_fwd_grad``); its backward is then one scaling pass
(:func:`_scale_neg`). Same conventions as :mod:`._numba_kernels` (range loops
with tags, ``prange`` drivers in blocks, :func:`run`).
"""

from __future__ import annotations

from typing import Any

import numba as nb

from ._numba_kernels import _LOOP, CHUNK, _bound, _sl, run_loops
from ._numba_math import _c, _close, _eq_smooth, _gmean2

__all__ = ["run"]


@nb.njit(**_LOOP)
def _close_fwd(x, y, out, rtol, tol, s, inv_s, w10, mt, ot):  # noqa: ANN001, ANN202
    """Soft isclose / eq (``ot`` code 0) or one minus it (code 1); ``y`` one value or one per
    element."""
    mode, ne = mt.ndim - 1, ot.ndim == 2
    one = _c(s, 1)
    if y.size == x.size:
        for i in range(x.size):
            v = _close(x[i], y[i], rtol, tol, s, inv_s, w10, mode)[0]
            out[i] = one - v if ne else v
    else:
        y0 = y[0]
        for i in range(x.size):
            v = _close(x[i], y0, rtol, tol, s, inv_s, w10, mode)[0]
            out[i] = one - v if ne else v


@nb.njit(**_LOOP)
def _close_bwd(x, y, g, gx, gy, rtol, tol, s, inv_s, w10, mt, ot, gt):  # noqa: ANN001, ANN202
    """Both gradients in one pass (``gy`` empty: only ``gx``)."""
    mode, gs = mt.ndim - 1, gt.ndim - 1
    sgn = -_c(s, 1) if ot.ndim == 2 else _c(s, 1)
    if y.size == x.size:
        if gy.size == 0:
            for i in range(x.size):
                gx[i] = (_bound(g, i, 2 - gs) * sgn) * _close(
                    x[i], y[i], rtol, tol, s, inv_s, w10, mode)[1]
        else:
            for i in range(x.size):
                _, dx, dy = _close(x[i], y[i], rtol, tol, s, inv_s, w10, mode)
                gi = _bound(g, i, 2 - gs) * sgn
                gx[i] = gi * dx
                gy[i] = gi * dy
    else:
        y0 = y[0]
        if gy.size == 0:
            for i in range(x.size):
                gx[i] = (_bound(g, i, 2 - gs) * sgn) * _close(
                    x[i], y0, rtol, tol, s, inv_s, w10, mode)[1]
        else:
            for i in range(x.size):
                _, dx, dy = _close(x[i], y0, rtol, tol, s, inv_s, w10, mode)
                gi = _bound(g, i, 2 - gs) * sgn
                gx[i] = gi * dx
                gy[i] = gi * dy


@nb.njit(**_LOOP)
def _gmean_fwd(a, b, out, eps):  # noqa: ANN001, ANN202
    for i in range(a.size):
        out[i] = _gmean2(a[i], b[i], eps)[0]


@nb.njit(**_LOOP)
def _gmean_bwd(a, b, g, ga, gb, eps, gt):  # noqa: ANN001, ANN202
    gs = gt.ndim - 1
    for i in range(a.size):
        _, da, db = _gmean2(a[i], b[i], eps)
        gi = _bound(g, i, 2 - gs)
        ga[i] = gi * da
        gb[i] = gi * db

@nb.njit(**_LOOP)
def _eqs_fwd(x, y, out, tol_c, inv_s, ot):  # noqa: ANN001, ANN202
    """``smooth`` soft eq (``ot`` code 0) or not_equal (code 1) with a constant tolerance."""
    ne = ot.ndim == 2
    one = _c(inv_s, 1)
    if y.size == x.size:
        for i in range(x.size):
            v = _eq_smooth(x[i], y[i], tol_c, inv_s)[0]
            out[i] = one - v if ne else v
    else:
        y0 = y[0]
        for i in range(x.size):
            v = _eq_smooth(x[i], y0, tol_c, inv_s)[0]
            out[i] = one - v if ne else v


@nb.njit(**_LOOP)
def _eqs_bwd(x, y, g, gx, gy, tol_c, inv_s, ot, gt):  # noqa: ANN001, ANN202
    """gx = g dv/dx and (``gy`` not empty) gy = -gx, in one pass."""
    gs = gt.ndim - 1
    sgn = -_c(inv_s, 1) if ot.ndim == 2 else _c(inv_s, 1)
    if y.size == x.size:
        if gy.size == 0:
            for i in range(x.size):
                gx[i] = (_bound(g, i, 2 - gs) * sgn) * _eq_smooth(x[i], y[i], tol_c, inv_s)[1]
        else:
            for i in range(x.size):
                gi = (_bound(g, i, 2 - gs) * sgn) * _eq_smooth(x[i], y[i], tol_c, inv_s)[1]
                gx[i] = gi
                gy[i] = -gi
    else:
        y0 = y[0]
        if gy.size == 0:
            for i in range(x.size):
                gx[i] = (_bound(g, i, 2 - gs) * sgn) * _eq_smooth(x[i], y0, tol_c, inv_s)[1]
        else:
            for i in range(x.size):
                gi = (_bound(g, i, 2 - gs) * sgn) * _eq_smooth(x[i], y0, tol_c, inv_s)[1]
                gx[i] = gi
                gy[i] = -gi


@nb.njit(**_LOOP)
def _eqs_fwd_grad(x, y, out, der, tol_c, inv_s, ot):  # noqa: ANN001, ANN202
    """:func:`_eqs_fwd` that also writes the derivative dv/dx (``dv/dy = -dv/dx``) to ``der``."""
    ne = ot.ndim == 2
    one = _c(inv_s, 1)
    if y.size == x.size:
        for i in range(x.size):
            v, d = _eq_smooth(x[i], y[i], tol_c, inv_s)
            out[i] = one - v if ne else v
            der[i] = -d if ne else d
    else:
        y0 = y[0]
        for i in range(x.size):
            v, d = _eq_smooth(x[i], y0, tol_c, inv_s)
            out[i] = one - v if ne else v
            der[i] = -d if ne else d


@nb.njit(**_LOOP)
def _close_fwd_grad(x, y, out, der, tol, s, inv_s, w10, mt, ot):  # noqa: ANN001, ANN202
    """:func:`_close_fwd` of soft eq / not_equal (``rtol = 0``: ``dv/dy = -dv/dx``) that also
    writes the derivative dv/dx to ``der``."""
    mode, ne = mt.ndim - 1, ot.ndim == 2
    one, zero = _c(s, 1), _c(s, 0)
    if y.size == x.size:
        for i in range(x.size):
            v, d, _ = _close(x[i], y[i], zero, tol, s, inv_s, w10, mode)
            out[i] = one - v if ne else v
            der[i] = -d if ne else d
    else:
        y0 = y[0]
        for i in range(x.size):
            v, d, _ = _close(x[i], y0, zero, tol, s, inv_s, w10, mode)
            out[i] = one - v if ne else v
            der[i] = -d if ne else d


@nb.njit(**_LOOP)
def _scale_neg(der, g, gy, gt):  # noqa: ANN001, ANN202
    """``der *= g`` in place and (``gy`` not empty) ``gy = -der``: the two gradients of soft eq
    from the forward's derivative."""
    gs = gt.ndim - 1
    if gy.size == 0:
        for i in range(der.size):
            der[i] = der[i] * _bound(g, i, 2 - gs)
    else:
        for i in range(der.size):
            v = der[i] * _bound(g, i, 2 - gs)
            der[i] = v
            gy[i] = -v


@nb.njit(parallel=True, **_LOOP)
def _par_close_fwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _close_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_close_bwd(n, a0, a1, a2, a3, a4, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _close_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n),
                   _sl(a3, lo, hi, n), _sl(a4, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_gmean_fwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _gmean_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_gmean_bwd(n, a0, a1, a2, a3, a4, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _gmean_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n),
                   _sl(a3, lo, hi, n), _sl(a4, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_eqs_fwd(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _eqs_fwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_eqs_bwd(n, a0, a1, a2, a3, a4, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _eqs_bwd(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n),
                 _sl(a3, lo, hi, n), _sl(a4, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_eqs_fwd_grad(n, a0, a1, a2, a3, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _eqs_fwd_grad(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n),
                      _sl(a3, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_close_fwd_grad(n, a0, a1, a2, a3, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _close_fwd_grad(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n),
                        _sl(a3, lo, hi, n), *rest)


@nb.njit(parallel=True, **_LOOP)
def _par_scale_neg(n, a0, a1, a2, *rest):  # noqa: ANN001, ANN002, ANN202
    for c in nb.prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _scale_neg(_sl(a0, lo, hi, n), _sl(a1, lo, hi, n), _sl(a2, lo, hi, n), *rest)


_LOOPS = {
    "close_fwd": (_close_fwd, _par_close_fwd), "close_bwd": (_close_bwd, _par_close_bwd),
    "eqs_fwd": (_eqs_fwd, _par_eqs_fwd), "eqs_bwd": (_eqs_bwd, _par_eqs_bwd),
    "gmean_fwd": (_gmean_fwd, _par_gmean_fwd), "gmean_bwd": (_gmean_bwd, _par_gmean_bwd),
    "eqs_fwd_grad": (_eqs_fwd_grad, _par_eqs_fwd_grad),
    "close_fwd_grad": (_close_fwd_grad, _par_close_fwd_grad),
    "scale_neg": (_scale_neg, _par_scale_neg),
}


def run(name: str, n: int, args: tuple[Any, ...], threads: int) -> None:
    """Run kernel ``name`` (``close_*``, ``eqs_*``, ``gmean_*``, ``scale_neg``) over ``n``
    elements on up to ``threads`` threads (see :func:`._numba_kernels.run`)."""
    serial, parallel = _LOOPS[name]
    run_loops(serial, parallel, n, args, threads)
