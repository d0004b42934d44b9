"""NeuralSort's numba kernels (sorted pairwise sums, written band rows) against the torch paths
and independent dense formulas, float64."""

from __future__ import annotations

import pytest
import torch

from softtorch.ordering.methods.neuralsort import _numba as nk
from softtorch.ordering.methods.neuralsort import _smooth as ns


def _dense_sums(z: torch.Tensor, s: float) -> torch.Tensor:
    d = z.unsqueeze(-1) - z.unsqueeze(-2)
    return (d * (2.0 * torch.sigmoid(d / s) - 1.0)).sum(-1)


# (n, scale, softness): one reference tile, several tiles (SPAN), pairs beyond the cutoff (CUT),
# every pair beyond it (prefix sums only)
CASES = [(29, 1.0, 0.3), (300, 1.0, 0.004), (200, 30.0, 0.05), (40, 1e3, 1e-3)]


@pytest.mark.parametrize(("n", "scale", "softness"), CASES)
def test_sorted_sums_match_dense(n: int, scale: float, softness: float) -> None:
    g = torch.Generator().manual_seed(n)
    z = torch.randn(2, n, generator=g, dtype=torch.float64) * scale
    z[:, 5] = z[:, 9]  # a tie
    zs = z.sort(-1).values.requires_grad_(True)
    h = torch.randn(2, n, generator=g, dtype=torch.float64)
    ref = _dense_sums(zs, softness)
    (gref,) = torch.autograd.grad(ref, zs, h)
    zd = zs.detach()
    got = torch.from_numpy(nk.abs_sums(zd.numpy(), 1.0 / softness))
    ggot = torch.from_numpy(nk.abs_sums_vjp(zd.numpy(), h.numpy(), 1.0 / softness))
    torch.testing.assert_close(got, ref.detach(), rtol=1e-12, atol=1e-12 * scale)
    torch.testing.assert_close(ggot, gref, rtol=1e-11, atol=1e-11 * h.abs().max())
    for threads in (2, 3):
        par = nk.abs_sums_parallel(zd.numpy(), 1.0 / softness, threads)
        gpar = nk.abs_sums_vjp_parallel(zd.numpy(), h.numpy(), 1.0 / softness, threads)
        torch.testing.assert_close(torch.from_numpy(par), got, rtol=1e-12, atol=1e-12 * scale)
        torch.testing.assert_close(torch.from_numpy(gpar), ggot, rtol=1e-12, atol=1e-11)
    # the torch fallback of the unsorted entry points agrees too
    torch.testing.assert_close(ns._torch_sums(z, 1.0 / softness), ns.abs_sums(z, 1.0 / softness))


def test_soft_abs_sums_gradcheck_with_tails() -> None:
    z = torch.tensor([[0.3, -1.2, 0.8, 0.05, 1.7, -0.4, 9.0, -7.5]], dtype=torch.float64)
    fn = lambda t: ns.soft_abs_sums(t, 0.05)  # noqa: E731  (pairs beyond the cutoff)
    assert torch.autograd.gradcheck(fn, (z.requires_grad_(),))


@pytest.fixture(params=[torch.float64, torch.float32])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.mark.parametrize("descending", [False, True])
def test_band_rows_match_torch_path(dtype: torch.dtype, descending: bool) -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 60, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 7, 31, 59])
    pl = ns.plan(z, 0.05, descending, pos)
    assert pl is not None
    outs, grads = [], []
    gin = torch.randn(2, 4, 60, generator=g, dtype=torch.float64).to(dtype)
    for backend in ("auto", "torch"):
        ns.set_backend(backend)
        try:
            out = torch.empty(2, 4, 60, dtype=dtype).fill_(7.0)
            ns._perm_rows_fill(pl, out)
            outs.append(out)
            grads.append(ns._perm_rows_vjp(pl, gin))
            grads.append(ns._perm_rows_vjp(pl, torch.ones((), dtype=dtype).expand(2, 4, 60)))
        finally:
            ns.set_backend("auto")
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {}
    torch.testing.assert_close(outs[0], outs[1], **tol)
    # the rows are the dense softmax rows (columns in input order)
    scores = (pl.coef.unsqueeze(-1) * z.unsqueeze(-2) - ns.abs_sums(z, 20.0).unsqueeze(-2)) * 20.0
    torch.testing.assert_close(outs[0].double(), torch.softmax(scores, -1), **tol)
    for a, b in zip(grads[:2], grads[2:]):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)
    # an expanded gradient of ones gives zero (rows sum to one)
    assert grads[1][0].abs().max() < 1e-10


@pytest.mark.parametrize("batch", [1, 3])
def test_parallel_band_rows_match_serial_and_torch(
    monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """``band_rows_parallel`` / ``band_rows_vjp_parallel`` (rows split over threads, private
    accumulators) against the serial kernels; through autograd at 2 threads against the torch
    bands (float64 values and gradients)."""
    gen = torch.Generator().manual_seed(4)
    n = 41
    z = torch.randn(batch, n, generator=gen, dtype=torch.float64)
    pos = torch.tensor([0, 3, 20, 40, 9])
    pl = ns.plan(z, 0.07, True, pos)
    assert pl is not None
    nk = ns._numba()
    args = (
        ns._flat(pl.zs), ns._flat(pl.bs), pl.coef.numpy(), ns._flat(pl.lo), ns._flat(pl.hi),
        pl.inv_s, ns._flat(pl.perm),
    )  # fmt: skip
    g = torch.randn(batch, 5, n, generator=gen, dtype=torch.float64)
    ref = torch.empty(batch, 5, n, dtype=torch.float64)
    nk.band_rows(*args, ref.numpy())
    gz0, gb0 = nk.band_rows_vjp(*args, g.numpy())
    for threads in (2, 3):
        out = torch.full((batch, 5, n), 7.0, dtype=torch.float64)
        nk.band_rows_parallel(*args, out.numpy(), threads)
        assert torch.equal(out, ref)
        gz, gb = nk.band_rows_vjp_parallel(*args, g.numpy(), threads)
        torch.testing.assert_close(
            torch.from_numpy(gz), torch.from_numpy(gz0), rtol=1e-12, atol=1e-13
        )
        torch.testing.assert_close(
            torch.from_numpy(gb), torch.from_numpy(gb0), rtol=1e-12, atol=1e-13
        )
    monkeypatch.setattr(ns, "ROWS_PARALLEL_MIN", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    res = []
    try:
        for backend in ("auto", "torch"):
            ns.set_backend(backend)
            zz = z.clone().requires_grad_(True)
            p = ns.permutation_rows(zz, pos, 0.07, True)
            assert p is not None
            res.append((p.detach(), torch.autograd.grad((p * g).sum(), zz)[0]))
    finally:
        ns.set_backend("auto")
        torch.set_num_threads(threads)
    torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res[0][1], res[1][1], rtol=1e-10, atol=1e-12)
