"""The public relaxations (softtorch.elementwise / comparison) run the fused CPU kernels and give
the values and gradients of their composite torch formulas (``set_backend("torch")``), in every
mode: float64 to 1e-12, float32, broadcasting, infinities and NaN, a softness tensor requiring
grad, gradcheck and double backward."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch

import softtorch as st
from softtorch.kernels import fused

MODES = ("smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")
S = 0.3
INF = float("inf")

UNARY: dict[str, Callable[..., torch.Tensor]] = {
    "heaviside": st.heaviside,
    "sign": st.sign,
    "abs": st.abs,
    "relu": st.relu,
    "relu_gated": lambda x, s, m: st.relu(x, s, m, gated=True),
    "round": st.round,
    "round_r2": lambda x, s, m: st.round(x, s, m, neighbor_radius=2),
    "clamp": lambda x, s, m: st.clamp(x, -0.5, 0.7, s, m),
    "clamp_lo": lambda x, s, m: st.clamp(x, -0.5, None, s, m),
    "clamp_hi_gated": lambda x, s, m: st.clamp(x, None, 0.7, s, m, gated=True),
    "clamp_crossed": lambda x, s, m: st.clamp(x, 0.7, -0.5, s, m),
}
BINARY: dict[str, Callable[..., torch.Tensor]] = {
    "greater": st.greater,
    "greater_equal": st.greater_equal,
    "less": st.less,
    "less_equal": st.less_equal,
    "eq": st.eq,
    "not_equal": st.not_equal,
    "isclose": lambda x, y, s, m: st.isclose(x, y, s, rtol=0.0, atol=1e-3, mode=m),
}


@contextmanager
def composite() -> Iterator[None]:
    """The composite torch formulas everywhere (the reference)."""
    fused.set_backend("torch")
    try:
        yield
    finally:
        fused.set_backend("auto")


def _x(dtype: torch.dtype = torch.float64, n: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 2
    # band edges of every mode, integers and half-integers (round), the clamp bounds
    edges = torch.tensor([0.0, 5 * S, -5 * S, S, -S, 6 * S, 0.5, 1.5, -2.5, 3.0, -0.5, 0.7])
    return torch.cat([x, edges.double()]).to(dtype).requires_grad_(True)


def _value_and_grad(
    fn: Callable[..., torch.Tensor], *xs: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    y = fn(*xs)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    need = [t for t in xs if t.requires_grad]
    return (y.detach(), *torch.autograd.grad((y * w).sum(), need, allow_unused=True))


def _same(got: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...], tol: float) -> None:
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


def _uses_kernel(y: torch.Tensor) -> bool:
    return type(y.grad_fn).__name__.startswith(("_Unary", "_Binary", "_Close", "_Clamp", "_Round"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_public_matches_composite(name: str, mode: str) -> None:
    fn = UNARY[name]
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        x = _x(dtype)
        got = _value_and_grad(lambda t: fn(t, S, mode), x)
        with composite():
            ref = _value_and_grad(lambda t: fn(t, S, mode), x)
        _same(got, ref, tol)
    y = fn(x, S, mode)
    assert _uses_kernel(y)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_public_matches_composite_with_broadcasting(name: str, mode: str) -> None:
    fn = BINARY[name]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 7, generator=g, dtype=torch.float64)
    x[0, :3] = torch.tensor([INF, -INF, 0.25])
    x = x.requires_grad_(True)
    for y in (
        torch.cat([x.detach()[:2], torch.randn(4, 7, generator=g, dtype=torch.float64)]),
        torch.randn(7, generator=g, dtype=torch.float64),
        torch.tensor(0.25, dtype=torch.float64),
        torch.tensor([INF, -INF, 0.25, 0.0, 1.0, -1.0, 2.0], dtype=torch.float64),
    ):
        y = y.requires_grad_(True)
        for a, b in ((x, y), (y, x)):
            for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
                a2 = a.detach().to(dtype).requires_grad_(True)
                b2 = b.detach().to(dtype).requires_grad_(True)
                got = _value_and_grad(lambda u, v: fn(u, v, S, mode), a2, b2)
                with composite():
                    ref = _value_and_grad(lambda u, v: fn(u, v, S, mode), a2, b2)
                _same(got, ref, tol)
    assert _uses_kernel(fn(x, y, S, mode))


def test_comparison_infinities_and_nan() -> None:
    x = torch.tensor([INF, INF, -INF, INF, float("nan"), 1.0], dtype=torch.float64)
    y = torch.tensor([INF, -INF, -INF, 1.0, 1.0, float("nan")], dtype=torch.float64)
    for mode in MODES:
        half = torch.full((2,), 0.5, dtype=x.dtype)
        assert torch.allclose(st.greater(x, y, S, mode)[[0, 2]], half)
        torch.testing.assert_close(st.greater(x, y, S, mode)[[1, 3]], torch.ones(2, dtype=x.dtype))
        torch.testing.assert_close(st.eq(x, y, S, mode)[:4], x.new_tensor([1.0, 0.0, 1.0, 0.0]))
        assert torch.isnan(st.eq(x, y, S, mode)[4:]).all()
        assert torch.isnan(st.greater_equal(x, y, S, mode)[4:]).all()


def test_clamp_tensor_bounds_broadcasting_and_infinities() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    x[0, :4] = torch.tensor([INF, -INF, 0.0, 1.0])
    x = x.requires_grad_(True)
    lo = torch.tensor([-INF, INF, -0.5, 0.3, -1.0], dtype=torch.float64, requires_grad=True)
    hi = torch.tensor([[INF], [-INF], [0.5], [0.2]], dtype=torch.float64, requires_grad=True)
    for mode in MODES:
        for a, b in ((lo, hi), (lo, None), (None, hi), (lo, 0.4), (torch.tensor(-0.2), hi)):
            def fn(t: torch.Tensor, a=a, b=b, mode=mode) -> torch.Tensor:  # noqa: ANN001
                return st.clamp(t, a, b, S, mode)
            got, ref = fn(x), None
            with composite():
                ref = fn(x)
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, equal_nan=True)
            leaves = [t for t in (x, a, b) if isinstance(t, torch.Tensor) and t.requires_grad]
            w = torch.randn(got.shape, generator=g, dtype=got.dtype)
            gg = torch.autograd.grad((got * w).sum(), leaves)
            with composite():
                gr = torch.autograd.grad((fn(x) * w).sum(), leaves)
            _same(gg, gr, 1e-12)
    # torch's semantics of infinite bounds
    hard = torch.clamp(x.detach()[1:], lo.detach(), hi.detach()[1:])
    soft = st.clamp(x.detach()[1:], lo, hi[1:], 1e-3, "c1")
    inf_cols = torch.isinf(hard)
    torch.testing.assert_close(soft[inf_cols], hard[inf_cols])


@pytest.mark.parametrize("mode", MODES)
def test_softness_tensor_gradient(mode: str) -> None:
    """A softness requiring grad takes the composite path; its gradient is the derivative of
    the relaxation in s (central differences)."""
    x = _x()[:200]  # no band edges (kinks of the c-modes in s)
    y2 = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    fns: list[Callable[[torch.Tensor], torch.Tensor]] = [
        lambda s: st.sign(x, s, mode), lambda s: st.relu(x, s, mode),
        lambda s: st.round(x, s, mode), lambda s: st.clamp(x, -0.5, 0.7, s, mode),
        lambda s: st.greater(x, y2, s, mode), lambda s: st.eq(x, y2, s, mode),
    ]
    for f in fns:
        s = torch.tensor(S, dtype=torch.float64, requires_grad=True)
        (gs,) = torch.autograd.grad(f(s).sum(), s)
        h = 1e-6
        num = (f(torch.tensor(S + h, dtype=torch.float64)).sum()
               - f(torch.tensor(S - h, dtype=torch.float64)).sum()) / (2 * h)
        torch.testing.assert_close(gs, num.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_and_gradgradcheck(mode: str) -> None:
    # away from the kinks of the c-modes and p-norm modes (finite differences straddle them)
    x = torch.tensor([-0.83, -0.21, 0.07, 0.44, 1.37], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.12, -0.4, 0.9, 0.31, 1.05], dtype=torch.float64, requires_grad=True)
    lo = torch.tensor(-0.3, dtype=torch.float64, requires_grad=True)
    for name in ("heaviside", "sign", "abs", "relu", "relu_gated", "round"):
        fn = UNARY[name]
        assert torch.autograd.gradcheck(lambda t, fn=fn: fn(t, S, mode), (x,))
        assert torch.autograd.gradgradcheck(lambda t, fn=fn: fn(t, S, mode), (x,))
    for fn2 in (st.greater, st.less_equal, st.eq):
        assert torch.autograd.gradcheck(lambda a, b, f=fn2: f(a, b, S, mode), (x, y))
        assert torch.autograd.gradgradcheck(lambda a, b, f=fn2: f(a, b, S, mode), (x, y))

    def clamp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return st.clamp(a, b, 0.8, S, mode)

    assert torch.autograd.gradcheck(clamp, (x, lo))
    assert torch.autograd.gradgradcheck(clamp, (x, lo))


def test_nan_and_infinite_inputs() -> None:
    x = torch.tensor([float("nan"), INF, -INF, 0.3, -1e6, 1e6], dtype=torch.float64,
                     requires_grad=True)
    for mode in MODES:
        for name, fn in UNARY.items():
            got = _value_and_grad(lambda t, fn=fn, mode=mode: fn(t, S, mode), x)
            with composite():
                ref = _value_and_grad(lambda t, fn=fn, mode=mode: fn(t, S, mode), x)
            assert torch.isnan(got[0][0]), name
            _same(got[:1], ref[:1], 1e-12)
            # gradients where the composite's are finite (the NaN input aside)
            fin = torch.isfinite(ref[1])
            fin[0] = False
            _same((got[1][fin],), (ref[1][fin],), 1e-12)


def test_compile_and_vmap_through_public_functions() -> None:
    x = _x(torch.float32).detach()
    want = st.clamp(x, -0.5, 0.7, S, "c1")
    got = torch.vmap(lambda t: st.clamp(t, -0.5, 0.7, S, "c1"))(x.reshape(4, -1))
    torch.testing.assert_close(got.reshape(-1), want)
    y = torch.flip(x, (0,))
    got = torch.vmap(lambda a, b: st.greater(a, b, S, "c2"))(x.reshape(4, -1), y.reshape(4, -1))
    torch.testing.assert_close(got.reshape(-1), st.greater(x, y, S, "c2"))
    comp = torch.compile(lambda t: st.round(t, S, "smooth") + st.sign(t, S, "c1"),
                         backend="eager", fullgraph=True)
    torch.testing.assert_close(comp(x), st.round(x, S, "smooth") + st.sign(x, S, "c1"))


def test_expanded_incoming_gradient_is_read_as_one_value() -> None:
    """The gradient of ``y.sum()`` (one value expanded) gives the same input gradient as the
    materialised tensor, on one thread and on the parallel blocks (300 x 300 elements)."""
    x = torch.randn(300, 300, generator=torch.Generator().manual_seed(4), requires_grad=True)
    lo = torch.tensor(-0.5, requires_grad=True)
    fns: list[Callable[[torch.Tensor], torch.Tensor]] = [
        lambda t: st.round(t, S, "smooth"), lambda t: st.abs(t, S, "c2"),
        lambda t: st.clamp(t, lo, 0.5, S, "c1"), lambda t: st.eq(t, t.detach().flip(0), S),
    ]
    for f in fns:
        for g in (torch.tensor(2.5), torch.tensor([[1.5]])):
            leaves = [x, lo] if f is fns[2] else [x]
            got = torch.autograd.grad(f(x), leaves, g.expand(300, 300))
            want = torch.autograd.grad(f(x), leaves, g.expand(300, 300).contiguous())
            assert all(torch.equal(a, b) for a, b in zip(got, want))
