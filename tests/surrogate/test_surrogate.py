"""Tests for softtorch.surrogate: forward = hard step, backward = exact derivative of h."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

import softtorch.surrogate as S
from softtorch.surrogate import SURROGATES, sign, threshold

# Reference smooth steps h(x, a), written independently of softtorch/surrogate/_kernels.py from the
# formulas documented in softtorch/surrogate/__init__.py; autograd on them is the reference.


def _tent(x: Tensor, a: Tensor) -> Tensor:
    u = torch.clamp(a * x, -1.0, 1.0)
    return 0.5 + u - 0.5 * u * u.abs()


REFERENCE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "super": lambda x, a: 0.5 + 0.5 * a * x / (1 + a * x.abs()),
    "fast_sigmoid": lambda x, a: 0.5 + 0.5 * a * x / (1 + a * x.abs()),
    "tanh": lambda x, a: 0.5 + 0.5 * torch.tanh(a * x),
    "erfc": lambda x, a: 0.5 * torch.erfc(-a * x),
    "circ": lambda x, a: 0.5 + x / (2 * torch.sqrt(x**2 + a**2)),
    "tent": _tent,
    "atan": lambda x, a: 0.5 + torch.atan(math.pi * a * x / 2) / math.pi,
    "sigmoid": lambda x, a: torch.sigmoid(a * x),
    "straight_through": lambda x, a: torch.clamp(a * x + 0.5, 0.0, 1.0),
    "logistic": lambda x, a: 0.5 + 0.5 * torch.tanh(a * x),
    "circ_dist": lambda x, a: 0.5 + x / (2 * torch.sqrt(x**2 + a**2)),
}
SMOOTH = [m for m in REFERENCE if not SURROGATES[m].stochastic]
STOCHASTIC = ["logistic", "circ_dist"]
DETERMINISTIC = ["heaviside", *SMOOTH]
ALPHAS = [0.3, 1.0, 2.5, 10.0]


def _ref_grads(method: str, x: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    xr = x.detach().clone().requires_grad_()
    ar = torch.tensor(alpha, dtype=x.dtype, requires_grad=True)
    return torch.autograd.grad(REFERENCE[method](xr, ar).sum(), (xr, ar))


def _grads(method: str, x: Tensor, alpha: float | Tensor) -> tuple[Tensor, Tensor | None]:
    xr = x.detach().clone().requires_grad_()
    if isinstance(alpha, Tensor):
        ar = alpha.detach().clone().requires_grad_()
        gx, ga = torch.autograd.grad(threshold(xr, method, ar).sum(), (xr, ar))
        return gx, ga
    (gx,) = torch.autograd.grad(threshold(xr, method, alpha).sum(), (xr,))
    return gx, None


def test_registry_and_names() -> None:
    expected = {"heaviside", "super", "tanh", "erfc", "circ", "tent", "logistic", "circ_dist",
                "atan", "sigmoid", "fast_sigmoid", "straight_through"}  # fmt: skip
    assert set(S.METHODS) == expected == set(SURROGATES)
    classes = {"tanh": S.HeaviTanh, "erfc": S.HeaviErfc, "circ": S.HeaviCirc, "tent": S.HeaviTent,
               "logistic": S.Logistic, "circ_dist": S.CircDist, "super": S.SuperSpike,
               "heaviside": S.Heaviside, "atan": S.ATan, "sigmoid": S.Sigmoid,
               "fast_sigmoid": S.FastSigmoid, "straight_through": S.StraightThrough}  # fmt: skip
    for name, cls in classes.items():
        assert SURROGATES[name].function is cls
        assert issubclass(cls, torch.autograd.Function)
    assert S.surrogate_heaviside is threshold
    assert SURROGATES["circ"].alpha_is_width and SURROGATES["circ_dist"].alpha_is_width
    assert {m for m, e in SURROGATES.items() if e.stochastic} == set(STOCHASTIC)


@pytest.mark.parametrize("method", DETERMINISTIC)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_forward_is_hard_step(method: str, dtype: torch.dtype) -> None:
    x = torch.cat([torch.linspace(-5, 5, 1001), torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    x = x.to(dtype)
    y = threshold(x, method)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, (x > 0).to(dtype))  # x == 0 -> 0


@pytest.mark.parametrize("method", SMOOTH)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_backward_is_exact_derivative_of_h(method: str, alpha: float) -> None:
    x = torch.cat([torch.linspace(-5, 5, 2001, dtype=torch.float64),
                   torch.tensor([0.0, 0.5 / alpha, -0.5 / alpha, 1 / alpha, -1 / alpha],
                                dtype=torch.float64)])  # fmt: skip
    rx, ra = _ref_grads(method, x, alpha)
    gx, _ = _grads(method, x, alpha)  # float alpha
    torch.testing.assert_close(gx, rx, rtol=1e-6, atol=1e-9)
    gx, ga = _grads(method, x, torch.tensor(alpha, dtype=torch.float64))  # learnable alpha
    torch.testing.assert_close(gx, rx, rtol=1e-6, atol=1e-9)
    assert ga is not None and ga.shape == ()
    torch.testing.assert_close(ga, ra, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["heaviside", *STOCHASTIC, *SMOOTH])
def test_registry_h_matches_reference(method: str) -> None:
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    a = torch.tensor(1.7, dtype=torch.float64)
    h = SURROGATES[method].h(x, a)
    if method == "heaviside":
        torch.testing.assert_close(h, (x > 0).double())
        return
    torch.testing.assert_close(h, REFERENCE[method](x, a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", [*SMOOTH, *STOCHASTIC])
def test_h_is_a_unit_step_with_peak_one_at_default_alpha(method: str) -> None:
    entry = SURROGATES[method]
    a = torch.tensor(entry.default_alpha, dtype=torch.float64)
    x = torch.tensor([-1e6, 0.0, 1e6], dtype=torch.float64)
    torch.testing.assert_close(entry.h(x, a), torch.tensor([0.0, 0.5, 1.0]).double(), atol=1e-6,
                               rtol=0)  # fmt: skip
    grid = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    assert bool((entry.h(grid, a).diff() >= 0).all())
    x0 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (g0,) = torch.autograd.grad(entry.h(x0, a).sum(), x0)
    torch.testing.assert_close(g0, torch.ones(1, dtype=torch.float64))
    assert threshold(x0, method) is not None  # alpha=None picks the default


@pytest.mark.parametrize("method", SMOOTH)
def test_broadcast_alpha_gets_summed_gradient(method: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    alpha = torch.linspace(0.5, 3.0, 5, dtype=torch.float64)
    gx, ga = _grads(method, x, alpha)
    assert ga is not None and ga.shape == (5,)
    xr = x.clone().requires_grad_()
    ar = alpha.clone().requires_grad_()
    rx, ra = torch.autograd.grad(REFERENCE[method](xr, ar).sum(), (xr, ar))
    torch.testing.assert_close(gx, rx, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(ga, ra, rtol=1e-6, atol=1e-9)
    # alpha with more dimensions than x: output takes the broadcast shape, x's gradient is summed
    xv = x[0].clone().requires_grad_()
    a2 = torch.full((3, 5), 1.5, dtype=torch.float64, requires_grad=True)
    y = threshold(xv, method, a2)
    assert y.shape == (3, 5)
    gx2, ga2 = torch.autograd.grad(y.sum(), (xv, a2))
    assert gx2.shape == (5,) and ga2.shape == (3, 5)
    torch.testing.assert_close(gx2, 3 * _grads(method, x[0], 1.5)[0])


def test_heaviside_has_zero_gradient() -> None:
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    gx, ga = torch.autograd.grad(threshold(x, "heaviside", a).sum(), (x, a))
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(ga, torch.zeros_like(a))


@pytest.mark.parametrize("method", STOCHASTIC)
def test_stochastic_rate_and_gradient(method: str) -> None:
    torch.manual_seed(1234)
    alpha = SURROGATES[method].default_alpha
    x = torch.tensor([-0.25, -0.1, 0.0, 0.15, 0.3], dtype=torch.float64)
    p = REFERENCE[method](x, torch.tensor(alpha, dtype=torch.float64))
    assert bool(((p > 0.2) & (p < 0.8)).all())
    n = 400_000
    xs = x[:, None].expand(-1, n).clone().requires_grad_()
    z = threshold(xs, method)
    assert z.dtype == torch.float64 and set(z.unique().tolist()) <= {0.0, 1.0}
    rate = z.detach().mean(dim=1)
    assert bool(((rate - p).abs() <= 0.01 * p).all()), (rate, p)
    (g,) = torch.autograd.grad(z.sum(), xs)
    rx, _ = _ref_grads(method, x, alpha)
    assert bool((g[:, 0] > 0).all())
    torch.testing.assert_close(g[:, 0], rx, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g, g[:, :1].expand_as(g))


@pytest.mark.parametrize("method", ["super", "tanh", "circ", "logistic"])
def test_sign(method: str) -> None:
    x = torch.tensor([-1.0, -0.0, 0.0, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    s = sign(x, method, 5.0 if method != "circ" else 0.2)
    assert set(s.detach().tolist()) <= {-1.0, 1.0}
    if method != "logistic":
        assert s.detach().tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, 2 * _grads(method, x, 5.0 if method != "circ" else 0.2)[0])


def test_norse_helpers_match_threshold() -> None:
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    helpers = {"tanh": S.heavi_tanh_fn, "erfc": S.heavi_erfc_fn, "circ": S.heavi_circ_fn,
               "tent": S.heavi_tent_fn, "super": S.super_fn}  # fmt: skip
    for method, fn in helpers.items():
        gx, _ = _grads(method, x, 3.0)
        xr = x.clone().requires_grad_()
        (hx,) = torch.autograd.grad(fn(xr, 3.0).sum(), xr)
        torch.testing.assert_close(hx, gx)
    for fn in (S.logistic_fn, S.circ_dist_fn):
        assert set(fn(x, 3.0).tolist()) <= {0.0, 1.0}


def test_apply_directly() -> None:
    x = torch.tensor([-0.5, 0.5], dtype=torch.float64, requires_grad=True)
    y = S.HeaviTanh.apply(x, 2.0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, 1 - torch.tanh(2 * x.detach()) ** 2)


# ----------------------------------------------------------------------------- bad input


def test_unknown_method_lists_valid_ones() -> None:
    x = torch.zeros(3)
    for bad in ("superspike", "", None, 3):
        with pytest.raises(ValueError) as err:
            threshold(x, bad)  # type: ignore[arg-type]
        for name in SURROGATES:
            assert repr(name) in str(err.value)


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_bad_float_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        threshold(torch.zeros(3), "tanh", alpha)


def test_bad_tensor_alpha() -> None:
    x = torch.zeros(3)
    for a in (torch.tensor([1.0, 0.0, 2.0]), torch.tensor([1.0, -1.0, 2.0]),
              torch.tensor([1.0, math.nan, 2.0]), torch.tensor(math.inf),
              torch.tensor([1.0, 0.0, 1.0], requires_grad=True)):  # fmt: skip
        with pytest.raises(ValueError, match="alpha"):
            threshold(x, "super", a)
    with pytest.raises(ValueError, match="broadcast"):
        threshold(x, "super", torch.ones(4))
    with pytest.raises(TypeError, match="alpha"):
        threshold(x, "super", torch.ones(3, dtype=torch.complex64))
    for a in (True, "2", [1.0], torch.tensor(True)):
        with pytest.raises(TypeError, match="alpha"):
            threshold(x, "super", a)  # type: ignore[arg-type]


def test_complex_input_is_type_error() -> None:
    with pytest.raises(TypeError, match="complex"):
        threshold(torch.zeros(3, dtype=torch.complex64), "super")
    with pytest.raises(TypeError, match="complex"):
        sign(torch.zeros(3, dtype=torch.complex128), "tanh")


def test_integer_inputs_are_promoted() -> None:
    y = threshold(torch.tensor([-2, 0, 3]), "tanh")
    assert y.dtype == torch.get_default_dtype()
    assert y.tolist() == [0.0, 0.0, 1.0]
    y = threshold(torch.tensor([-2.0, 1.0], dtype=torch.float64), "tanh", torch.tensor(2))
    assert y.dtype == torch.float64
    assert threshold(torch.tensor([True, False]), "super").tolist() == [1.0, 0.0]


# ----------------------------------------------------------------------------- dtypes, robustness


@pytest.mark.parametrize("method", [*SMOOTH, *STOCHASTIC, "heaviside"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_preserved(method: str, dtype: torch.dtype) -> None:
    x = torch.linspace(-2, 2, 41, dtype=dtype, requires_grad=True)
    a = torch.tensor(1.3, dtype=dtype, requires_grad=True)
    y = threshold(x, method, a)
    gx, ga = torch.autograd.grad(y.sum(), (x, a))
    assert y.dtype == gx.dtype == ga.dtype == dtype
    if method == "heaviside":
        return
    rx, ra = _ref_grads(method, x.detach().double(), float(a.detach()))
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-9}[dtype]
    torch.testing.assert_close(gx.double(), rx, rtol=tol, atol=tol)
    torch.testing.assert_close(ga.double(), ra, rtol=tol, atol=50 * tol)


@pytest.mark.parametrize("method", [*SMOOTH, *STOCHASTIC, "heaviside"])
def test_finite_for_extreme_inputs_and_alpha(method: str) -> None:
    xs = [-1e6, -1e3, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1.0, 1e3, 1e6]
    for dtype in (torch.float32, torch.float64):
        for alpha in (1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e6):
            x = torch.tensor(xs, dtype=dtype, requires_grad=True)
            a = torch.tensor(alpha, dtype=dtype, requires_grad=True)
            y = threshold(x, method, a)
            gx, ga = torch.autograd.grad(y.sum(), (x, a))
            for t in (y, gx, ga):
                assert bool(torch.isfinite(t).all()), (dtype, alpha, t)


@pytest.mark.parametrize("method", ["super", "circ", "tent", "straight_through", "logistic"])
def test_nan_propagates(method: str) -> None:
    x = torch.tensor([-1.0, math.nan, 0.05, math.inf, -math.inf], requires_grad=True)
    y = threshold(x, method)
    (g,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    assert math.isnan(y[1]) and y[0] == 0 and y[3] == 1 and y[4] == 0
    assert math.isnan(g[1]) and bool(torch.isfinite(g[[0, 2]]).all())


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("method", ["super", "tanh", "circ", "tent", "heaviside"])
def test_vmap_and_grad(method: str) -> None:
    from torch.func import grad, vmap

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    assert torch.equal(vmap(lambda r: threshold(r, method, 2.0))(x), (x > 0).double())
    gx, _ = _grads(method, x, 2.0)
    g1 = vmap(grad(lambda r: threshold(r, method, 2.0).sum()))(x)
    torch.testing.assert_close(g1, gx)
    a = torch.tensor(2.0, dtype=torch.float64)
    _, ga = _grads(method, x, a)
    g2 = grad(lambda al: threshold(x, method, al).sum())(a)
    torch.testing.assert_close(g2, ga)
    per_row = vmap(grad(lambda r, al: threshold(r, method, al).sum(), argnums=1),
                   in_dims=(0, None))(x, a)  # fmt: skip
    torch.testing.assert_close(per_row.sum(), ga)
    av = torch.linspace(1.0, 2.0, 6, dtype=torch.float64)
    g3 = grad(lambda al: vmap(lambda r: threshold(r, method, al))(x).sum())(av)
    torch.testing.assert_close(g3, _grads(method, x, av)[1])


def test_vmap_stochastic_needs_randomness_flag() -> None:
    from torch.func import vmap

    x = torch.zeros(3, 1000)
    z = vmap(lambda r: threshold(r, "logistic"), randomness="different")(x)
    assert set(z.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(RuntimeError):
        vmap(lambda r: threshold(r, "logistic"))(x)


@pytest.mark.parametrize("method", SMOOTH)
def test_double_backward_gradcheck(method: str) -> None:
    """The forward is a step (gradcheck does not apply to it); its backward, the map
    (x, alpha) -> dh/dx, is smooth away from kinks and must be consistently differentiable."""
    x = torch.tensor([-0.9, -0.3, 0.2, 0.7], dtype=torch.float64, requires_grad=True)
    a = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)

    def surrogate_grad(x: Tensor, a: Tensor) -> Tensor:
        (g,) = torch.autograd.grad(threshold(x, method, a).sum(), x, create_graph=True)
        return g

    assert torch.autograd.gradcheck(surrogate_grad, (x, a))


@pytest.mark.parametrize("method", ["super", "erfc", "logistic"])
def test_compile_fullgraph(method: str) -> None:
    torch._dynamo.reset()
    fn = torch.compile(lambda x, a: threshold(x, method, a), fullgraph=True, backend="aot_eager")
    x = torch.linspace(-1, 1, 9, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    y = fn(x, a)
    gx, ga = torch.autograd.grad(y.sum(), (x, a))
    rx, ra = _ref_grads(method, x, 1.5)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(ga, ra)
    fn2 = torch.compile(lambda x: threshold(x, method), fullgraph=True, backend="aot_eager")
    y2 = fn2(x)
    assert set(y2.detach().tolist()) <= {0.0, 1.0}


@pytest.mark.slow
def test_compile_inductor() -> None:
    torch._dynamo.reset()
    fn = torch.compile(lambda x: threshold(x, "super", 2.0), fullgraph=True)
    x = torch.linspace(-1, 1, 9, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    torch.testing.assert_close(g, _grads("super", x.detach(), 2.0)[0])


# ----------------------------------------------------------------------------- benchmark contract


def test_benchmark_cases_contract() -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_surrogate.py"
    spec = importlib.util.spec_from_file_location("bench_surrogate", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    full = mod.cases()
    assert len(full) == len(SURROGATES)
    assert {c["shape"] for c in full} == {f"({4 * 1024 * 1024},)"}
    quick = mod.cases(quick=True)
    for case in quick:
        assert {"name", "shape", "make", "fn", "baseline"} <= set(case)
    case = quick[1]
    inputs = case["make"]()
    assert isinstance(inputs, tuple) and inputs[0].requires_grad
    out = case["fn"](*inputs)
    assert torch.equal(out.detach(), case["baseline"](*inputs))
    out.sum().backward()


# ----------------------------------------------------------------------------- example


def test_spiking_example_smoke() -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    path = Path(__file__).resolve().parents[2] / "examples" / "spiking_network.py"
    spec = importlib.util.spec_from_file_location("spiking_network", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x_tr, x_te, y_tr, y_te = mod.load_data(0)
    torch.manual_seed(0)
    net = mod.LIFNet(64, 16, 10)
    for method, expect_grad in (("heaviside", False), ("super", True)):
        net.zero_grad()
        counts = net(x_tr[:32], 6, method, None)
        torch.nn.functional.cross_entropy(counts, y_tr[:32]).backward()
        grads = [p.grad for p in net.parameters()]
        nonzero = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
        assert nonzero == expect_grad, method


@pytest.mark.parametrize("shape", [(), (0,), (3, 0)])
def test_scalar_and_empty_shapes(shape: tuple[int, ...]) -> None:
    for method in SURROGATES:
        x = torch.randn(shape, requires_grad=True)
        a = torch.tensor(1.5, requires_grad=True)
        y = threshold(x, method, a)
        gx, ga = torch.autograd.grad(y.sum(), (x, a))
        assert y.shape == gx.shape == shape and ga.shape == ()
