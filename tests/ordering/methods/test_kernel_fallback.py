"""A numba kernel family that fails to compile falls back to a working path with one
``RuntimeWarning`` (:mod:`softtorch.kernels._kernel_guard`): the radix
argsort (numpy), the PAV (torch) and the fused sort / rank kernels (the composite path)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import softtorch as st
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods.permutahedron import (
    _fused,
    _fused_numba_rank,
    _fused_numba_sort,
    _pav_numba,
    _radix_numba,
)
from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss


@pytest.fixture(autouse=True)
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no family broken or known good (restored afterwards)."""
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())


def _fail(*_: object, **__: object) -> None:
    raise AssertionError("unexpected cycle in lookup()")  # numba's parfor failure on 3.13


def _numba_error(*_: object, **__: object) -> None:
    from numba.core.errors import TypingError

    raise TypingError("simulated compile failure")


def _calls(fn, n: int = 2):  # noqa: ANN001, ANN202
    """Run ``fn`` ``n`` times; return the results and the RuntimeWarnings raised."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        outs = [fn() for _ in range(n)]
    return outs, [w for w in rec if issubclass(w.category, RuntimeWarning)]


def test_radix_argsort_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[0, :10] = x[0, 10:20]  # ties: the fallback must be stable like the kernel
    ref = st.sort(x, dim=-1, mode="smooth", method="fast_soft_sort").values
    ref_rank = st.rank(x, dim=-1, mode="c1", method="fast_soft_sort")
    monkeypatch.setattr(_radix_numba, "argsort", _fail)
    outs, warned = _calls(lambda: st.sort(x, dim=-1, mode="smooth", method="fast_soft_sort"))
    assert len(warned) == 1 and "radix argsort" in str(warned[0].message)
    for o in outs:
        torch.testing.assert_close(o.values, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.rank(x, dim=-1, mode="c1", method="fast_soft_sort"), ref_rank)
    assert _kernel_guard.broken("radix argsort")
    perm = _fused._argsort_rows(x.numpy())
    assert np.array_equal(perm, np.argsort(x.numpy(), axis=-1, kind="stable"))


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_pav_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    z = torch.randn(3, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z.requires_grad_()
    ref = fss.soft_sort(z, 0.3, mode, options={"backend": "torch"})
    (g_ref,) = torch.autograd.grad(ref.sum(), z)
    monkeypatch.setattr(_pav_numba, "run", _numba_error)
    outs, warned = _calls(lambda: fss.soft_sort(z, 0.3, mode, options={"backend": "numba"}))
    assert len(warned) == 1 and "PAV" in str(warned[0].message)
    for o in outs:
        torch.testing.assert_close(o, ref)
    (g,) = torch.autograd.grad(outs[0].sum(), z)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("op", ["sort", "rank"])
def test_fused_kernels_fall_back_to_composite(monkeypatch: pytest.MonkeyPatch, op: str) -> None:
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x.requires_grad_()

    def call() -> torch.Tensor:
        if op == "sort":
            return st.sort(x, dim=-1, mode="c2", method="fast_soft_sort").values
        return st.rank(x, dim=-1, mode="c2", method="fast_soft_sort")

    ref = call()
    (g_ref,) = torch.autograd.grad((ref * torch.arange(9.0)).sum(), x)
    mod = _fused_numba_sort if op == "sort" else _fused_numba_rank
    for name in (f"{op}_fwd_serial", f"{op}_fwd_par"):
        monkeypatch.setattr(mod, name, _fail)
    outs, warned = _calls(call)
    assert len(warned) == 1 and f"fused {op}" in str(warned[0].message)
    assert _kernel_guard.broken(f"fused {op}")
    for o in outs:
        torch.testing.assert_close(o, ref)
    (g,) = torch.autograd.grad((outs[0] * torch.arange(9.0)).sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("op", ["sort", "rank"])
def test_fused_backward_falls_back(monkeypatch: pytest.MonkeyPatch, op: str) -> None:
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x.requires_grad_()
    fn = _fused.sorted_values if op == "sort" else _fused.rank
    kw = dict(descending=False, standardize=True, options=None)
    y = fn(x, 0.5, "smooth", **kw)
    (g_ref,) = torch.autograd.grad((y * torch.arange(9.0)).sum(), x)
    mod = _fused_numba_sort if op == "sort" else _fused_numba_rank
    for name in (f"{op}_bwd_serial", f"{op}_bwd_par"):
        monkeypatch.setattr(mod, name, _fail)
    y = fn(x, 0.5, "smooth", **kw)
    with pytest.warns(RuntimeWarning, match=f"fused {op} backward"):
        (g,) = torch.autograd.grad((y * torch.arange(9.0)).sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_runtime_errors_after_success_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a family has run, an ordinary runtime error is not hidden as a compile failure."""
    out = _kernel_guard.guarded("demo", lambda: 1, lambda: 2, "demo fallback")
    assert out == 1

    def boom() -> int:
        raise ValueError("a real bug")

    with pytest.raises(ValueError, match="a real bug"):
        _kernel_guard.guarded("demo", boom, lambda: 2, "demo fallback")
    assert not _kernel_guard.broken("demo")
