"""Soft indices in log space: ``return_log_probs`` and ``log_prob_eps`` (issue 8)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st

# no "perturbed": Monte-Carlo (tests/ordering/methods/test_perturbed_method.py)
METHODS = ("softsort", "neuralsort", "ot", "sorting_network")
MODES = ("hard", "smooth", "c0", "c1", "c2")
SOFT_MODES = ("smooth", "c1", "c2")
NEG_INF = -math.inf

#: Every op returning a SoftIndex, as ``name -> fn(x, **kw) -> (soft_index, values or None)``.
OPS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor | None]]] = {
    "argmax": lambda x, **kw: (st.argmax(x, dim=-1, **kw), None),
    "argmin": lambda x, **kw: (st.argmin(x, dim=-1, **kw), None),
    "argsort": lambda x, **kw: (st.argsort(x, **kw), None),
    "argsort_desc": lambda x, **kw: (st.argsort(x, descending=True, **kw), None),
    "argmedian": lambda x, **kw: (st.argmedian(x, dim=-1, **kw), None),
    "argquantile": lambda x, **kw: (
        st.argquantile(x, torch.tensor([0.3, 0.5]), dim=-1, **kw),
        None,
    ),
    "sort": lambda x, **kw: tuple(reversed(st.sort(x, **kw))),
    "topk": lambda x, **kw: tuple(reversed(st.topk(x, 2, dim=-1, **kw))),
    "topk_smallest": lambda x, **kw: tuple(reversed(st.topk(x, 3, dim=-1, largest=False, **kw))),
    "max": lambda x, **kw: tuple(reversed(st.max(x, dim=-1, **kw))),
    "min": lambda x, **kw: tuple(reversed(st.min(x, dim=-1, **kw))),
    "median": lambda x, **kw: tuple(reversed(st.median(x, dim=-1, **kw))),
    "quantile": lambda x, **kw: tuple(
        reversed(st.quantile(x, 0.7, dim=-1, return_argquantile=True, **kw))
    ),
}

X = torch.tensor([[-0.2, -1.0, 0.3, 1.0, 0.55], [0.4, -0.7, 2.0, -1.3, 0.1]], dtype=torch.float64)


def _call(op: str, x: torch.Tensor, **kw: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    idx, values = OPS[op](x, **kw)
    if idx is None:  # sort computes sorting_network values without a permutation
        assert op == "sort" and kw.get("method") == "sorting_network"
        pytest.skip("sort(method='sorting_network') returns indices=None")
    return idx, values


# ----------------------------------------------------------------------------------------------
# consistency with the probabilities
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_log_probs_match_probs(op: str, method: str, mode: str) -> None:
    kw = {"method": method, "mode": mode}
    p, v = _call(op, X, **kw)
    lp, lv = _call(op, X, return_log_probs=True, **kw)
    assert lp.shape == p.shape and lp.dtype == p.dtype
    pos = p > 0
    # -inf exactly where the probabilities are exactly zero (hard, c0 and the sparse modes)
    assert torch.equal(lp == NEG_INF, ~pos)
    assert not torch.isnan(lp).any() and not (lp == math.inf).any()
    torch.testing.assert_close(lp.exp()[pos], p[pos], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        torch.logsumexp(lp, -1), torch.zeros(lp.shape[:-1], dtype=lp.dtype), atol=1e-6, rtol=0
    )
    if v is not None:  # values are unchanged
        assert lv is not None
        torch.testing.assert_close(lv, v, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("op", ["argsort", "argmax", "topk"])
def test_hard_is_zero_and_minus_inf(op: str) -> None:
    lp, _ = _call(op, X, mode="hard", return_log_probs=True)
    assert bool(((lp == 0) | (lp == NEG_INF)).all())
    assert torch.equal((lp == 0).sum(-1), torch.ones(lp.shape[:-1], dtype=torch.long))


@pytest.mark.parametrize("method", METHODS)
def test_c0_has_exact_minus_inf(method: str) -> None:
    lp = st.argsort(X, mode="c0", method=method, softness=0.05, return_log_probs=True)
    assert bool((lp == NEG_INF).any())


# ----------------------------------------------------------------------------------------------
# stability: no underflow in smooth mode
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e6])
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", ["argmax", "argmin", "argsort", "topk", "argmedian", "sort"])
def test_smooth_extreme_inputs_are_finite(
    op: str, method: str, standardize: bool, scale: float
) -> None:
    x = torch.tensor([1000.0, 0.0, -1000.0]) * scale
    p, _ = _call(op, x, method=method, standardize=standardize)
    lp, _ = _call(op, x, method=method, standardize=standardize, return_log_probs=True)
    assert bool(torch.isfinite(lp).all()), lp
    torch.testing.assert_close(
        torch.logsumexp(lp, -1), torch.zeros(lp.shape[:-1]), atol=1e-5, rtol=0
    )
    assert torch.equal(lp.argmax(-1), p.argmax(-1))


def test_documented_example() -> None:
    lp = st.argmax(torch.tensor([1000.0, 0.0, -1000.0]), standardize=False, return_log_probs=True)
    assert torch.equal(lp, torch.tensor([0.0, -10000.0, -20000.0]))
    # the probabilities underflow to exact zeros
    p = st.argmax(torch.tensor([1000.0, 0.0, -1000.0]), standardize=False)
    assert torch.equal(p, torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("method", METHODS)
def test_extreme_log_probs_values(method: str) -> None:
    """Log-probabilities of well-separated inputs scale with the gaps (no saturation)."""
    x = torch.tensor([1000.0, 0.0, -1000.0], dtype=torch.float64)
    lp = st.argmax(x, method=method, standardize=False, return_log_probs=True)
    assert lp[0] == 0 and -1e5 < lp[1] < -1e3 and lp[2] < lp[1]


# ----------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------

XG = torch.tensor([-0.2, -1.0, 0.3, 1.0], dtype=torch.float64)


def _finite(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(t), t, 0.0)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", ["argsort", "argmax", "argquantile"])
def test_gradcheck(op: str, method: str, mode: str) -> None:
    x = XG.clone().requires_grad_(True)

    def fn(t: torch.Tensor) -> torch.Tensor:
        lp, _ = _call(op, t, method=method, mode=mode, softness=0.5, return_log_probs=True)
        return _finite(lp)

    assert gradcheck(fn, (x,), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", ["argmin", "argmedian", "sort", "topk", "max", "median"])
def test_gradcheck_more_ops(op: str, method: str, mode: str) -> None:
    x = XG.clone().requires_grad_(True)

    def fn(t: torch.Tensor) -> torch.Tensor:
        lp, v = _call(op, t, method=method, mode=mode, softness=0.5, return_log_probs=True)
        return _finite(lp) if v is None else torch.cat((_finite(lp).flatten(), v.flatten()))

    assert gradcheck(fn, (x,), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_with_eps(method: str) -> None:
    x = XG.clone().requires_grad_(True)
    fn = lambda t: st.argsort(  # noqa: E731
        t, method=method, softness=0.5, return_log_probs=True, log_prob_eps=1e-3
    )
    assert gradcheck(fn, (x,), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_no_nan_gradient_at_minus_inf(method: str) -> None:
    x = X.clone().requires_grad_(True)
    lp = st.argsort(x, method=method, mode="c0", softness=0.05, return_log_probs=True)
    assert bool((lp == NEG_INF).any())
    _finite(lp).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("method", METHODS)
def test_gradient_flows_on_extreme_inputs(method: str) -> None:
    """Where the probability gradient vanishes by underflow, the log-probability one does not."""
    x = torch.tensor([1000.0, 0.0, -1000.0], dtype=torch.float64, requires_grad=True)
    lp = st.argmax(x, method=method, standardize=False, return_log_probs=True)
    lp[1].backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert x.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# log_prob_eps
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", ["argsort", "argmax", "argquantile", "topk", "median"])
def test_log_prob_eps(op: str, method: str, mode: str) -> None:
    eps = 1e-3
    kw = {"method": method, "mode": mode}
    p, v = _call(op, X, **kw)
    lp, lv = _call(op, X, return_log_probs=True, log_prob_eps=eps, **kw)
    pe, ve = _call(op, X, log_prob_eps=eps, **kw)
    assert bool(torch.isfinite(lp).all())
    clamped = p.clamp_min(eps)
    clamped = clamped / clamped.sum(-1, keepdim=True)
    torch.testing.assert_close(lp.exp(), clamped, atol=1e-6, rtol=0)
    torch.testing.assert_close(pe, clamped, atol=1e-6, rtol=0)
    n = X.shape[-1]
    assert bool((pe >= eps / (1 + n * eps) - 1e-12).all())
    torch.testing.assert_close(torch.logsumexp(lp, -1), torch.zeros(lp.shape[:-1]).double())
    if v is not None:  # values come from the unclamped distribution
        torch.testing.assert_close(lv, v, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(ve, v, atol=1e-6, rtol=1e-6)


def test_log_prob_eps_accepts_number_types() -> None:
    a = st.argmax(X, dim=-1, log_prob_eps=0.01, return_log_probs=True)
    b = st.argmax(X, dim=-1, log_prob_eps=torch.tensor(0.01), return_log_probs=True)
    torch.testing.assert_close(a, b)
    # n = 1: any eps in (0, 1) is valid and changes nothing
    one = st.argmax(torch.tensor([3.0]), log_prob_eps=0.5, return_log_probs=True)
    assert torch.equal(one, torch.zeros(1))


@pytest.mark.parametrize("eps", [0.0, -0.1, 0.2, 0.5, 1.0, 2.0, math.nan, math.inf])
@pytest.mark.parametrize("op", ["argmax", "argsort", "argquantile", "sort", "max"])
def test_log_prob_eps_range(op: str, eps: float) -> None:
    # n = 5 candidates: eps must be in (0, 1/5)
    with pytest.raises(ValueError, match="log_prob_eps"):
        _call(op, X, return_log_probs=True, log_prob_eps=eps)
    with pytest.raises(ValueError, match="log_prob_eps"):
        _call(op, X, log_prob_eps=eps)


@pytest.mark.parametrize("eps", ["0.1", True, [0.1], torch.tensor([0.1, 0.1])])
def test_log_prob_eps_type(eps: object) -> None:
    with pytest.raises(TypeError, match="log_prob_eps"):
        st.argmax(X, dim=-1, return_log_probs=True, log_prob_eps=eps)  # type: ignore[arg-type]


def test_log_prob_eps_just_below_bound() -> None:
    lp = st.argsort(X, return_log_probs=True, log_prob_eps=0.19)
    assert bool(torch.isfinite(lp).all())
    with pytest.raises(ValueError, match=r"\(0, 0\.2\)"):
        st.argsort(X, return_log_probs=True, log_prob_eps=0.2)


# ----------------------------------------------------------------------------------------------
# layout, defaults, methods without soft indices, straight-through
# ----------------------------------------------------------------------------------------------

NEW = ("return_log_probs", "log_prob_eps")
FNS = ("argmax", "argmin", "argsort", "argmedian", "argquantile")
FNS += ("sort", "topk", "max", "min", "median", "quantile")


@pytest.mark.parametrize("name", FNS)
def test_signature_keyword_only_and_last(name: str) -> None:
    params = list(inspect.signature(getattr(st, name)).parameters.values())
    # keyword-only tail: the log-probability options, then perturbed_kwargs (method options),
    # then mask (masked ops)
    assert params[-1].name == "mask" and params[-1].kind is inspect.Parameter.KEYWORD_ONLY
    assert params[-1].default is None
    params = params[:-1]
    assert tuple(p.name for p in params[-3:]) == (*NEW, "perturbed_kwargs")
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[-3:])
    assert params[-3].default is False and params[-2].default is None
    assert params[-1].default is None
    assert all(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params[:-3])


def test_layouts() -> None:
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    for kw in ({"dim": 1}, {"dim": 1, "keepdim": True}, {"dim": None}):
        p = st.argmax(x, **kw)
        lp = st.argmax(x, return_log_probs=True, **kw)
        assert lp.shape == p.shape
        torch.testing.assert_close(lp.exp(), p)
    p = st.argsort(x, dim=1)
    lp = st.argsort(x, dim=1, return_log_probs=True)
    torch.testing.assert_close(lp.exp(), p)
    q = torch.tensor([0.1, 0.9])
    lp = st.argquantile(x, q, dim=0, keepdim=True, return_log_probs=True)
    torch.testing.assert_close(lp.exp(), st.argquantile(x, q, dim=0, keepdim=True))


def test_half_precision_and_empty() -> None:
    x = X.to(torch.bfloat16)
    lp = st.argsort(x, return_log_probs=True)
    assert lp.dtype == torch.bfloat16 and bool(torch.isfinite(lp).all())
    empty = st.argsort(torch.empty(0), return_log_probs=True, log_prob_eps=0.1)
    assert empty.shape == (0, 0)


def test_no_soft_index_means_no_effect() -> None:
    kw = {"return_log_probs": True, "log_prob_eps": 0.01}
    assert torch.equal(st.max(X, **kw), st.max(X))
    assert torch.equal(st.median(X, **kw), st.median(X))
    assert torch.equal(st.quantile(X, 0.3, dim=-1, **kw), st.quantile(X, 0.3, dim=-1))
    res = st.sort(X, return_indices=False, **kw)
    assert res.indices is None and torch.equal(res.values, st.sort(X, return_indices=False).values)
    res = st.sort(X, method="sorting_network", **kw)
    assert res.indices is None


def test_fast_soft_sort_still_raises() -> None:
    with pytest.raises(ValueError, match="soft indices"):
        st.argsort(X, method="fast_soft_sort", return_log_probs=True)
    assert st.sort(X, method="fast_soft_sort", return_log_probs=True).indices is None


@pytest.mark.parametrize("fn_name", ["argmax_st", "argsort_st", "argquantile_st"])
def test_straight_through(fn_name: str) -> None:
    fn = getattr(st, fn_name)
    args = (torch.tensor(0.3),) if fn_name == "argquantile_st" else ()
    x = XG.clone().requires_grad_(True)
    y = fn(x, *args, return_log_probs=True)
    hard = fn(XG, *args, mode="hard", return_log_probs=True)
    assert torch.equal(y.detach(), hard)
    soft_fn = getattr(st, fn_name[:-3])
    xs = XG.clone().requires_grad_(True)
    soft = soft_fn(xs, *args, return_log_probs=True)
    w = torch.randn(y.shape, dtype=y.dtype)
    (w * torch.where(torch.isfinite(y), y, 0.0)).sum().backward()
    (w * torch.where(torch.isfinite(hard), soft, 0.0)).sum().backward()
    assert x.grad is not None and xs.grad is not None
    # gradient of the soft log-probabilities at the entries that the loss uses
    torch.testing.assert_close(x.grad, xs.grad)


def test_sort_st_indices_are_log_one_hot() -> None:
    x = XG.clone().requires_grad_(True)
    res = st.sort_st(x, return_log_probs=True)
    assert bool(((res.indices == 0) | (res.indices == NEG_INF)).all())
    torch.testing.assert_close(res.values, torch.sort(XG).values)
