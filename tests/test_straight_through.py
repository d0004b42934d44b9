"""Straight-through estimators: hard values forward, the soft relaxation's gradient backward."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

import pytest
import torch

import softtorch as st
from conftest import SOFT_MODES

Fn = Callable[..., torch.Tensor]

ST_NAMES = [
    "abs_st", "clamp_st", "heaviside_st", "relu_st", "round_st", "sign_st", "greater_st",
    "greater_equal_st", "less_st", "less_equal_st", "eq_st", "equal_st", "not_equal_st",
    "isclose_st",
]

#: name -> (straight-through fn, soft fn, extra positional args after x)
UNARY = {
    "abs": (st.abs_st, st.abs),
    "heaviside": (st.heaviside_st, st.heaviside),
    "relu": (st.relu_st, st.relu),
    "round": (st.round_st, st.round),
    "sign": (st.sign_st, st.sign),
}
BINARY = {
    "greater": (st.greater_st, st.greater),
    "greater_equal": (st.greater_equal_st, st.greater_equal),
    "less": (st.less_st, st.less),
    "less_equal": (st.less_equal_st, st.less_equal),
    "eq": (st.eq_st, st.eq),
    "equal": (st.equal_st, st.eq),
    "not_equal": (st.not_equal_st, st.not_equal),
    "isclose": (st.isclose_st, st.isclose),
}


def _x() -> torch.Tensor:
    return torch.tensor([-1.3, -0.2, -0.04, 0.0, 0.03, 0.5, 0.61, 1.0, 2.2], dtype=torch.float64)


def _grad(out: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return torch.autograd.grad((out * w).sum(), inputs, allow_unused=True)


def test_all_names_exported() -> None:
    for name in ST_NAMES:
        fn = getattr(st, name)
        assert callable(fn), name
    assert st.equal_st is st.eq_st
    assert st.relu_st.__name__ == "relu_st"
    assert "relu" in (st.relu_st.__doc__ or "")


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_forward_hard_backward_soft(name: str, mode: str) -> None:
    st_fn, soft_fn = UNARY[name]
    s = 0.3
    x = _x().requires_grad_()
    out = st_fn(x, softness=s, mode=mode)
    assert torch.equal(out, soft_fn(x.detach(), mode="hard"))
    (g_st,) = _grad(out, x)
    (g_soft,) = _grad(soft_fn(x, softness=s, mode=mode), x)
    assert torch.equal(g_st, g_soft)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_forward_hard_backward_soft(name: str, mode: str) -> None:
    st_fn, soft_fn = BINARY[name]
    s = 0.3
    x = _x().requires_grad_()
    y = torch.tensor(0.03, dtype=torch.float64, requires_grad=True)
    out = st_fn(x, y, softness=s, mode=mode)
    assert torch.equal(out, soft_fn(x.detach(), y.detach(), mode="hard"))
    g_st = _grad(out, x, y)
    g_soft = _grad(soft_fn(x, y, softness=s, mode=mode), x, y)
    for a, b in zip(g_st, g_soft):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_mode_and_softness_passed_positionally(mode: str) -> None:
    x = _x().requires_grad_()
    for s in (0.05, 0.7):
        out = st.relu_st(x, s, mode)
        assert torch.equal(out, torch.relu(x.detach()))
        (g_st,) = _grad(out, x)
        (g_soft,) = _grad(st.relu(x, s, mode), x)
        assert torch.equal(g_st, g_soft)
    y = torch.zeros((), dtype=torch.float64)
    (g_st,) = _grad(st.greater_st(x, y, 0.2, mode), x)
    (g_soft,) = _grad(st.greater(x, y, 0.2, mode), x)
    assert torch.equal(g_st, g_soft)
    (g_st,) = _grad(st.round_st(x, 0.2, mode, 2), x)
    (g_soft,) = _grad(st.round(x, 0.2, mode, neighbor_radius=2), x)
    assert torch.equal(g_st, g_soft)


def test_softness_changes_the_backward_only() -> None:
    x = _x().requires_grad_()
    a, b = st.sign_st(x, softness=0.1), st.sign_st(x, softness=1.0)
    assert torch.equal(a, b)
    assert not torch.equal(_grad(a, x)[0], _grad(b, x)[0])


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_clamp_st_tensor_bounds_and_keywords(mode: str) -> None:
    x = _x().requires_grad_()
    lo = torch.tensor(-0.3, dtype=torch.float64, requires_grad=True)
    hi = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    out = st.clamp_st(x, lo, hi, softness=0.2, mode=mode, gated=True)
    assert torch.equal(out, torch.clamp(x.detach(), lo.detach(), hi.detach()))
    g_st = _grad(out, x, lo, hi)
    g_soft = _grad(st.clamp(x, lo, hi, 0.2, mode, gated=True), x, lo, hi)
    for a, b in zip(g_st, g_soft):
        assert torch.equal(a, b)
    assert torch.equal(st.clamp_st(x, b=0.5, mode=mode), torch.clamp(x.detach(), max=0.5))


def test_isclose_st_keywords() -> None:
    x = _x().requires_grad_()
    y = torch.zeros(9, dtype=torch.float64)
    out = st.isclose_st(x, y, 0.1, rtol=0.0, atol=0.5, mode="c1")
    assert torch.equal(out, torch.isclose(x.detach(), y, rtol=0.0, atol=0.5).double())
    (g_st,) = _grad(out, x)
    (g_soft,) = _grad(st.isclose(x, y, 0.1, rtol=0.0, atol=0.5, mode="c1"), x)
    assert torch.equal(g_st, g_soft)


def test_hard_mode_is_plain_hard_function() -> None:
    x = _x().requires_grad_()
    out = st.relu_st(x, mode="hard")
    assert torch.equal(out, torch.relu(x.detach()))
    (g,) = _grad(out, x)
    (g_ref,) = _grad(torch.relu(x), x)
    assert torch.equal(g, g_ref)


def test_no_grad_inputs_give_hard_values_and_dtypes() -> None:
    x = _x().float()
    out = st.heaviside_st(x)
    assert torch.equal(out, torch.heaviside(x, torch.tensor(0.5)))
    assert not out.requires_grad and out.dtype == torch.float32
    y = torch.tensor([0.2, -0.5, 0.5, -1.0])
    assert st.greater_st(x[:4], y).dtype == torch.float32


def test_st_preserves_shapes_empty_and_0d() -> None:
    for shape in ((), (0,), (3, 0), (2, 3)):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        out = st.relu_st(x)
        assert out.shape == x.shape
        if x.numel():
            (g,) = _grad(out, x)
            assert g.shape == x.shape


# ----------------------------------------------------------------------------- st / grad_replace


def _custom(x: torch.Tensor, scale: float = 2.0, mode: str = "smooth") -> torch.Tensor:
    return torch.floor(x) * scale if mode == "hard" else x * scale * 3.0


def test_st_on_custom_function() -> None:
    f = st.st(_custom)
    assert f.__name__ == "_custom_st"
    x = torch.tensor([0.4, 1.7, -2.2], requires_grad=True)
    out = f(x, 2.0, "c2")
    assert torch.equal(out, torch.floor(x.detach()) * 2.0)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(g, torch.full_like(x, 6.0))
    (g,) = torch.autograd.grad(f(x, scale=1.0).sum(), x)  # default mode is soft
    assert torch.equal(g, torch.full_like(x, 3.0))


def test_st_requires_mode_parameter() -> None:
    def no_mode(x: torch.Tensor) -> torch.Tensor:
        return x

    with pytest.raises(TypeError, match="mode"):
        st.st(no_mode)


Pair = namedtuple("Pair", ["values", "indices"])


def test_st_structured_outputs() -> None:
    def sorted_pair(x: torch.Tensor, mode: str = "smooth"):  # noqa: ANN202
        if mode == "hard":
            v, i = torch.sort(x)
            return Pair(v, i), torch.return_types.sort((v, i)), (v, None)
        v = x * 0.5
        return Pair(v, None), torch.return_types.sort((v, None)), (v, None)

    x = torch.tensor([3.0, -1.0, 2.0], requires_grad=True)
    nt, rt, tup = st.st(sorted_pair)(x)
    assert isinstance(nt, Pair) and isinstance(rt, torch.return_types.sort)
    assert isinstance(tup, tuple) and tup[1] is None
    hard = torch.sort(x.detach())
    for part in (nt, rt):
        assert torch.equal(part.values, hard.values)
        assert torch.equal(part.indices, hard.indices)
    (g,) = torch.autograd.grad(nt.values.sum() + rt.values.sum() + tup[0].sum(), x)
    assert torch.equal(g, torch.full_like(x, 1.5))


def test_grad_replace_forward_true_and_false() -> None:
    calls: list[bool] = []

    def f(x: torch.Tensor, forward: bool = True) -> torch.Tensor:
        calls.append(forward)
        return torch.sign(x) if forward else torch.tanh(x)

    g = st.grad_replace(f)
    x = torch.tensor([-2.0, -0.1, 0.0, 0.5], requires_grad=True)
    out = g(x)
    assert sorted(calls) == [False, True]
    assert torch.equal(out, torch.sign(x.detach()))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, 1 - torch.tanh(x.detach()) ** 2)
    # an explicit forward= is overridden: both passes always run
    out2 = g(x, forward=False)
    assert torch.equal(out2, torch.sign(x.detach()))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_vmap_and_functional_grad(mode: str) -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    out = torch.func.vmap(lambda r: st.relu_st(r, 0.3, mode))(x)
    assert torch.equal(out, torch.relu(x))
    g = torch.func.grad(lambda r: st.sign_st(r, 0.3, mode).sum())(x)
    (g_ref,) = torch.autograd.grad(st.sign(x.requires_grad_(), 0.3, mode).sum(), x)
    torch.testing.assert_close(g, g_ref)


# ------------------------------------------------------------------------------------------------
# issue 17: st() on functions that receive mode through **kwargs; builtins
# ------------------------------------------------------------------------------------------------


def _kwargs_relu(x: torch.Tensor, **kwargs: object) -> torch.Tensor:
    return st.relu(x, **kwargs)  # type: ignore[arg-type]


def test_st_passes_mode_and_softness_through_kwargs() -> None:
    wrapped = st.st(_kwargs_relu)
    x = torch.tensor([-0.3, -0.05, 0.05, 0.4], dtype=torch.float64, requires_grad=True)
    # default: hard forward, smooth backward (softness: the wrapped function's own default)
    out = wrapped(x)
    assert torch.equal(out.detach(), torch.relu(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    (ref,) = torch.autograd.grad(st.relu(x, mode="smooth").sum(), x)
    torch.testing.assert_close(g, ref)
    # mode= and softness= at call time override
    out = wrapped(x, mode="c1", softness=0.5)
    assert torch.equal(out.detach(), torch.relu(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    (ref,) = torch.autograd.grad(st.relu(x, softness=0.5, mode="c1").sum(), x)
    torch.testing.assert_close(g, ref)
    # mode="hard": one hard call, torch's gradient
    (g,) = torch.autograd.grad(wrapped(x, mode="hard").sum(), x)
    torch.testing.assert_close(g, (x.detach() > 0).double())


def test_st_kwargs_function_records_both_calls() -> None:
    calls: list[object] = []

    def f(x: torch.Tensor, **kw: object) -> torch.Tensor:
        calls.append(kw.get("mode"))
        return st.sign(x, **kw)  # type: ignore[arg-type]

    st.st(f)(torch.ones(2), softness=0.2)
    assert sorted(calls) == ["hard", "smooth"]  # type: ignore[type-var]


@pytest.mark.parametrize(
    "fn", [torch.sigmoid, torch.relu, lambda x: x, lambda x, softness=0.1: x],
    ids=["torch.sigmoid", "torch.relu", "no_mode", "softness_only"],
)
def test_st_without_mode_raises_clear_type_error(fn) -> None:  # noqa: ANN001
    with pytest.raises(TypeError, match="st\\(\\) needs a function that accepts a 'mode'"):
        st.st(fn)


def test_st_docstrings_carry_the_args() -> None:
    for name in ("relu_st", "clamp_st", "greater_st", "isclose_st", "round_st", "abs_st"):
        doc = getattr(st, name).__doc__
        assert "Straight-through" in doc and "Args:" in doc, name
