"""Masked ``method="ot"``: every slice's problem in one batched solve (``ot/_layout.py``)."""

from __future__ import annotations

import warnings

import pytest
import torch

import softtorch as st
from softtorch.ordering._masked import Masked
from softtorch.ordering.methods.ot import _autograd, _logplan
from softtorch.ordering.methods.ot._layout import Layout, hard_beta
from softtorch.ordering.methods.ot._problem import _hard_beta
from softtorch.ordering.methods.ot.method import OT, ot_plan

TOL = dict(atol=1e-6, rtol=1e-6)
MODES = ("smooth", "c0", "c1", "c2")


def _lengths_batch(lengths: list[int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), n, dtype=torch.float64, generator=g)
    m = torch.arange(n) < torch.tensor(lengths)[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(len(lengths), n, generator=g), dim=-1))
    return torch.where(m, x, float("nan")), m


def test_masked_ot_uses_the_batched_strategy() -> None:
    m = torch.tensor([[True, False, True]])
    assert Masked(OT(), m).strategy == "batched"


@pytest.mark.parametrize(
    "op",
    [
        lambda x, kw: st.sort(x, **kw),
        lambda x, kw: st.argsort(x, **kw),
        lambda x, kw: st.rank(x, dim=-1, **kw),
        lambda x, kw: st.topk(x, 3, dim=-1, **kw),
        lambda x, kw: st.max(x, dim=-1, **kw),
        lambda x, kw: st.argmin(x, dim=-1, **kw),
        lambda x, kw: st.median(x, dim=-1, **kw),
        lambda x, kw: st.quantile(x, torch.tensor([0.2, 0.9]), dim=-1, **kw),
        lambda x, kw: st.argsort(x, return_log_probs=True, **kw),
        lambda x, kw: st.topk(x, 2, dim=-1, return_log_probs=True, **kw),
    ],
)
def test_one_solver_call_for_all_lengths(op, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven rows with seven different real counts (0..n): one solve, not one per count."""
    calls = []

    def counted(fn):
        def wrapper(*args, **kwargs):
            calls.append(args[0].shape)
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(_autograd, "solve_plan", counted(_autograd.solve_plan))
    monkeypatch.setattr(_logplan, "solve_log_plan", counted(_logplan.solve_log_plan))
    x, m = _lengths_batch([8, 0, 1, 2, 4, 5, 7], 8, 0)
    op(x, dict(softness=0.5, method="ot", mask=m))
    assert len(calls) == 1 and calls[0][0] == 7


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [0.02, 5.0])
def test_topk_and_sort_around_the_rest_anchor(mode: str, softness: float) -> None:
    """Counts ``c = k - 1, k, k + 1, k + 2`` (the rest anchor shared with padding from
    ``c = k + 1``), a full row and the trivial ones, against each slice alone."""
    k, n = 4, 10
    lengths = [3, 4, 5, 6, 10, 1, 0]
    x, m = _lengths_batch(lengths, n, 1)
    kw = dict(softness=softness, mode=mode, method="ot")
    top = st.topk(x, k, dim=-1, mask=m, **kw)
    srt = st.sort(x, mask=m, descending=True, **kw)
    rnk = st.rank(x, dim=-1, mask=m, **kw)
    for b, c in enumerate(lengths):
        if c == 0:
            assert (top.values[b] == 0).all() and (top.indices[b] == 0).all()
            continue
        xb = x[b][m[b]]
        ref = st.topk(xb, min(k, c), dim=-1, **kw)
        torch.testing.assert_close(top.values[b, : min(k, c)], ref.values, **TOL)
        torch.testing.assert_close(top.indices[b, : min(k, c)][:, m[b]], ref.indices, **TOL)
        ref_s = st.sort(xb, descending=True, **kw)
        torch.testing.assert_close(srt.values[b, :c], ref_s.values, **TOL)
        torch.testing.assert_close(srt.indices[b, :c][:, m[b]], ref_s.indices, **TOL)
        torch.testing.assert_close(rnk[b][m[b]], st.rank(xb, dim=-1, **kw), **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [None, 2])
def test_real_block_is_the_slice_plan_and_cross_block_zero(mode: str, k: int | None) -> None:
    """The padded plan of :func:`ot_plan`: cross entries exactly 0, real block equal to the plan of
    the slice's own problem (built here from the formulas of ``method.py``)."""
    n = 7
    lengths = [7, 5, 3, 1]
    x, m = _lengths_batch(lengths, n, 2)
    z = torch.sigmoid(torch.nan_to_num(x))
    lay = Layout(m, k)
    Q = ot_plan(z, lay, lay.capacities(n), 0.3, mode, None)
    for b, c in enumerate(lengths):
        share = k is not None and c >= k + 1  # padded inputs share the rest anchor k
        real_cols = torch.arange(Q.shape[-1]) < (k + 1 if share else c)
        pad_cols = torch.arange(Q.shape[-1]) < k if share else real_cols
        cross = torch.cat((Q[b][m[b]][:, ~real_cols].flatten(), Q[b][~m[b]][:, pad_cols].flatten()))
        assert (cross == 0).all()
        zb = z[b][m[b]]
        if c == 1:
            ref = torch.ones(1, 1, dtype=z.dtype)
        elif k is None or k >= c - 1:
            ref = ot_plan(zb, torch.linspace(0, 1, c, dtype=torch.float64),
                          torch.ones(c, dtype=torch.float64), 0.3, mode, None)  # fmt: skip
            ref = ref if k is None else ref.flip(-1)  # descending anchors
        else:
            top = (c - 1 - torch.arange(k, dtype=torch.float64)) / (c - 1)
            rest = torch.tensor([(c - k - 1) / (2 * (c - 1))], dtype=torch.float64)
            cap = torch.cat([torch.ones(k, dtype=torch.float64), torch.tensor([float(c - k)])])
            ref = ot_plan(zb, torch.cat([top, rest]), cap, 0.3, mode, None)
        torch.testing.assert_close(Q[b][m[b]][:, real_cols], ref, atol=1e-7, rtol=1e-7)


def test_batched_warm_start_matches_the_shared_one() -> None:
    g = torch.Generator().manual_seed(3)
    zc = torch.randn(4, 9, dtype=torch.float64, generator=g)
    yc = torch.linspace(0, 1, 9, dtype=torch.float64) - 0.5
    b = torch.ones(9, dtype=torch.float64)
    torch.testing.assert_close(hard_beta(zc, yc.expand(4, 9), b), _hard_beta(zc, yc, b))
    top = torch.tensor([1.0, 0.75, 0.2], dtype=torch.float64)
    cap = torch.tensor([1.0, 1.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(hard_beta(zc, top.expand(4, 3), cap), _hard_beta(zc, top, cap))


@pytest.mark.parametrize("mode", MODES)
def test_extreme_inputs_finite_and_quiet(mode: str) -> None:
    x, m = _lengths_batch([12, 2, 5, 6, 1, 0], 12, 4)
    x = torch.where(m, x, 0.0)
    for softness, scale, standardize in ((1e-6, 1e6, False), (1e4, 1.0, True)):
        xx = (x * scale).requires_grad_()
        kw = dict(mode=mode, softness=softness, method="ot", standardize=standardize, mask=m)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = st.rank(xx, dim=-1, **kw)
            t = st.topk(xx, 4, dim=-1, **kw).values
            (g,) = torch.autograd.grad(r.sum() + t.sum(), xx)
        assert torch.isfinite(r).all() and torch.isfinite(t).all() and torch.isfinite(g).all()
        assert (g[~m] == 0).all()
        r32 = st.rank((x * scale).float(), dim=-1, **kw)
        torch.testing.assert_close(r32.double(), r.detach(), atol=1e-3, rtol=1e-3)


def test_vmap_over_slices_matches_batched() -> None:
    x, m = _lengths_batch([6, 0, 1, 4, 3], 6, 5)
    x = torch.where(m, x, 0.0)
    kw = dict(softness=0.3, method="ot")
    batched = st.rank(x, dim=-1, mask=m, **kw)
    mapped = torch.func.vmap(lambda xr, mr: st.rank(xr, dim=-1, mask=mr, **kw))(x, m)
    torch.testing.assert_close(mapped, batched, **TOL)
    grad = torch.func.grad(lambda a: (st.rank(a, dim=-1, mask=m, **kw) ** 2).sum())(x)
    xr = x.clone().requires_grad_()
    (ref,) = torch.autograd.grad((st.rank(xr, dim=-1, mask=m, **kw) ** 2).sum(), xr)
    torch.testing.assert_close(grad, ref, **TOL)


def test_no_graph_break_under_compile() -> None:
    x, m = _lengths_batch([9, 1, 3, 0, 7, 4], 9, 6)
    x = torch.where(m, x, 0.0)

    def fn(xx: torch.Tensor) -> torch.Tensor:
        r = st.rank(xx, dim=-1, mask=m, softness=0.3, method="ot")
        v = st.sort(xx, mask=m, softness=0.3, method="ot", mode="c1").values
        t = st.topk(xx, 2, dim=-1, mask=m, method="ot").values
        return r + v + t.sum(-1, keepdim=True)

    torch._dynamo.reset()
    assert torch._dynamo.explain(fn)(x).graph_break_count == 0


@pytest.mark.slow
def test_compiled_matches_eager_with_gradients() -> None:
    x, m = _lengths_batch([9, 1, 3, 0, 7, 4], 9, 7)
    x = torch.where(m, x, 0.0)

    def fn(xx: torch.Tensor) -> torch.Tensor:
        r = st.rank(xx, dim=-1, mask=m, softness=0.3, method="ot", mode="c2")
        return r + st.max(xx, dim=-1, mask=m, method="ot").values.unsqueeze(-1)

    xr = x.clone().requires_grad_()
    out = torch.compile(fn)(xr)
    torch.testing.assert_close(out, fn(x), **TOL)
    (g,) = torch.autograd.grad(out.sum(), xr)
    xe = x.clone().requires_grad_()
    (ge,) = torch.autograd.grad(fn(xe).sum(), xe)
    torch.testing.assert_close(g, ge, **TOL)
    assert (g[~m] == 0).all()


@pytest.mark.parametrize("mode", ("smooth", "c2"))
def test_forward_mode_and_double_backward_match_per_slice(mode: str) -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 6, dtype=torch.float64, generator=g)
    v = torch.randn(3, 6, dtype=torch.float64, generator=g)
    m = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 0, 0], [1, 1, 0, 1, 1, 0]]).bool()
    x = torch.where(m, x, 0.0)
    kw = dict(softness=0.6, mode=mode, method="ot")
    _, jv = torch.func.jvp(lambda a: st.rank(a, dim=-1, mask=m, **kw), (x,), (v,))
    xr = x.clone().requires_grad_()
    (gr,) = torch.autograd.grad((st.rank(xr, dim=-1, mask=m, **kw) ** 2).sum(), xr,
                                create_graph=True)  # fmt: skip
    (hv,) = torch.autograd.grad((gr * v).sum(), xr)
    assert (hv[~m] == 0).all()
    for b in range(3):
        xb, vb = x[b][m[b]], v[b][m[b]]
        _, jb = torch.func.jvp(lambda a: st.rank(a, dim=-1, **kw), (xb,), (vb,))
        torch.testing.assert_close(jv[b][m[b]], jb, **TOL)
        xb = xb.clone().requires_grad_()
        (gb,) = torch.autograd.grad((st.rank(xb, dim=-1, **kw) ** 2).sum(), xb, create_graph=True)
        (hb,) = torch.autograd.grad((gb * vb).sum(), xb)
        torch.testing.assert_close(hv[b][m[b]], hb, **TOL)
