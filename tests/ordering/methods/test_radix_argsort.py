"""The radix argsort kernel of the fused fast_soft_sort path against numpy's stable argsort."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss

pytestmark = pytest.mark.skipif(not fss.HAS_NUMBA, reason="numba not installed")


def _radix() -> object:
    from softtorch.ordering.methods.permutahedron import _radix_numba

    return _radix_numba


def _check(x: np.ndarray, chunks: int = 2) -> None:
    perm = _radix().argsort(x, chunks)
    assert perm.dtype == np.int64 and perm.shape == x.shape
    for r in range(x.shape[0]):  # a permutation of every row
        assert np.array_equal(np.sort(perm[r]), np.arange(x.shape[1]))
    # stable ascending order with NaN last: the same permutation as numpy's stable sort, except
    # that the radix keys order -0.0 before +0.0 (equal values, so the sorted values agree)
    ref = np.argsort(x, axis=-1, kind="stable")
    a = np.take_along_axis(x, perm, -1)
    b = np.take_along_axis(x, ref, -1)
    assert np.array_equal(a, b, equal_nan=True)
    if not (x == 0).any():
        assert np.array_equal(perm, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1024), (3, 5000), (8, 70001), (1, 40000), (2, 524288)])
@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_random_rows(dtype: type, shape: tuple[int, int], chunks: int) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * rng.choice([1e-30, 1.0, 1e6], size=shape)).astype(dtype)
    _check(x, chunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3000, 40000, 600000])
def test_special_values_and_ties(dtype: type, n: int) -> None:
    """Row-wise LSD (n = 3000), the split-row kernel (one row at a time, n >= 2^15) and the
    MSD + bucket kernel (n >= 2^19)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, n)).astype(dtype)
    x[0, [5, 70, 900]] = np.nan
    x[0, 6] = -np.nan
    x[1, :100], x[1, 100:300] = -0.0, 0.0
    x[2] = 3.0  # one bucket in every pass: identity
    x[3, 7], x[3, 8] = -np.inf, np.inf
    x[4] = np.round(x[4])  # many ties, kept in input order
    x[5, ::2] = np.finfo(dtype).max
    x[5, 1::2] = np.finfo(dtype).tiny
    x[5, 1] = -np.finfo(dtype).smallest_subnormal
    _check(x)
    for r in range(6):  # fewer rows than threads
        _check(x[r : r + 1], 2)
    perm = _radix().argsort(x, 2)
    assert np.array_equal(perm[2], np.arange(n))
    assert np.isnan(x[0, perm[0, -4:]]).all()
    assert np.array_equal(_radix().argsort(x[2:3], 2)[0], np.arange(n))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        hs.sampled_from([np.float32, np.float64]),
        hs.tuples(hs.integers(1, 3), hs.integers(1024, 1500)),
        elements=hs.floats(-1e6, 1e6, width=32),
    )
)
def test_property_matches_numpy(x: np.ndarray) -> None:
    _check(np.ascontiguousarray(x))
