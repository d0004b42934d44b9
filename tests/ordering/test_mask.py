"""Masked ordering ops (``mask=``): each slice equals the op on its real entries alone."""

from __future__ import annotations

import pytest
import torch

import softtorch as st

MODES = ("hard", "smooth", "c0", "c1", "c2", "_hard")
INDEX_METHODS = ("softsort", "neuralsort", "ot", "sorting_network")
ALL_METHODS = ("fast_soft_sort", *INDEX_METHODS)
TOL = dict(atol=1e-6, rtol=1e-6)


def _batch(seed: int = 0, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, n, dtype=torch.float64, generator=g)
    lengths = torch.tensor([n, 1, 3, 0, n - 2])
    m = torch.arange(n) < lengths[:, None]
    # shuffle the real entries' positions (padding need not be at the end)
    perm = torch.argsort(torch.rand(5, n, generator=g), dim=-1)
    m = m.gather(-1, perm)
    x = torch.where(m, x, torch.tensor(float("nan")))  # padded entries may hold anything
    x[1, ~m[1]] = float("inf")
    x[2, ~m[2]] = -1e30
    return x, m


def _embed_cols(ref: torch.Tensor, m_row: torch.Tensor, n: int) -> torch.Tensor:
    """A soft index over the real entries (..., c) laid out over all n columns."""
    out = ref.new_zeros(*ref.shape[:-1], n)
    out[..., m_row] = ref
    return out


def _pad_rows(ref: torch.Tensor, n: int, axis: int = -2) -> torch.Tensor:
    c = ref.shape[axis]
    shape = list(ref.shape)
    shape[axis] = n - c
    return torch.cat((ref, ref.new_zeros(shape)), dim=axis)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_rank_matches_per_slice(method: str, mode: str, descending: bool) -> None:
    x, m = _batch()
    kw = dict(softness=0.7, mode=mode, method=method, descending=descending)
    out = st.rank(x, dim=-1, mask=m, **kw)
    for b in range(x.shape[0]):
        exp = torch.zeros(x.shape[1], dtype=x.dtype)
        if m[b].any():
            exp[m[b]] = st.rank(x[b][m[b]], dim=-1, **kw)
        torch.testing.assert_close(out[b], exp, **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_sort_matches_per_slice(method: str, mode: str, descending: bool) -> None:
    x, m = _batch(1)
    n = x.shape[1]
    kw = dict(softness=0.7, mode=mode, method=method, descending=descending)
    out = st.sort(x, mask=m, **kw)
    for b in range(x.shape[0]):
        if not m[b].any():
            torch.testing.assert_close(out.values[b], torch.zeros(n, dtype=x.dtype))
            if out.indices is not None:
                assert (out.indices[b] == 0).all()
            continue
        ref = st.sort(x[b][m[b]], **kw)
        torch.testing.assert_close(out.values[b], _pad_rows(ref.values, n, -1), **TOL)
        if ref.indices is not None:
            exp = _pad_rows(_embed_cols(ref.indices, m[b], n), n)
            torch.testing.assert_close(out.indices[b], exp, **TOL)


@pytest.mark.parametrize("mode", ("smooth", "c1"))
@pytest.mark.parametrize("method", ALL_METHODS)
def test_gradients_real_only(method: str, mode: str) -> None:
    x, m = _batch(2)
    xr = torch.where(m, x, 0.0).requires_grad_()
    w = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    kw = dict(softness=0.7, mode=mode, method=method)
    r = st.rank(xr, dim=-1, mask=m, **kw)
    v = st.sort(xr, mask=m, **kw).values
    (g,) = torch.autograd.grad((r * w).sum() + (v * w).sum(), xr)
    assert (g[~m] == 0).all()
    for b in range(x.shape[0]):
        if not m[b].any():
            continue
        xb = x[b][m[b]].clone().requires_grad_()
        c = int(m[b].sum())
        rb = st.rank(xb, dim=-1, **kw)
        vb = st.sort(xb, **kw).values
        (gb,) = torch.autograd.grad((rb * w[b][m[b]]).sum() + (vb * w[b][:c]).sum(), xb)
        torch.testing.assert_close(g[b][m[b]], gb, **TOL)
