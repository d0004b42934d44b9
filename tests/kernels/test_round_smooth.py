"""The ``smooth`` soft round kernel (steps in pairs, float32 window of the steps not within 1e-7
of 0 / 1) against the composite staircase and an independent float64 sum of all 2r sigmoids:
values and gradients over softness and radius, odd and even step counts, extremes, NaN / inf."""

from __future__ import annotations

import math

import pytest
import torch

from softtorch.kernels import composite, fused


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


@pytest.mark.parametrize("softness", (0.02, 0.05, 0.1, 0.17, 0.3, 1.0))
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
    x = torch.tensor([math.nan, math.inf, -math.inf, 1e6, -1e6, 0.5, 1e-7], dtype=dtype,
                     requires_grad=True)
    for softness in (1e-6, 0.05, 0.1, 1e4):
        out = fused.round(x, softness, "smooth")
        assert torch.isnan(out[:3]).all()
        assert torch.isfinite(out[3:]).all()
        (g,) = torch.autograd.grad(out[3:].sum(), x)
        assert torch.isfinite(g[3:]).all()
        torch.testing.assert_close(out[3:], composite.round(x[3:], softness, "smooth"),
                                   rtol=2e-6, atol=2e-6)
