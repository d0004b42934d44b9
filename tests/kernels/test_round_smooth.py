"""The ``smooth`` soft round kernel (steps in groups of four, float32 window of the steps not
within 1e-7 of 0 / 1, derivative written by the forward) against the composite staircase and an
independent float64 sum of all 2r sigmoids: values and gradients over softness and radius, every
step count modulo four, extremes, NaN / inf, the retained-graph and fallback paths."""

from __future__ import annotations

import math

import pytest
import torch

from softtorch.kernels import _kernel_guard, composite, fused


def _x(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, generator=g, dtype=torch.float64) * 3
    edges = torch.tensor([0.0, 0.5, -0.5, 1.5, 2.0, -3.0, 0.49, 0.51, 7.25, -1e3 + 0.4, 1e3])
    return torch.cat([x, edges.double()]).to(dtype).requires_grad_(True)


def _staircase(x: torch.Tensor, s: float, r: int) -> torch.Tensor:
    """float64 reference: floor(x) - r + sum_j sigmoid((frac - j - 1/2) / s)."""
    base = torch.floor(x)
    frac = x - base
    j = torch.arange(-r, r, dtype=torch.float64)
    return base - r + torch.sigmoid((frac[:, None] - j - 0.5) / s).sum(-1)


@pytest.mark.parametrize("softness", (0.02, 0.05, 0.07, 0.1, 0.13, 0.17, 0.2, 0.3, 1.0))
@pytest.mark.parametrize("r", (1, 2, 5))
def test_round_smooth_float32_matches_composite(softness: float, r: int) -> None:
    x = _x(torch.float32)
    got = fused.round(x, softness, "smooth", r)
    ref = composite.round(x, softness, "smooth", r)
    assert type(got.grad_fn).__name__ == "_RoundBackward"
    torch.testing.assert_close(got, ref, rtol=2e-6, atol=2e-6)
    w = torch.linspace(-1, 1, x.numel())
    (g1,) = torch.autograd.grad((got * w).sum(), x)
    (g2,) = torch.autograd.grad((ref * w).sum(), x)
    # the composite's sigma (1 - sigma) cancels near sigma = 1: 6e-8 / s absolute
    torch.testing.assert_close(g1, g2, rtol=2e-6, atol=max(2e-6, 1.2e-7 / softness))
    x64 = x.detach().double().requires_grad_(True)
    want = _staircase(x64, softness, r)
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=2e-6)
    (g64,) = torch.autograd.grad((want * w.double()).sum(), x64)
    torch.testing.assert_close(g1.double(), g64, rtol=2e-6, atol=2e-6)


