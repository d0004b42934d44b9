"""Soft comparisons: greater, greater_equal, less, less_equal, eq, not_equal, isclose.

Hard-mode parity with torch (as floats), broadcasting and dtype promotion, gradcheck for every
function x soft mode w.r.t. both operands, the epsilon convention at equality, the softness -> 0
limit, exactness of the c-modes outside the band, and finiteness at extremes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st
from conftest import (
    BAND,
    FLOAT_DTYPES,
    HALF_DTYPES,
    INT_DTYPES,
    MODES,
    POLY_MODES,
    SHAPES,
    SOFT_MODES,
)

Fn = Callable[..., torch.Tensor]

#: name -> (softtorch function, torch reference returning bools)
BINARY: dict[str, tuple[Fn, Fn]] = {
    "greater": (st.greater, torch.greater),
    "greater_equal": (st.greater_equal, torch.greater_equal),
    "less": (st.less, torch.less),
    "less_equal": (st.less_equal, torch.less_equal),
    "eq": (st.eq, torch.eq),
    "not_equal": (st.not_equal, torch.not_equal),
    "isclose": (st.isclose, torch.isclose),
}
STEP_LIKE = ("greater", "greater_equal", "less", "less_equal")


def _call(
    name: str, x: object, y: object, softness: float = 0.1, mode: str = "smooth"
) -> torch.Tensor:
    return BINARY[name][0](x, y, softness=softness, mode=mode)


def _sample(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    # a coarse grid of values so that ties (x == y) occur
    v = torch.randint(-3, 4, shape)
    return v.to(dtype) if not dtype.is_floating_point else (v * 0.5).to(dtype)


# ----------------------------------------------------------------------------- hard parity


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_hard_parity(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    x, y = _sample(shape, dtype), _sample(shape, dtype)
    out = _call(name, x, y, mode="hard")
    fdtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    ref = BINARY[name][1](x.to(fdtype), y.to(fdtype)).to(fdtype)
    assert out.dtype == fdtype and out.shape == ref.shape
    assert torch.equal(out, ref)


@pytest.mark.parametrize("name", list(BINARY))
def test_hard_parity_special_values(name: str) -> None:
    vals = [-1.0, 0.0, -0.0, 1.0, 1.0 + 1e-6, float("inf"), float("-inf"), float("nan")]
    x = torch.tensor(vals).repeat_interleave(len(vals))
    y = torch.tensor(vals).repeat(len(vals))
    assert torch.equal(_call(name, x, y, mode="hard"), BINARY[name][1](x, y).float())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_broadcasting_like_torch(name: str, mode: str) -> None:
    x, y = torch.randn(3, 1), torch.randn(4)
    assert _call(name, x, y, mode=mode).shape == (3, 4)
    assert _call(name, y, x, mode=mode).shape == (3, 4)
    assert _call(name, torch.randn(2, 1, 5), 0.3, mode=mode).shape == (2, 1, 5)
    assert _call(name, 0.3, torch.randn(2, 5), mode=mode).shape == (2, 5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_dtype_promotion_like_torch(name: str, mode: str, default_float64) -> None:
    f32, f64 = torch.randn(4, dtype=torch.float32), torch.randn(4, dtype=torch.float64)
    i64 = torch.arange(4)
    assert _call(name, f32, f64, mode=mode).dtype == torch.float64
    assert _call(name, f64, f32, mode=mode).dtype == torch.float64
    assert _call(name, i64, f32, mode=mode).dtype == torch.float32
    assert _call(name, i64, i64, mode=mode).dtype == torch.float64  # the default float dtype
    assert _call(name, f32, 2, mode=mode).dtype == torch.float32


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_int_inputs_soft_modes(name: str, dtype: torch.dtype) -> None:
    x = torch.arange(-3, 4, dtype=dtype)
    y = torch.zeros(7, dtype=dtype)
    for mode in SOFT_MODES:
        out = _call(name, x, y, mode=mode)
        torch.testing.assert_close(out, _call(name, x.float(), y.float(), mode=mode))


# ----------------------------------------------------------------------------- identities


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_identities(mode: str) -> None:
    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    s = 0.3
    assert torch.equal(st.less(x, y, s, mode), st.greater(y, x, s, mode))
    assert torch.equal(st.less_equal(x, y, s, mode), st.greater_equal(y, x, s, mode))
    assert torch.equal(st.not_equal(x, y, s, mode), 1 - st.eq(x, y, s, mode))
    assert torch.equal(st.isclose(x, y, s, rtol=0.0, atol=0.0, mode=mode), st.eq(x, y, s, mode))
    torch.testing.assert_close(st.greater(x, y, s, mode), st.heaviside(x - y, s, mode))
    torch.testing.assert_close(
        st.greater(x, y, s, mode) + st.less_equal(x, y, s, mode), torch.ones_like(x)
    )


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_values_at_equality(mode: str) -> None:
    x = torch.tensor([-2.0, 0.0, 3.5], dtype=torch.float64)
    for name in ("greater", "greater_equal", "less", "less_equal"):
        torch.testing.assert_close(_call(name, x, x, 0.1, mode), torch.full_like(x, 0.5))
    assert torch.equal(st.eq(x, x, 0.1, mode), torch.ones_like(x))
    assert torch.equal(st.not_equal(x, x, 0.1, mode), torch.zeros_like(x))
    assert torch.equal(st.isclose(x, x, 0.1, mode=mode), torch.ones_like(x))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_epsilon_fixes_the_limit_at_equality(mode: str) -> None:
    """softness << epsilon: greater -> 0 and greater_equal -> 1 at x == y."""
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    s = 1e-13
    torch.testing.assert_close(st.greater(x, x, s, mode), torch.zeros_like(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(st.less(x, x, s, mode), torch.zeros_like(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        st.greater_equal(x, x, s, mode), torch.ones_like(x), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(st.less_equal(x, x, s, mode), torch.ones_like(x), rtol=0, atol=1e-6)
    # epsilon=0 removes the shift
    torch.testing.assert_close(st.greater(x, x, s, mode, epsilon=0.0), torch.full_like(x, 0.5))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_isclose_is_one_inside_tolerance(mode: str) -> None:
    y = torch.tensor([-4.0, -1.0, 0.0, 2.0, 10.0], dtype=torch.float64)
    rtol, atol = 0.1, 0.5
    tol = atol + rtol * y.abs()
    for frac in (-0.9, -0.5, 0.0, 0.4, 0.9):
        out = st.isclose(y + frac * tol, y, 0.01, rtol=rtol, atol=atol, mode=mode)
        assert torch.equal(out, torch.ones_like(y)), (frac, out)
    far = st.isclose(y + 3 * tol + 1.0, y, 0.01, rtol=rtol, atol=atol, mode=mode)
    assert (far < 1e-6).all()


# ----------------------------------------------------------------------------- gradcheck


S = 0.13
W = BAND * S


def _grid(n: int = 17, lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    base = torch.linspace(lo, hi, n, dtype=torch.float64)
    return base + 0.0123 * torch.sin(7.0 * base + 0.3)


def _off(v: torch.Tensor, points: list[float], margin: float = 2e-3) -> torch.Tensor:
    """Mask of entries of ``v`` at least ``margin`` away from every point."""
    p = torch.tensor(points, dtype=v.dtype)
    return ((v[..., None] - p).abs() >= margin).all(dim=-1)


def _kink_free(name: str, mode: str, x: torch.Tensor, y: torch.Tensor, **kw: float) -> torch.Tensor:
    """Mask of (x, y) pairs away from the points where the relaxation has a kink.

    The clamp at 1 of eq/isclose kinks where the soft |x - y| equals the tolerance; c0 has kinks
    at the band edges of every sigmoidal argument; isclose's |y| kinks at y = 0.
    """
    d = x - y
    if name in STEP_LIKE:
        return _off(d, [-W, W]) if mode == "c0" else torch.ones_like(d, dtype=torch.bool)
    tol = kw.get("atol", 0.0) + kw.get("rtol", 0.0) * y.abs()
    a = st.abs(d, S, mode)
    keep = _off(a - tol, [0.0, -W, W], margin=5e-3) & _off(d, [0.0], margin=5e-3)
    if mode == "c0":
        keep &= _off(d, [-W, W])
    if name == "isclose":
        keep &= _off(y, [0.0])
    return keep


GRAD_KW = {"isclose": {"rtol": 0.2, "atol": 0.1}}


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_gradcheck(name: str, mode: str) -> None:
    kw = GRAD_KW.get(name, {})
    x = _grid(13).repeat_interleave(5)
    y = torch.tensor([-0.71, -0.23, 0.05, 0.38, 1.1], dtype=torch.float64).repeat(13)
    keep = _kink_free(name, mode, x, y, **kw)
    x, y = x[keep].requires_grad_(), y[keep].requires_grad_()
    assert x.numel() > 30
    fn = BINARY[name][0]
    assert gradcheck(
        lambda a, b: fn(a, b, softness=S, mode=mode, **kw), (x, y), eps=1e-6, atol=1e-6, rtol=1e-4
    )


# ----------------------------------------------------------------------------- limits, exactness


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_soft_close_to_hard_at_small_softness(name: str, mode: str) -> None:
    x = torch.linspace(-3.0, 3.0, 121, dtype=torch.float64).repeat_interleave(7)
    y = torch.tensor([-2.0, -1.03, -0.5, 0.0, 0.21, 1.0, 2.6], dtype=torch.float64).repeat(121)
    d = x - y
    kw = {"rtol": 0.1, "atol": 0.2} if name == "isclose" else {}
    edge = kw.get("atol", 0.0) + kw.get("rtol", 0.0) * y.abs()  # the discontinuity of |d| <= edge
    keep = (d.abs() - edge).abs() >= 0.1
    out = BINARY[name][0](x[keep], y[keep], softness=1e-3, mode=mode, **kw)
    ref = BINARY[name][1](x[keep], y[keep], **kw).to(out.dtype)
    torch.testing.assert_close(out, ref, rtol=0.0, atol=1e-2)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("mode", POLY_MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_poly_modes_exact_outside_band(name: str, mode: str, dtype: torch.dtype) -> None:
    s = 0.02
    w = BAND * s
    y = torch.linspace(-2.0, 2.0, 9, dtype=dtype).repeat_interleave(8)
    offsets = torch.tensor([-3.0, -1.0, -0.5, -0.3, 0.3, 0.5, 1.0, 3.0], dtype=dtype)
    x = y + offsets.repeat(9)
    kw = {"rtol": 0.01, "atol": 0.05} if name == "isclose" else {}
    d = x - y
    edge = kw.get("atol", 0.0) + kw.get("rtol", 0.0) * y.abs()
    assert ((d.abs() - edge).abs() >= 1.5 * w).all()
    out = BINARY[name][0](x, y, softness=s, mode=mode, **kw)
    assert torch.equal(out, BINARY[name][1](x, y, **kw).to(dtype))


# ----------------------------------------------------------------------------- extremes

EXTREME = [-1e6, -1e3, -1.0, -1e-7, 0.0, 1e-7, 1.0, 1e3, 1e6]


def _check_finite(mode: str, softness: float, dtype: torch.dtype) -> None:
    v = torch.tensor(EXTREME, dtype=torch.float64)
    x = v.repeat_interleave(len(EXTREME)).to(dtype).requires_grad_()
    y = v.repeat(len(EXTREME)).to(dtype).requires_grad_()
    for name, (fn, _) in BINARY.items():
        out = fn(x, y, softness=softness, mode=mode)
        assert out.dtype == dtype
        assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all(), name
        gx, gy = torch.autograd.grad(out.sum(), (x, y))
        assert torch.isfinite(gx).all() and torch.isfinite(gy).all(), name


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("softness", [1e-6, 1.0, 1e4])
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_finite_at_extremes(mode: str, softness: float, dtype: torch.dtype) -> None:
    _check_finite(mode, softness, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_finite_softness_sweep(mode: str, dtype: torch.dtype) -> None:
    for softness in torch.logspace(-6, 4, 41).tolist():
        _check_finite(mode, softness, dtype)


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_half_precision(mode: str, dtype: torch.dtype) -> None:
    big = 6e4 if dtype == torch.float16 else 1e6
    v = torch.tensor([-big, -1.0, 0.0, 0.5, 1.0, big], dtype=dtype)
    x, y = v.repeat_interleave(6), v.repeat(6)
    for softness in (1e-6, 0.1, 1e4):
        for name, (fn, _) in BINARY.items():
            out = fn(x, y, softness=softness, mode=mode)
            assert out.dtype == dtype, name
            assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all(), name


# ------------------------------------------------------------------------------------------------
# issue 17: p-norm modes, isclose tolerances / infinities / half precision
# ------------------------------------------------------------------------------------------------

PNORM = ("_c1_pnorm", "_c2_pnorm")


def _pnorm_sigma(u: torch.Tensor, mode: str) -> torch.Tensor:
    """Second weight of the p-norm projection of (0, u) onto the simplex, by bisection."""
    e = 2 if mode == "_c1_pnorm" else 3
    u = u.double()
    lo, hi = torch.minimum(u, torch.zeros_like(u)) - 1.0, torch.maximum(u, torch.zeros_like(u))
    for _ in range(200):
        lam = (lo + hi) / 2
        big = (-lam).clamp_min(0) ** e + (u - lam).clamp_min(0) ** e > 1
        lo, hi = torch.where(big, lam, lo), torch.where(big, hi, lam)
    return (u - (lo + hi) / 2).clamp_min(0) ** e


@pytest.mark.parametrize("mode", PNORM)
def test_pnorm_comparisons_values(mode: str) -> None:
    s, eps = 0.5, 1e-10
    x = torch.linspace(-1, 1, 21, dtype=torch.float64)
    y = torch.full_like(x, 0.1)
    d = x - y
    torch.testing.assert_close(st.greater(x, y, s, mode), _pnorm_sigma((d - eps) / s, mode))
    torch.testing.assert_close(st.greater_equal(x, y, s, mode), _pnorm_sigma((d + eps) / s, mode))
    torch.testing.assert_close(st.less(x, y, s, mode), _pnorm_sigma((-d - eps) / s, mode))
    torch.testing.assert_close(st.less_equal(x, y, s, mode), _pnorm_sigma((-d + eps) / s, mode))
    soft_abs = d * (2 * _pnorm_sigma(d / s, mode) - 1)
    eq = (2 * _pnorm_sigma((eps - soft_abs) / s, mode)).clamp(max=1)
    torch.testing.assert_close(st.eq(x, y, s, mode), eq)
    torch.testing.assert_close(st.not_equal(x, y, s, mode), 1 - eq)
    tol = 0.05 + 0.2 * y.abs() + eps
    close = (2 * _pnorm_sigma((tol - soft_abs) / s, mode)).clamp(max=1)
    torch.testing.assert_close(st.isclose(x, y, s, rtol=0.2, atol=0.05, mode=mode), close)


@pytest.mark.parametrize("mode", PNORM)
@pytest.mark.parametrize(
    "name", ["greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose"]
)
def test_pnorm_comparisons_st(mode: str, name: str) -> None:
    soft_fn, st_fn = getattr(st, name), getattr(st, f"{name}_st")
    x = torch.linspace(-1, 1, 9, dtype=torch.float64, requires_grad=True)
    out = st_fn(x, 0.2, softness=0.5, mode=mode)
    torch.testing.assert_close(out, soft_fn(x.detach(), 0.2, mode="hard"))
    (g,) = torch.autograd.grad(out.sum(), x)
    (ref,) = torch.autograd.grad(soft_fn(x, 0.2, softness=0.5, mode=mode).sum(), x)
    torch.testing.assert_close(g, ref)


@pytest.mark.parametrize("bad", [float("nan"), -1e-3])
@pytest.mark.parametrize("which", ["rtol", "atol"])
@pytest.mark.parametrize("mode", ["hard", "smooth", "_c1_pnorm"])
def test_isclose_bad_tolerance_raises_like_torch(bad: float, which: str, mode: str) -> None:
    x = torch.ones(3)
    with pytest.raises(RuntimeError) as torch_err:
        torch.isclose(x, x, **{which: bad})
    with pytest.raises(RuntimeError) as ours:
        st.isclose(x, x, mode=mode, **{which: bad})
    assert str(ours.value) == str(torch_err.value)
    assert isinstance(ours.value, ValueError)  # our convention for bad arguments, too


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2", *PNORM])
def test_isclose_infinite_rtol_and_infinite_operands(mode: str) -> None:
    inf = float("inf")
    x = torch.tensor([0.0, 1e-9, 1.0, 5.0, inf, 1.0, -inf])
    y = torch.tensor([0.0, 0.0, 0.0, 1.0, inf, inf, inf])
    out = st.isclose(x, y, softness=1e-3, rtol=inf, mode=mode)
    assert torch.isfinite(out).all(), out
    # y == 0: the relative term is 0 (0 * inf is not NaN), so closeness is by atol only
    torch.testing.assert_close(out[:4], torch.tensor([1.0, 1.0, 0.0, 1.0]))
    # infinities are close only to themselves (as in torch.isclose)
    torch.testing.assert_close(out[4:], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(st.eq(x, y, mode=mode)[4:], torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("softness", [1e-6, 0.1])
def test_isclose_half_precision_finite_gradients(dtype: torch.dtype, softness: float) -> None:
    x = torch.tensor([0.0, 1e-3, 1.0, -2.0], dtype=dtype, requires_grad=True)
    y = torch.zeros(4, dtype=dtype, requires_grad=True)
    out = st.isclose(x, y, softness=softness)
    assert out.dtype == dtype
    gx, gy = torch.autograd.grad(out.float().sum(), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all(), (gx, gy)
    ref = st.isclose(x.detach().float(), y.detach().float(), softness=softness).to(dtype)
    assert torch.equal(out.detach(), ref)
