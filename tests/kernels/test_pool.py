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


# ------------------------------------------------------------ 2x2 kernel (kernels.pool.quad_pool)


def _quad_ran(t: torch.Tensor) -> bool:
    """Whether ``t``'s graph (a few nodes deep) holds the 2x2 kernel's Function."""
    fns = [t.grad_fn]
    for _ in range(3):
        if any(f is not None and "QuadPool" in type(f).__name__ for f in fns):
            return True
        fns = [n for f in fns if f is not None for n, _ in f.next_functions]
    return False


def _pair_windows(x: torch.Tensor, nd: int) -> list:
    return [ops_pool._windows(x.shape[-nd + i], 2, 2, 0, 1, False, x.device) for i in range(nd)]


@pytest.mark.parametrize("mode", ("smooth", "c0", "c1", "c2"))
def test_quad_kernel_equals_pair_passes(mode: str) -> None:
    """``MaxPool2d(2)`` / ``MaxPool3d(2)`` through the 2x2 kernel in float64: values and
    gradients equal to the interception layer's reduction per dim on random values, and to
    the two pair passes (:func:`softtorch.kernels.fused.pair_max`, the same subgradients at
    the sparse modes' kinks) with ties, exact kinks, infinities, NaN and huge entries."""
    s = 0.3
    x2 = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x3 = torch.randn(2, 2, 4, 6, 8, generator=torch.Generator().manual_seed(5),
                     dtype=torch.float64)
    c = SimpleNamespace(mode=mode, softness=s)

    def pairs(t: torch.Tensor, nd: int) -> torch.Tensor:
        for i in range(nd):
            t = kpool._pair(t, t.ndim - nd + i, s, mode)
        return t

    cases = [(x2, 2, _reference), (x3, 3, _reference), (x2[0], 2, _reference),
             (_special((2, 3, 8, 6), s), 2, lambda t, w, c: pairs(t, len(w)))]
    for x0, nd, reference in cases:
        x = x0.clone().requires_grad_()
        wins = _pair_windows(x, nd)
        got = kpool.pool(x, wins, c, ops_pool._reduce)
        assert _quad_ran(got)
        ref = reference(x, wins, c)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)
        w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(6), dtype=ref.dtype)
        (gg,) = torch.autograd.grad((got * w).sum(), x)
        (gr,) = torch.autograd.grad((ref * w).sum(), x)
        torch.testing.assert_close(gg, gr, rtol=1e-11, atol=1e-11, equal_nan=True)


