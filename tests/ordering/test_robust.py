"""Robustness of the ordering ops: finite values and gradients at extreme inputs and softness,
NaN propagation, and a clear error for every kind of bad argument."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch

import softtorch as st

OPTIONAL = ["fast_soft_sort", "ot"]
OWN = ["softsort", "neuralsort", "sorting_network"]
METHODS = [*OWN, *OPTIONAL, "perturbed"]  # perturbed: Monte-Carlo, finite like the others
MODES = ["smooth", "c0", "c1", "c2"]

INPUTS = {
    "ties": torch.tensor([[1.0, 1.0, -2.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]]),
    "n1": torch.tensor([[3.0], [-1e6]]),
    "huge": torch.tensor([[1e6, -1e6, 3.0, 1e6 - 1.0, -5e5], [1e6, 1e6, -1e6, 0.0, 2e5]]),
}
SLOW_INPUTS = {"tiny_spread": torch.tensor([[1.0, 1.0 + 1e-6, 1.0 - 1e-6, 1.0 + 2e-6]])}


def _values(x: torch.Tensor, method: str, **kw: object) -> list[torch.Tensor]:
    n = x.shape[-1]
    outs = [
        st.sort(x, method=method, **kw).values,
        st.rank(x, dim=1, method=method, **kw),
        st.quantile(x, 0.3, dim=1, method=method, **kw),
        st.max(x, dim=1, method=method, **kw).values,
        st.median(x, method=method, **kw),
        st.topk(x, min(2, n), dim=1, method=method, **kw).values,
    ]
    if method != "fast_soft_sort":
        outs += [
            st.argsort(x, method=method, **kw),
            st.argmin(x, dim=1, method=method, **kw),
            st.argquantile(x, 0.6, dim=1, method=method, **kw),
        ]
    return outs


def _check_finite(x0: torch.Tensor, method: str, **kw: object) -> None:
    x = x0.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ot may warn about convergence
        outs = _values(x, method, **kw)
        g = torch.Generator().manual_seed(0)
        loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
        (grad,) = torch.autograd.grad(loss, x)
    for o in outs:
        assert torch.isfinite(o).all(), (method, kw, o)
    assert torch.isfinite(grad).all(), (method, kw, grad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(INPUTS))
def test_finite_values_and_gradients(case: str, method: str, mode: str) -> None:
    for softness in (1e-6, 1e4):
        _check_finite(INPUTS[case], method, softness=softness, mode=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", OWN)
def test_finite_without_standardize(method: str, mode: str) -> None:
    for softness in (1e-6, 1e4):
        _check_finite(INPUTS["huge"], method, softness=softness, mode=mode, standardize=False)
        _check_finite(INPUTS["ties"], method, softness=softness, mode=mode, standardize=False)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_inputs_slow(method: str, mode: str, dtype: torch.dtype) -> None:
    for case in (*INPUTS.values(), *SLOW_INPUTS.values()):
        for softness in (1e-6, 1e-2, 1.0, 1e4):
            _check_finite(case.to(dtype), method, softness=softness, mode=mode)
            if method in OWN:
                _check_finite(
                    case.to(dtype), method, softness=softness, mode=mode, standardize=False
                )


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_finite_softness_sweep(method: str, mode: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 8) * torch.tensor([[1e-3], [1.0], [1e5]])
    x[:, 3] = x[:, 4]
    for softness in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 1e2, 1e3, 1e4):
        _check_finite(x, method, softness=softness, mode=mode)
        _check_finite(x.double(), method, softness=softness, mode=mode)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_nan_propagates(method: str, mode: str) -> None:
    x = torch.tensor([[0.3, float("nan"), -1.0, 2.0], [0.5, -0.5, 1.5, 0.0]])
    kw = {"method": method, "mode": mode}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vals = st.sort(x, **kw).values
        assert torch.isnan(vals[0]).any()
        assert torch.isfinite(vals[1]).all()
        assert torch.isnan(st.quantile(x, 0.5, dim=1, **kw)[0])
        assert torch.isnan(st.max(x, **kw))
        assert torch.isnan(st.rank(x, dim=1, **kw)[0]).any()
    for fn in (st.sort, st.max, st.rank):
        fn(x, mode="hard")  # hard mode follows torch, no crash


def test_half_and_bfloat16_inputs_finite() -> None:
    x = INPUTS["ties"]
    for dtype in (torch.float16, torch.bfloat16):
        for method in OWN:
            out = st.sort(x.to(dtype), method=method).values
            assert out.dtype == dtype and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

X = torch.tensor([-0.2, -1.0, 0.3, 1.0])

ALL_OPS: dict[str, Callable[..., object]] = {
    "argmax": lambda **kw: st.argmax(X, **kw),
    "argmin": lambda **kw: st.argmin(X, **kw),
    "max": lambda **kw: st.max(X, **kw),
    "min": lambda **kw: st.min(X, **kw),
    "sort": lambda **kw: st.sort(X, **kw),
    "argsort": lambda **kw: st.argsort(X, **kw),
    "topk": lambda **kw: st.topk(X, 2, **kw),
    "rank": lambda **kw: st.rank(X, **kw),
    "quantile": lambda **kw: st.quantile(X, 0.3, **kw),
    "argquantile": lambda **kw: st.argquantile(X, 0.3, **kw),
    "median": lambda **kw: st.median(X, **kw),
    "argmedian": lambda **kw: st.argmedian(X, **kw),
}
INDEX_OPS = ["argmax", "argmin", "argsort", "argquantile", "argmedian"]


@pytest.mark.parametrize("op", list(ALL_OPS))
def test_unknown_mode(op: str) -> None:
    with pytest.raises(ValueError, match="valid modes are"):
        ALL_OPS[op](mode="soft")


@pytest.mark.parametrize("op", list(ALL_OPS))
def test_unknown_method_lists_valid(op: str) -> None:
    with pytest.raises(ValueError, match="valid methods are") as info:
        ALL_OPS[op](method="bogo")
    assert "'neuralsort'" in str(info.value)


@pytest.mark.parametrize("op", INDEX_OPS)
@pytest.mark.parametrize("method", ["fast_soft_sort", "smooth_sort"])
def test_value_only_method_rejected_for_soft_indices(op: str, method: str) -> None:
    with pytest.raises(ValueError, match="no soft indices"):
        ALL_OPS[op](method=method)
    with pytest.raises(ValueError, match="no soft indices"):
        ALL_OPS[op](method=method, mode="hard")


def test_value_only_method_rejected_for_argquantile_flag() -> None:
    with pytest.raises(ValueError, match="no soft indices"):
        st.quantile(X, 0.3, method="fast_soft_sort", return_argquantile=True)


@pytest.mark.parametrize("op", list(ALL_OPS))
@pytest.mark.parametrize("softness", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_softness(op: str, softness: float) -> None:
    with pytest.raises(ValueError, match="softness"):
        ALL_OPS[op](softness=softness)


@pytest.mark.parametrize("op", list(ALL_OPS))
def test_softness_type(op: str) -> None:
    with pytest.raises(TypeError, match="softness"):
        ALL_OPS[op](softness="0.1")


@pytest.mark.parametrize("op", list(ALL_OPS))
def test_dim_out_of_range(op: str) -> None:
    with pytest.raises(IndexError, match="Dimension out of range"):
        ALL_OPS[op](dim=1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        ALL_OPS[op](dim=-2)


def test_complex_input_rejected() -> None:
    z = torch.tensor([1 + 1j, 2 - 1j])
    for fn in (st.sort, st.argsort, st.rank, st.max, st.argmax, st.median):
        with pytest.raises(TypeError, match="complex"):
            fn(z)
    with pytest.raises(TypeError, match="complex"):
        st.quantile(z, 0.5)


def test_bad_k() -> None:
    with pytest.raises(ValueError, match="k must be in"):
        st.topk(X, 5)
    for k, mode in ((-1, "smooth"), (-1, "hard"), (0, "smooth")):  # softtorch 0.1.1's phrase
        with pytest.raises(ValueError, match="k must be positive"):
            st.topk(X, k, mode=mode)
    for k in (1.0, 2.5, True, "2", None):
        with pytest.raises(TypeError, match="k must be an int"):
            st.topk(X, k)  # type: ignore[arg-type]
    assert st.topk(X, torch.tensor(2)).values.shape == (2,)


@pytest.mark.parametrize(
    "q", [-0.1, 1.5, float("nan"), torch.tensor([0.2, 1.2]), torch.tensor(-1.0)]
)
def test_bad_q_range(q: object) -> None:
    for fn in (st.quantile, st.argquantile):
        with pytest.raises(ValueError, match=r"q values must be in \[0, 1\]"):
            fn(X, q)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"q values must be in \[0, 1\]"):
            fn(X, q, mode="hard")  # type: ignore[arg-type]


def test_bad_q_type_and_shape() -> None:
    with pytest.raises(ValueError, match="scalar or a 1-D"):
        st.quantile(X, torch.full((2, 2), 0.5))
    with pytest.raises(TypeError, match="q must be"):
        st.quantile(X, "0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="q must be"):
        st.quantile(X, True)
    with pytest.raises(TypeError, match="complex"):
        st.quantile(X, torch.tensor(0.5 + 0j))


def test_bad_interpolation_lists_valid() -> None:
    for fn in (st.quantile, st.argquantile):
        with pytest.raises(ValueError, match="valid interpolations are") as info:
            fn(X, 0.5, interpolation="cubic")
        assert "'midpoint'" in str(info.value)


def test_bad_ot_kwargs_type() -> None:
    with pytest.raises(TypeError, match="ot_kwargs"):
        st.sort(X, ot_kwargs=[1, 2])  # type: ignore[arg-type]


def test_non_ot_methods_ignore_ot_kwargs() -> None:
    a = st.sort(X, ot_kwargs={"sinkhorn_tol": 1e-3}).values
    torch.testing.assert_close(a, st.sort(X).values)
