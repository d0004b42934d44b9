"""Streamed sparse-mode (``c0`` / ``c1`` / ``c2``) NeuralSort values and ranks against the dense
path (float64 values and gradients), with small row blocks, ties, a non-convex ``B`` (the
tails at n = 300, where a concavity-based window search was wrong)
and a gradcheck of the windowed path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import softtorch as st
from softtorch.ordering.methods import _stream
from softtorch.ordering.methods.neuralsort import _sparse as nc
from softtorch.ordering.methods.softsort import _sparse as cs

DENSE = 1 << 62
MODES = ("c0", "c1", "c2")


@pytest.fixture(autouse=True, params=["auto", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[misc]
    """Both implementations of the band correction (numba kernels, torch row blocks), with
    small row blocks."""
    monkeypatch.setattr(cs, "BLOCK_ELEMENTS", 40)
    monkeypatch.setattr(nc, "BLOCK_ELEMENTS", 40)
    cs.set_backend(request.param)
    yield request.param
    cs.set_backend("auto")


def _inputs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n + seed)
    x = torch.randn(2, n, generator=g, dtype=torch.float64)
    x[..., n // 4] = x[..., n // 2]  # ties
    x[0, : n // 5] = 0.3  # a block of ties
    return x


def _run(monkeypatch: pytest.MonkeyPatch, stream: bool, fn, x: torch.Tensor):  # noqa: ANN001, ANN202
    monkeypatch.setattr(_stream, "STREAM_MIN", 0 if stream else DENSE)
    xx = x.clone().requires_grad_(True)
    out = fn(xx)
    w = torch.linspace(-1.0, 2.0, out.shape[-1], dtype=out.dtype)
    (g,) = torch.autograd.grad((out * w).sum() + out.square().sum(), xx)
    return out.detach(), g


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    ("n", "softness"),
    [(40, 0.1), (90, 0.05), (25, 1.0), pytest.param(300, 0.1, marks=pytest.mark.slow)],
)
def test_streamed_equals_dense(
    monkeypatch: pytest.MonkeyPatch, mode: str, descending: bool, n: int, softness: float
) -> None:
    x = _inputs(n, 0)
    kw = {"softness": softness, "method": "neuralsort", "mode": mode, "standardize": n != 90}
    calls = []
    real = nc._plan

    def spy(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(nc, "_plan", spy)

    def sort(z: torch.Tensor) -> torch.Tensor:
        return st.sort(z, descending=descending, return_indices=False, **kw).values

    def rank(z: torch.Tensor) -> torch.Tensor:
        return st.rank(z, dim=-1, descending=descending, **kw)

    for fn in (sort, rank):
        calls.clear()
        ys, gs = _run(monkeypatch, True, fn, x)
        assert calls, "the streamed path did not run"
        yd, gd = _run(monkeypatch, False, fn, x)
        torch.testing.assert_close(ys, yd, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(gs, gd, rtol=1e-7, atol=1e-7)


def test_nonconvex_tails(monkeypatch: pytest.MonkeyPatch) -> None:
    """``c0`` descending at n = 300: ``B`` is not convex in the tails (a window search that
    assumed concave rows returned a wrong largest value here)."""
    monkeypatch.setattr(nc, "BLOCK_ELEMENTS", 1 << 14)
    x = torch.randn(2, 300, generator=torch.Generator().manual_seed(300), dtype=torch.float64)
    kw = {"softness": 0.1, "method": "neuralsort", "mode": "c0", "descending": True}
    kw["standardize"] = False

    def sort(z: torch.Tensor) -> torch.Tensor:
        return st.sort(z, return_indices=False, **kw).values

    ys, gs = _run(monkeypatch, True, sort, x)
    yd, gd = _run(monkeypatch, False, sort, x)
    torch.testing.assert_close(ys, yd, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gs, gd, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("mode", MODES)
def test_abs_sums_against_pairs(mode: str, backend: str) -> None:
    u = _inputs(60, 1).sort(-1).values
    b = nc.sorted_abs_sums(u, 0.2, mode)
    d = u.unsqueeze(-1) - u.unsqueeze(-2)
    ref = st.abs(d, softness=0.2, mode=mode).sum(-1)
    torch.testing.assert_close(b, ref, rtol=1e-12, atol=1e-10)
    uu = u.clone().requires_grad_(True)
    gw = torch.linspace(-1.0, 1.0, 60, dtype=torch.float64)
    (g,) = torch.autograd.grad((nc.sorted_abs_sums(uu, 0.2, mode) * gw).sum(), uu)
    uu = u.clone().requires_grad_(True)
    dd = uu.unsqueeze(-1) - uu.unsqueeze(-2)
    (gref,) = torch.autograd.grad((st.abs(dd, softness=0.2, mode=mode).sum(-1) * gw).sum(), uu)
    torch.testing.assert_close(g, gref, rtol=1e-10, atol=1e-10)


def test_lower_hull_is_convex_envelope() -> None:
    u = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0, 1.0, 3.0, 0.0]], dtype=torch.float64)
    ref = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(nc.lower_hull(u, b), ref)
    b2 = torch.tensor([[4.0, 1.0, 0.0, 1.0, 4.0]], dtype=torch.float64)
    torch.testing.assert_close(nc.lower_hull(u, b2), b2)


def _chain_hull(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The former per-row reference: monotone chain in Python, ``np.interp``, clipped."""
    out = b.clone()
    for r in range(u.shape[0]):
        x, y = u[r].numpy(), b[r].numpy()
        hull: list[int] = []
        for j in range(x.shape[0]):
            while len(hull) >= 2:
                i0, i1 = hull[-2], hull[-1]
                cross = (x[i1] - x[i0]) * (y[j] - y[i0]) - (y[i1] - y[i0]) * (x[j] - x[i0])
                if cross > 0.0:
                    break
                hull.pop()
            hull.append(j)
        out[r] = torch.minimum(b[r], torch.from_numpy(np.interp(x, x[hull], y[hull])))
    return out


