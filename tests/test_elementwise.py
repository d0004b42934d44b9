"""Elementwise relaxations: heaviside, sign, abs, relu, clamp, round and the sigmoidal kernel.

Hard-mode parity with torch, shapes and dtypes, gradcheck of every function x soft mode, the
continuity class of c0/c1/c2 at the band edges, exactness outside the band, the softness -> 0
limit, and finiteness at extreme inputs and softness.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st
from conftest import BAND, FLOAT_DTYPES, HALF_DTYPES, INT_DTYPES, POLY_MODES, SHAPES, SOFT_MODES

Fn = Callable[..., torch.Tensor]


def _torch_heaviside(x: torch.Tensor) -> torch.Tensor:
    return torch.heaviside(x, torch.tensor(0.5, dtype=x.dtype))


#: name -> (softtorch function, torch reference)
UNARY: dict[str, tuple[Fn, Fn]] = {
    "heaviside": (st.heaviside, _torch_heaviside),
    "sign": (st.sign, torch.sign),
    "abs": (st.abs, torch.abs),
    "relu": (st.relu, torch.relu),
    "round": (st.round, torch.round),
}

SPECIAL = [-2.5, -1.5, -1.0, -0.5, -0.2, -0.0, 0.0, 0.3, 0.5, 1.5, 2.5, 3.7, 1e6, -1e6]


def _sample(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if dtype.is_floating_point:
        return (torch.randn(shape, dtype=torch.float64) * 3).to(dtype)
    return torch.randint(-4, 5, shape, dtype=dtype)


def _away(x: torch.Tensor, points: list[float], margin: float = 2e-3) -> torch.Tensor:
    """The entries of 1-d ``x`` at least ``margin`` away from every kink point."""
    if not points:
        return x
    p = torch.tensor(points, dtype=x.dtype)
    keep = ((x[:, None] - p).abs() >= margin).all(dim=1)
    return x[keep]


def _grid(n: int = 15, lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    """Irregular float64 points (never on integers, half-integers or simple band edges)."""
    base = torch.linspace(lo, hi, n, dtype=torch.float64)
    return base + 0.0123 * torch.sin(7.0 * base + 0.3)


def _assert_exact(out: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(out, ref, rtol=0.0, atol=0.0, equal_nan=True)


# ----------------------------------------------------------------------------- hard parity


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_hard_parity_unary(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    fn, ref_fn = UNARY[name]
    x = _sample(shape, dtype)
    out = fn(x, mode="hard")
    xf = x if dtype.is_floating_point else x.to(torch.get_default_dtype())
    ref = ref_fn(xf)
    assert out.dtype == xf.dtype
    assert out.shape == x.shape
    _assert_exact(out, ref)


@pytest.mark.parametrize("name", list(UNARY))
def test_hard_parity_special_values(name: str) -> None:
    fn, ref_fn = UNARY[name]
    x = torch.tensor(SPECIAL + [float("inf"), float("-inf"), float("nan")])
    _assert_exact(fn(x, mode="hard"), ref_fn(x))


def test_hard_round_is_half_to_even() -> None:
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    _assert_exact(st.round(x, mode="hard"), torch.tensor([-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]))


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_int_promoted_to_default_float64(name: str, dtype: torch.dtype, default_float64) -> None:
    fn, ref_fn = UNARY[name]
    x = torch.arange(-3, 4, dtype=dtype)
    out = fn(x, mode="hard")
    assert out.dtype == torch.float64
    _assert_exact(out, ref_fn(x.to(torch.float64)))
    assert fn(x, mode="smooth").dtype == torch.float64


def _torch_clamp(x: torch.Tensor, a: object, b: object) -> torch.Tensor:
    """torch.clamp, with a number bound turned into a 0-d tensor when the other is a tensor."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = (
            t if t is None or isinstance(t, torch.Tensor) else torch.tensor(t, dtype=x.dtype)
            for t in (a, b)
        )
    return torch.clamp(x, a, b)


