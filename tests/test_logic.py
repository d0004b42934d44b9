"""Fuzzy logic on SoftBools and the soft ``where``.

Parity with torch on 0/1 inputs, broadcasting and dtype promotion, gradcheck (product and
geometric-mean variants, ``where`` w.r.t. condition, x and y, ``all``/``any`` along dims), and the
NaN/inf safety of ``where`` with a 0/1 condition.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st
from conftest import FLOAT_DTYPES, SHAPES

BINARY_OPS = {
    "logical_and": (st.logical_and, torch.logical_and),
    "logical_or": (st.logical_or, torch.logical_or),
    "logical_xor": (st.logical_xor, torch.logical_xor),
}
GM = [False, True]


def _bools(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape) > 0.5


def _fuzzy(shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """SoftBools strictly inside (0, 1), away from the ends where the geometric mean is stiff."""
    return (0.05 + 0.9 * torch.rand(shape, dtype=torch.float64)).to(dtype)


def _gm_tol(use_gm: bool) -> float:
    # the geometric mean puts epsilon = 1e-10 inside the log: sqrt(0 * 1) ~ sqrt(1e-10) = 1e-5
    return 2e-5 if use_gm else 0.0


# ----------------------------------------------------------------------------- parity on 0/1


@pytest.mark.parametrize("use_gm", GM, ids=["product", "geometric"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY_OPS))
def test_binary_parity_on_booleans(name: str, shape: tuple[int, ...], use_gm: bool) -> None:
    fn, ref_fn = BINARY_OPS[name]
    a, b = _bools(shape), _bools(shape)
    ref = ref_fn(a, b).to(torch.get_default_dtype())
    for x, y in ((a, b), (a.float(), b.float()), (a.long(), b.long())):
        out = fn(x, y, use_geometric_mean=use_gm)
        assert out.dtype == torch.get_default_dtype() and out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=0.0, atol=_gm_tol(use_gm))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_not_parity(shape: tuple[int, ...]) -> None:
    a = _bools(shape)
    assert torch.equal(st.logical_not(a), torch.logical_not(a).float())
    assert torch.equal(st.logical_not(a.double()), torch.logical_not(a).double())


REDUCE_CASES = [
    ((), -1), ((), 0), ((), None),
    ((5,), -1), ((5,), 0), ((5,), None),
    ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), None),
    ((0,), -1), ((3, 0), -1), ((3, 0), 0),
]


@pytest.mark.parametrize("keepdim", [False, True], ids=["flat", "keepdim"])
@pytest.mark.parametrize("use_gm", GM, ids=["product", "geometric"])
@pytest.mark.parametrize(("shape", "dim"), REDUCE_CASES, ids=str)
def test_all_any_parity_on_booleans(
    shape: tuple[int, ...], dim: int | None, use_gm: bool, keepdim: bool
) -> None:
    a = _bools(shape)
    if (2, 3, 4) == shape:
        a[0] = True  # make sure some reductions are all-true
        a[1, 0] = False
    for soft_fn, ref_fn in ((st.all, torch.all), (st.any, torch.any)):
        out = soft_fn(a.float(), dim=dim, use_geometric_mean=use_gm, keepdim=keepdim)
        if dim is None:
            ref = ref_fn(a)
            if keepdim:
                ref = ref.reshape((1,) * a.ndim)
        else:
            ref = ref_fn(a, dim=dim, keepdim=keepdim)
        assert out.shape == ref.shape, (soft_fn, out.shape, ref.shape)
        if not use_gm:
            assert torch.equal(out, ref.float())
        else:
            # epsilon inside the log: one false among n gives about 1e-10 ** (1 / n), so only
            # the side of 1/2 matches torch; all-true (all) / all-false (any) rows are exact
            assert torch.equal(out.round(), ref.float())
            exact = ref if soft_fn is st.all else ~ref
            torch.testing.assert_close(out[exact], ref[exact].float(), rtol=0.0, atol=1e-6)


def test_geometric_mean_epsilon_convention() -> None:
    a = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    expected = torch.tensor([1e-10 ** 0.25, 0.5], dtype=torch.float64)
    torch.testing.assert_close(st.all(a, use_geometric_mean=True), expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(
        st.any(1 - a, use_geometric_mean=True), 1 - expected, rtol=1e-6, atol=1e-9
    )


def test_all_any_default_dim_is_last() -> None:
    a = _fuzzy((3, 4))
    torch.testing.assert_close(st.all(a), a.prod(dim=-1))
    torch.testing.assert_close(st.any(a), 1 - (1 - a).prod(dim=-1))
    torch.testing.assert_close(st.all(a, use_geometric_mean=True), a.log().mean(-1).exp())


@pytest.mark.parametrize("name", list(BINARY_OPS))
def test_broadcasting_and_promotion(name: str) -> None:
    fn = BINARY_OPS[name][0]
    a = _fuzzy((3, 1), torch.float32)
    b = _fuzzy((4,), torch.float64)
    for gm in GM:
        out = fn(a, b, use_geometric_mean=gm)
        assert out.shape == (3, 4) and out.dtype == torch.float64
        assert fn(a, 0.5, use_geometric_mean=gm).shape == (3, 1)


def test_formulas() -> None:
    a, b = _fuzzy((20,)), _fuzzy((20,))
    torch.testing.assert_close(st.logical_and(a, b), a * b)
    torch.testing.assert_close(st.logical_and(a, b, use_geometric_mean=True), (a * b).sqrt())
    torch.testing.assert_close(st.logical_or(a, b), 1 - (1 - a) * (1 - b))
    torch.testing.assert_close(st.logical_not(a), 1 - a)
    xor = st.logical_or(st.logical_and(a, 1 - b), st.logical_and(1 - a, b))
    torch.testing.assert_close(st.logical_xor(a, b), xor)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_outputs_in_unit_interval_and_dtype(dtype: torch.dtype) -> None:
    vals = torch.tensor([0.0, 1e-12, 0.3, 0.5, 1 - 1e-7, 1.0], dtype=dtype)
    a, b = vals.repeat_interleave(6), vals.repeat(6)
    outs = [st.logical_not(a)]
    for gm in GM:
        outs += [fn(a, b, use_geometric_mean=gm) for fn, _ in BINARY_OPS.values()]
        outs += [st.all(a.reshape(6, 6), use_geometric_mean=gm)]
        outs += [st.any(a.reshape(6, 6), use_geometric_mean=gm)]
    for out in outs:
        assert out.dtype == dtype
        assert torch.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()


# ----------------------------------------------------------------------------- gradcheck


def _gradcheck(fn, *inputs: torch.Tensor) -> None:  # noqa: ANN001
    assert gradcheck(fn, inputs, eps=1e-7, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("use_gm", GM, ids=["product", "geometric"])
@pytest.mark.parametrize("name", list(BINARY_OPS))
def test_gradcheck_binary(name: str, use_gm: bool) -> None:
    fn = BINARY_OPS[name][0]
    a = _fuzzy((3, 1)).requires_grad_()
    b = _fuzzy((4,)).requires_grad_()
    _gradcheck(lambda x, y: fn(x, y, use_geometric_mean=use_gm), a, b)


def test_gradcheck_not() -> None:
    _gradcheck(st.logical_not, _fuzzy((6,)).requires_grad_())


@pytest.mark.parametrize("use_gm", GM, ids=["product", "geometric"])
@pytest.mark.parametrize("dim", [0, 1, -1, None])
@pytest.mark.parametrize("op", ["all", "any"])
def test_gradcheck_reductions(op: str, dim: int | None, use_gm: bool) -> None:
    fn = getattr(st, op)
    a = _fuzzy((2, 3, 4)).requires_grad_()
    _gradcheck(lambda x: fn(x, dim=dim, use_geometric_mean=use_gm), a)
    _gradcheck(lambda x: fn(x, dim=dim, use_geometric_mean=use_gm, keepdim=True), a)


def test_gradcheck_where() -> None:
    c = _fuzzy((3, 1)).requires_grad_()
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    _gradcheck(st.where, c, x, y)
    c01 = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    _gradcheck(st.where, c01, x, y)  # the ends of [0, 1] are differentiable too


# ----------------------------------------------------------------------------- where


def test_where_matches_torch_on_boolean_condition() -> None:
    cond = torch.rand(3, 4) > 0.5
    x, y = torch.randn(3, 4), torch.randn(4)
    for c in (cond, cond.float(), cond.double(), cond.long()):
        out = st.where(c, x, y)
        assert torch.equal(out.float(), torch.where(cond, x, y))


def test_where_formula_and_broadcasting() -> None:
    c = _fuzzy((3, 1), torch.float32)
    x = torch.randn(4, dtype=torch.float64)
    out = st.where(c, x, 2.0)
    assert out.shape == (3, 4) and out.dtype == torch.float64
    torch.testing.assert_close(out, c.double() * x + (1 - c.double()) * 2.0)
    assert st.where(c, 1.0, 0.0).shape == (3, 1)


NONFINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
def test_where_zero_one_condition_ignores_unselected_nonfinite(
    bad: float, dtype: torch.dtype
) -> None:
    x = torch.tensor([1.0, -2.0, 3.0], dtype=dtype)
    b = torch.full((3,), bad, dtype=dtype)
    ones, zeros = torch.ones(3, dtype=dtype), torch.zeros(3, dtype=dtype)
    assert torch.equal(st.where(ones, x, b), x)
    assert torch.equal(st.where(zeros, b, x), x)
    assert torch.equal(st.where(1.0, x, bad), x)
    assert torch.equal(st.where(0, bad, x), x)
    # mixed: reproduces torch.where exactly, non-finite values in the selected branch included
    cond = torch.tensor([True, False, True])
    xs = torch.tensor([bad, 5.0, 7.0], dtype=dtype)
    ys = torch.tensor([0.5, bad, bad], dtype=dtype)
    torch.testing.assert_close(
        st.where(cond.to(dtype), xs, ys), torch.where(cond, xs, ys), rtol=0, atol=0, equal_nan=True
    )
    # a fractional weight does mix the values in
    assert not torch.isfinite(st.where(torch.full((3,), 0.5, dtype=dtype), x, b)).any()


@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
def test_where_gradients_with_unselected_nonfinite(bad: float) -> None:
    c = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, bad, 3.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([bad, 2.0, bad], dtype=torch.float64, requires_grad=True)
    out = st.where(c, x, y)
    assert torch.equal(out.detach(), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    gc, gx, gy = torch.autograd.grad(out.sum(), (c, x, y))
    for g in (gc, gx, gy):
        assert torch.isfinite(g).all(), g
    assert torch.equal(gx, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
    assert torch.equal(gy, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))


def test_where_condition_gradient_is_x_minus_y() -> None:
    x = torch.randn(6, dtype=torch.float64)
    y = torch.randn(6, dtype=torch.float64)
    for c0 in (torch.zeros(6), torch.ones(6), torch.rand(6), (torch.rand(6) > 0.5).float()):
        c = c0.double().requires_grad_()
        (g,) = torch.autograd.grad(st.where(c, x, y).sum(), c)
        torch.testing.assert_close(g, x - y)


# issue 17: geometric-mean logic ops compute in float32 for half-precision inputs
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", ["and", "or", "xor", "all", "any"])
def test_geometric_mean_half_precision_finite_gradients(dtype: torch.dtype, op: str) -> None:
    fns = {
        "and": lambda a, b: st.logical_and(a, b, use_geometric_mean=True),
        "or": lambda a, b: st.logical_or(a, b, use_geometric_mean=True),
        "xor": lambda a, b: st.logical_xor(a, b, use_geometric_mean=True),
        "all": lambda a, b: st.all(torch.stack([a, b]), 0, use_geometric_mean=True),
        "any": lambda a, b: st.any(torch.stack([a, b]), 0, use_geometric_mean=True),
    }
    a = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype, requires_grad=True)
    b = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.5], dtype=dtype, requires_grad=True)
    out = fns[op](a, b)
    assert out.dtype == dtype
    ref = fns[op](a.detach().float(), b.detach().float()).to(dtype)
    assert torch.equal(out.detach(), ref)
    ga, gb = torch.autograd.grad(out.float().sum(), (a, b))
    assert torch.isfinite(ga).all() and torch.isfinite(gb).all(), (ga, gb)
