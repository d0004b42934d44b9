"""The fused eager CPU path of fast_soft_sort (one numba kernel per direction) against the
composite path (standardize, projection, inverse map) it replaces."""

from __future__ import annotations

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods.permutahedron import _fused as F
from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss

pytestmark = pytest.mark.skipif(not fss.HAS_NUMBA, reason="numba not installed")

MODES = ("smooth", "c0", "c1", "c2")


def _x(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize("shape", [(4, 7), (3, 257), (2, 40000)])
def test_fused_matches_composite(
    mode: str, descending: bool, standardize: bool, op: str, shape: tuple[int, int]
) -> None:
    x = _x(shape).requires_grad_()
    for eps in (0.1, 2.0):
        if op == "sort":
            a = F.FusedSort.apply(x, eps, mode, descending, standardize)
            b = F._composite_sort(x, eps, mode, descending, standardize)
        else:
            a = F.FusedRank.apply(x, eps, mode, descending, standardize)
            b = F._composite_rank(x, eps, mode, descending, standardize)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        g = _x(shape, seed=1)
        (ga,) = torch.autograd.grad(a, x, g)
        (gb,) = torch.autograd.grad(b, x, g)
        torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9 * gb.abs().max().item())


@pytest.mark.parametrize("mode", MODES)
def test_public_ops_take_the_fused_path(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"sort": 0, "rank": 0}
    real_sort, real_rank = F.FusedSort.apply, F.FusedRank.apply

    def count_sort(*a: object) -> torch.Tensor:
        calls["sort"] += 1
        return real_sort(*a)

    def count_rank(*a: object) -> torch.Tensor:
        calls["rank"] += 1
        return real_rank(*a)

    monkeypatch.setattr(F.FusedSort, "apply", count_sort)
    monkeypatch.setattr(F.FusedRank, "apply", count_rank)
    x = _x((3, 5, 6), dtype=torch.float32)
    kw = {"method": "fast_soft_sort", "mode": mode, "softness": 0.3}
    st.sort(x, dim=1, **kw)
    st.topk(x, 2, dim=-1, **kw)
    st.max(x, dim=0, **kw)
    st.quantile(x, 0.3, dim=-1, **kw)
    st.median(x, dim=-1, **kw)
    st.rank(x, dim=1, **kw)
    assert calls == {"sort": 5, "rank": 1}


