"""The fused soft eq / not_equal / isclose kernel (softtorch.kernels.fused_close) against its
composite torch formula and an independent reference: values and both gradients in float64
(1e-12) and float32 (2e-6) over every mode and ``rtol`` (0, > 0, inf), broadcasting, infinities
and NaN, double backward, a softness tensor, the parallel blocks and half precision; eq's
derivative written by the forward (retained graph, fallback)."""

from __future__ import annotations

import math

import pytest
import torch

import softtorch as st
from softtorch.kernels import _kernel_guard, composite, fused
from softtorch.kernels.composite import EQ, NE
from softtorch.kernels.fused_close import close

MODES = ("smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")
S = 0.3
INF = math.inf


def _grads(y: torch.Tensor, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    return torch.autograd.grad((y * w).sum(), xs)


def _same(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


def _operands(dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 7, generator=g, dtype=torch.float64) * 0.5
    y_full = x + 0.3 * torch.randn(6, 7, generator=g, dtype=torch.float64)
    y_full[0, :4] = torch.tensor([0.0, -0.1, 0.4, 1.0])
    x[0, 3] = 1.0  # one equal pair
    pairs = [(x, y_full), (x, torch.randn(7, generator=g, dtype=torch.float64)),
             (x, torch.tensor(0.25, dtype=torch.float64)),
             (torch.tensor(-0.2, dtype=torch.float64), y_full)]
    return [(a.to(dtype).requires_grad_(True), b.to(dtype).requires_grad_(True))
            for a, b in pairs]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rtol", (0.0, 0.05, 0.8))
def test_close_matches_composite(mode: str, rtol: float) -> None:
    """float64 to 1e-12, float32 to 2e-6; the float32 gradients of the p-norm modes (whose
    roundoff both paths amplify) each within 5e-6 of the float64 gradient."""
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        for x, y in _operands(dtype):
            for op in (EQ, NE):
                got = close(x, y, S, mode, rtol, 1e-3, op)
                ref = composite.close(x, y, S, mode, rtol, 1e-3, op)
                assert got.shape == ref.shape and type(got.grad_fn).__name__ == "_CloseBackward"
                _same(got, ref, tol)
                if dtype == torch.float32 and mode.startswith("_"):
                    x64, y64 = (t.detach().double().requires_grad_(True) for t in (x, y))
                    ref = composite.close(x64, y64, S, mode, rtol, 1e-3, op)
                    want = _grads(ref, x64, y64)
                    for u in (_grads(got, x, y), _grads(composite.close(
                            x, y, S, mode, rtol, 1e-3, op), x, y)):
                        for a, b in zip(u, want):
                            _same(a.double(), b, 5e-6)
                    continue
                for u, v in zip(_grads(got, x, y), _grads(ref, x, y)):
                    assert u.shape == v.shape
                    _same(u, v, tol)


def test_close_independent_formula() -> None:
    """smooth: min(1, 2 sigma((tau - d tanh(d / 2s)) / s)), tau = atol + rtol |y|."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, generator=g, dtype=torch.float64)
    y = x + 0.2 * torch.randn(300, generator=g, dtype=torch.float64)
    d = x - y
    tau = 1e-3 + 0.1 * y.abs()
    want = (2 * torch.sigmoid((tau - d * torch.tanh(d / (2 * S))) / S)).clamp(max=1)
    _same(st.isclose(x, y, S, rtol=0.1, atol=1e-3, epsilon=0.0), want, 1e-12)
    _same(st.not_equal(x, y, S, epsilon=1e-3),
          1 - (2 * torch.sigmoid((1e-3 - d * torch.tanh(d / (2 * S))) / S)).clamp(max=1), 1e-12)
    # c1: t = clip(1/2 + u / (10 s), 0, 1), sigma = 3t^2 - 2t^3
    def c1(u: torch.Tensor) -> torch.Tensor:
        t = (0.5 + u / (10 * S)).clamp(0, 1)
        return 3 * t**2 - 2 * t**3
    want = (2 * c1(tau - d * (2 * c1(d) - 1))).clamp(max=1)
    _same(st.isclose(x, y, S, rtol=0.1, atol=1e-3, mode="c1", epsilon=0.0), want, 1e-12)


def test_close_gradient_of_relative_tolerance() -> None:
    """d/dy carries rtol * sign(y) * dv/dtau; finite differences in float64."""
    x = torch.tensor([0.9, -1.1, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, -1.0, 0.45, 2.2], dtype=torch.float64, requires_grad=True)
    for mode in ("smooth", "c2", "_c1_pnorm"):
        fn = lambda a, b, m=mode: st.isclose(a, b, S, rtol=0.2, atol=0.01, mode=m)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, y))
        assert torch.autograd.gradgradcheck(fn, (x, y))
        fn2 = lambda a, b, m=mode: st.not_equal(a, b, S, m)  # noqa: E731
        assert torch.autograd.gradcheck(fn2, (x, y))


def test_close_infinities_nan_and_zero() -> None:
    x = torch.tensor([INF, INF, -INF, INF, math.nan, 1.0, 0.0, 3.0], dtype=torch.float64,
                     requires_grad=True)
    y = torch.tensor([INF, -INF, -INF, 1.0, 1.0, math.nan, 0.0, 0.0], dtype=torch.float64,
                     requires_grad=True)
    for mode in MODES:
        for rtol in (0.0, 0.1, INF):
            out = st.isclose(x, y, S, rtol=rtol, atol=0.0, mode=mode)
            torch.testing.assert_close(out[[0, 1, 2, 3, 6]], x.new_tensor([1, 0, 1, 0, 1.0]))
            assert torch.isnan(out[4:6]).all()
            assert out[7] < 1e-3  # rtol |y| is 0 at y == 0, also for rtol = inf
            gx, gy = torch.autograd.grad(out[[0, 1, 2, 3, 6, 7]].sum(), (x, y))
            keep = [0, 1, 2, 3, 6, 7]
            assert torch.isfinite(gx[keep]).all() and torch.isfinite(gy[keep]).all()
            assert (gx[:4] == 0).all() and (gy[:4] == 0).all()
            with_ref = composite.close(x, y, S, mode, rtol, 1e-10)
            _same(st.isclose(x, y, S, rtol=rtol, atol=0.0, mode=mode), with_ref, 1e-12)


def test_close_softness_tensor_and_compile_take_the_composite() -> None:
    x = torch.randn(50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = x + 0.1
    s = torch.tensor(S, dtype=torch.float64, requires_grad=True)
    out = st.isclose(x, y, s, rtol=0.1, atol=0.01)
    assert type(out.grad_fn).__name__ != "_CloseBackward"
    (gs,) = torch.autograd.grad(out.sum(), s)
    h = 1e-6
    num = (st.isclose(x, y, S + h, rtol=0.1, atol=0.01).sum()
           - st.isclose(x, y, S - h, rtol=0.1, atol=0.01).sum()) / (2 * h)
    torch.testing.assert_close(gs, num, rtol=1e-5, atol=1e-7)
    _same(out, st.isclose(x, y, S, rtol=0.1, atol=0.01), 1e-12)
    comp = torch.compile(lambda a, b: st.eq(a, b, S, "c1"), backend="eager", fullgraph=True)
    _same(comp(x, y), st.eq(x, y, S, "c1"), 1e-12)
    got = torch.vmap(lambda a, b: st.isclose(a, b, S, rtol=0.1))(x.reshape(5, 10), y.reshape(5, 10))
    _same(got.reshape(-1), st.isclose(x, y, S, rtol=0.1), 1e-12)


def test_close_parallel_blocks_and_half_precision() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(70_000, generator=g, dtype=torch.float64, requires_grad=True)
    y = (x.detach() + 0.3 * torch.randn(70_000, generator=g, dtype=torch.float64))
    y.requires_grad_(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = st.isclose(x, y, S, rtol=0.1, mode="smooth")
        gg = _grads(got, x, y)
    finally:
        torch.set_num_threads(threads)
    ref = composite.close(x, y, S, "smooth", 0.1, 1e-8 + 1e-10)
    _same(got, ref, 1e-12)
    for u, v in zip(gg, _grads(ref, x, y)):
        _same(u, v, 1e-12)
    xh = x.detach()[:64].half().requires_grad_(True)
    yh = y.detach()[:64].half()
    out = st.isclose(xh, yh, S, rtol=0.1)
    assert out.dtype == torch.float16
    _same(out.float(), st.isclose(xh.float(), yh.float(), S, rtol=0.1).half().float(), 0.0)
    (gh,) = torch.autograd.grad(out.float().sum(), xh)
    assert gh.dtype == torch.float16 and torch.isfinite(gh).all()


def test_forced_torch_backend_equals_kernel() -> None:
    x = torch.randn(40, generator=torch.Generator().manual_seed(4), requires_grad=True)
    y = (x.detach() * 1.05).requires_grad_(True)
    got = st.isclose(x, y, S, rtol=0.05, mode="c2")
    fused.set_backend("torch")
    try:
        ref = st.isclose(x, y, S, rtol=0.05, mode="c2")
    finally:
        fused.set_backend("auto")
    assert type(ref.grad_fn).__name__ != "_CloseBackward"
    _same(got, ref, 2e-6)
    for u, v in zip(_grads(got, x, y), _grads(ref, x, y)):
        _same(u, v, 2e-6)


def test_smooth_eq_both_kernels() -> None:
    """``smooth`` with rtol = 0 takes the one-exponential kernel while |tol / s| <= 60 (float32),
    the general one beyond; both equal the composite, also where x - y overflows."""
    big = 3e38
    x = torch.tensor([big, -big, 0.1, 0.0, -2.0, 1.0], requires_grad=True)
    y = torch.tensor([-big, big, 0.1, 1e-3, 40.0, 0.9], requires_grad=True)
    for tol in (1e-10, 0.5, 17.9, 18.1, -5.0, 100.0):  # tol / 0.3: up to 60 and beyond
        for op in (EQ, NE):
            got = close(x, y, S, "smooth", 0.0, tol, op)
            ref = composite.close(x, y, S, "smooth", 0.0, tol, op)
            _same(got, ref, 2e-6)
            for u, v in zip(_grads(got, x, y), _grads(ref, x, y)):
                # the composite's gradient is NaN where x - y overflows (inf * 0), the kernels' 0
                assert torch.isfinite(u).all() and (u[:2] == 0).all()
                _same(u[2:], v[2:], 2e-6)


@pytest.mark.parametrize("mode", ("smooth", "c1", "_c2_pnorm"))
def test_eq_saved_derivative_paths(mode: str, monkeypatch) -> None:  # noqa: ANN001
    """Soft eq / not_equal write dv/dx in the forward: the value without grad equals the value
    with it (bitwise); the gradients with only x, only y or both requiring grad, and with y one
    value (summed gradient), equal the composite's (float64, 1e-12); a retained graph's second
    backward (recomputed derivative) equals the first bitwise; the double backward and the
    recomputing fallback (the kernel marked broken) agree."""
    g = torch.Generator().manual_seed(6)
    x0 = torch.randn(300, generator=g, dtype=torch.float64)
    y0 = x0 + 0.4 * torch.randn(300, generator=g, dtype=torch.float64)
    y0[:3] = x0[:3]
    w = torch.linspace(-1, 1, 300, dtype=torch.float64)
    for op in (EQ, NE):
        for yv, need in ((y0, (True, True)), (y0, (True, False)), (y0, (False, True)),
                         (torch.tensor(0.3, dtype=torch.float64), (True, True))):
            x = x0.clone().requires_grad_(need[0])
            y = yv.clone().requires_grad_(need[1])
            wrt = [t for t in (x, y) if t.requires_grad]
            with torch.no_grad():
                plain = close(x, y, S, mode, 0.0, 1e-3, op)
            out = close(x, y, S, mode, 0.0, 1e-3, op)
            assert torch.equal(plain, out.detach())
            ref = composite.close(x, y, S, mode, 0.0, 1e-3, op)
            g1 = torch.autograd.grad((out * w).sum(), wrt, retain_graph=True)
            g2 = torch.autograd.grad((out * w).sum(), wrt, retain_graph=True)
            for a, b, c in zip(g1, g2, torch.autograd.grad((ref * w).sum(), wrt)):
                assert torch.equal(a, b)
                _same(a, c, 1e-12)
            g3 = torch.autograd.grad(out.sum(), wrt, create_graph=True)
            g4 = torch.autograd.grad(out.sum(), wrt)
            for a, b in zip(g3, g4):
                _same(a.detach(), b, 1e-12)
        monkeypatch.setattr(_kernel_guard, "_BROKEN", {"soft eq"})
        x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        out = close(x, y, S, mode, 0.0, 1e-3, op)
        ref = composite.close(x, y, S, mode, 0.0, 1e-3, op)
        _same(out, ref, 1e-12)
        for a, b in zip(_grads(out, x, y), _grads(ref, x, y)):
            _same(a, b, 1e-12)
        monkeypatch.undo()


def test_eq_saved_derivative_parallel_blocks() -> None:
    """Two threads over 70 000 elements (the prange blocks of the forward and of the scaling
    backward) equal the composite, float32 and float64; infinities and NaN as the composite."""
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(70_000, generator=g, dtype=torch.float64)
    y0 = x0 + 0.3 * torch.randn(70_000, generator=g, dtype=torch.float64)
    x0[:4] = torch.tensor([INF, -INF, math.nan, 1.0], dtype=torch.float64)
    y0[:4] = torch.tensor([INF, 1.0, 0.0, math.nan], dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
            x = x0.to(dtype).requires_grad_(True)
            y = y0.to(dtype).requires_grad_(True)
            for mode in ("smooth", "c2"):
                got = st.eq(x, y, S, mode)
                ref = composite.close(x, y, S, mode, 0.0, 1e-10)
                _same(got, ref, tol)
                for a, b in zip(_grads(got, x, y), _grads(ref, x, y)):
                    _same(a, b, tol)
    finally:
        torch.set_num_threads(threads)
