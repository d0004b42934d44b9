"""Fused elementwise kernels (softtorch.kernels) against the composite torch formulas and
independent references: values, gradients, double backward, dtypes, shapes, extremes, and the
torch.compile / vmap / forced-torch paths."""

from __future__ import annotations

import math

import pytest
import torch

from softtorch.kernels import composite, fused
from softtorch.kernels.composite import ABS, CMP, EQ, GATED, NE, RAMP, SIGN, STEP

MODES = ("smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")
OPS = (STEP, SIGN, ABS, RAMP, GATED)
S = 0.3


def _x(n: int = 257, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=dtype) * 2
    # band edges of every mode (5s, s) and exact zeros: the kinks of the c-modes
    edges = torch.tensor([0.0, 5 * S, -5 * S, S, -S, 20 * S, -1e-9], dtype=dtype)
    return torch.cat([x, edges]).requires_grad_(True)


def _grads(y: torch.Tensor, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    return torch.autograd.grad((y * w).sum(), xs)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", OPS)
def test_unary_matches_composite(mode: str, op: int) -> None:
    x = _x()
    y, yc = fused.unary(x, S, mode, op), composite.unary(x, S, mode, op)
    _close(y, yc)
    _close(_grads(y, x)[0], _grads(yc, x)[0])


def test_unary_independent_formulas() -> None:
    x = _x()
    xd = x.detach()
    sig = 1 / (1 + torch.exp(-xd / S))
    _close(fused.unary(x, S, "smooth", STEP), sig)
    _close(fused.unary(x, S, "smooth", SIGN), torch.tanh(xd / (2 * S)))
    _close(fused.unary(x, S, "smooth", GATED), xd * sig)
    _close(fused.ramp(x, S, "smooth"), S * torch.log1p(torch.exp(xd / S)))
    t = (0.5 + xd / (10 * S)).clamp(0, 1)
    _close(fused.unary(x, S, "c1", STEP), 3 * t**2 - 2 * t**3)
    # the ramp's derivative is the sigmoidal, in every mode
    for mode in MODES:
        (g,) = _grads(fused.ramp(x, S, mode), x)
        w = torch.linspace(-1, 1, x.numel(), dtype=x.dtype)
        _close(g, w * composite.unary(xd, S, mode, STEP), 1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", (CMP, EQ, NE))
def test_binary_matches_composite_with_broadcasting(mode: str, op: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    for y in (
        torch.randn(5, 7, generator=g, dtype=torch.float64),
        torch.randn(7, generator=g, dtype=torch.float64),
        torch.tensor(0.25, dtype=torch.float64),
        torch.randn(5, 1, generator=g, dtype=torch.float64),
    ):
        y = y.requires_grad_(True)
        for a, b in ((x, y), (y, x)):
            shift, tol = (-1e-10, 0.0) if op == CMP else (0.0, 1e-3)
            got = fused.binary(a, b, S, mode, op, shift, tol)
            ref = composite.binary(a, b, S, mode, op, shift, tol)
            assert got.shape == ref.shape
            _close(got, ref)
            for u, v in zip(_grads(got, a, b), _grads(ref, a, b)):
                assert u.shape == v.shape
                _close(u, v)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gated", (False, True))
def test_clamp_matches_composite(mode: str, gated: bool) -> None:
    x = _x()
    f64 = torch.float64
    bounds = [
        (torch.tensor(-0.5, dtype=f64), torch.tensor(0.7, dtype=f64)),
        (torch.tensor(-0.5, dtype=f64), None),
        (None, torch.tensor(0.7, dtype=f64)),
        (torch.linspace(-1, 0, x.numel(), dtype=f64), torch.tensor(0.4, dtype=f64)),
    ]
    for lo, hi in bounds:
        lo = None if lo is None else lo.clone().requires_grad_(True)
        hi = None if hi is None else hi.clone().requires_grad_(True)
        got = fused.clamp(x, lo, hi, S, mode, gated)
        ref = composite.clamp(x, lo, hi, S, mode, gated)
        _close(got, ref)
        ins = [t for t in (x, lo, hi) if t is not None]
        for u, v in zip(_grads(got, *ins), _grads(ref, *ins)):
            _close(u, v, 1e-10)


def test_clamp_infinite_bounds_drop_out() -> None:
    x = _x()
    inf = torch.tensor(math.inf, dtype=torch.float64)
    lo, hi = torch.tensor(-0.5, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    for mode in ("smooth", "c1"):
        _close(fused.clamp(x, -inf, hi, S, mode), fused.clamp(x, None, hi, S, mode))
        _close(fused.clamp(x, lo, inf, S, mode), fused.clamp(x, lo, None, S, mode))
        _close(fused.clamp(x, -inf, inf, S, mode), x.detach())
        # one-sided closed forms
        _close(fused.clamp(x, None, hi, S, mode), hi - composite.unary(hi - x, S, mode, RAMP))
        y = fused.clamp(x, -inf, hi, S, mode)
        assert torch.isfinite(_grads(y, x)[0]).all()
        _close(y, composite.clamp(x, -inf, hi, S, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", (1e-3, 0.05, 0.3, 3.0))
def test_round_matches_composite(mode: str, softness: float) -> None:
    x = (_x() * 3).detach().requires_grad_(True)
    for r in (1, 5):
        got, ref = fused.round(x, softness, mode, r), composite.round(x, softness, mode, r)
        _close(got, ref, 1e-11)
        _close(_grads(got, x)[0], _grads(ref, x)[0], 1e-10)


@pytest.mark.parametrize("mode", ("smooth", "c1", "_c2_pnorm"))
def test_gradcheck_and_double_backward(mode: str) -> None:
    x = torch.tensor([-0.7, -0.23, 0.05, 0.37, 1.3], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.1, -0.3, 0.05, 0.2, 1.0], dtype=torch.float64, requires_grad=True)
    lo = torch.tensor(-0.3, dtype=torch.float64, requires_grad=True)
    fns = [lambda t, op=op: fused.unary(t, S, mode, op) for op in OPS]
    fns.append(lambda t: fused.round(2 * t, S, mode))
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
    for op in (CMP, EQ):
        fn2 = lambda a, b, op=op: fused.binary(a, b, S, mode, op, 0.0, 0.1)  # noqa: E731
        assert torch.autograd.gradcheck(fn2, (x, y))
        assert torch.autograd.gradgradcheck(fn2, (x, y))
    fn3 = lambda a, b: fused.clamp(a, b, torch.tensor(0.6, dtype=a.dtype), S, mode)  # noqa: E731
    assert torch.autograd.gradcheck(fn3, (x, lo))
    assert torch.autograd.gradgradcheck(fn3, (x, lo))


def _all_families(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for mode in ("smooth", "c2", "_c1_pnorm"):
        out += [fused.unary(x, S, mode, op) for op in OPS]
        out.append(fused.binary(x, x.flip(-1), S, mode, CMP, -1e-10))
        out.append(fused.clamp(x, torch.tensor(-0.5, dtype=x.dtype), None, S, mode))
        out.append(fused.round(x, S, mode))
    return out


def test_forced_torch_path_equals_kernels() -> None:
    x = torch.randn(300, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert fused.use_kernel(S, x)
    got = _all_families(x)
    fused.set_backend("torch")
    try:
        assert not fused.use_kernel(S, x)
        ref = _all_families(x)
    finally:
        fused.set_backend("auto")
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(_grads(a, x)[0], _grads(b, x)[0], rtol=2e-4, atol=2e-5)
    with pytest.raises(ValueError, match="valid backends"):
        fused.set_backend("cuda")


def test_parallel_blocks_equal_composite() -> None:
    x = torch.randn(70_000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x.requires_grad_(True)
    y = x.detach().flip(0).clone().requires_grad_(True)
    cases = [
        (fused.unary(x, S, "c2", ABS), composite.unary(x, S, "c2", ABS), (x,)),
        (fused.binary(x, y, S, "smooth", CMP, -1e-10),
         composite.binary(x, y, S, "smooth", CMP, -1e-10), (x, y)),
        (fused.clamp(x, y, None, S, "c1"), composite.clamp(x, y, None, S, "c1"), (x, y)),
        (fused.round(x, S, "smooth"), composite.round(x, S, "smooth"), (x,)),
    ]
    for got, ref, ins in cases:
        _close(got, ref, 1e-11)
        for u, v in zip(_grads(got, *ins), _grads(ref, *ins)):
            _close(u, v, 1e-11)


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    x = torch.randn(64, generator=torch.Generator().manual_seed(5)).to(dtype).requires_grad_(True)
    for got_fn in (lambda t: fused.unary(t, S, "c1", ABS), lambda t: fused.round(t, S, "smooth"),
                   lambda t: fused.clamp(t, torch.tensor(-0.2, dtype=dtype), None, S, "c0")):
        got = got_fn(x)
        assert got.dtype == dtype
        ref = got_fn(x.detach().float())
        torch.testing.assert_close(got.float(), ref.to(dtype).float())
        (g,) = torch.autograd.grad(got.float().sum(), x)
        assert g.dtype == dtype and torch.isfinite(g).all()


def test_shapes_noncontiguous_empty_and_scalar() -> None:
    base = torch.randn(6, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x = base.t().requires_grad_(True)  # non-contiguous leaf view
    assert not x.is_contiguous()
    for mode in ("smooth", "c1"):
        _close(fused.unary(x, S, mode, ABS), composite.unary(x, S, mode, ABS))
        _close(fused.round(x[::2], S, mode), composite.round(x[::2], S, mode))
    e = torch.empty(0, 3, dtype=torch.float64, requires_grad=True)
    assert fused.unary(e, S, "c1", RAMP).shape == (0, 3)
    assert fused.round(e, S, "c1").shape == (0, 3)
    z = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    for fn in (lambda t: fused.unary(t, S, "c1", SIGN), lambda t: fused.round(t, S, "smooth"),
               lambda t: fused.clamp(t, torch.tensor(0.0, dtype=t.dtype), None, S, "c2"),
               lambda t: fused.binary(t, torch.tensor(0.1, dtype=t.dtype), S, "c0", CMP)):
        out = fn(z)
        assert out.shape == ()
        out.backward()
    assert z.grad is not None and z.grad.shape == ()


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_extreme_inputs_stay_finite(dtype: torch.dtype) -> None:
    x = torch.tensor([-1e6, -3.0, -1e-7, 0.0, 1e-7, 2.5, 1e6], dtype=dtype, requires_grad=True)
    for s in (1e-6, 1e-2, 1e4):
        for mode in MODES:
            outs = [fused.unary(x, s, mode, op) for op in OPS]
            outs += [fused.round(x, s, mode), fused.binary(x, x.flip(0), s, mode, EQ, 0.0, 1e-10),
                     fused.clamp(x, torch.tensor(-1.0, dtype=dtype),
                                 torch.tensor(2.0, dtype=dtype), s, mode)]
            for out in outs:
                assert torch.isfinite(out).all(), (s, mode)
                (g,) = torch.autograd.grad(out.sum(), x)
                assert torch.isfinite(g).all(), (s, mode)


def test_nan_propagates() -> None:
    x = torch.tensor([float("nan"), 0.3, float("inf"), -float("inf")], dtype=torch.float64)
    for mode in MODES:
        for op in OPS:
            got, ref = fused.unary(x, S, mode, op), composite.unary(x, S, mode, op)
            _close(got, ref)
        assert torch.isnan(fused.round(x, S, mode)[[0, 2, 3]]).all()
        assert torch.isnan(fused.binary(x, x, S, mode, CMP)[0])
        assert torch.isnan(fused.clamp(x, torch.tensor(0.0, dtype=x.dtype), None, S, mode)[0])


def test_compile_and_vmap_take_the_composite_path() -> None:
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(7), dtype=torch.float64)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (fused.unary(t, S, "c1", ABS) + fused.round(t, S, "smooth")
                + fused.binary(t, t.flip(-1), S, "c2", CMP, -1e-10)
                + fused.clamp(t, torch.tensor(-0.2, dtype=t.dtype), None, S, "smooth", True))

    ref = f(x)
    _close(torch.compile(f, backend="eager", fullgraph=True)(x), ref)
    _close(torch.vmap(f)(x), ref)
    (g,) = torch.autograd.grad(f(x.requires_grad_(True)).sum(), x)
    _close(torch.func.grad(lambda t: f(t).sum())(x.detach()), g)
