"""softtorch.kernels.pool against the interception layer's soft max pooling (same values and
gradients) and an independent 2-point formula."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from softtorch.interception import ops_pool
from softtorch.kernels import pool as kpool

CONFIGS = [  # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 1, 1, True), (2, 1, 0, 1, False),
    (3, 3, 1, 2, True),
]


def _reference(x: torch.Tensor, wins: list, c: SimpleNamespace) -> torch.Tensor:
    """The interception layer's generic reduction, one spatial dim at a time."""
    for i, (pos, valid) in enumerate(wins):
        x = ops_pool._reduce(x, x.ndim - len(wins) + i, pos, valid, c)
    return x


@pytest.mark.parametrize("mode", ("smooth", "c0", "c1", "c2"))
def test_pool_equals_interception_pool(mode: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 11, 12, generator=g, dtype=torch.float64, requires_grad=True)
    c = SimpleNamespace(mode=mode, softness=0.3)
    for k, st, pd, dl, ceil in CONFIGS:
        wins = [ops_pool._windows(x.shape[-2 + i], k, st, pd, dl, ceil, x.device)
                for i in range(2)]
        ref = _reference(x, wins, c)
        got = kpool.pool(x, wins, c, ops_pool._reduce)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
        w = torch.randn(ref.shape, generator=g, dtype=ref.dtype)
        (gr,) = torch.autograd.grad((ref * w).sum(), x)
        (gg,) = torch.autograd.grad((got * w).sum(), x)
        torch.testing.assert_close(gg, gr, rtol=1e-11, atol=1e-11)
    wins = [ops_pool._adaptive_windows(x.shape[-2 + i], 5, x.device) for i in range(2)]
    torch.testing.assert_close(kpool.pool(x, wins, c, ops_pool._reduce), _reference(x, wins, c))
    # the interception layer's max pooling takes the fast route
    torch.testing.assert_close(ops_pool._pool(x, wins, c), _reference(x, wins, c))


def test_pairs_closed_form() -> None:
    a = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    b = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    x = torch.stack([a, b], -1).reshape(1, 1, 3, 2)
    c = SimpleNamespace(mode="smooth", softness=0.5)
    wins = [ops_pool._windows(1, 1, 1, 0, 1, False, x.device),
            ops_pool._windows(2, 2, 2, 0, 1, False, x.device)]
    got = kpool.pool(x.reshape(1, 3, 1, 2), wins, c, ops_pool._reduce).reshape(3)
    lme = 0.5 * torch.log((torch.exp(a / 0.5) + torch.exp(b / 0.5)) / 2)
    torch.testing.assert_close(got, lme)
    # c0: sparsemax of (a, b) / s puts clip(1/2 + (b - a) / 2s, 0, 1) on b
    c = SimpleNamespace(mode="c0", softness=0.5)
    got = kpool.pool(x.reshape(1, 3, 1, 2), wins, c, ops_pool._reduce).reshape(3)
    p = (0.5 + (b - a) / (2 * 0.5)).clamp(0, 1)
    torch.testing.assert_close(got, a + p * (b - a))
    assert math.isclose(float(got[2]), 5.0)


@pytest.mark.parametrize("mode", ("smooth", "c0", "_c1_pnorm"))
def test_pair_max_gradcheck_and_torch_path(mode: str) -> None:
    from softtorch.kernels import fused

    x = torch.tensor([[-0.7, -0.21, 0.05, 0.37], [1.3, 0.9, -0.4, -0.45]], dtype=torch.float64,
                     requires_grad=True)
    for dim in (0, 1):
        fn = lambda t, dim=dim: fused.pair_max(t, dim, 0.3, mode, mode != "smooth", -0.1)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
        got = fn(x)
        fused.set_backend("torch")
        try:
            ref = fn(x)
        finally:
            fused.set_backend("auto")
        torch.testing.assert_close(got, ref)