def test_float32_is_computed_in_float64() -> None:
    x64 = _x((5, 50))
    x32 = x64.float()
    ref = F._composite_sort(x64, 0.1, "smooth", False, True)
    out = F.FusedSort.apply(x32, 0.1, "smooth", False, True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


def test_nan_row_is_all_nan_and_others_unaffected() -> None:
    x = _x((3, 8)).requires_grad_()
    xn = x.detach().clone()
    xn[1, 3] = float("nan")
    xn.requires_grad_()
    for fn in (F.FusedSort, F.FusedRank):
        out = fn.apply(xn, 0.5, "smooth", False, True)
        assert torch.isnan(out[1]).all()
        assert torch.isfinite(out[[0, 2]]).all()
        out[[0, 2]].sum().backward()
        assert torch.isfinite(xn.grad[[0, 2]]).all()
        xn.grad = None


@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize("mode", ["smooth", "c0"])
def test_double_backward_uses_the_composite_path(op: str, mode: str) -> None:
    x = _x((2, 6)).requires_grad_()
    fused = F.FusedSort if op == "sort" else F.FusedRank
    comp = F._composite_sort if op == "sort" else F._composite_rank
    g = _x((2, 6), seed=3)
    (ga,) = torch.autograd.grad(fused.apply(x, 0.4, mode, False, True), x, g, create_graph=True)
    (gb,) = torch.autograd.grad(comp(x, 0.4, mode, False, True), x, g, create_graph=True)
    (ha,) = torch.autograd.grad(ga.square().sum(), x)
    (hb,) = torch.autograd.grad(gb.square().sum(), x)
    torch.testing.assert_close(ha, hb)


def test_gradcheck_fused() -> None:
    x = _x((2, 5)).requires_grad_()
    for mode in MODES:
        assert torch.autograd.gradcheck(
            lambda t, m=mode: F.FusedSort.apply(t, 0.5, m, False, True), x
        )
        assert torch.autograd.gradcheck(
            lambda t, m=mode: F.FusedRank.apply(t, 0.5, m, True, True), x
        )


def test_not_eligible_falls_back() -> None:
    x = _x((2, 5))
    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert F._eligible(x, s, None) is None  # learnable softness: composite path
    assert F._eligible(x, 0.3, {"backend": "torch"}) is None
    assert F._eligible(x.reshape(10, 1), 0.3, None) is None  # n = 1
    assert F._eligible(x.half(), 0.3, None) is None
    assert F._eligible(x, torch.tensor(0.3), None) == pytest.approx(0.3)
    assert F._eligible(x, 0.3, None) == pytest.approx(0.3)
    out = torch.func.vmap(lambda r: st.sort(r, method="fast_soft_sort").values)(x)
    ref = torch.stack([st.sort(r, method="fast_soft_sort").values for r in x])
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_long_rows_with_ties_match_composite(op: str, dtype: torch.dtype) -> None:
    """Rows long enough for the radix argsort, with many ties and a NaN row."""
    x = _x((3, 5000), seed=4).round().to(dtype)
    x[2, 17] = float("nan")
    x.requires_grad_()
    fused = F.FusedSort if op == "sort" else F.FusedRank
    comp = F._composite_sort if op == "sort" else F._composite_rank
    a = fused.apply(x, 0.3, "c0", False, True)
    b = comp(x.double(), 0.3, "c0", False, True)
    assert torch.isnan(a[2]).all()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(a[:2].double(), b[:2], rtol=tol, atol=tol)
    g = _x((2, 5000), seed=5).to(dtype)
    (ga,) = torch.autograd.grad(a[:2], x, g)
    (gb,) = torch.autograd.grad(b[:2], x, g.double())
    ga, gb = ga[:2].double(), gb[:2].double()
    if op == "sort":  # not differentiable at ties: only the sum over each tie group is unique
        xs = x.detach()[:2]
        ga = torch.stack([ga[r][xs[r] == u].sum() for r in range(2) for u in xs[r].unique()])
        gb = torch.stack([gb[r][xs[r] == u].sum() for r in range(2) for u in xs[r].unique()])
    torch.testing.assert_close(ga, gb, rtol=tol, atol=tol * gb.abs().max().item())


@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize("masked", [False, True])
def test_state_is_saved_for_autograd(op: str, masked: bool) -> None:
    """The kernels' arrays are saved tensors: saved-tensor hooks see them (checkpoint and
    offloading work), and autograd frees them after the backward pass while the output lives."""
    x = _x((4, 1000)).requires_grad_(True)
    mask = (torch.arange(1000) < 700).expand(4, 1000) if masked else None

    def f(a: torch.Tensor) -> torch.Tensor:
        if op == "sort":
            return st.sort(a, dim=-1, method="fast_soft_sort", softness=0.5, mask=mask).values
        return st.rank(a, dim=-1, method="fast_soft_sort", softness=0.5, mask=mask)

    seen: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = f(x)
    assert sum(n for n in seen if n >= 4000) >= 5 * 4000  # x and at least four (4, n) arrays
    g = torch.randn_like(y)
    (want,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (got,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(y, x, g)  # freed after a backward without retain_graph
    ck = torch.utils.checkpoint.checkpoint(f, x, use_reentrant=False)
    torch.testing.assert_close(ck, y.detach(), rtol=0, atol=0)
    (gck,) = torch.autograd.grad(ck, x, g)
    torch.testing.assert_close(gck, want, rtol=0, atol=0)
