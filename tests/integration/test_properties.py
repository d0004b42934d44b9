"""Property-based tests (hypothesis, profile "ci" from conftest.py).

SoftBools stay in [0, 1]; sigmoidal / heaviside are monotone in x; soft -> hard as softness -> 0;
straight-through forward == hard exactly and its gradient == the soft function's gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import assume, given
from hypothesis import strategies as hs

import softtorch as st
from conftest import SOFT_MODES

Fn = Callable[..., torch.Tensor]

modes = hs.sampled_from(SOFT_MODES)
dtypes = hs.sampled_from([torch.float32, torch.float64])
#: log-uniform softness in [1e-6, 1e4]
softnesses = hs.floats(min_value=-6.0, max_value=4.0).map(lambda e: float(10.0**e))
finite = hs.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)
unit = hs.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _vec(elements: hs.SearchStrategy[float], n_max: int = 8) -> hs.SearchStrategy[list[float]]:
    return hs.lists(elements, min_size=1, max_size=n_max)


@hs.composite
def pairs(draw: hs.DrawFn, elements: hs.SearchStrategy[float] = finite) -> tuple[list, list]:
    n = draw(hs.integers(min_value=1, max_value=8))
    return draw(hs.lists(elements, min_size=n, max_size=n)), draw(
        hs.lists(elements, min_size=n, max_size=n)
    )


COMPARISONS: dict[str, tuple[Fn, Fn]] = {
    "greater": (st.greater, st.greater_st),
    "greater_equal": (st.greater_equal, st.greater_equal_st),
    "less": (st.less, st.less_st),
    "less_equal": (st.less_equal, st.less_equal_st),
    "eq": (st.eq, st.eq_st),
    "not_equal": (st.not_equal, st.not_equal_st),
    "isclose": (st.isclose, st.isclose_st),
}
UNARY: dict[str, tuple[Fn, Fn]] = {
    "heaviside": (st.heaviside, st.heaviside_st),
    "sign": (st.sign, st.sign_st),
    "abs": (st.abs, st.abs_st),
    "relu": (st.relu, st.relu_st),
    "round": (st.round, st.round_st),
    "clamp": (
        lambda x, softness=0.1, mode="smooth": st.clamp(x, -0.5, 2.0, softness, mode),
        lambda x, softness=0.1, mode="smooth": st.clamp_st(x, -0.5, 2.0, softness, mode),
    ),
}


def _in_unit(t: torch.Tensor) -> bool:
    return bool(((t >= 0) & (t <= 1)).all())


# ----------------------------------------------------------------------------- SoftBool range


@given(xy=pairs(), softness=softnesses, mode=modes, dtype=dtypes)
def test_comparisons_in_unit_interval(xy, softness, mode, dtype) -> None:  # noqa: ANN001
    x, y = (torch.tensor(v, dtype=dtype) for v in xy)
    for name, (fn, _) in COMPARISONS.items():
        out = fn(x, y, softness=softness, mode=mode)
        assert out.dtype == dtype
        assert torch.isfinite(out).all() and _in_unit(out), (name, out)


@given(ab=pairs(unit), gm=hs.booleans(), dtype=dtypes)
def test_logic_in_unit_interval(ab, gm, dtype) -> None:  # noqa: ANN001
    a, b = (torch.tensor(v, dtype=dtype) for v in ab)
    outs = [
        st.logical_not(a),
        st.logical_and(a, b, use_geometric_mean=gm),
        st.logical_or(a, b, use_geometric_mean=gm),
        st.logical_xor(a, b, use_geometric_mean=gm),
        st.all(a, use_geometric_mean=gm),
        st.any(a, use_geometric_mean=gm),
        st.all(torch.stack([a, b]), dim=0, use_geometric_mean=gm),
        st.any(torch.stack([a, b]), dim=0, use_geometric_mean=gm),
        st.where(a, b, 1.0 - b),
    ]
    for out in outs:
        assert torch.isfinite(out).all() and _in_unit(out), out


@given(ab=pairs(unit))
def test_logic_order_relations(ab) -> None:  # noqa: ANN001
    a, b = (torch.tensor(v, dtype=torch.float64) for v in ab)
    tol = 1e-12
    land, lor = st.logical_and(a, b), st.logical_or(a, b)
    assert (land <= torch.minimum(a, b) + tol).all()
    assert (lor >= torch.maximum(a, b) - tol).all()
    torch.testing.assert_close(st.logical_not(land), st.logical_or(1 - a, 1 - b))  # De Morgan
    g = st.logical_and(a, b, use_geometric_mean=True)
    assert (g >= torch.minimum(a, b) - 1e-4).all() and (g <= torch.maximum(a, b) + tol).all()
    assert float(st.all(a)) <= float(a.min()) + tol
    assert float(st.any(a)) >= float(a.max()) - tol


# ----------------------------------------------------------------------------- monotonicity


@given(xs=_vec(finite, 16), softness=softnesses, mode=modes, dtype=dtypes)
def test_sigmoidal_and_heaviside_monotone(xs, softness, mode, dtype) -> None:  # noqa: ANN001
    x = torch.tensor(sorted(xs), dtype=dtype)
    tol = 4 * torch.finfo(dtype).eps
    for out in (st.sigmoidal(x, softness, mode), st.heaviside(x, softness, mode)):
        assert (out.diff() >= -tol).all(), out
        assert _in_unit(out)
    for out in (st.sign(x, softness, mode), st.relu(x, softness, mode)):
        assert (out.diff() >= -tol * out.abs().max().clamp_min(1)).all(), out


@given(x=finite, softness=softnesses, mode=modes)
def test_heaviside_symmetry(x, softness, mode) -> None:  # noqa: ANN001
    t = torch.tensor([x, -x], dtype=torch.float64)
    h = st.heaviside(t, softness, mode)
    assert abs(float(h.sum()) - 1.0) < 1e-12
    s = st.sign(t, softness, mode)
    assert abs(float(s.sum())) < 1e-12


# ----------------------------------------------------------------------------- soft -> hard


@given(x=finite, mode=modes)
def test_soft_error_shrinks_with_softness(x, mode) -> None:  # noqa: ANN001
    kink = min(abs(x), abs(x + 0.5), abs(x - 2.0))  # relu/sign/abs at 0, the clamp bounds
    assume(kink > 1e-3)
    t = torch.tensor([x], dtype=torch.float64)
    hard = {name: fn(t, mode="hard") for name, (fn, _) in UNARY.items() if name != "round"}
    prev = {name: float("inf") for name in hard}
    for softness in (10.0, 1.0, 0.1, 1e-2, 1e-3, 1e-4):
        for name, h in hard.items():
            err = float((UNARY[name][0](t, softness=softness, mode=mode) - h).abs())
            slack = 1e-12 * max(1.0, abs(x))  # rounding of x / s * s at large |x|
            assert err <= prev[name] + slack, (name, softness, err, prev[name])
            prev[name] = err
    tiny = min(kink, 2.5) / 1000  # far inside the hard regime
    for name, h in hard.items():
        out = UNARY[name][0](t, softness=tiny, mode=mode)
        torch.testing.assert_close(out, h, rtol=1e-6, atol=1e-6)


@given(x=hs.floats(min_value=-50.0, max_value=50.0, allow_nan=False), mode=modes)
def test_soft_round_tends_to_round(x, mode) -> None:  # noqa: ANN001
    margin = abs((x - 0.5) - round(x - 0.5))  # distance to the nearest half-integer
    assume(margin > 1e-3)
    t = torch.tensor([x], dtype=torch.float64)
    out = st.round(t, margin / 1000, mode)
    torch.testing.assert_close(out, torch.round(t), rtol=0.0, atol=1e-6)


@given(xy=pairs(hs.floats(min_value=-1e3, max_value=1e3, allow_nan=False)), mode=modes)
def test_comparisons_tend_to_hard(xy, mode) -> None:  # noqa: ANN001
    x, y = (torch.tensor(v, dtype=torch.float64) for v in xy)
    gap = float((x - y).abs().min())
    assume(gap > 1e-3)
    for name, (fn, _) in COMPARISONS.items():
        out = fn(x, y, softness=gap / 1000, mode=mode)
        assert torch.allclose(out, fn(x, y, mode="hard"), rtol=0.0, atol=1e-6), (name, out)


# ----------------------------------------------------------------------------- straight-through


@given(xs=_vec(finite), softness=softnesses, mode=modes, dtype=dtypes)
def test_unary_st_forward_is_hard_and_grad_is_soft(xs, softness, mode, dtype) -> None:  # noqa: ANN001
    x = torch.tensor(xs, dtype=dtype, requires_grad=True)
    for name, (soft_fn, st_fn) in UNARY.items():
        out = st_fn(x, softness=softness, mode=mode)
        assert torch.equal(out, soft_fn(x.detach(), mode="hard")), name
        (g_st,) = torch.autograd.grad(out.sum(), x)
        (g_soft,) = torch.autograd.grad(soft_fn(x, softness=softness, mode=mode).sum(), x)
        assert torch.equal(g_st, g_soft), name


@given(xy=pairs(), softness=softnesses, mode=modes, dtype=dtypes)
def test_comparison_st_forward_is_hard_and_grad_is_soft(xy, softness, mode, dtype) -> None:  # noqa: ANN001
    x, y = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in xy)
    for name, (soft_fn, st_fn) in COMPARISONS.items():
        out = st_fn(x, y, softness=softness, mode=mode)
        assert torch.equal(out, soft_fn(x.detach(), y.detach(), mode="hard")), name
        g_st = torch.autograd.grad(out.sum(), (x, y))
        g_soft = torch.autograd.grad(soft_fn(x, y, softness=softness, mode=mode).sum(), (x, y))
        for a, b in zip(g_st, g_soft):
            assert torch.equal(a, b), name
