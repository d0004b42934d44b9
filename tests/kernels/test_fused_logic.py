"""The fused geometric-mean soft AND (softtorch.kernels.fused_logic) against its composite
(log / mean / exp) formula and :math:`\\sqrt{ab}`: values and gradients in float64 and float32,
0 / 1 inputs, broadcasting, NaN and out-of-range inputs, double backward, half precision."""

from __future__ import annotations

import math

import torch

import softtorch as st
from softtorch.kernels import composite, fused
from softtorch.kernels.fused_logic import geometric_and

EPS = 1e-10


def _grads(y: torch.Tensor, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    return torch.autograd.grad((y * w).sum(), xs)


def _same(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


def test_geometric_and_matches_composite_and_sqrt() -> None:
    g = torch.Generator().manual_seed(0)
    a0 = torch.rand(8, 9, generator=g, dtype=torch.float64)
    b0 = torch.rand(8, 9, generator=g, dtype=torch.float64)
    a0[0, :4] = torch.tensor([1.0, 1.0, 0.0, 1.0])
    b0[0, :4] = torch.tensor([0.25, 1.0, 1.0, 0.5])
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        for bb in (b0, b0[0], b0[:1, :1].reshape(())):
            a = a0.to(dtype).requires_grad_(True)
            b = bb.to(dtype).requires_grad_(True)
            got = st.logical_and(a, b, use_geometric_mean=True)
            assert type(got.grad_fn).__name__ != "ExpBackward0"
            ref = composite.geometric_and(*torch.broadcast_tensors(a, b), EPS)
            _same(got, ref, tol)
            for u, v in zip(_grads(got, a, b), _grads(ref, a, b)):
                assert u.shape == v.shape
                _same(u, v, tol)
    ad, bd = a0.requires_grad_(True), b0.requires_grad_(True)
    _same(geometric_and(ad, bd), (torch.sqrt((ad + EPS) * (bd + EPS)) - EPS).clamp(0, 1), 1e-15)
    ga, gb = torch.autograd.grad(geometric_and(ad, bd).sum(), (ad, bd))
    root = torch.sqrt((ad + EPS) * (bd + EPS)).detach()
    _same(ga, root / (2 * (ad.detach() + EPS)), 1e-9)
    _same(gb, root / (2 * (bd.detach() + EPS)), 1e-9)


def test_geometric_and_clip_is_inclusive_at_zero() -> None:
    """a = b = 0: the value sqrt(eps^2) - eps is exactly 0, inside the clip (ends included), so
    the gradient is the one-sided 1/2 (the composite's exp(log(eps)) rounds either way)."""
    z = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out = geometric_and(z, z.detach())
    assert (out == 0).all()
    (g,) = torch.autograd.grad(out.sum(), z)
    _same(g, torch.full_like(g, 0.5), 1e-12)


def test_geometric_and_edges_and_double_backward() -> None:
    a = torch.tensor([math.nan, -0.5, 2.0, math.inf, 0.3, 1e30], dtype=torch.float64,
                     requires_grad=True)
    b = torch.tensor([0.5, 0.5, 3.0, 0.5, math.nan, 1e30], dtype=torch.float64,
                     requires_grad=True)
    got = geometric_and(a, b)
    ref = composite.geometric_and(a, b)
    _same(got, ref, 1e-12)
    assert torch.isnan(got[[0, 1, 4]]).all() and (got[[2, 3, 5]] == 1).all()
    ga, gb = torch.autograd.grad(got[[2, 3, 5]].sum(), (a, b))
    assert (ga == 0).all() and (gb == 0).all()  # clipped at 1: no 0 * inf
    x = torch.tensor([0.2, 0.7, 0.45], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.9, 0.3, 0.55], dtype=torch.float64, requires_grad=True)
    for fn in (lambda u, v: st.logical_and(u, v, True), lambda u, v: st.logical_or(u, v, True),
               lambda u, v: st.logical_xor(u, v, True)):
        assert torch.autograd.gradcheck(fn, (x, y))
        assert torch.autograd.gradgradcheck(fn, (x, y))


def test_geometric_and_half_and_torch_backend() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(64, generator=g)
    b = torch.rand(64, generator=g)
    out = st.logical_and(a.half(), b.half(), use_geometric_mean=True)
    assert out.dtype == torch.float16
    _same(out.float(), geometric_and(a.half().float(), b.half().float()).half().float(), 0.0)
    got = st.logical_or(a, b, use_geometric_mean=True)
    fused.set_backend("torch")
    try:
        ref = st.logical_or(a, b, use_geometric_mean=True)
    finally:
        fused.set_backend("auto")
    _same(got, ref, 2e-6)
    big_a = torch.rand(300, 300, generator=g, dtype=torch.float64, requires_grad=True)
    big_b = torch.rand(300, generator=g, dtype=torch.float64, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = geometric_and(big_a, big_b)
        gg = _grads(got, big_a, big_b)
    finally:
        torch.set_num_threads(threads)
    ref = composite.geometric_and(*torch.broadcast_tensors(big_a, big_b))
    _same(got, ref, 1e-12)
    for u, v in zip(gg, _grads(ref, big_a, big_b)):
        _same(u, v, 1e-10)
