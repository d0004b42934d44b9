r"""Batched pool-adjacent-violators (PAV) CPU kernel for permutahedron projections (numba).

This module imports numba at import time; :mod:`.fast_soft_sort` imports it
lazily, the first time the CPU kernel runs, so ``import softtorch`` never pays for numba.

Problem (one row; Blondel et al. 2020, Prop. 3 generalised to separable regularisers): given
``s`` and ``w`` both sorted in descending order, find the non-increasing ``v`` minimising

.. math:: \sum_i \psi^*(s_i - v_i) + \langle v, c(w) \rangle, \qquad v_1 \ge \dots \ge v_n,

and return :math:`o_i = h(s_i - v_i)`. PAV keeps a stack of blocks; on a block ``B`` the common
value :math:`\gamma_B` solves :math:`\sum_B g(s_i - \gamma) = \sum_B c(w_i)` with
:math:`g = (\psi^*)'`. The regulariser codes ``reg`` are

* ``0`` quadratic (``c0``): :math:`g(y) = y`, :math:`\gamma = \bar s_B - \bar w_B`,
  :math:`o = s - v`;
* ``1`` entropic (``smooth``): :math:`g = \exp`, :math:`c = \exp`,
  :math:`\gamma = \mathrm{lse}(s_B) - \mathrm{lse}(w_B)`, :math:`o = s - v` (log domain);
* ``2`` p-norm, p = 3/2 (``c1``): :math:`g(y) = y^2` (all ``y >= 0`` when ``w >= 0``), so with
  :math:`d = s - \bar s_B`, :math:`M_2 = \sum_B d^2`:
  :math:`\gamma = \bar s_B - \sqrt{(W_B - M_2)/|B|}`, :math:`o = (s - v)^2`;
* ``3`` p-norm, p = 4/3 (``c2``): :math:`g(y) = y^3`; with :math:`t = \gamma - \bar s_B` the block
  equation is the depressed cubic :math:`t^3 + P t + Q = 0`, :math:`P = 3 M_2/|B|`,
  :math:`Q = (W_B - M_3)/|B|`, whose single real root is taken in the cancellation-free Cardano
  form :math:`t = -Q / (a^2 + P/3 + (P/(3a))^2)`,
  :math:`a = \sqrt[3]{|Q|/2 + \sqrt{Q^2/4 + P^3/27}}`;
  :math:`o = (s - v)^3`.

Block statistics are merged with stable update rules (weighted means, ``logaddexp``, Chan/Pebay
centred moments), all in float64 whatever the input dtype. Besides ``o`` the kernel writes the
per-element backward coefficients ``pi`` and ``aux`` (see ``fast_soft_sort``) and the block id of
every element (0, 1, ... within its row), so the backward pass never needs an n x n matrix. A row
with a NaN in ``s`` or ``w`` gets an all-NaN ``o``; other rows are clamped to ``[min w, max w]``
(the range of the permutahedron of ``w``) against rounding, and a singleton p-norm block returns
its ``w`` exactly (no ``sqrt`` / ``cbrt`` round trip). Rows run on one thread below
``PARALLEL_MIN_ELEMENTS`` and otherwise in parallel chunks (``prange``); scratch buffers are
reused per calling thread (see ``SCRATCH_CACHE_BYTES``).
"""

from __future__ import annotations

