"""soft_mode on masked reductions written by hand with -inf / +inf padding."""

from __future__ import annotations

import pytest
import torch

import softtorch as st

METHODS = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
TOL = dict(atol=1e-6, rtol=1e-6)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64, generator=g)
    m = torch.tensor(
        [[1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 1, 1]],
        dtype=torch.bool,
    )
    return x, m


@pytest.mark.parametrize("method", METHODS)
def test_masked_fill_max_equals_masked_op(method: str) -> None:
    x, m = _data()
    xr = x.clone().requires_grad_()
    with st.soft_mode(softness=0.5, method=method):
        out = xr.masked_fill(~m, float("-inf")).max(-1).values
        amax = xr.masked_fill(~m, float("-inf")).amax(-1)
        mn = torch.where(m, xr, float("inf")).min(-1).values
    ref = st.max(x, dim=-1, mask=m, softness=0.5, method=method).values
    torch.testing.assert_close(out.detach(), ref, **TOL)
    torch.testing.assert_close(amax.detach(), ref, **TOL)
    ref_min = st.min(x, dim=-1, mask=m, softness=0.5, method=method).values
    torch.testing.assert_close(mn.detach(), ref_min, **TOL)
    (g,) = torch.autograd.grad(out.sum() + amax.sum() + mn.sum(), xr)
    assert torch.isfinite(g).all() and (g[~m] == 0).all()


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_where_sort_keeps_infinities_in_place(method: str, descending: bool) -> None:
    x, m = _data()
    xr = x.clone().requires_grad_()
    with st.soft_mode(softness=0.5, method=method):
        out = torch.where(m, xr, float("-inf")).sort(-1, descending=descending)
    values = out.values.detach()
    exact = torch.where(m, x, float("-inf")).sort(-1, descending=descending).values
    assert torch.equal(torch.isinf(values), torch.isinf(exact))
    ref = st.sort(x, mask=m, softness=0.5, method=method, descending=descending).values
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        fin = values[b][torch.isfinite(values[b])]
        torch.testing.assert_close(fin, ref[b, :c], **TOL)
    fin_vals = torch.where(torch.isfinite(out.values), out.values, 0.0)
    (g,) = torch.autograd.grad(fin_vals.sum() + (fin_vals * fin_vals).sum(), xr)
    assert torch.isfinite(g).all() and (g[~m] == 0).all()


@pytest.mark.parametrize("method", ("softsort", "neuralsort", "ot", "sorting_network"))
def test_topk_and_argmax_give_padded_entries_zero_probability(method: str) -> None:
    x, m = _data()
    xr = x.clone().requires_grad_()
    with st.soft_mode(softness=0.5, method=method):
        xm = xr.masked_fill(~m, float("-inf"))
        top = xm.topk(2, -1)
        arg = xm.argmax(-1)
    ref = st.topk(x, 2, dim=-1, mask=m, softness=0.5, method=method)
    vals = top.values.detach()
    fin = torch.isfinite(vals)
    torch.testing.assert_close(vals[fin], ref.values[fin], **TOL)
    assert torch.equal(arg, torch.where(m, x, float("-inf")).argmax(-1))  # torch's integers
    p = st.argmax(x, dim=-1, mask=m, softness=0.5, method=method)
    assert (p[~m] == 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=p.dtype))
    (g,) = torch.autograd.grad(torch.where(fin, top.values, 0.0).sum(), xr)
    assert torch.isfinite(g).all() and (g[~m] == 0).all()


@pytest.mark.parametrize("method", ("softsort", "neuralsort", "fast_soft_sort"))
def test_nan_padding_in_nanmedian_and_nanquantile(method: str) -> None:
    x, m = _data()
    m = m.clone()
    m[2] = False  # an all-NaN slice: torch's NaN is kept
    xr = x.clone().requires_grad_()
    with st.soft_mode(softness=0.5, method=method):
        xn = torch.where(m, xr, float("nan"))
        med = xn.nanmedian(-1).values
        qs = torch.nanquantile(xn, 0.3, dim=-1)
    ref_med = st.median(x, dim=-1, mask=m, softness=0.5, method=method).values
    ref_q = st.quantile(x, 0.3, dim=-1, mask=m, softness=0.5, method=method)
    real = m.any(-1)
    torch.testing.assert_close(med.detach()[real], ref_med[real], **TOL)
    torch.testing.assert_close(qs.detach()[real], ref_q[real], **TOL)
    assert torch.isnan(med[2]) and torch.isnan(qs[2])
    (g,) = torch.autograd.grad(med[real].sum() + qs[real].sum(), xr)
    assert torch.isfinite(g).all() and (g[~m] == 0).all()
