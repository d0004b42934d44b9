"""The masked fused eager CPU path of fast_soft_sort (per-row counts and anchors in the numba
kernel) against the batched masked composite path (:mod:`...permutahedron.masked`) and the op on
each slice's real entries alone."""

from __future__ import annotations

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods.permutahedron import _fused as F
from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss

pytestmark = pytest.mark.skipif(not fss.HAS_NUMBA, reason="numba not installed")

MODES = ("smooth", "c0", "c1", "c2")


def _masked(rows: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with real counts n, 0, 1, 2, random; padded entries NaN / inf; real ones shuffled."""
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(rows, n, dtype=torch.float64, generator=g)
    lengths = torch.randint(0, n + 1, (rows,), generator=g)
    lengths[: min(rows, 4)] = torch.tensor([n, 0, 1, 2])[: min(rows, 4)]
    m = torch.arange(n) < lengths[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(rows, n, generator=g), dim=-1))
    x = torch.where(m, x, float("nan"))
    x[0 if rows == 1 else 1, :3] = float("inf")  # a padded row full of junk
    return x, m


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize("shape", [(6, 7), (5, 20000)])
def test_fused_masked_matches_masked_composite(
    mode: str, descending: bool, standardize: bool, op: str, shape: tuple[int, int]
) -> None:
    """Values and gradients (serial and parallel kernels) against the batched PAV path."""
    x, m = _masked(*shape)
    xz = torch.where(m, x, 0.0).requires_grad_()  # the composite path needs finite padding
    xf = x.clone().requires_grad_()
    fused = F.FusedSort if op == "sort" else F.FusedRank
    comp = F._composite_sort if op == "sort" else F._composite_rank
    a = fused.apply(xf, 0.3, mode, descending, standardize, m)
    b = comp(xz, 0.3, mode, descending, standardize, m)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    g = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (ga,) = torch.autograd.grad(a, xf, g)
    (gb,) = torch.autograd.grad(b, xz, g)
    assert (ga[~m] == 0).all()
    torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9 * gb.abs().max().item())


@pytest.mark.parametrize("mode", MODES)
def test_fused_masked_equals_per_slice_op(mode: str) -> None:
    """Ranks, sorted values and their gradients equal the unmasked op on each slice."""
    x, m = _masked(6, 9, seed=2)
    xz = torch.where(m, x, 0.0).requires_grad_()
    kw = dict(softness=0.5, mode=mode, method="fast_soft_sort")
    r = st.rank(xz, dim=-1, mask=m, **kw)
    v = st.sort(xz, mask=m, **kw).values
    w = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad((r * w).sum() + (v * w).sum(), xz)
    assert (g[~m] == 0).all()
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        if c == 0:
            assert (r[b] == 0).all() and (v[b] == 0).all()
            continue
        xb = x[b][m[b]].clone().requires_grad_()
        rb = st.rank(xb, dim=-1, **kw)
        vb = st.sort(xb, **kw).values
        torch.testing.assert_close(r[b][m[b]], rb, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(v[b, :c], vb, rtol=1e-6, atol=1e-6)
        (gb,) = torch.autograd.grad((rb * w[b][m[b]]).sum() + (vb * w[b][:c]).sum(), xb)
        torch.testing.assert_close(g[b][m[b]], gb, rtol=1e-6, atol=1e-6)


def test_masked_public_ops_take_the_fused_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"sort": 0, "rank": 0, "masked": 0}
    real_sort, real_rank = F.FusedSort.apply, F.FusedRank.apply

    def count(name: str, real: object):  # noqa: ANN202
        def apply(*a: object) -> torch.Tensor:
            calls[name] += 1
            calls["masked"] += a[-1] is not None
            return real(*a)  # type: ignore[operator]

        return apply

    monkeypatch.setattr(F.FusedSort, "apply", count("sort", real_sort))
    monkeypatch.setattr(F.FusedRank, "apply", count("rank", real_rank))
    x, m = _masked(4, 6, seed=4)
    x = x.float()
    kw = {"method": "fast_soft_sort", "mode": "smooth", "softness": 0.3, "mask": m}
    st.sort(x, **kw)
    st.max(x, dim=-1, **kw)
    st.quantile(x, 0.3, dim=-1, **kw)
    st.rank(x, dim=-1, **kw)
    from softtorch.losses import ndcg_loss

    rel = torch.rand(4, 6, generator=torch.Generator().manual_seed(5))
    ndcg_loss(torch.where(m, x, 0.0), rel, mask=m)
    assert calls["sort"] == 3 and calls["rank"] >= 2 and calls["masked"] == sum(
        calls[k] for k in ("sort", "rank")
    )


@pytest.mark.parametrize("op", ["sort", "rank"])
def test_masked_double_backward_and_gradcheck(op: str) -> None:
    x, m = _masked(4, 5, seed=6)
    x = torch.where(m, x, 0.0).requires_grad_()
    fused = F.FusedSort if op == "sort" else F.FusedRank
    comp = F._composite_sort if op == "sort" else F._composite_rank
    for mode in MODES:
        fn = lambda t, md=mode: fused.apply(t, 0.5, md, False, True, m)  # noqa: E731
        assert torch.autograd.gradcheck(fn, x)
    g = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    (ga,) = torch.autograd.grad(fused.apply(x, 0.4, "c0", True, True, m), x, g, create_graph=True)
    (gb,) = torch.autograd.grad(comp(x, 0.4, "c0", True, True, m), x, g, create_graph=True)
    (ha,) = torch.autograd.grad(ga.square().sum(), x)
    (hb,) = torch.autograd.grad(gb.square().sum(), x)
    torch.testing.assert_close(ha, hb)


def test_masked_nan_real_entry_and_float32() -> None:
    """A NaN real entry makes its slice NaN (as the per-slice op); float32 computes in float64."""
    x, m = _masked(4, 8, seed=8)
    x = torch.where(m, x, 0.0)
    x[0, 2] = float("nan")  # row 0 is all real
    for fn in (F.FusedSort, F.FusedRank):
        out = fn.apply(x, 0.5, "smooth", False, True, m)
        assert torch.isnan(out[0]).all() and not torch.isnan(out[1:]).any()
    x32 = torch.where(m, x, 0.0)[1:].float()
    out = F.FusedSort.apply(x32, 0.2, "c1", False, True, m[1:])
    ref = F._composite_sort(x32.double(), 0.2, "c1", False, True, m[1:])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