def test_quad_kernel_independent_values() -> None:
    """smooth: the log-mean-exp of the four window entries; c0: sparsemax's nested expectation
    by hand (pairs (a, b) -> a + clip(1/2 + (b - a) / 2s, 0, 1) (b - a))."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    s = 0.4
    win = x.reshape(3, 2, 2, 3, 2).permute(0, 1, 3, 2, 4).reshape(3, 2, 3, 4)
    lme = s * torch.log(torch.exp(win / s).mean(-1))
    got = kpool.quad_pool(x, s, "smooth")
    torch.testing.assert_close(got, lme, rtol=1e-12, atol=1e-12)

    def pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + (0.5 + (b - a) / (2 * s)).clamp(0, 1) * (b - a)

    rows = pair(x[:, 0::2], x[:, 1::2])
    torch.testing.assert_close(kpool.quad_pool(x, s, "c0"), pair(rows[..., 0::2], rows[..., 1::2]),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ("smooth", "c2"))
def test_quad_kernel_float32_threads_and_torch_backend(mode: str) -> None:
    from softtorch.kernels import fused

    g = torch.Generator().manual_seed(8)
    x = (torch.randn(4, 8, 64, 64, generator=g) * 0.3).requires_grad_()  # parallel blocks
    ref = kpool.quad_pool(x.double(), 0.2, mode)
    w = torch.randn(ref.shape, generator=g)
    (gr,) = torch.autograd.grad((ref * w).sum(), x)
    old = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            got = kpool.quad_pool(x, 0.2, mode)
            assert _quad_ran(got)
            (gx,) = torch.autograd.grad((got * w).sum(), x)
        finally:
            torch.set_num_threads(old)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, gr, rtol=1e-4, atol=1e-5)
    y = x.detach()[:1, :2].double().requires_grad_()
    fused.set_backend("torch")
    try:
        got = kpool.quad_pool(y, 0.2, mode)
        assert not _quad_ran(got)
    finally:
        fused.set_backend("auto")
    torch.testing.assert_close(got, ref[:1, :2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ("smooth", "c1"))
def test_quad_kernel_gradcheck_double_backward_and_tensor_softness(mode: str) -> None:
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda t: kpool.quad_pool(t, 0.7, mode)  # noqa: E731
    assert _quad_ran(fn(x))
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))  # the double backward runs the composite
    s = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)  # the composite path
    got = kpool.quad_pool(x, s, mode)
    assert not _quad_ran(got)
    torch.testing.assert_close(got, fn(x), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t, u: kpool.quad_pool(t, u, mode), (x, s))


def test_quad_kernel_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2x2 kernel that fails to compile (here: raises a numba error) gives the composite's
    values and gradients, with one RuntimeWarning, and later calls skip the kernel."""
    from numba.core.errors import TypingError

    from softtorch.kernels import _kernel_guard, _numba_pool2

    calls = []

    def broken_run(*args: object) -> None:
        calls.append(args[0])
        raise TypingError("simulated compiler failure")

    monkeypatch.setattr(_numba_pool2, "run", broken_run)
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())
    x = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64,
                    requires_grad=True)
    ref = kpool.quad_composite(x.reshape(-1, 2, 6), 0.5, "smooth", False,
                               -0.5 * math.log(2.0)).reshape(2, 2, 3)
    with pytest.warns(RuntimeWarning, match="2x2"):
        got = kpool.quad_pool(x, 0.5, "smooth")
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    (gg,) = torch.autograd.grad(got.sum(), x)
    (gr,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(gg, gr, rtol=1e-12, atol=1e-12)
    assert calls == ["fwd"]  # the backward and later calls take the composite directly
    kpool.quad_pool(x, 0.5, "smooth")
    assert calls == ["fwd"]


# ------------------------------------------------------------ window kernels (kernels.pool.strided)

GEOMETRIES = [  # k, stride, dilation, left padding
    (3, 2, 1, 1), (3, 1, 1, 1), (5, 2, 2, 2), (4, 3, 1, 0), (2, 1, 1, 0), (6, 1, 1, 3),
]


def _special(shape: tuple[int, ...], s: float) -> torch.Tensor:
    """Random float64 values with ties, score gaps of exactly 1 (``s`` apart), -inf, +inf, NaN
    and large entries planted along dim 2."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 0.4
    x[0, 0] = 0.25  # constant: every window a tie
    x[0, 1, ::2] = 0.0
    x[0, 1, 1::2] = -s  # gaps of exactly one score unit (the support test's boundary)
    x[1, 0, 3] = float("-inf")
    x[1, 1, 5] = float("nan")
    x[1, 2, 7] = float("inf")
    x[0, 2, 4:7] = torch.tensor([[1e6], [-1e6], [1e6]], dtype=torch.float64)
    return x


def _kernel_ran(t: torch.Tensor) -> bool:
    """Whether ``t``'s graph (a few nodes deep) holds the window kernel's Function."""
    fns = [t.grad_fn]
    for _ in range(3):
        if any(f is not None and "WindowPool" in type(f).__name__ for f in fns):
            return True
        fns = [n for f in fns if f is not None for n, _ in f.next_functions]
    return False


def _geom_m(length: int, k: int, st: int, dil: int, pad: int) -> int:
    return (length + 2 * pad - dil * (k - 1) - 1) // st + 1


@pytest.mark.parametrize("mode", ("smooth", "c0", "c1", "c2"))
def test_window_kernel_equals_composite(mode: str) -> None:
    """Values and gradients of the numba window kernel against the unfold composite in float64,
    along an inner dim and the last dim, on random values plus ties, exact support-boundary
    gaps, infinities, NaN and huge entries (NaN where the composite has NaN)."""
    s = 0.5
    x0 = _special((2, 3, 13, 5), s)
    for k, st, dil, pad in GEOMETRIES:
        for dim in (2, 3):
            x = (x0 if dim == 2 else x0.transpose(2, 3).contiguous()).requires_grad_()
            m = _geom_m(x.shape[dim], k, st, dil, pad)
            got = kpool.strided(x, dim, m, k, (st, dil, pad), s, mode)
            assert _kernel_ran(got)
            ref = kpool.strided_composite(x, dim, m, k, (st, dil, pad), s, mode)
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)
            w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2),
                            dtype=ref.dtype)
            (gg,) = torch.autograd.grad((got * w).sum(), x)
            (gr,) = torch.autograd.grad((ref * w).sum(), x)
            torch.testing.assert_close(gg, gr, rtol=1e-11, atol=1e-11, equal_nan=True)


def test_window_kernel_independent_values() -> None:
    """One window against hand formulas: the log-mean-exp, and sparsemax's expectation (scores
    2.7, 2.1, 0.3 at s = 1/3: threshold (2.7 + 2.1 - 1) / 2 = 1.9, p = (0.8, 0.2, 0))."""
    x = torch.tensor([[[0.9], [0.7], [0.1]]], dtype=torch.float64)
    s = 1.0 / 3.0
    got = kpool.strided(x, 1, 1, 3, (1, 1, 0), s, "smooth")
    lme = s * torch.log(torch.exp(x / s).mean())
    torch.testing.assert_close(got.reshape(()), lme)
    z = x.reshape(3) / s  # 2.7, 2.1, 0.3: sparsemax tau = (2.7 + 2.1 - 1) / 2 = 1.9
    p = (z - 1.9).clamp_min(0)
    got = kpool.strided(x, 1, 1, 3, (1, 1, 0), s, "c0")
    torch.testing.assert_close(got.reshape(()), (p * x.reshape(3)).sum())
    torch.testing.assert_close(p, torch.tensor([0.8, 0.2, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("mode", ("smooth", "c2"))
def test_window_kernel_float32_threads_and_torch_backend(mode: str) -> None:
    from softtorch.kernels import fused

    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 8, 64, 64, generator=g) * 0.3  # above the parallel threshold
    x.requires_grad_()
    geo = (2, 1, 1)
    ref = kpool.strided_composite(x.double(), 2, 32, 3, geo, 0.2, mode)
    old = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            got = kpool.strided(x, 2, 32, 3, geo, 0.2, mode)
            (gx,) = torch.autograd.grad(got.sum(), x)
        finally:
            torch.set_num_threads(old)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    (gr,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(gx.double(), gr.double(), rtol=1e-4, atol=1e-5)
    fused.set_backend("torch")
    try:
        y = x.detach()[:1, :2].double().requires_grad_()
        got = kpool.strided(y, 2, 32, 3, geo, 0.2, mode)
        assert not _kernel_ran(got)
    finally:
        fused.set_backend("auto")
    torch.testing.assert_close(got, ref[:1, :2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ("smooth", "c0", "c1"))
def test_window_kernel_gradcheck_double_backward_and_vmap(mode: str) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda t: kpool.strided(t, 1, 4, 3, (2, 1, 1), 0.7, mode)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))  # the double backward runs the composite
    got = torch.func.vmap(fn)(x.unsqueeze(1))  # functorch tensors take the composite
    torch.testing.assert_close(got.squeeze(1), fn(x), rtol=1e-12, atol=1e-12)
