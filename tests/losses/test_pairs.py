"""The pair sums of kendall_loss (softtorch.losses._pairs): the numba kernels (the Fenwick sweep
of hard / wide-band c0, band + count of smooth / c1 / c2 / narrow-band c0) and the blocked O(n^2)
torch formula against the dense pair formula of the original implementation and against an
independent pair formula (tanh / odd polynomials), with ties, weights and masks; gradients (also
gradcheck) and path selection."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from softtorch import losses as L
from softtorch._sigmoidal import step
from softtorch.kernels import fused
from softtorch.kernels.fused import HAS_NUMBA
from softtorch.losses import _pairs as P
from softtorch.losses._common import masked_standardize

MODES = ["hard", "smooth", "c0", "c1", "c2"]
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")


def dense_kendall_loss(x, t, weights=None, mask=None, softness=0.1, mode="smooth",  # noqa: ANN001, ANN201
                       standardize=True):  # fmt: skip
    """The original O(n^2) kendall_loss (reduction "none", undefined lists NaN), one n x n
    matrix per list."""
    mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.expand(x.shape)
    w = mask.to(x.dtype) if weights is None else torch.where(mask, weights, 0.0)
    zero = torch.zeros((), dtype=x.dtype)
    z = masked_standardize(x, mask) if standardize else torch.where(mask, x, zero)
    t = torch.where(mask, t, zero)
    dz = z.unsqueeze(-1) - z.unsqueeze(-2)
    sp = torch.sign(dz) if mode == "hard" else 2.0 * step(dz, softness, mode) - 1.0
    stg = torch.sign(t.unsqueeze(-1) - t.unsqueeze(-2))
    pair = w.unsqueeze(-1) * w.unsqueeze(-2)
    num = (pair * stg * sp).sum((-1, -2))
    pairs = pair.sum((-1, -2)) - w.square().sum(-1)
    vv = (pair * stg.abs()).sum((-1, -2)) * pairs
    return torch.where(vv > 0, 1.0 - num / vv.clamp_min(1e-300).sqrt(), float("nan"))


def _data(rows: int, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Predictions with ties, integer targets with ties, weights (some 0), a shuffled mask with
    real counts n, 0, 1, 2, random."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, dtype=torch.float64, generator=g)
    x[:, 1::4] = x[:, ::4][:, : x[:, 1::4].shape[1]]  # exact ties in the predictions
    t = torch.randint(0, 4, (rows, n), generator=g).to(torch.float64)
    w = torch.rand(rows, n, dtype=torch.float64, generator=g)
    w[w < 0.1] = 0.0
    lengths = torch.randint(0, n + 1, (rows,), generator=g)
    lengths[:4] = torch.tensor([n, 0, 1, 2])[: min(rows, 4)]
    m = torch.arange(n) < lengths[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(rows, n, generator=g), dim=-1))
    return x, t, w, m


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_loss_equals_dense_implementation(mode: str, standardize: bool, backend: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """kendall_loss with weights and masks, by the kernels (auto) and by the torch fallback."""
    monkeypatch.setattr(fused, "_backend", backend)
    x, t, w, m = _data(9, 23, seed=1)
    for weights in (None, w):
        for mask in (None, m):
            for soft in (0.05, 0.7):
                kw = dict(softness=soft, mode=mode, standardize=standardize)
                got = L.kendall_loss(x, t, weights=weights, mask=mask, reduction="none",
                                     empty_target_action="neg", method="pairwise",
                                     **kw)  # fmt: skip
                want = dense_kendall_loss(x, t, weights, mask, **kw)
                want = torch.where(torch.isnan(want), 1.0, want)
                torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def ref_pair_sum(z, t, w, softness, mode):  # noqa: ANN001, ANN201
    """``(N, M)``: the pair sum with the soft sign written independently of softtorch (tanh and
    the odd polynomials of the c-modes in v = d / (5 s)), and its magnitude M (every term's
    absolute value, the scale of the rounding errors)."""
    d = z.unsqueeze(-1) - z.unsqueeze(-2)
    if mode == "hard":
        f = torch.sign(d)
    elif mode == "smooth":
        f = torch.tanh(d / (2.0 * softness))
    else:
        v = (d / (5.0 * softness)).clamp(-1.0, 1.0)
        f = {"c0": v, "c1": (3 * v - v**3) / 2, "c2": (15 * v - 10 * v**3 + 3 * v**5) / 8}[mode]
    st = torch.sign(t.unsqueeze(-1) - t.unsqueeze(-2))
    pair = w.unsqueeze(-1) * w.unsqueeze(-2)
    return (pair * st * f).sum((-1, -2)), (pair * (st * f).abs()).sum((-1, -2))


def _spreads(rows: int, n: int, seed: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Standard, widely spread (x 1e3) and tightly clustered (1e3 + 1e-4 x) scores, with ties in
    the scores and the targets, weights (some 0; 0 = a padded entry)."""
    x, t, w, m = _data(rows, n, seed)
    w = torch.where(m, w, 0.0)
    return {"standard": (x, t, w), "wide": (1e3 * x, t, w), "tight": (1e3 + 1e-4 * x, t, w)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spread", ["standard", "wide", "tight"])
def test_pair_sums_against_independent_formula(
    mode: str, spread: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernel (both c0 routes) and torch paths: values and gradients w.r.t. scores and weights,
    float64, softness 1e-6 .. 1e4, to rounding (relative to the magnitude of the terms)."""
    z, t, w = _spreads(4, 40, seed=7)[spread]
    paths = [("dense", P.pair_sum_dense)]
    if HAS_NUMBA:
        paths.append(("kernel", P.SweepPairSum.apply))
    for soft in (1e-6, 1e-3, 0.1, 10.0, 1e4):
        zr, wr = z.clone().requires_grad_(), w.clone().requires_grad_()
        want, mag = ref_pair_sum(zr, t, wr, soft, mode)
        gz, gw = torch.autograd.grad(want.sum(), (zr, wr))
        want, mag = want.detach(), mag.detach()
        # gradient scales: d/dw sums |terms| / w, d/dz sums |terms| / softness (c-modes / 5 s)
        tol_w = 1e-12 * mag.max() / w.max() + 1e-300
        tol_z = 1e-12 * w.max() * w.sum(-1).max() / (softness_unit(soft, mode)) + 1e-300
        for limit in (0, 10**9) if mode == "c0" else (128,):
            monkeypatch.setattr(P, "C0_BAND_PAIRS_PER_ITEM", limit)
            for name, fn in paths:
                zk, wk = z.clone().requires_grad_(), w.clone().requires_grad_()
                got = fn(zk, t, wk, soft, mode)
                tag = f"{name} {mode} {spread} softness={soft} limit={limit}"

                def msg(m: str, tag: str = tag) -> str:
                    return f"{tag}: {m}"

                # the torch formula rounds 2 sigmoid - 1 (~ 1e-16 per pair even where |phi| << 1)
                atol = 1e-13 * mag.max()
                if name == "dense":
                    atol = atol + 1e-15 * (w.sum(-1) ** 2).max()
                torch.testing.assert_close(got, want, rtol=0, atol=float(atol), msg=msg)
                hz, hw = torch.autograd.grad(got.sum(), (zk, wk))
                extra = 1e-14 * w.sum(-1).max() if name == "dense" else 0.0
                torch.testing.assert_close(hw, gw, rtol=0, atol=float(tol_w + extra), msg=msg)
                if mode != "hard":
                    torch.testing.assert_close(hz, gz, rtol=0, atol=float(tol_z), msg=msg)


def softness_unit(soft: float, mode: str) -> float:
    """The distance unit of the soft sign (its slope at 0 is at most 1 / unit)."""
    return soft if mode == "smooth" else 5.0 * soft


@needs_numba
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(7, 31), (17, 2000)])
def test_sweep_equals_dense_pair_sum_with_gradients(mode: str, shape: tuple[int, int]) -> None:
    """Values and gradients w.r.t. predictions and weights (serial and parallel kernels)."""
    x, t, w, m = _data(*shape, seed=2)
    w = torch.where(m, w, 0.0)
    n = shape[1]
    z = torch.sigmoid(x) if n < 100 else 3.0 * x  # raw scale on the long rows
    for soft in (0.01, 0.3):
        zs, ws = z.clone().requires_grad_(), w.clone().requires_grad_()
        zd, wd = z.clone().requires_grad_(), w.clone().requires_grad_()
        a = P.SweepPairSum.apply(zs, t, ws, soft, mode)
        if n < 100:
            b = P.pair_sum_dense(zd, t, wd, soft, mode)
        else:  # the dense reference on one row only (n^2 pairs)
            b = P.pair_sum_dense(zd[:1], t[:1], wd[:1], soft, mode)
            a = a[:1]
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * n)
        g = torch.linspace(0.5, 2.0, a.shape[0], dtype=torch.float64)
        gza, gwa = torch.autograd.grad(a, (zs, ws), g)
        gzd, gwd = torch.autograd.grad(b, (zd, wd), g)
        r = a.shape[0]
        torch.testing.assert_close(gza[:r], gzd[:r], rtol=1e-9, atol=1e-9 * n)
        torch.testing.assert_close(gwa[:r], gwd[:r], rtol=1e-9, atol=1e-9 * n)


@needs_numba
@pytest.mark.parametrize("mode", ["smooth", "c2"])
def test_single_long_row_in_parallel_parts(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row: the band pairs split over threads (forced here on a short row) give the
    reference values and gradients."""
    monkeypatch.setattr(P, "PARALLEL_MIN_ROW", 16)
    monkeypatch.setattr(P, "_nb", lambda: type("nb", (), {"get_num_threads": lambda: 3}))
    z, t, w = _spreads(1, 300, seed=8)["standard"]
    zk, wk = z.clone().requires_grad_(), w.clone().requires_grad_()
    zr, wr = z.clone().requires_grad_(), w.clone().requires_grad_()
    got = P.SweepPairSum.apply(zk, t, wk, 0.3, mode)
    want, mag = ref_pair_sum(zr, t, wr, 0.3, mode)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13 * mag.max().item())
    for a, b in zip(torch.autograd.grad(got.sum(), (zk, wk)),
                    torch.autograd.grad(want.sum(), (zr, wr))):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@needs_numba
def test_sweep_gradcheck_and_double_backward() -> None:
    x, t, w, m = _data(3, 8, seed=3)
    z = torch.sigmoid(x).requires_grad_()
    w = torch.where(m, w, 0.0).requires_grad_()
    assert gradcheck(lambda a, b: P.SweepPairSum.apply(a, t, b, 0.2, "c0"), (z, w))
    (gz,) = torch.autograd.grad(P.SweepPairSum.apply(z, t, w, 0.2, "c0").sum(), z,
                                create_graph=True)  # fmt: skip
    (gzd,) = torch.autograd.grad(P.pair_sum_dense(z, t, w, 0.2, "c0").sum(), z, create_graph=True)
    (h,) = torch.autograd.grad(gz.square().sum(), w)
    (hd,) = torch.autograd.grad(gzd.square().sum(), w)
    torch.testing.assert_close(h, hd)


@pytest.mark.parametrize("mode", ["smooth", "c0"])
def test_blocked_dense_matches_one_block(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row blocks with recomputation in the backward give the one-block values and gradients."""
    x, t, w, m = _data(3, 17, seed=4)
    z = torch.sigmoid(x).requires_grad_()
    soft = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    a = P.pair_sum_dense(z, t, w, soft, mode)
    ga = torch.autograd.grad(a.sum(), (z, soft))
    monkeypatch.setattr(P, "BLOCK_ELEMENTS", 3 * 17 * 4)  # blocks of 4 rows
    b = P.pair_sum_dense(z, t, w, soft, mode)
    gb = torch.autograd.grad(b.sum(), (z, soft))
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


@needs_numba
def test_kendall_loss_takes_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = P.SweepPairSum.apply

    def count(*a: object) -> torch.Tensor:
        calls.append(a[-1])
        return real(*a)

    monkeypatch.setattr(P.SweepPairSum, "apply", count)
    x, t, w, m = _data(4, 10, seed=5)
    for mode in MODES:
        L.kendall_loss(x.float(), t, weights=w.float(), mask=m, mode=mode)
    assert calls == MODES
    softness = torch.tensor(0.1)  # a tensor softness (its gradient): the dense path
    L.kendall_loss(x, t, mode="c0", softness=softness.requires_grad_(), method="pairwise")
    assert calls == MODES


def test_tie_free_weight_and_nan() -> None:
    x, t, w, m = _data(5, 12, seed=6)
    stg = torch.sign(t.unsqueeze(-1) - t.unsqueeze(-2)).abs()
    want = (w.unsqueeze(-1) * w.unsqueeze(-2) * stg).sum((-1, -2))
    torch.testing.assert_close(P.tie_free_weight(t, w), want, rtol=1e-12, atol=1e-12)
    x[0, 3] = float("nan")
    t[2, 5] = float("nan")
    for method in ("pairwise", "fast_soft_sort"):
        out = L.kendall_loss(x, t, mode="c0", method=method, reduction="none")
        assert torch.isnan(out[0]) and torch.isnan(out[2]) and torch.isfinite(out[[1, 3, 4]]).all()
