"""Smooth max pooling inside soft_mode: torch's windows and shapes, close to torch at small
softness, exact for constant windows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softtorch.interception import soft_mode

CONFIGS = [  # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 1, 1, 2, False),
    (3, 3, 0, 1, True),
]


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("mode", ["smooth", "c0", "c2"])
def test_max_pool_matches_torch_at_small_softness(
    nd: int, cfg: tuple[int, int | None, int, int, bool], mode: str
) -> None:
    k, s, p, d, ceil = cfg
    g = torch.Generator().manual_seed(nd)
    size = (2, 3) + (7,) * nd
    # well-separated values: the sparse modes are then exactly the maximum
    x = (torch.randperm(int(torch.tensor(size).prod()), generator=g).reshape(size).float() / 10)
    x.requires_grad_()
    pool = getattr(F, f"max_pool{nd}d")
    ref = pool(x, k, s, p, d, ceil)
    with soft_mode(mode, 1e-4):
        out = pool(x, k, s, p, d, ceil)
        vals, idx = pool(x, k, s, p, d, ceil, return_indices=True)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)
    assert torch.equal(idx, pool(x, k, s, p, d, ceil, return_indices=True)[1])
    with soft_mode(mode, 0.5):
        soft = pool(x, k, s, p, d, ceil)
    soft.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("out_size", [1, 3, 4])
def test_adaptive_max_pool_matches_torch(nd: int, out_size: int) -> None:
    g = torch.Generator().manual_seed(10 + nd)
    x = torch.randn(2, 2, *([7] * nd), generator=g, requires_grad=True)
    pool = getattr(F, f"adaptive_max_pool{nd}d")
    ref = pool(x, out_size)
    with soft_mode("smooth", 1e-4):
        out = pool(x, out_size)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)


def test_constant_windows_are_exact_and_smooth_is_below_the_max() -> None:
    x = torch.full((1, 1, 6, 6), 2.5, requires_grad=True)
    with soft_mode("smooth", 0.7):
        out = F.max_pool2d(x, 3, 1, 1)
    torch.testing.assert_close(out, torch.full_like(out, 2.5))
    y = torch.randn(1, 1, 8, requires_grad=True)
    with soft_mode("smooth", 0.3):
        soft = F.max_pool1d(y, 4)
    assert (soft <= F.max_pool1d(y, 4) + 1e-6).all()
    assert (soft >= F.avg_pool1d(y, 4) - 1e-6).all()


def test_modules_and_unbatched_input() -> None:
    x = torch.randn(3, 9, 9, requires_grad=True)
    for module in (torch.nn.MaxPool2d(3, 2), torch.nn.AdaptiveMaxPool2d((2, None))):
        ref = module(x)
        with soft_mode("smooth", 1e-4):
            out = module(x)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)


def test_bad_arguments_raise_like_torch() -> None:
    x = torch.randn(1, 1, 5, requires_grad=True)
    with soft_mode():
        with pytest.raises(RuntimeError, match="pad should be at most half"):
            F.max_pool1d(x, 2, 1, 2)


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_pair_windows_fast_path_equals_generic_windows(mode: str) -> None:
    """Windows of 2 with stride 2 skip the window tensors (``ops_pool._pairs``): the same values
    and gradients as the generic reduction, for even / odd lengths, floor / ceil mode, 1-3 dims,
    a tensor softness and half precision; other geometries take the generic route."""
    from types import SimpleNamespace

    from softtorch.interception import ops_pool

    g = torch.Generator().manual_seed(20)
    for nd, spatial, ceil in ((1, (6,), False), (2, (6, 8), False), (2, (7, 5), False),
                              (2, (6, 8), True), (3, (4, 6, 3), False)):
        x = torch.randn(2, 3, *spatial, generator=g, dtype=torch.float64, requires_grad=True)
        assert ops_pool._pairs((2,) * nd, (2,) * nd, (0,) * nd, (1,) * nd, ceil, spatial)
        pool = getattr(F, f"max_pool{nd}d")
        for s in (0.3, torch.tensor(0.3, dtype=torch.float64)):
            with soft_mode(mode, s):
                got = pool(x, 2, ceil_mode=ceil)
            wins = [ops_pool._windows(n, 2, 2, 0, 1, ceil, x.device) for n in spatial]
            ref = x
            for i, (pos, valid) in enumerate(wins):
                ref = ops_pool._reduce(ref, ref.ndim - nd + i, pos, valid,
                                       SimpleNamespace(mode=mode, softness=s))
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
            (gg,) = torch.autograd.grad(got.sum(), x)
            (gr,) = torch.autograd.grad(ref.sum(), x)
            torch.testing.assert_close(gg, gr, rtol=1e-11, atol=1e-11)
    assert not ops_pool._pairs((2, 2), (2, 2), (0, 0), (1, 1), True, (7, 6))  # partial window
    assert not ops_pool._pairs((2, 2), (2, 1), (0, 0), (1, 1), False, (6, 6))
    assert not ops_pool._pairs((2,), (2,), (0,), (1,), False, (1,))  # torch's error
    xh = torch.randn(2, 3, 6, 6, generator=g).half()
    with soft_mode(mode, 0.3):
        got = F.max_pool2d(xh, 2)
        ref = F.max_pool2d(xh.float(), 2)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), ref, rtol=2e-3, atol=2e-3)