def test_batched_lower_hull_matches_the_chain() -> None:
    """Random, convex-plus-noise and |.|-shaped rows (batch 1 and several, odd n): the batched
    hull (numba kernel / torch ops, per the backend) equals the per-row chain exactly."""
    g = torch.Generator().manual_seed(7)
    for batch, n in ((1, 1), (1, 2), (1, 33), (5, 47), (3, 101)):
        u = torch.randn(batch, n, generator=g, dtype=torch.float64).sort(-1).values
        noise = torch.randn(batch, n, generator=g, dtype=torch.float64)
        for b in (noise, u * u + 0.05 * noise, (u - u.mean()).abs() * n + 0.01 * noise):
            assert torch.equal(nc.lower_hull(u, b), _chain_hull(u, b))


def test_lower_hull_with_ties_is_below_and_convex() -> None:
    """Tied points (a vertical pair): the envelope stays ``<= b`` and its slopes between
    distinct points do not decrease."""
    u = torch.tensor([[0.0, 0.5, 0.5, 0.5, 1.0, 2.0, 2.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.2, 0.9, -0.1, 0.3, 1.5, 0.4, 2.0]], dtype=torch.float64)
    env = nc.lower_hull(u, b)
    assert (env <= b).all()
    x, y = u[0], env[0]
    keep = torch.cat((torch.tensor([True]), x[1:] > x[:-1]))
    lo = torch.stack([y[x == v].min() for v in x[keep]])
    slopes = (lo[1:] - lo[:-1]) / (x[keep][1:] - x[keep][:-1])
    assert (slopes[1:] >= slopes[:-1] - 1e-12).all()


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str) -> None:
    z = _inputs(12, 2)[1:].requires_grad_(True)
    x = torch.randn(1, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: nc.values(a, b, 0.3, mode, True), (z, x))
    assert torch.autograd.gradcheck(lambda a: nc.rank(a, 0.3, mode, False), (z,))


def test_wide_windows_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nc, "MAX_WINDOW_ELEMENTS", 1)
    z = _inputs(20, 3)
    assert nc.values(z, z, 0.1, "c0", False) is None
    assert nc.rank(z, 0.1, "c0", False) is None
