r"""Row-wise ascending argsort of float32/float64 rows by LSD radix sort (numba CPU kernel).

Used by the fused ``fast_soft_sort`` path for long rows, where it is several times faster than
numpy's comparison ``argsort``. Each float is mapped to an unsigned key that orders like the float
(the IEEE trick: flip all bits of a negative number, set the sign bit of a non-negative one);
NaN maps to the largest key, so NaN sorts last, as in numpy and torch. The keys are then sorted
with their indices in ``ceil(bits / 11)`` stable counting passes of 11 bits (3 for float32, 6 for
float64); a pass whose digit is the same for the whole row is skipped. Rows of ``MSD_N`` or more
take one counting pass on the 11 highest bits in which the row differs, then sort every bucket
in cache. The sort is stable, so ties keep their input order. Rows run in parallel (``prange``),
one scratch set per thread; with fewer rows than threads, a long row is split across all of them.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._pav_numba import parallel_guard

BITS = 11
RADIX = 1 << BITS
MASK = RADIX - 1
#: Rows at least this long take the radix kernel; shorter rows are faster with numpy's argsort.
MIN_N = 1024
#: Rows at least this long take the cache-aware MSD + in-bucket variant (:func:`_row_msd`).
MSD_N = 1 << 19
#: Fewer rows than threads, each at least this long: the rows are sorted one by one on all
#: threads (:func:`argsort_row_par`).
MSD_PAR_N = 1 << 15
#: Buckets up to this size are insertion-sorted.
SMALL = 32


@nb.njit(cache=True, inline="always")
def _key32(u: np.uint32) -> np.uint32:
    if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
        return np.uint32(0xFFFFFFFF)
    if u & np.uint32(0x80000000):
        return ~u
    return u | np.uint32(0x80000000)


@nb.njit(cache=True, inline="always")
def _key64(u: np.uint64) -> np.uint64:
    if (u & np.uint64(0x7FFFFFFFFFFFFFFF)) > np.uint64(0x7FF0000000000000):
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    if u & np.uint64(0x8000000000000000):
        return ~u
    return u | np.uint64(0x8000000000000000)


@nb.njit(cache=True, inline="always")
def _keys(bits, r, ka, a, b, wide):  # noqa: ANN001, ANN202
    """``ka[a:b]`` = the keys of ``bits[r, a:b]``; returns their min and max."""
    lo = _key64(bits[r, a]) if wide else _key32(bits[r, a])
    hi = lo
    for i in range(a, b):
        k = _key64(bits[r, i]) if wide else _key32(bits[r, i])
        ka[i] = k
        if k < lo:
            lo = k
        if k > hi:
            hi = k
    return lo, hi


@nb.njit(cache=True, inline="always")
def _scatter(ka, ia, kb, ib, a, b, sh, off, first):  # noqa: ANN001, ANN202, PLR0913
    """Stable counting-sort scatter of ``ka[a:b]`` with its indices ``ia`` (``a..b-1`` when
    ``first``) into ``kb``, ``ib`` on the digit at ``sh``; ``off[d]`` walks from the first free
    slot of bucket d."""
    for i in range(a, b):
        k = ka[i]
        d = np.int64((k >> sh) & np.uint64(MASK))
        pos = off[d]
        off[d] = pos + 1
        kb[pos] = k
        ib[pos] = i if first else ia[i]


@nb.njit(cache=True)
def _row(bits, r, perm, ka, kb, ia, ib, hist, passes, wide):  # noqa: ANN001, ANN202, C901
    """Sort row ``r`` of ``bits`` (the float row viewed as unsigned ints) into ``perm[r]``."""
    n = bits.shape[1]
    hist[:, :] = 0
    for i in range(n):
        k = _key64(bits[r, i]) if wide else _key32(bits[r, i])
        ka[i] = k
        for p in range(passes):
            hist[p, np.int64((k >> np.uint64(BITS * p)) & np.uint64(MASK))] += 1
    src_k, dst_k, src_i, dst_i = ka, kb, ia, ib
    first = True
    for p in range(passes):
        h = hist[p]
        single = False
        for d in range(RADIX):
            if h[d] == n:
                single = True
                break
            if h[d] != 0:
                break
        if single:
            continue
        total = 0
        for d in range(RADIX):
            c = h[d]
            h[d] = total
            total += c
        _scatter(src_k, src_i, dst_k, dst_i, 0, n, np.uint64(BITS * p), h, first)
        first = False
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
    if first:  # all keys equal: identity
        for i in range(n):
            perm[r, i] = i
    else:
        for i in range(n):
            perm[r, i] = src_i[i]


@nb.njit(cache=True, inline="always")
def _bitlen(d: np.uint64) -> int:
    d = np.uint64(d)
    b = 0
    while d != 0:
        d = d >> np.uint64(1)
        b += 1
    return b


@nb.njit(cache=True)
def _bucket(ka, ia, kb, ib, s, e, h):  # noqa: ANN001, ANN202, C901
    """Stable sort of the keys ``ka[s:e]`` (equal in their high bits) with their indices ``ia``,
    in place; ``kb``, ``ib`` scratch, ``h`` (256,) int64. Insertion sort for short buckets, else
    LSD passes of 8 bits over the bits in which the bucket's keys differ (all in cache)."""
    m = e - s
    if m < 2:
        return
    if m <= SMALL:
        for i in range(s + 1, e):
            k = ka[i]
            v = ia[i]
            j = i - 1
            while j >= s and ka[j] > k:
                ka[j + 1] = ka[j]
                ia[j + 1] = ia[j]
                j -= 1
            ka[j + 1] = k
            ia[j + 1] = v
        return
    lo = ka[s]
    hi = ka[s]
    for i in range(s + 1, e):
        k = ka[i]
        if k < lo:
            lo = k
        if k > hi:
            hi = k
    nbits = _bitlen(lo ^ hi)
    src_k, dst_k, src_i, dst_i = ka, kb, ia, ib
    swapped = False
    for p in range((nbits + 7) // 8):
        sh = np.uint64(8 * p)
        h[:] = 0
        for i in range(s, e):
            h[np.int64((src_k[i] >> sh) & np.uint64(255))] += 1
        if h[np.int64((src_k[s] >> sh) & np.uint64(255))] == m:  # one digit: nothing to do
            continue
        total = s
        for d in range(256):
            c = h[d]
            h[d] = total
            total += c
        for i in range(s, e):
            k = src_k[i]
            d = np.int64((k >> sh) & np.uint64(255))
            pos = h[d]
            h[d] = pos + 1
            dst_k[pos] = k
            dst_i[pos] = src_i[i]
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
        swapped = not swapped
    if swapped:
        for i in range(s, e):
            ka[i] = kb[i]
            ia[i] = ib[i]


@nb.njit(cache=True)
def _row_msd(bits, r, perm, ka, kb, ia, ib, bounds, h, wide):  # noqa: ANN001, ANN202
    """Long rows: one stable counting pass on the 11 highest bits in which the row's keys
    differ (one pass over memory), then every bucket sorted in cache by :func:`_bucket`."""
    n = bits.shape[1]
    lo, hi = _keys(bits, r, ka, 0, n, wide)
    top = _bitlen(lo ^ hi)
    if top == 0:  # all keys equal: identity
        for i in range(n):
            perm[r, i] = i
        return
    sh = np.uint64(max(top - BITS, 0))
    bounds[:] = 0
    for i in range(n):
        bounds[np.int64((ka[i] >> sh) & np.uint64(MASK)) + 1] += 1
    for d in range(RADIX):
        bounds[d + 1] += bounds[d]
    _scatter(ka, ia, kb, ib, 0, n, sh, bounds, True)  # bounds[d] ends as the start of bucket d + 1
    s = 0
    for d in range(RADIX):
        e = bounds[d]
        _bucket(kb, ib, ka, ia, s, e, h)
        s = e
    for i in range(n):
        perm[r, i] = ib[i]


@nb.njit(cache=True)
def _rows_chunk(bits, perm, r0, r1, passes, wide):  # noqa: ANN001, ANN202
    """Rows ``r0 <= r < r1`` with one scratch set (the body of :func:`argsort_rows`)."""
    n = bits.shape[1]
    ka = np.empty(n, bits.dtype)
    kb = np.empty(n, bits.dtype)
    ia = np.empty(n, np.int32)
    ib = np.empty(n, np.int32)
    hist = np.empty((passes, RADIX), np.int64)
    bounds = np.empty(RADIX + 1, np.int64)
    h = np.empty(256, np.int64)
    for r in range(r0, r1):
        if n >= MSD_N:
            _row_msd(bits, r, perm, ka, kb, ia, ib, bounds, h, wide)
        else:
            _row(bits, r, perm, ka, kb, ia, ib, hist, passes, wide)


# The parallel kernels keep every prange body a single call of a plain (not inlined) kernel:
# no tuple assignment, array reassignment or nested loop inside a prange body, which numba's
# parfor pass mis-handles on some Pythons ("unexpected cycle in lookup()").


@nb.njit(parallel=True, cache=True)
def argsort_rows(bits, perm, chunks, passes, wide):  # noqa: ANN001, ANN201
    """``perm[r] = argsort(row r)`` for every row; ``chunks`` parallel groups of rows."""
    rows = bits.shape[0]
    for c in nb.prange(chunks):
        _rows_chunk(bits, perm, (c * rows) // chunks, ((c + 1) * rows) // chunks, passes, wide)


@nb.njit(cache=True)
def _slice_keys(bits, r, ka, c, chunks, lohi, wide):  # noqa: ANN001, ANN202
    """Keys of slice ``c`` of row ``r`` into ``ka``; its min / max into ``lohi[:, c]``."""
    n = bits.shape[1]
    a = (c * n) // chunks
    b = ((c + 1) * n) // chunks
    lo, hi = _keys(bits, r, ka, a, b, wide)
    lohi[0, c] = lo
    lohi[1, c] = hi


@nb.njit(cache=True)
def _slice_hist(ka, c, chunks, sh, cnt):  # noqa: ANN001, ANN202
    """Digit histogram of slice ``c`` of the keys into ``cnt[c]``."""
    n = ka.shape[0]
    for i in range((c * n) // chunks, ((c + 1) * n) // chunks):
        cnt[c, np.int64((ka[i] >> sh) & np.uint64(MASK))] += 1


@nb.njit(cache=True)
def _slice_scatter(ka, ia, kb, ib, c, chunks, sh, cnt):  # noqa: ANN001, ANN202, PLR0913
    """Stable scatter of slice ``c`` from its offsets ``cnt[c]``."""
    n = ka.shape[0]
    off = cnt[c]
    _scatter(ka, ia, kb, ib, (c * n) // chunks, ((c + 1) * n) // chunks, sh, off, True)


@nb.njit(cache=True)
def _slice_buckets(kb, ib, ka, ia, perm, r, c, chunks, starts):  # noqa: ANN001, ANN202, PLR0913
    """Sort the buckets whose first element lies in slice ``c`` and write them to ``perm[r]``."""
    n = ka.shape[0]
    a = (c * n) // chunks
    b = ((c + 1) * n) // chunks
    h = np.empty(256, np.int64)
    for d in range(RADIX):
        s = starts[d]
        e = starts[d + 1]
        if e > s and a <= s < b:
            _bucket(kb, ib, ka, ia, s, e, h)
            for i in range(s, e):
                perm[r, i] = ib[i]


@nb.njit(cache=True)
def _offsets(cnt, starts, n):  # noqa: ANN001, ANN202
    """Bucket-major, slice-minor scatter offsets in ``cnt``; bucket starts in ``starts``."""
    chunks = cnt.shape[0]
    total = 0
    for d in range(RADIX):
        starts[d] = total
        for c in range(chunks):
            v = cnt[c, d]
            cnt[c, d] = total
            total += v
    starts[RADIX] = n


@nb.njit(parallel=True, cache=True)
def argsort_row_par(bits, perm, r, chunks, wide):  # noqa: ANN001, ANN201
    """:func:`_row_msd` for one long row ``r`` on ``chunks`` threads: keys and histograms of
    the first pass per slice of the row, the stable scatter per slice (slice c's elements
    after slice c - 1's in every bucket), then the buckets in parallel, balanced by size."""
    n = bits.shape[1]
    ka = np.empty(n, bits.dtype)
    kb = np.empty(n, bits.dtype)
    ia = np.empty(n, np.int32)
    ib = np.empty(n, np.int32)
    lohi = np.empty((2, chunks), bits.dtype)
    for c in nb.prange(chunks):
        _slice_keys(bits, r, ka, c, chunks, lohi, wide)
    top = _bitlen(lohi[0].min() ^ lohi[1].max())
    if top == 0:
        for i in range(n):
            perm[r, i] = i
        return
    sh = np.uint64(max(top - BITS, 0))
    cnt = np.zeros((chunks, RADIX), np.int64)
    for c in nb.prange(chunks):
        _slice_hist(ka, c, chunks, sh, cnt)
    starts = np.empty(RADIX + 1, np.int64)
    _offsets(cnt, starts, n)
    for c in nb.prange(chunks):
        _slice_scatter(ka, ia, kb, ib, c, chunks, sh, cnt)
    for c in nb.prange(chunks):  # bucket d belongs to the slice holding its first element
        _slice_buckets(kb, ib, ka, ia, perm, r, c, chunks, starts)


def argsort(x: np.ndarray, chunks: int) -> np.ndarray:
    """Ascending argsort (int64) of the rows of the C-contiguous float32/float64 array ``x``."""
    wide = x.dtype == np.float64
    bits = x.view(np.uint64 if wide else np.uint32)
    passes = -(-(64 if wide else 32) // BITS)
    perm = np.empty(x.shape, np.int64)
    rows, n = x.shape
    with parallel_guard():
        if rows < chunks and n >= MSD_PAR_N:  # few long rows: every thread on each row
            for r in range(rows):
                argsort_row_par(bits, perm, r, chunks, wide)
        else:
            argsort_rows(bits, perm, max(1, min(chunks, rows)), passes, wide)
    return perm
