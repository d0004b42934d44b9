"""Bad input gets a clear error that says what to change; NaN inputs propagate, never crash."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import softtorch as st
from conftest import SOFT_MODES

Fn = Callable[..., torch.Tensor]

X = torch.tensor([-0.7, 0.0, 0.4, 1.2])
Y = torch.tensor([0.1, 0.0, -0.2, 1.2])

#: name -> fn(x, softness, mode) for every function that takes mode and softness
MODE_FNS: dict[str, Fn] = {
    "heaviside": lambda x, s, m: st.heaviside(x, s, m),
    "sign": lambda x, s, m: st.sign(x, s, m),
    "abs": lambda x, s, m: st.abs(x, s, m),
    "relu": lambda x, s, m: st.relu(x, s, m),
    "relu_gated": lambda x, s, m: st.relu(x, s, m, gated=True),
    "clamp": lambda x, s, m: st.clamp(x, -0.5, 0.5, s, m),
    "clamp_tensor": lambda x, s, m: st.clamp(x, torch.tensor(-0.5), torch.tensor(0.5), s, m),
    "round": lambda x, s, m: st.round(x, s, m),
    "greater": lambda x, s, m: st.greater(x, Y, s, m),
    "greater_equal": lambda x, s, m: st.greater_equal(x, Y, s, m),
    "less": lambda x, s, m: st.less(x, Y, s, m),
    "less_equal": lambda x, s, m: st.less_equal(x, Y, s, m),
    "eq": lambda x, s, m: st.eq(x, Y, s, m),
    "not_equal": lambda x, s, m: st.not_equal(x, Y, s, m),
    "isclose": lambda x, s, m: st.isclose(x, Y, s, mode=m),
    "relu_st": lambda x, s, m: st.relu_st(x, s, m),
    "round_st": lambda x, s, m: st.round_st(x, s, m),
    "greater_st": lambda x, s, m: st.greater_st(x, Y, s, m),
    "isclose_st": lambda x, s, m: st.isclose_st(x, Y, s, mode=m),
}
KERNELS: dict[str, Fn] = {
    "sigmoidal": lambda x, s, m: st.sigmoidal(x, s, m),
    "softrelu": lambda x, s, m: st.softrelu(x, s, m),
}


@pytest.mark.parametrize("name", list(MODE_FNS))
@pytest.mark.parametrize("bad", ["soft", "C1", "", "_c3_pnorm", "_hard", None, 1])
def test_unknown_mode_lists_valid_modes(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match="valid modes are") as info:
        MODE_FNS[name](X, 0.1, bad)
    msg = str(info.value)
    for mode in ("'hard'", "'smooth'", "'c0'", "'c1'", "'c2'"):
        assert mode in msg
    assert repr(bad) in msg


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_unknown_mode_lists_its_modes(name: str) -> None:
    with pytest.raises(ValueError, match="valid modes are") as info:
        KERNELS[name](X, 0.1, "hard")  # the kernels have no hard mode
    for mode in ("'smooth'", "'c0'", "'c1'", "'_c1_pnorm'", "'c2'", "'_c2_pnorm'"):
        assert mode in str(info.value)


BAD_SOFTNESS = [0.0, -0.1, -1e-30, float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("name", list(MODE_FNS) + list(KERNELS))
@pytest.mark.parametrize("softness", BAD_SOFTNESS, ids=str)
def test_bad_softness_value_error(name: str, softness: float) -> None:
    fn = {**MODE_FNS, **KERNELS}[name]
    with pytest.raises(ValueError, match="softness must be a finite number > 0"):
        fn(X, softness, "smooth")
    with pytest.raises(ValueError, match="softness must be a finite number > 0"):
        fn(X, torch.tensor(softness), "c1")


def test_bad_softness_in_hard_mode_too() -> None:
    with pytest.raises(ValueError, match="softness"):
        st.relu(X, 0.0, "hard")


@pytest.mark.parametrize("softness", ["0.1", None, [0.1], True])
def test_softness_wrong_type(softness: object) -> None:
    with pytest.raises(TypeError, match="softness must be a float"):
        st.heaviside(X, softness)  # type: ignore[arg-type]


def test_softness_tensor_must_be_scalar() -> None:
    with pytest.raises(ValueError, match="softness must be a scalar"):
        st.sign(X, torch.tensor([0.1, 0.2]))
    assert st.sign(X, torch.tensor([0.1])).shape == X.shape  # a 1-element tensor is fine


COMPLEX_CALLS: dict[str, Callable[[], object]] = {
    "heaviside": lambda: st.heaviside(X.to(torch.complex64)),
    "sign_hard": lambda: st.sign(X.to(torch.complex64), mode="hard"),
    "abs": lambda: st.abs(X.to(torch.complex128)),
    "relu": lambda: st.relu(X.to(torch.complex64)),
    "round": lambda: st.round(X.to(torch.complex64)),
    "clamp_x": lambda: st.clamp(X.to(torch.complex64), -0.5, 0.5),
    "clamp_bound": lambda: st.clamp(X, torch.tensor(-0.5 + 0j), 0.5),
    "clamp_bound_hard": lambda: st.clamp(X, None, torch.tensor(0.5 + 0j), mode="hard"),
    "sigmoidal": lambda: st.sigmoidal(X.to(torch.complex64)),
    "softrelu": lambda: st.softrelu(X.to(torch.complex64)),
    "greater_x": lambda: st.greater(X.to(torch.complex64), Y),
    "less_y": lambda: st.less(X, Y.to(torch.complex64)),
    "eq_scalar": lambda: st.eq(X, 1j),
    "isclose": lambda: st.isclose(X.to(torch.complex64), Y),
    "heaviside_scalar": lambda: st.heaviside(0.5 + 1j),
    "logical_and": lambda: st.logical_and(X.to(torch.complex64), Y),
    "logical_not": lambda: st.logical_not(X.to(torch.complex64)),
    "all": lambda: st.all(X.to(torch.complex64)),
    "any": lambda: st.any(X.to(torch.complex64)),
    "where_cond": lambda: st.where(X.to(torch.complex64), X, Y),
    "where_x": lambda: st.where(X, X.to(torch.complex64), Y),
    "relu_st": lambda: st.relu_st(X.to(torch.complex64)),
    "greater_st": lambda: st.greater_st(X.to(torch.complex64), Y),
}


@pytest.mark.parametrize("name", list(COMPLEX_CALLS))
def test_complex_input_type_error(name: str) -> None:
    with pytest.raises(TypeError, match="real"):
        COMPLEX_CALLS[name]()


def test_complex_message_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"pass y\.real or y\.abs\(\)"):
        st.greater(X, Y.to(torch.complex64))


BROADCAST_CALLS: dict[str, Callable[[str], object]] = {
    "greater": lambda m: st.greater(torch.ones(3), torch.ones(4), mode=m),
    "less_equal": lambda m: st.less_equal(torch.ones(2, 3), torch.ones(4), mode=m),
    "eq": lambda m: st.eq(torch.ones(3), torch.ones(4), mode=m),
    "not_equal": lambda m: st.not_equal(torch.ones(3), torch.ones(4), mode=m),
    "isclose": lambda m: st.isclose(torch.ones(3), torch.ones(4), mode=m),
    "clamp": lambda m: st.clamp(torch.ones(3), torch.zeros(4), torch.ones(4), mode=m),
    "clamp_one_sided": lambda m: st.clamp(torch.ones(3), None, torch.ones(4), mode=m),
    "greater_st": lambda m: st.greater_st(torch.ones(3), torch.ones(4), mode=m),
}


@pytest.mark.parametrize("mode", ["hard", *SOFT_MODES])
@pytest.mark.parametrize("name", list(BROADCAST_CALLS))
def test_non_broadcastable_shapes_runtime_error(name: str, mode: str) -> None:
    with pytest.raises(RuntimeError, match="size"):
        BROADCAST_CALLS[name](mode)


@pytest.mark.parametrize(
    "call",
    [
        lambda: st.logical_and(torch.ones(3), torch.ones(4)),
        lambda: st.logical_and(torch.ones(3), torch.ones(4), use_geometric_mean=True),
        lambda: st.logical_or(torch.ones(3), torch.ones(4)),
        lambda: st.logical_xor(torch.ones(3), torch.ones(4), use_geometric_mean=True),
        lambda: st.where(torch.ones(3), torch.ones(4), 0.0),
        lambda: st.where(torch.ones(3), 1.0, torch.ones(2, 4)),
    ],
    ids=["and", "and_gm", "or", "xor_gm", "where_x", "where_y"],
)
def test_logic_non_broadcastable_runtime_error(call: Callable[[], object]) -> None:
    with pytest.raises(RuntimeError, match="size"):
        call()


@pytest.mark.parametrize("radius", [0, -1])
def test_neighbor_radius_below_one(radius: int) -> None:
    with pytest.raises(ValueError, match="neighbor_radius must be >= 1"):
        st.round(X, neighbor_radius=radius)
    with pytest.raises(ValueError, match="neighbor_radius must be >= 1"):
        st.round_st(X, neighbor_radius=radius)


@pytest.mark.parametrize("radius", [1.5, "2", True])
def test_neighbor_radius_wrong_type(radius: object) -> None:
    with pytest.raises(TypeError, match="neighbor_radius must be an int"):
        st.round(X, neighbor_radius=radius)  # type: ignore[arg-type]


def test_clamp_without_bounds() -> None:
    for mode in ("hard", "c1"):
        with pytest.raises(ValueError, match="at least one of the bounds"):
            st.clamp(X, mode=mode)


@pytest.mark.parametrize(("rtol", "atol"), [(-1e-5, 1e-8), (1e-5, -1.0)])
def test_isclose_negative_tolerance(rtol: float, atol: float) -> None:
    with pytest.raises(ValueError, match="must be greater than or equal to zero"):
        st.isclose(X, Y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("op", ["all", "any"])
def test_bad_dim(op: str) -> None:
    fn = getattr(st, op)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(torch.ones(2, 3), dim=2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(torch.ones(2, 3), dim=-3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        fn(torch.tensor(0.5), dim=1)
    with pytest.raises(TypeError, match="dim must be an int"):
        fn(torch.ones(2, 3), dim=1.0)
    # the same range torch accepts
    for d in (-2, -1, 0, 1):
        fn(torch.ones(2, 3), dim=d)
    fn(torch.tensor(0.5), dim=-1)
    fn(torch.tensor(0.5), dim=0)


def test_st_rejects_bad_mode_and_softness() -> None:
    with pytest.raises(ValueError, match="valid modes are"):
        st.sign_st(X, mode="hardest")
    with pytest.raises(ValueError, match="softness"):
        st.abs_st(X, softness=-1.0)


# ----------------------------------------------------------------------------- NaN propagation

NAN_X = torch.tensor([float("nan"), -1.0, float("nan"), 0.3])


@pytest.mark.parametrize("mode", ["hard", *SOFT_MODES])
@pytest.mark.parametrize("name", list(MODE_FNS))
def test_nan_inputs_propagate(name: str, mode: str) -> None:
    fn = MODE_FNS[name]
    x = NAN_X.clone()
    out = fn(x, 0.1, mode)
    if mode == "hard" or name.endswith("_st"):
        # hard values (also the straight-through forward) are torch's: sign(nan) = 0,
        # comparisons with nan are False, ... (parity is tested in test_elementwise/comparison)
        torch.testing.assert_close(out, fn(x, 0.1, "hard"), equal_nan=True)
        return
    assert torch.isnan(out[[0, 2]]).all(), out
    assert not torch.isnan(out[[1, 3]]).any(), out


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_nan_inputs_in_y_and_bounds(mode: str) -> None:
    y = torch.tensor([float("nan"), 0.0])
    x = torch.tensor([0.5, 0.5])
    for fn in (st.greater, st.less_equal, st.eq, st.not_equal, st.isclose):
        out = fn(x, y, mode=mode)
        assert math.isnan(out[0]) and not math.isnan(out[1])
    out = st.clamp(x, torch.tensor([float("nan"), -1.0]), 1.0, mode=mode)
    assert math.isnan(out[0]) and not math.isnan(out[1])


def test_nan_in_logic_and_where() -> None:
    a = torch.tensor([float("nan"), 0.5])
    for out in (
        st.logical_not(a),
        st.logical_and(a, 0.5),
        st.logical_or(a, 0.5, use_geometric_mean=True),
        st.logical_xor(a, 0.5),
        st.where(a, 1.0, 0.0),
    ):
        assert math.isnan(out[0]) and not math.isnan(out[1])
    assert math.isnan(st.all(a, dim=0)) and math.isnan(st.any(a, dim=0, use_geometric_mean=True))


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_nan_input_gradient_does_not_crash(mode: str) -> None:
    x = NAN_X.clone().requires_grad_()
    for fn in MODE_FNS.values():
        (g,) = torch.autograd.grad(fn(x, 0.1, mode).sum(), x)
        assert not torch.isnan(g[[1, 3]]).any()