CLAMP_CASES = {
    "scalars": (-0.5, 0.7),
    "min_only": (-0.5, None),
    "max_only": (None, 0.7),
    "tensor_bounds": (torch.tensor([-1.0, 0.0, -0.3]), torch.tensor([0.5, 2.0, 0.1])),
    "tensor_min_only": (torch.tensor([-1.0, 0.0, -0.3]), None),
    "tensor_max_only": (None, torch.tensor([0.5, 2.0, 0.1])),
    "mixed": (-0.5, torch.tensor([0.5, 2.0, 0.1])),
    "inverted": (1.0, -1.0),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=str)
@pytest.mark.parametrize("case", list(CLAMP_CASES))
def test_hard_parity_clamp(case: str, dtype: torch.dtype) -> None:
    a, b = CLAMP_CASES[case]
    x = _sample((4, 3), dtype)
    xf = x if dtype.is_floating_point else x.to(torch.get_default_dtype())
    out = st.clamp(x, a, b, mode="hard")
    _assert_exact(out, _torch_clamp(xf, a, b))
    if b is None:  # one-sided by keyword, too
        _assert_exact(st.clamp(x, a=a, mode="hard"), torch.clamp(xf, min=a))
    if a is None:
        _assert_exact(st.clamp(x, b=b, mode="hard"), torch.clamp(xf, max=b))


@pytest.mark.parametrize("mode", ["hard", *SOFT_MODES])
def test_clamp_broadcasting_and_promotion(mode: str) -> None:
    x = torch.randn(4)
    a = torch.full((3, 1), -0.5, dtype=torch.float64)
    b = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    ref = torch.clamp(x, a, b)
    out = st.clamp(x, a, b, mode=mode)
    assert out.shape == ref.shape == (3, 4)
    assert out.dtype == ref.dtype == torch.float64


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_soft_shapes_and_dtypes(mode: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    x = _sample(shape, dtype)
    for name, (fn, _) in UNARY.items():
        out = fn(x, mode=mode)
        assert out.shape == x.shape and out.dtype == dtype, name
    out = st.clamp(x, -0.5, 0.5, mode=mode)
    assert out.shape == x.shape and out.dtype == dtype


# ----------------------------------------------------------------------------- gradcheck


def _gradcheck(fn: Fn, *inputs: torch.Tensor) -> None:
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def _edges(softness: float, centers: list[float]) -> list[float]:
    w = BAND * softness
    return [c + d for c in centers for d in (-w, w)]


S = 0.13  # gradcheck softness: band half-width 0.65


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", ["heaviside", "sign", "abs", "relu"])
def test_gradcheck_unary(name: str, mode: str) -> None:
    fn = UNARY[name][0]
    x = _away(_grid(), _edges(S, [0.0])).requires_grad_()
    _gradcheck(lambda t: fn(t, S, mode), x)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradcheck_relu_gated(mode: str) -> None:
    x = _away(_grid(), _edges(S, [0.0])).requires_grad_()
    _gradcheck(lambda t: st.relu(t, S, mode, gated=True), x)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradcheck_round(mode: str) -> None:
    s = 0.05  # band edges at k + 0.25 and k + 0.75
    kinks = [k + 0.5 + d for k in range(-4, 4) for d in (-BAND * s, BAND * s)]
    kinks += [float(k) for k in range(-4, 5)]  # floor(x) switches its reference integer
    x = _away(_grid(31, -2.6, 2.6), kinks).requires_grad_()
    _gradcheck(lambda t: st.round(t, s, mode), x)
    _gradcheck(lambda t: st.round(t, s, mode, neighbor_radius=1), x)


def _clamp_kinks(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mode: str, gated: bool
) -> torch.Tensor:
    """Mask of x whose inner relu arguments stay off the c0 band edges (where c0 has kinks)."""
    w = BAND * S
    z1 = x - a
    z2 = b - a - st.relu(z1, S, mode, gated=gated)
    return ((z1.abs() - w).abs() > 2e-3) & ((z2.abs() - w).abs() > 2e-3)


@pytest.mark.parametrize("gated", [False, True], ids=["ungated", "gated"])
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradcheck_clamp_tensor_bounds(mode: str, gated: bool) -> None:
    x = _grid(21, -3.0, 3.0)
    a = torch.tensor([-0.6], dtype=torch.float64)
    b = torch.tensor([0.9], dtype=torch.float64)
    x = x[_clamp_kinks(x, a, b, mode, gated)].requires_grad_()
    a.requires_grad_()
    b.requires_grad_()
    _gradcheck(lambda t, lo, hi: st.clamp(t, lo, hi, S, mode, gated=gated), x, a, b)
    # one-sided: lower bound only (x - a), upper bound only (b - x)
    xl = _away(x.detach(), [-0.6 - BAND * S, -0.6 + BAND * S]).requires_grad_()
    _gradcheck(lambda t, lo: st.clamp(t, lo, None, S, mode, gated=gated), xl, a)
    xu = _away(x.detach(), [0.9 - BAND * S, 0.9 + BAND * S]).requires_grad_()
    _gradcheck(lambda t, hi: st.clamp(t, None, hi, S, mode, gated=gated), xu, b)


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "_c1_pnorm", "c2", "_c2_pnorm"])
def test_gradcheck_sigmoidal_and_softrelu(mode: str) -> None:
    w = S if mode.endswith("pnorm") else BAND * S
    x = _away(_grid(), [-w, w]).requires_grad_()
    _gradcheck(lambda t: st.sigmoidal(t, S, mode), x)
    _gradcheck(lambda t: st.softrelu(t, S, mode), x)
    _gradcheck(lambda t: st.softrelu(t, S, mode, gated=True), x)


