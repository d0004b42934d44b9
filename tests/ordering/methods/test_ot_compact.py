"""Masked ``method="ot"`` values ops on the compacted per-row problems (``ot/_compact.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

import softtorch as st
from softtorch.ordering.methods.ot import _autograd, _dual, _solver, _span_numba
from softtorch.ordering.methods.ot import _problem as ot_problem
from softtorch.ordering.methods.ot import method as ot_method

TOL = dict(atol=1e-6, rtol=1e-6)
MODES = ("smooth", "c0", "c1", "c2")
N = 256  # the smallest n with n * n >= _lowrank.MIN_SIZE (the unmasked values ops' threshold)


def _batch(lengths: list[int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), n, dtype=torch.float64, generator=g)
    m = torch.arange(n) < torch.tensor(lengths)[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(len(lengths), n, generator=g), dim=-1))
    return torch.where(m, x, 0.0), m


@pytest.fixture
def compacted(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records whether each masked values call ran on the compacted problems."""
    used: list[bool] = []
    real = ot_method.masked_contract

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        used.append(out is not None)
        return out

    monkeypatch.setattr(ot_method, "masked_contract", spy)
    return used


def _ops(x: torch.Tensor, kw: dict) -> list[torch.Tensor]:
    q = torch.tensor([0.1, 0.5, 0.95], dtype=x.dtype)
    return [
        st.sort(x, return_indices=False, **kw).values,
        st.sort(x, descending=True, return_indices=False, **kw).values,
        st.rank(x, dim=-1, **kw),
        st.rank(x, dim=-1, descending=False, **kw),
        st.quantile(x, q, dim=-1, **kw).movedim(0, -1),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_values_and_gradients_match_each_slice(mode: str, compacted: list[bool]) -> None:
    lengths = [N, 0, 1, 2, 3, 200]
    x, m = _batch(lengths, N, 0)
    kw = dict(softness=0.2, mode=mode, method="ot")
    xr = x.clone().requires_grad_()
    outs = _ops(xr, dict(kw, mask=m))
    assert compacted and all(compacted)
    ws = [torch.randn(o.shape, dtype=o.dtype, generator=torch.Generator().manual_seed(i))
          for i, o in enumerate(outs)]  # fmt: skip
    (g,) = torch.autograd.grad(sum((o * w).sum() for o, w in zip(outs, ws)), xr)
    assert (g[~m] == 0).all() and torch.isfinite(g).all()
    for b, c in enumerate(lengths):
        if c == 0:
            assert all((o[b] == 0).all() for o in outs)
            continue
        xb = x[b][m[b]].clone().requires_grad_()
        refs = _ops(xb, kw)
        loss = 0.0
        for i, (o, ref, w) in enumerate(zip(outs, refs, ws)):
            if i < 2:  # sorted values: positions < c, fill 0 after
                got, wb = o[b, :c], w[b, :c]
                assert (o[b, c:] == 0).all()
            elif i < 4:  # ranks: at the real entries, 0 at padded ones
                got, wb = o[b][m[b]], w[b][m[b]]
                assert (o[b][~m[b]] == 0).all()
            else:
                got, wb = o[b], w[b]
            torch.testing.assert_close(got, ref, **TOL)
            loss = loss + (ref * wb).sum()
        (gb,) = torch.autograd.grad(loss, xb)
        torch.testing.assert_close(g[b][m[b]], gb, **TOL)


@pytest.mark.parametrize("mode", MODES)
def test_matches_the_padded_layout(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compacted problems against the torch path of the padded layout (``._layout``)."""
    x, m = _batch([N, 1, 130, 255, 0, 2], N, 1)
    kw = dict(softness=0.3, mode=mode, method="ot", mask=m)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        xr = x.clone().requires_grad_()
        out = st.sort(xr, return_indices=False, **kw).values + st.rank(xr, dim=-1, **kw)
        w = torch.linspace(-1, 1, N, dtype=torch.float64)
        return out.detach(), torch.autograd.grad((out * w).sum(), xr)[0]

    fast = run()
    monkeypatch.setattr(ot_method, "masked_contract", lambda *a, **k: None)
    slow = run()
    torch.testing.assert_close(fast[0], slow[0], **TOL)
    torch.testing.assert_close(fast[1], slow[1], **TOL)


@pytest.mark.parametrize("mode", ("smooth", "c1"))
def test_no_plan_is_formed(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values ops never build the ``(B, n, n)`` cost, slacks or plan."""

    def boom(*args, **kwargs):
        raise AssertionError("dense (B, n, m) array formed")

    monkeypatch.setattr(_solver, "outer", boom)
    monkeypatch.setattr(_autograd, "outer", boom)
    monkeypatch.setattr(ot_problem, "OTPlan", None)
    x, m = _batch([N, 17, 1, 0], N, 2)
    xr = x.clone().requires_grad_()
    kw = dict(softness=0.2, mode=mode, method="ot", mask=m)
    out = st.sort(xr, return_indices=False, **kw).values.sum() + st.rank(xr, dim=-1, **kw).sum()
    out = out + st.quantile(xr, 0.3, dim=-1, **kw).sum()
    out.backward()
    assert (xr.grad[~m] == 0).all()


def test_nan_rows_and_float32() -> None:
    x, m = _batch([N, 100, 40], N, 3)
    x[1, m[1].nonzero()[0, 0]] = float("nan")
    kw = dict(softness=0.2, mode="c2", method="ot", mask=m)
    r = st.rank(x, dim=-1, **kw)
    assert torch.isnan(r[1][m[1]]).all() and torch.isfinite(r[[0, 2]]).all()
    r32 = st.rank(x.float(), dim=-1, **kw)
    assert r32.dtype == torch.float32
    torch.testing.assert_close(r32[[0, 2]].double(), r[[0, 2]], atol=1e-3, rtol=1e-3)


def test_torch_fallback_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the kernels the p-norm masked values fall back to the padded layout."""
    x, m = _batch([N, 30], N, 4)
    kw = dict(softness=0.2, mode="c1", method="ot", mask=m)
    ref = st.rank(x, dim=-1, **kw)
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    torch.testing.assert_close(st.rank(x, dim=-1, **kw), ref, **TOL)


@settings(max_examples=4, deadline=None)
@given(
    lengths=hs.lists(hs.integers(0, N), min_size=1, max_size=3).map(lambda v: v + [1, 0]),
    mode=hs.sampled_from(MODES),
    seed=hs.integers(0, 1000),
)
def test_property_random_lengths(lengths: list[int], mode: str, seed: int) -> None:
    x, m = _batch(lengths, N, seed)
    kw = dict(softness=0.25, mode=mode, method="ot")
    v = st.sort(x, mask=m, return_indices=False, **kw).values
    for b, c in enumerate(lengths):
        if c:
            ref = st.sort(x[b][m[b]], return_indices=False, **kw).values
            torch.testing.assert_close(v[b, :c], ref, **TOL)
        assert (v[b, c:] == 0).all()


@pytest.mark.parametrize("asc", (True, False))
def test_row_kernels_equal_the_kernels_on_each_slice(asc: bool) -> None:
    """``evaluate_rows`` / ``plan_spans_rows`` with per-row anchors and counts against the
    shared-anchor kernels run on each row's own problem."""
    rng = np.random.default_rng(5)
    B, n = 4, 40
    nrow = np.array([40, 7, 1, 0], dtype=np.int64)
    a = rng.normal(size=(B, n)) * 5
    y = np.sort(rng.normal(size=(B, n)), axis=-1)
    if not asc:
        y = y[:, ::-1].copy()
    beta = rng.normal(size=(B, n))
    out = _span_numba.evaluate_rows(a, y, beta, 2, 1e-12, a, False, 60, asc, nrow, nrow)
    first, last = _span_numba.plan_spans_rows(a, y, out[0], beta, asc, nrow, nrow)
    for b in range(B):
        c = int(nrow[b])
        assert (out[0][b, c:] == 0).all() and (out[1][b, c:] == 0).all()
        assert (first[b, c:] == n).all() and (last[b, c:] == -1).all()
        if c == 0:
            continue
        ya, bb = y[b, :c].copy(), beta[b : b + 1, :c].copy()
        ref = _span_numba.evaluate_band(a[b : b + 1, :c].copy(), ya, bb, 2, 1e-12,
                                        a[b : b + 1, :c].copy(), False, 60, asc)  # fmt: skip
        np.testing.assert_allclose(out[0][b, :c], ref[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[1][b, :c], ref[1][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[2][b], ref[2][0], rtol=1e-12)
        f, la = _span_numba.plan_spans(a[b : b + 1, :c].copy(), ya, ref[0], bb, asc)
        assert (first[b, :c] == np.where(f[0] == c, n, f[0])).all()
        assert (last[b, :c] == la[0]).all()