def test_round_smooth_float64_against_full_staircase() -> None:
    x = _x(torch.float64)
    for softness in (0.03, 0.1, 0.4):
        got = fused.round(x, softness, "smooth", 5)
        want = _staircase(x.detach(), softness, 5)
        torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=1e-12)
        (g,) = torch.autograd.grad(got.sum(), x)
        xd = x.detach()
        frac = xd - torch.floor(xd)
        j = torch.arange(-5, 5, dtype=torch.float64)
        sg = torch.sigmoid((frac[:, None] - j - 0.5) / softness)
        torch.testing.assert_close(g, (sg * (1 - sg)).sum(-1) / softness, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_round_smooth_extremes(dtype: torch.dtype) -> None:
    huge = 3e38 if dtype == torch.float32 else 1e300
    x = torch.tensor([math.nan, math.inf, -math.inf, 1e6, -1e6, 0.5, 1e-7, huge, -huge],
                     dtype=dtype, requires_grad=True)
    for softness in (1e-6, 0.05, 0.1, 1e4):
        out = fused.round(x, softness, "smooth")
        assert torch.isnan(out[:3]).all()
        assert torch.isfinite(out[3:]).all()
        (g,) = torch.autograd.grad(out[3:].sum(), x, retain_graph=True)
        assert torch.isfinite(g[3:]).all()
        torch.testing.assert_close(out[3:], composite.round(x[3:], softness, "smooth"),
                                   rtol=2e-6, atol=2e-6)
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.isnan(g[:3]).all()  # as the composite's sigmoid of NaN


def _dstaircase(x: torch.Tensor, s: float, r: int) -> torch.Tensor:
    """float64 reference derivative: sum_j sigma (1 - sigma) / s."""
    frac = x - torch.floor(x)
    j = torch.arange(-r, r, dtype=torch.float64)
    sg = torch.sigmoid((frac[:, None] - j - 0.5) / s)
    return (sg * (1 - sg)).sum(-1) / s


def test_round_smooth_every_group_size_float64() -> None:
    """Steps per element k = 1 .. 10 (float64 window 40 s: groups of four plus a remainder of
    0 .. 3), radius 1 .. 5 (the window clamped at the radius), values within 1e-12 and the
    gradient (the forward's derivative) within 1e-11 of the full staircase; edges of the window
    (integers, half-integers and their neighbours), large |x|."""
    edges = torch.tensor([0.0, 0.5, 0.5 - 1e-9, 0.5 + 1e-9, 1 - 1e-12, -2.5, 3.0, 1e6 + 0.3,
                          -1e6 - 0.7, 12345.5], dtype=torch.float64)
    x = torch.cat([torch.linspace(-4, 4, 161, dtype=torch.float64), edges]).requires_grad_(True)
    w = torch.linspace(-1, 1, x.numel(), dtype=torch.float64)
    for softness in (0.01, 0.015, 0.03, 0.04, 0.05, 0.07, 0.08, 0.095, 0.1, 0.2):
        for r in (1, 2, 5):
            got = fused.round(x, softness, "smooth", r)
            want = _staircase(x.detach(), softness, r)
            torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=1e-12)
            (g,) = torch.autograd.grad((got * w).sum(), x)
            torch.testing.assert_close(g, w * _dstaircase(x.detach(), softness, r), rtol=1e-11,
                                       atol=1e-11)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_round_smooth_saved_derivative_paths(dtype: torch.dtype, monkeypatch) -> None:  # noqa: ANN001
    """The value without grad equals the value with it (bitwise); a retained graph's second
    backward (recomputed derivative) equals the first (in-place scaled) one bitwise; the double
    backward and the paired-step fallback (the grouped kernel marked broken) agree."""
    x = (_x(dtype).detach() * 0.7).requires_grad_(True)
    w = torch.linspace(-1, 1, x.numel(), dtype=dtype)
    for softness in (0.05, 0.1, 0.3):
        with torch.no_grad():
            plain = fused.round(x, softness, "smooth")
        out = fused.round(x, softness, "smooth")
        assert torch.equal(plain, out.detach())
        (g1,) = torch.autograd.grad((out * w).sum(), x, retain_graph=True)
        (g2,) = torch.autograd.grad((out * w).sum(), x, retain_graph=True)
        assert torch.equal(g1, g2)
        (g3,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        tol = 1e-10 if dtype == torch.float64 else 2e-5
        torch.testing.assert_close(g3 * w, g1, rtol=tol, atol=tol)
        monkeypatch.setattr(_kernel_guard, "_BROKEN", {"smooth round"})
        out_p = fused.round(x, softness, "smooth")
        (gp,) = torch.autograd.grad((out_p * w).sum(), x)
        monkeypatch.undo()
        tol = 1e-12 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(out_p, out, rtol=tol, atol=tol)
        torch.testing.assert_close(gp, g1, rtol=tol, atol=tol)


def test_round_smooth_parallel_blocks() -> None:
    """Two threads over 70 000 elements (the prange blocks) equal one thread."""
    x = (torch.randn(70_000, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
         * 4).requires_grad_(True)
    threads = torch.get_num_threads()
    res = []
    for t in (1, 2):
        torch.set_num_threads(t)
        try:
            out = fused.round(x, 0.1, "smooth")
            res.append((out.detach(), torch.autograd.grad(out.sum(), x)[0]))
        finally:
            torch.set_num_threads(threads)
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(res[0][0], _staircase(x.detach(), 0.1, 5), rtol=1e-12, atol=1e-12)