@pytest.mark.parametrize("mode", ["smooth", "c1", "c2"])
def test_gradcheck_wrt_softness_tensor(mode: str) -> None:
    x = _grid(9, -0.5, 0.5)
    s = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    _gradcheck(lambda t: st.heaviside(x, t, mode), s)
    _gradcheck(lambda t: st.relu(x, t, mode), s)


# ----------------------------------------------------------------------------- continuity class


def _derivatives(mode: str, x: float, softness: float, order: int) -> list[float]:
    """[f, f', ..., f^(order)] of sigmoidal at a float64 point, by nested autograd."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = st.sigmoidal(t, softness, mode)
    out = [float(y.detach())]
    for _ in range(order):
        (y,) = torch.autograd.grad(y, t, create_graph=True)
        out.append(float(y.detach()))
    return out


# (mode, order of the first discontinuous derivative, its jump magnitude times (2w)^order)
CONTINUITY = [("c0", 1, 1.0), ("c1", 2, 6.0), ("c2", 3, 60.0)]


@pytest.mark.parametrize("edge_sign", [-1.0, 1.0], ids=["left_edge", "right_edge"])
@pytest.mark.parametrize(("mode", "order", "jump"), CONTINUITY)
def test_continuity_class_at_band_edges(
    mode: str, order: int, jump: float, edge_sign: float
) -> None:
    s = 0.3
    w = BAND * s
    edge = edge_sign * w
    delta = 1e-7
    inside = _derivatives(mode, edge - edge_sign * delta, s, order)
    outside = _derivatives(mode, edge + edge_sign * delta, s, order)
    for k in range(order):  # f, ..., f^(order - 1) continuous
        assert abs(inside[k] - outside[k]) < 1e-5, (k, inside[k], outside[k])
    # f^(order) jumps: outside the band every derivative is exactly 0
    assert outside[order] == 0.0
    expected = jump / (2.0 * w) ** order
    assert abs(abs(inside[order]) - expected) < 1e-4 * expected + 1e-5, (inside[order], expected)


@pytest.mark.parametrize(("mode", "order", "jump"), CONTINUITY)
def test_continuity_by_finite_differences(mode: str, order: int, jump: float) -> None:
    """One-sided finite-difference slopes of f^(order-1) agree off the edge, differ across it."""
    s, h = 0.2, 1e-4
    w = BAND * s

    def d(x: float) -> float:
        return _derivatives(mode, x, s, order - 1)[order - 1]

    left_slope = (d(w) - d(w - h)) / h
    right_slope = (d(w + h) - d(w)) / h
    assert right_slope == 0.0
    assert abs(left_slope) > 0.5 * jump / (2.0 * w) ** order
    mid = 0.3 * w  # inside the band the function is smooth
    assert abs((d(mid + h) - d(mid)) / h - (d(mid) - d(mid - h)) / h) < 1e-2


def test_smooth_mode_third_derivative_finite_and_continuous() -> None:
    for x in (-3.0, -0.5, -1e-9, 0.0, 1e-9, 0.5, 3.0, 50.0):
        ders = _derivatives("smooth", x, 0.4, 3)
        assert all(torch.isfinite(torch.tensor(ders))), (x, ders)
    for x in (-0.5, 0.0, 0.5):  # no jump in f''' anywhere
        lo = _derivatives("smooth", x - 1e-7, 0.4, 3)[3]
        hi = _derivatives("smooth", x + 1e-7, 0.4, 3)[3]
        assert abs(lo - hi) < 1e-4


def test_relu_is_one_order_smoother_than_its_sigmoidal() -> None:
    """The ungated soft relu integrates the sigmoidal: c0 relu has a continuous derivative."""
    s = 0.2
    w = BAND * s
    for edge in (-w, w):
        g = []
        for x in (edge - 1e-7, edge + 1e-7):
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (d,) = torch.autograd.grad(st.relu(t, s, "c0"), t)
            g.append(float(d))
        assert abs(g[0] - g[1]) < 1e-5


# ----------------------------------------------------------------------------- exactness, limits


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("mode", POLY_MODES)
def test_poly_modes_exact_outside_band(mode: str, dtype: torch.dtype) -> None:
    s = 0.05
    w = BAND * s
    x = torch.cat([torch.linspace(-50.0, -w, 101), torch.linspace(w, 50.0, 101)]).to(dtype)
    assert torch.equal(st.sigmoidal(x, s, mode), (x > 0).to(dtype))
    for name in ("heaviside", "sign", "abs", "relu"):
        fn, ref_fn = UNARY[name]
        assert torch.equal(fn(x, s, mode), ref_fn(x)), name
    assert torch.equal(st.relu(x, s, mode, gated=True), torch.relu(x))
    # round: every step is saturated when frac(x) is >= 5 s away from 1/2
    xr = torch.tensor([-3.0, -2.2, -1.76, -0.2, 0.0, 0.24, 0.76, 1.0, 2.1, 7.8], dtype=dtype)
    assert torch.equal(st.round(xr, s, mode), torch.round(xr))
    # clamp: exact up to the rounding of the inner subtractions
    xc = x[(x - 0.5).abs().ge(w) & (x + 0.5).abs().ge(w)]
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(
        st.clamp(xc, -0.5, 0.5, s, mode), torch.clamp(xc, -0.5, 0.5), rtol=0.0, atol=8 * eps
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_soft_close_to_hard_at_small_softness(mode: str) -> None:
    s = 1e-3
    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    off = x[x.abs() >= 0.1]
    for name in ("heaviside", "sign"):
        fn, ref_fn = UNARY[name]
        torch.testing.assert_close(fn(off, s, mode), ref_fn(off), rtol=0.0, atol=1e-2)
    for name in ("abs", "relu"):  # continuous: close everywhere
        fn, ref_fn = UNARY[name]
        torch.testing.assert_close(fn(x, s, mode), ref_fn(x), rtol=0.0, atol=1e-2)
    torch.testing.assert_close(st.relu(x, s, mode, gated=True), torch.relu(x), rtol=0, atol=1e-2)
    torch.testing.assert_close(
        st.clamp(x, -0.5, 0.7, s, mode), torch.clamp(x, -0.5, 0.7), rtol=0.0, atol=1e-2
    )
    xr = x[((x - 0.5) - torch.round(x - 0.5)).abs() >= 0.1]
    torch.testing.assert_close(st.round(xr, s, mode), torch.round(xr), rtol=0.0, atol=1e-2)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_soft_values_basic_properties(mode: str) -> None:
    x = _grid(41, -3.0, 3.0)
    s = 0.3
    h = st.heaviside(x, s, mode)
    assert ((h >= 0) & (h <= 1)).all()
    torch.testing.assert_close(st.sign(x, s, mode), 2 * h - 1)
    torch.testing.assert_close(st.abs(x, s, mode), x * st.sign(x, s, mode))
    assert (st.abs(x, s, mode) <= x.abs() + 1e-12).all()
    assert (st.relu(x, s, mode) >= torch.relu(x) - 1e-12).all()  # ungated lies above relu
    c = st.clamp(x, -0.5, 0.5, s, mode)
    assert (c <= 0.5).all()  # b - relu_s(.) with relu_s >= 0
    # the lower side may undershoot by relu_s(b - a) - (b - a), which is tiny when b - a >> s
    # (exactly 0 for the c-modes once b - a >= 5 s)
    c = st.clamp(x, -0.5, 0.5, 0.05, mode)
    assert (c >= -0.5 - 1e-8).all() and (c <= 0.5).all()
    assert float(st.heaviside(torch.tensor(0.0), s, mode)) == 0.5
    assert float(st.sign(torch.tensor(0.0), s, mode)) == 0.0


def test_sigmoidal_docstring_example() -> None:
    torch.testing.assert_close(
        st.sigmoidal(torch.tensor([-1.0, 0.0, 1.0]), 0.5, "c1"),
        torch.tensor([0.2160, 0.5000, 0.7840]),
        rtol=0.0,
        atol=1e-4,
    )


# ----------------------------------------------------------------------------- extremes

EXTREME_X = [-1e6, -1e3, -1.0, -1e-3, -1e-7, 0.0, 1e-7, 1e-3, 0.5, 1.0, 2.5, 1e3, 1e6]


def _all_unary_outputs(x: torch.Tensor, s: float, mode: str) -> list[torch.Tensor]:
    outs = [fn(x, s, mode) for fn, _ in UNARY.values()]
    outs.append(st.relu(x, s, mode, gated=True))
    outs.append(st.clamp(x, -0.5, 0.5, s, mode))
    outs.append(st.clamp(x, -0.5, None, s, mode, gated=True))
    outs.append(st.clamp(x, torch.tensor(-2.0, dtype=x.dtype), torch.tensor(3.0, dtype=x.dtype),
                         s, mode))
    return outs


def _check_finite_everywhere(mode: str, s: float, dtype: torch.dtype) -> None:
    x = torch.tensor(EXTREME_X, dtype=dtype, requires_grad=True)
    for i, out in enumerate(_all_unary_outputs(x, s, mode)):
        assert torch.isfinite(out).all(), (i, out)
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(g).all(), (i, g)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("softness", [1e-6, 1e-3, 1.0, 1e4])
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_finite_outputs_and_grads_at_extremes(
    mode: str, softness: float, dtype: torch.dtype
) -> None:
    _check_finite_everywhere(mode, softness, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_finite_outputs_and_grads_softness_sweep(mode: str, dtype: torch.dtype) -> None:
    for softness in torch.logspace(-6, 4, 41).tolist():
        _check_finite_everywhere(mode, softness, dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("softness", [1e-6, 0.1, 1e4])
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_half_precision_finite_same_dtype(mode: str, softness: float, dtype: torch.dtype) -> None:
    big = 6e4 if dtype == torch.float16 else 1e6
    x = torch.tensor([-big, -100.0, -1.0, -0.01, 0.0, 0.01, 0.5, 1.0, 100.0, big], dtype=dtype)
    x.requires_grad_()
    for i, out in enumerate(_all_unary_outputs(x, softness, mode)):
        assert out.dtype == dtype, i
        assert torch.isfinite(out).all(), (i, out)
        (g,) = torch.autograd.grad(out.float().sum(), x)
        assert g.dtype == dtype, i
        if dtype == torch.bfloat16 or softness >= 0.1:
            # float16 cannot hold slopes like 1 / (4 * 1e-6): only ask for finite gradients
            # where the true gradient is representable
            assert torch.isfinite(g).all(), (i, g)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_vmap_over_inputs_and_softness(mode: str) -> None:
    x = torch.randn(3, 5, dtype=torch.float64)
    s = torch.tensor([0.05, 0.3, 2.0], dtype=torch.float64)
    for fn in (st.sigmoidal, st.heaviside, st.relu, st.round):
        out = torch.func.vmap(lambda r, t, f=fn: f(r, t, mode))(x, s)
        ref = torch.stack([fn(x[i], float(s[i]), mode) for i in range(3)])
        torch.testing.assert_close(out, ref)


# ------------------------------------------------------------------------------------------------
# p-norm sigmoidal modes (issue 17): every elementwise op and its *_st version accepts them
# ------------------------------------------------------------------------------------------------

PNORM_MODES = ("_c1_pnorm", "_c2_pnorm")


def pnorm_step_reference(u: torch.Tensor, mode: str) -> torch.Tensor:
    """Weight of the second point of the p-norm projection of the scores (0, u) onto the
    simplex: p_i = [theta_i - lam]_+^e (e = 2 for p = 3/2, e = 3 for p = 4/3) with lam found by
    bisection so that the weights sum to 1 (float64, independent of the closed forms)."""
    e = 2 if mode == "_c1_pnorm" else 3
    u = u.double()
    lo = torch.minimum(u, torch.zeros_like(u)) - 1.0
    hi = torch.maximum(u, torch.zeros_like(u))
    for _ in range(200):
        lam = (lo + hi) / 2
        total = (-lam).clamp_min(0) ** e + (u - lam).clamp_min(0) ** e
        lo = torch.where(total > 1, lam, lo)
        hi = torch.where(total > 1, hi, lam)
    return (u - (lo + hi) / 2).clamp_min(0) ** e


@pytest.mark.parametrize("mode", PNORM_MODES)
def test_pnorm_modes_elementwise_values(mode: str) -> None:
    s = 0.4
    x = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)
    sig = pnorm_step_reference(x / s, mode)
    torch.testing.assert_close(st.heaviside(x, s, mode), sig)
    torch.testing.assert_close(st.sign(x, s, mode), 2 * sig - 1)
    torch.testing.assert_close(st.abs(x, s, mode), x * (2 * sig - 1))
    torch.testing.assert_close(st.relu(x, s, mode, gated=True), x * sig)
    # ungated relu: the integral of the sigmoidal (trapezoid rule on a fine grid)
    grid = torch.linspace(-s, 1.5, 200001, dtype=torch.float64)
    cum = torch.cumulative_trapezoid(pnorm_step_reference(grid / s, mode), grid)
    ref = torch.where(x <= -s, 0.0, torch.from_numpy(
        __import__("numpy").interp(x.numpy(), grid[1:].numpy(), cum.numpy())))
    torch.testing.assert_close(st.relu(x, s, mode), ref, atol=1e-8, rtol=0)
    # clamp from two gated relus, round as the staircase of p-norm steps
    r = lambda t: t * pnorm_step_reference(t / s, mode)  # noqa: E731
    torch.testing.assert_close(
        st.clamp(x, -0.5, 0.7, s, mode, gated=True), 0.7 - r(0.7 + 0.5 - r(x + 0.5))
    )
    base = torch.floor(x)
    j = torch.arange(-5, 5, dtype=torch.float64)
    stair = base - 5 + pnorm_step_reference(((x - base)[:, None] - j - 0.5) / s, mode).sum(-1)
    torch.testing.assert_close(st.round(x, s, mode), stair)


@pytest.mark.parametrize("mode", PNORM_MODES)
@pytest.mark.parametrize(
    "name", ["heaviside", "sign", "abs", "relu", "relu_gated", "clamp", "clamp_gated", "round"]
)
def test_pnorm_modes_st_forward_hard_backward_soft(mode: str, name: str) -> None:
    fns = {
        "heaviside": (st.heaviside, st.heaviside_st, {}),
        "sign": (st.sign, st.sign_st, {}),
        "abs": (st.abs, st.abs_st, {}),
        "relu": (st.relu, st.relu_st, {}),
        "relu_gated": (st.relu, st.relu_st, {"gated": True}),
        "clamp": (lambda x, **k: st.clamp(x, -0.3, 0.4, **k),
                  lambda x, **k: st.clamp_st(x, -0.3, 0.4, **k), {}),
        "clamp_gated": (lambda x, **k: st.clamp(x, -0.3, 0.4, **k),
                        lambda x, **k: st.clamp_st(x, -0.3, 0.4, **k), {"gated": True}),
        "round": (st.round, st.round_st, {}),
    }
    soft_fn, st_fn, extra = fns[name]
    x = torch.linspace(-1.3, 1.3, 14, dtype=torch.float64, requires_grad=True)
    out = st_fn(x, softness=0.5, mode=mode, **extra)
    torch.testing.assert_close(out, soft_fn(x.detach(), mode="hard", **extra))
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_soft,) = torch.autograd.grad(soft_fn(x, softness=0.5, mode=mode, **extra).sum(), x)
    torch.testing.assert_close(g, g_soft)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("mode", PNORM_MODES)
def test_pnorm_modes_gradcheck(mode: str) -> None:
    x = torch.tensor([-0.9, -0.3, 0.05, 0.35, 0.8], dtype=torch.float64, requires_grad=True)
    for fn in (st.heaviside, st.sign, st.abs, st.relu, st.round):
        assert gradcheck(lambda t, f=fn: f(t, 0.5, mode), (x,))


# ------------------------------------------------------------------------------------------------
# issue 17: clamp with infinite bounds, half-precision softrelu / sigmoidal
# ------------------------------------------------------------------------------------------------

INF = float("inf")
ALL_SOFT = ("smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")


@pytest.mark.parametrize("mode", ALL_SOFT)
@pytest.mark.parametrize(
    ("a", "b"),
    [(-INF, 0.5), (-0.5, INF), (None, INF), (-INF, INF), (-INF, None), (INF, None), (None, -INF),
     (INF, 1.0), (-1.0, -INF)],
    ids=str,
)
def test_clamp_infinite_bounds(mode: str, a: float | None, b: float | None) -> None:
    x = torch.tensor([0.3, -2.0, 5.0, 0.0], requires_grad=True)
    out = st.clamp(x, a, b, softness=0.1, mode=mode)
    hard = torch.clamp(x.detach(), a, b)
    assert not torch.isnan(out).any(), out
    # an infinite bound is either no bound (the other side's soft clamp) or the bound itself
    finite_a = None if a is None or a == -INF else a
    finite_b = None if b is None or b == INF else b
    if a == INF or b == -INF:
        torch.testing.assert_close(out.detach(), hard)
    elif finite_a is None and finite_b is None:
        torch.testing.assert_close(out.detach(), x.detach())
    else:
        torch.testing.assert_close(
            out.detach(), st.clamp(x.detach(), finite_a, finite_b, softness=0.1, mode=mode)
        )
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all(), g
    out_st = st.clamp_st(x, a, b, softness=0.1, mode=mode)
    assert torch.equal(out_st.detach(), hard)
    (g_st,) = torch.autograd.grad(out_st.sum(), x)
    assert torch.isfinite(g_st).all(), g_st
    # tensor bounds with infinite entries behave the same elementwise
    if a is not None and b is not None:
        ta, tb = torch.full((4,), a), torch.full((4,), b)
        torch.testing.assert_close(st.clamp(x, ta, tb, 0.1, mode), out)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", ALL_SOFT)
def test_softrelu_and_sigmoidal_compute_half_in_float32(dtype: torch.dtype, mode: str) -> None:
    x = torch.tensor([0.5, -0.5, 3.0, -3.0], dtype=dtype, requires_grad=True)
    for softness in (1e-6, 0.1, 1e4):
        for fn in (st.softrelu, st.sigmoidal):
            out = fn(x, softness, mode)
            assert out.dtype == dtype
            ref = fn(x.detach().float(), softness, mode).to(dtype)
            assert torch.equal(out.detach(), ref), (fn.__name__, softness, out, ref)
            (g,) = torch.autograd.grad(out.float().sum(), x)
            assert not torch.isnan(g).any()
    torch.testing.assert_close(
        st.softrelu(torch.tensor([0.5, -0.5], dtype=dtype), softness=1e-6),
        torch.tensor([0.5, 0.0], dtype=dtype),
    )