import contextlib
import math
import threading

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def _lae(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow (NaN propagates)."""
    if a >= b:
        return a + math.log1p(math.exp(b - a))
    if b > a:
        return b + math.log1p(math.exp(a - b))
    return a + b  # NaN


@nb.njit(cache=True, inline="always")
def _cubic_t(m: float, m2: float, m3: float, wsum: float) -> float:
    """Real root t of m t^3 + 3 m2 t + (wsum - m3) = 0 (m2 >= 0), cancellation free."""
    p = 3.0 * m2 / m
    q = (wsum - m3) / m
    d = math.sqrt(0.25 * q * q + p * p * p / 27.0)
    a = np.cbrt(0.5 * abs(q) + d)
    if a == 0.0:
        return 0.0
    b = p / (3.0 * a)
    return -q / (a * a + p / 3.0 + b * b)


@nb.njit(cache=True)
def _solve_rows(s, w, reg, o, pi, aux, blk, r0, r1, scr, start, need=3):  # noqa: ANN001
    """PAV on rows ``r0 <= r < r1``; ``scr`` (6, n) float64 and ``start`` (n,) int64 scratch.
    ``need`` (entropic mode only): bit 1 writes ``pi``, bit 2 ``aux`` (an exp per element each;
    the fused rank's backward needs only ``pi``, the fused sort's only ``aux``)."""
    for r in range(r0, r1):
        solve_prefix(s, w, reg, o, pi, aux, blk, r, o.shape[1], scr, start, need)


@nb.njit(cache=True)
def solve_prefix(s, w, reg, o, pi, aux, blk, r, n, scr, start, need):  # noqa: ANN001, C901
    """PAV on the first ``n`` entries of row ``r`` (the rest of the row is not touched): the
    masked fused kernels solve each row's ``c`` real entries, compacted to the front."""
    if n <= 0:
        return
    ks = 1 if s.shape[0] > 1 else 0  # row stride: 0 broadcasts a single row
    kw = 1 if w.shape[0] > 1 else 0
    cm = scr[0]  # block sizes
    ca = scr[1]  # mean s (reg 0, 2, 3) or lse s (reg 1)
    cb = scr[2]  # mean w (0), lse w (1) or M2 (2, 3)
    cc = scr[3]  # M3 (3)
    cd = scr[4]  # sum w (2, 3)
    gam = scr[5]  # block values
    rs = r * ks
    rw = r * kw
    nb_ = 0
    bad = False
    for i in range(n):
        si = np.float64(s[rs, i])
        wi = np.float64(w[rw, i])
        if si != si or wi != wi:
            bad = True
        start[nb_] = i
        cm[nb_] = 1.0
        ca[nb_] = si
        if reg <= 1:
            cb[nb_] = wi
            gam[nb_] = si - wi
        else:
            cb[nb_] = 0.0
            cc[nb_] = 0.0
            cd[nb_] = wi
            if reg == 2:
                gam[nb_] = si - math.sqrt(max(wi, 0.0))
            else:
                gam[nb_] = si - np.cbrt(wi)
        nb_ += 1
        while nb_ > 1 and gam[nb_ - 2] < gam[nb_ - 1]:
            j = nb_ - 2
            k = nb_ - 1
            m1 = cm[j]
            m2_ = cm[k]
            mt = m1 + m2_
            if reg == 0:
                f = m2_ / mt
                ca[j] += (ca[k] - ca[j]) * f
                cb[j] += (cb[k] - cb[j]) * f
                gam[j] = ca[j] - cb[j]
            elif reg == 1:
                ca[j] = _lae(ca[j], ca[k])
                cb[j] = _lae(cb[j], cb[k])
                gam[j] = ca[j] - cb[j]
            else:
                dl = ca[k] - ca[j]
                if reg == 3:
                    cc[j] = (
                        cc[j]
                        + cc[k]
                        + dl * dl * dl * m1 * m2_ * (m1 - m2_) / (mt * mt)
                        + 3.0 * dl * (m1 * cb[k] - m2_ * cb[j]) / mt
                    )
                cb[j] = cb[j] + cb[k] + dl * dl * m1 * m2_ / mt
                ca[j] = ca[j] + dl * (m2_ / mt)
                cd[j] = cd[j] + cd[k]
                if reg == 2:
                    gam[j] = ca[j] - math.sqrt(max((cd[j] - cb[j]) / mt, 0.0))
                else:
                    gam[j] = ca[j] + _cubic_t(mt, cb[j], cc[j], cd[j])
            cm[j] = mt
            nb_ -= 1
    for b in range(nb_):
        lo = start[b]
        hi = start[b + 1] if b + 1 < nb_ else n
        mt = cm[b]
        if reg == 0:
            for i in range(lo, hi):
                o[r, i] = (np.float64(s[rs, i]) - ca[b]) + cb[b]
                pi[r, i] = 1.0 / mt
                aux[r, i] = 1.0
                blk[r, i] = b
        elif reg == 1:
            for i in range(lo, hi):
                o[r, i] = (np.float64(s[rs, i]) - ca[b]) + cb[b]
                if need & 1:
                    pi[r, i] = math.exp(np.float64(s[rs, i]) - ca[b])
                if need & 2:
                    aux[r, i] = math.exp(np.float64(w[rw, i]) - cb[b])
                blk[r, i] = b
        else:
            # the block offset t = gamma - mean(s) from the block statistics (not gam - ca,
            # which cancels when |s| >> sqrt(w), e.g. tiny w at small softness)
            if reg == 2:
                t = -math.sqrt(max((cd[b] - cb[b]) / mt, 0.0))
            else:
                t = _cubic_t(mt, cb[b], cc[b], cd[b])
            tot = 0.0
            for i in range(lo, hi):
                y = np.float64(s[rs, i]) - ca[b] - t
                if reg == 2:
                    y = max(y, 0.0)
                    o[r, i] = y * y
                    aux[r, i] = 2.0 * y
                    tot += y
                else:
                    o[r, i] = y * y * y
                    aux[r, i] = 3.0 * y * y
                    tot += y * y
                if hi - lo == 1:  # a singleton block keeps its w exactly (no root round trip)
                    o[r, i] = np.float64(w[rw, i])
                blk[r, i] = b
            scale = 2.0 if reg == 2 else 3.0
            for i in range(lo, hi):
                if tot > 0.0:
                    pi[r, i] = (aux[r, i] / scale) / tot
                else:
                    pi[r, i] = 1.0 / mt
    if bad:  # a NaN anywhere in the row makes the whole row NaN
        for i in range(n):
            o[r, i] = np.nan
    else:  # o lies in the permutahedron of w: keep rounding inside [min w, max w]
        wlo = np.float64(w[rw, n - 1])
        whi = np.float64(w[rw, 0])
        for i in range(n):
            o[r, i] = min(max(o[r, i], wlo), whi)


@nb.njit(parallel=True, cache=True)
def pav_rows(s, w, reg, o, pi, aux, blk, scr, start):  # noqa: ANN001
    """Solve every row of ``o`` (R, n), ``len(scr)`` row ranges in parallel.

    ``s`` and ``w`` have R rows or 1 (broadcast); ``scr`` (chunks, 6, n), ``start`` (chunks, n).
    """
    r_tot = o.shape[0]
    chunks = scr.shape[0]
    for c in nb.prange(chunks):
        r0 = (np.int64(c) * r_tot) // chunks
        r1 = ((np.int64(c) + 1) * r_tot) // chunks
        _solve_rows(s, w, reg, o, pi, aux, blk, r0, r1, scr[c], start[c])


@nb.njit(cache=True)
def pav_rows_serial(s, w, reg, o, pi, aux, blk, scr, start):  # noqa: ANN001
    """Same as :func:`pav_rows` on one thread (small problems: no thread start-up cost)."""
    _solve_rows(s, w, reg, o, pi, aux, blk, 0, o.shape[0], scr[0], start[0])


#: Below this many elements (or with a single row) the kernel runs on one thread: waking the
#: thread pool costs more than the PAV itself, and much more on a loaded machine.
PARALLEL_MIN_ELEMENTS = 1 << 16
#: Scratch buffers up to this many bytes are kept per thread between calls: fresh large buffers
#: cost a page fault per 4 KiB on first touch, which dominated the kernel's run time.
SCRATCH_CACHE_BYTES = 64 << 20

_local = threading.local()
_PARALLEL_LOCK = threading.Lock()
_LAYER_SAFE: bool | None = None


def parallel_guard() -> contextlib.AbstractContextManager[object]:
    """Context for one call of a ``parallel=True`` kernel: a process-wide lock unless numba's
    threading layer is thread-safe (``tbb``, ``omp``). The ``workqueue`` layer (the one always
    present, e.g. without an OpenMP runtime) aborts the process when two Python threads launch
    parallel kernels at once."""
    global _LAYER_SAFE
    if _LAYER_SAFE is None:
        try:
            _LAYER_SAFE = nb.threading_layer() in ("tbb", "omp")
        except ValueError:  # no parallel kernel has run yet: the layer is not chosen
            return _PARALLEL_LOCK
    return contextlib.nullcontext() if _LAYER_SAFE else _PARALLEL_LOCK


def _scratch(chunks: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch (chunks, 6, n) float64 and (chunks, n) int64, reused per thread when small."""
    need = chunks * n
    if need * 56 > SCRATCH_CACHE_BYTES:
        return np.empty((chunks, 6, n)), np.empty((chunks, n), np.int64)
    buf = getattr(_local, "buf", None)
    if buf is None or buf[1].size < need:
        buf = (np.empty(6 * need), np.empty(need, np.int64))
        _local.buf = buf
    return buf[0][: 6 * need].reshape(chunks, 6, n), buf[1][:need].reshape(chunks, n)


def run(
    s: np.ndarray, w: np.ndarray, reg: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the kernel on 2-D arrays ``s`` (Rs, n), ``w`` (Rw, n), Rs, Rw in {1, R}."""
    r_tot = max(s.shape[0], w.shape[0])
    n = s.shape[1]
    dtype = np.result_type(s.dtype, w.dtype)
    o = np.empty((r_tot, n), dtype)
    pi = np.empty((r_tot, n), dtype)
    aux = np.empty((r_tot, n), dtype)
    blk = np.empty((r_tot, n), np.int64)
    if r_tot and n:
        if r_tot > 1 and r_tot * n >= PARALLEL_MIN_ELEMENTS:
            threads = nb.get_num_threads()
            chunks = min(r_tot, threads if n >= 4096 else 4 * threads)
            with parallel_guard():
                pav_rows(s, w, reg, o, pi, aux, blk, *_scratch(chunks, n))
        else:
            pav_rows_serial(s, w, reg, o, pi, aux, blk, *_scratch(1, n))
    return o, pi, aux, blk
