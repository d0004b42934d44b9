"""Seeded fuzzing of the public API: shapes (0-d and empty included), dtypes, edge values,
softness extremes and invalid values, bad ``dim`` / ``k`` / ``q``.

Every call must either raise a clear error (ValueError, TypeError, IndexError or RuntimeError
with a message) or return, and then

* for finite input and valid arguments the floating outputs are finite;
* ``mode="hard"`` equals torch (values bit for bit as float64; torch raising means we raise);
* an invalid softness (<= 0, NaN, inf, as a float or a tensor requiring grad) raises;
* in soft modes with finite float32 / float64 input the gradients are finite;
* outputs of order ops (sorted values, max / min / median / quantile / top-k values) lie in the
  input's range.

Cases are drawn with a fixed seed from the product of the axes, ``FULL_CASES`` per function (and
method); the default suite runs every ``SLICE``-th case, the slow sweep all of them. The
compatibility mode ``"_hard"`` of the ordering ops has its own test (equal to ``mode="hard"``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import softtorch as st

FULL_CASES = 600
SLICE = 100
NAN, INF = float("nan"), float("inf")

SHAPES: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (5,), (3, 4), (2, 0), (2, 3, 4))
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool)
KINDS = ("normal", "ties", "nan", "inf", "big", "tiny")
GOOD_SOFTNESS: tuple[float, ...] = (1e-6, 0.1, 1.0, 1e4)
BAD_SOFTNESS: tuple[Any, ...] = (0.0, -1.0, NAN, INF, "neg_tensor_grad", "nan_tensor")
ELEMENTWISE_MODES = ("hard", "smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")
ORDER_MODES = ("hard", "smooth", "c0", "c1", "c2")
# no "perturbed": Monte-Carlo values and gradients (tests/ordering/methods/test_perturbed_method.py)
METHODS = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
CLEAR_ERRORS = (ValueError, TypeError, IndexError, RuntimeError)


def make_input(shape: tuple[int, ...], dtype: torch.dtype, kind: str, rng: random.Random) -> Any:
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    base = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    if kind == "ties":
        base = torch.randint(-2, 3, shape, generator=g).double()
    elif kind == "big":
        base = base * 1e6
    elif kind == "tiny":
        base = base * 1e-30
    elif kind in ("nan", "inf") and base.numel() > 0:
        flat = base.reshape(-1)
        flat[rng.randrange(flat.numel())] = NAN if kind == "nan" else INF
        if kind == "inf" and flat.numel() > 1:
            flat[rng.randrange(flat.numel())] = -INF
    if dtype == torch.bool:
        return base > 0
    if not dtype.is_floating_point:
        return torch.nan_to_num(base, nan=0.0, posinf=5.0, neginf=-5.0).round().to(dtype)
    return base.to(dtype)


def make_softness(choice: Any) -> Any:
    if choice == "neg_tensor_grad":
        return torch.tensor(-0.1, requires_grad=True)
    if choice == "nan_tensor":
        return torch.tensor(NAN)
    return choice


@dataclass
class Case:
    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: str
    softness: Any
    mode: str
    dim: Any
    k: Any
    q: Any

    @property
    def valid_softness(self) -> bool:
        return self.softness in GOOD_SOFTNESS


def draw_cases(name: str, modes: tuple[str, ...], n: int) -> list[Case]:
    rng = random.Random(f"softtorch-fuzz-{name}")
    cases = []
    for _ in range(n):
        softness = rng.choice(GOOD_SOFTNESS) if rng.random() < 0.85 else rng.choice(BAD_SOFTNESS)
        cases.append(Case(
            shape=rng.choice(SHAPES), dtype=rng.choice(DTYPES), kind=rng.choice(KINDS),
            softness=softness, mode=rng.choice(modes),
            dim=rng.choice((-1, -1, 0, None, 3, -4)), k=rng.choice((1, 2, 2, 0, -1, 7)),
            q=rng.choice((0.3, 0.5, 0.0, 1.0, 1.5, NAN)),
        ))  # fmt: skip
    return cases


# ------------------------------------------------------------------------------ the functions


@dataclass(frozen=True)
class Fn:
    """``call(x, c, softness, mode)`` -> output; ``ref(x, c)`` -> torch's result (hard);
    ``order``: indices of value outputs that must lie in the input's range."""

    call: Callable[..., Any]
    ref: Callable[..., Any] | None
    modes: tuple[str, ...] = ELEMENTWISE_MODES
    order: tuple[int, ...] = ()
    floats_only: bool = False
    uses_softness: bool = True


def _y(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1) if x.ndim else x


def _dim0(c: Case) -> int:
    return c.dim if isinstance(c.dim, int) else -1


ELEMENTWISE: dict[str, Fn] = {
    "heaviside": Fn(lambda x, c, s, m: st.heaviside(x, s, m),
                    lambda x, c: torch.heaviside(x.double(), torch.tensor(0.5).double())),
    "sign": Fn(lambda x, c, s, m: st.sign(x, s, m), lambda x, c: torch.sign(x.double())),
    "abs": Fn(lambda x, c, s, m: st.abs(x, s, m), lambda x, c: torch.abs(x.double())),
    "relu": Fn(lambda x, c, s, m: st.relu(x, s, m), lambda x, c: torch.relu(x.double())),
    "relu_gated": Fn(lambda x, c, s, m: st.relu(x, s, m, gated=True),
                     lambda x, c: torch.relu(x.double())),
    "clamp": Fn(lambda x, c, s, m: st.clamp(x, -0.5, 2.0, s, m),
                lambda x, c: torch.clamp(x.double(), -0.5, 2.0)),
    "clamp_inf": Fn(lambda x, c, s, m: st.clamp(x, -INF, 0.5, s, m),
                    lambda x, c: torch.clamp(x.double(), -INF, 0.5)),
    "round": Fn(lambda x, c, s, m: st.round(x, s, m), lambda x, c: torch.round(x.double())),
    "relu_st": Fn(lambda x, c, s, m: st.relu_st(x, s, m), lambda x, c: torch.relu(x.double())),
    "greater": Fn(lambda x, c, s, m: st.greater(x, _y(x), s, m),
                  lambda x, c: torch.gt(x, _y(x)).double()),
    "less_equal": Fn(lambda x, c, s, m: st.less_equal(x, _y(x), s, m),
                     lambda x, c: torch.le(x, _y(x)).double()),
    "eq": Fn(lambda x, c, s, m: st.eq(x, _y(x), s, m), lambda x, c: torch.eq(x, _y(x)).double()),
    "isclose": Fn(lambda x, c, s, m: st.isclose(x, _y(x), s, rtol=0.1, atol=0.01, mode=m),
                  lambda x, c: torch.isclose(x.double(), _y(x).double(), 0.1, 0.01).double()),
    "greater_st": Fn(lambda x, c, s, m: st.greater_st(x, 0.3, s, m),
                     lambda x, c: torch.gt(x.double(), 0.3).double()),
    "sigmoidal": Fn(lambda x, c, s, m: st.sigmoidal(x, s, m), None, modes=ELEMENTWISE_MODES[1:]),
    "softrelu": Fn(lambda x, c, s, m: st.softrelu(x, s, m), None, modes=ELEMENTWISE_MODES[1:]),
}


def _sel_index(x: torch.Tensor, n: int, lead: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(n * 7 + len(lead))
    w = torch.rand(*lead, n, generator=g, dtype=torch.float64)
    return (w / w.sum(-1, keepdim=True).clamp_min(1e-12)).to(
        x.dtype if x.is_floating_point() else torch.float32
    )


def _one_hot(x: torch.Tensor, n: int, lead: tuple[int, ...]) -> torch.Tensor:
    idx = torch.arange(math.prod(lead)).reshape(lead) % max(n, 1)
    return torch.nn.functional.one_hot(idx, n).double() if n else torch.zeros(*lead, 0)


SELECTION: dict[str, Fn] = {
    # soft indices: values inside the input's range; one-hot: equal to torch's selection
    "take_soft": Fn(lambda x, c, s, m: st.take(x, _sel_index(x, x.numel(), (3,))), None,
                    modes=("smooth",), order=(0,), uses_softness=False),
    "take_one_hot": Fn(lambda x, c, s, m: st.take(x, _one_hot(x, x.numel(), (3,))),
                       lambda x, c: torch.take(x, torch.arange(3) % max(x.numel(), 1)).double(),
                       modes=("hard",), uses_softness=False),
    "take_along_dim_one_hot": Fn(
        lambda x, c, s, m: st.take_along_dim(x, _one_hot(x, x.numel(), (2,))),
        lambda x, c: torch.take_along_dim(x, torch.arange(2) % max(x.numel(), 1)).double(),
        modes=("hard",), uses_softness=False),
    "index_select_one_hot": Fn(
        lambda x, c, s, m: st.index_select(x, _one_hot(x, x.shape[_dim0(c)] if x.ndim else 1,
                                                       (2,)), _dim0(c)),
        lambda x, c: torch.index_select(
            x, _dim0(c), torch.arange(2) % max(x.shape[_dim0(c)] if x.ndim else 1, 1)).double(),
        modes=("hard",), uses_softness=False),
}


def _values(out: Any) -> torch.Tensor:
    return out.values if hasattr(out, "values") and not isinstance(out, torch.Tensor) else out


def _tdim(c: Case) -> int:
    return c.dim if isinstance(c.dim, int) else -1


ORDERING: dict[str, Fn] = {
    "sort": Fn(lambda x, c, s, m, me: st.sort(x, _tdim(c), softness=s, mode=m, method=me),
               lambda x, c: torch.sort(x, _tdim(c)).values, ORDER_MODES, order=(0,)),
    "topk": Fn(lambda x, c, s, m, me: st.topk(x, c.k, _tdim(c), softness=s, mode=m, method=me),
               lambda x, c: torch.topk(x, c.k, _tdim(c)).values, ORDER_MODES, order=(0,)),
    "max": Fn(lambda x, c, s, m, me: st.max(x, c.dim, softness=s, mode=m, method=me),
              lambda x, c: torch.max(x) if c.dim is None else torch.max(x, c.dim).values,
              ORDER_MODES, order=(0,)),
    "min": Fn(lambda x, c, s, m, me: st.min(x, c.dim, softness=s, mode=m, method=me),
              lambda x, c: torch.min(x) if c.dim is None else torch.min(x, c.dim).values,
              ORDER_MODES, order=(0,)),
    "median": Fn(lambda x, c, s, m, me: st.median(x, c.dim, softness=s, mode=m, method=me),
                 lambda x, c: torch.median(x) if c.dim is None else torch.median(x, c.dim).values,
                 ORDER_MODES, order=(0,)),
    "quantile": Fn(lambda x, c, s, m, me: st.quantile(x, c.q, c.dim, softness=s, mode=m,
                                                      method=me),
                   lambda x, c: torch.quantile(x, c.q, c.dim), ORDER_MODES, order=(0,),
                   floats_only=True),
    "rank": Fn(lambda x, c, s, m, me: st.rank(x, c.dim, softness=s, mode=m, method=me), None,
               ORDER_MODES),
    "argmax": Fn(lambda x, c, s, m, me: st.argmax(x, c.dim, softness=s, mode=m, method=me),
                 None, ORDER_MODES),
    "argsort": Fn(lambda x, c, s, m, me: st.argsort(x, _tdim(c), softness=s, mode=m, method=me),
                  None, ORDER_MODES),
    "argquantile": Fn(lambda x, c, s, m, me: st.argquantile(x, c.q, c.dim, softness=s, mode=m,
                                                            method=me), None, ORDER_MODES),
}


# ------------------------------------------------------------------------------ the checks


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _finite_input(x: torch.Tensor) -> bool:
    return not x.is_floating_point() or bool(torch.isfinite(x).all())


def _in_range(v: torch.Tensor, x: torch.Tensor) -> bool:
    if v.numel() == 0 or x.numel() == 0:
        return True
    xd, vd = x.double(), v.detach().double()
    lo, hi = float(xd.min()), float(xd.max())
    slack = 1e-6 * max(abs(lo), abs(hi), 1e-300)
    if v.dtype in (torch.float16, torch.bfloat16):
        slack = 1e-2 * max(abs(lo), abs(hi))
    return bool(((vd >= lo - slack) & (vd <= hi + slack)).all())


def _torch_ref(fn: Fn, x: torch.Tensor, c: Case) -> torch.Tensor:
    """torch's result; where torch's kernel lacks the dtype (``topk`` / ``median`` of bool,
    ``quantile`` of half precision), torch's result on the input promoted like ours (to the
    default float dtype, or float32 for half precision), which we accept."""
    assert fn.ref is not None
    try:
        return fn.ref(x, c)
    except (RuntimeError, NotImplementedError) as e:
        text = str(e)
        dtype_messages = ("not implemented for", "must be either float or double",
                          "does not support bool")
        if not any(m in text for m in dtype_messages):
            raise
    promoted = x.float() if x.is_floating_point() else x.to(torch.get_default_dtype())
    out = fn.ref(promoted, c)
    return out.to(x.dtype) if x.is_floating_point() else out


def run_case(name: str, fn: Fn, c: Case, method: str | None) -> str | None:
    """None if the case behaves, else a description of what went wrong."""
    rng = random.Random(f"{name}-{method}-{c}")
    x = make_input(c.shape, c.dtype, c.kind, rng)
    if fn.floats_only and not x.is_floating_point():
        x = x.double()
    grad = c.dtype in (torch.float32, torch.float64) and c.mode not in ("hard", "_hard")
    if grad:
        x = x.clone().requires_grad_()
    softness = make_softness(c.softness)
    args = (x, c, softness, c.mode) + ((method,) if method is not None else ())
    try:
        out = fn.call(*args)
    except CLEAR_ERRORS as e:
        if not str(e):
            return f"error without a message: {type(e).__name__}"
        if c.mode == "hard" and fn.ref is not None and (c.valid_softness or not fn.uses_softness):
            try:
                fn.ref(x.detach(), c)
            except Exception:  # noqa: BLE001  (torch rejects it too)
                return None
            if not _finite_input(x) or x.dtype == torch.bool or not x.dtype.is_floating_point:
                return None  # we may be stricter on non-float / non-finite hard input
            return f"raised {type(e).__name__}: {e} where torch succeeds"
        return None
    except Exception as e:  # noqa: BLE001
        return f"unclear error {type(e).__name__}: {e}"
    if fn.uses_softness and not c.valid_softness:
        return "invalid softness accepted"
    tensors = _tensors(out)
    floats = [t for t in tensors if t.is_floating_point()]
    if _finite_input(x) and x.numel() > 0:  # (torch's reductions of nothing are NaN)
        for t in floats:
            if not bool(torch.isfinite(t.detach()).all()):
                return "non-finite output for finite input"
    # torch's reductions of an empty integer / bool tensor return a sentinel (INT64_MIN, True),
    # ours NaN: only floating empties are compared
    empty_int = x.numel() == 0 and not x.is_floating_point()
    if c.mode == "hard" and fn.ref is not None and not empty_int:
        try:
            ref = _torch_ref(fn, x.detach(), c)
        except Exception as e:  # noqa: BLE001
            return f"torch raises {type(e).__name__} but we return"
        got = _values(out).detach().double()
        ref = ref.double()
        if got.shape != ref.shape or not bool(
            ((got == ref) | (torch.isnan(got) & torch.isnan(ref))).all()
        ):
            return f"hard differs from torch: {got} vs {ref}"
    if fn.order and _finite_input(x) and x.numel() > 0:
        for i in fn.order:
            v = _values(out) if i == 0 else tensors[i]
            if v.is_floating_point() and not _in_range(v, x):
                return f"order output outside the input's range: {v} for {x}"
    if grad and floats and _finite_input(x) and x.numel() > 0:
        total = sum(t.sum() for t in floats if t.requires_grad)
        if isinstance(total, torch.Tensor) and total.requires_grad:
            (g,) = torch.autograd.grad(total, x, allow_unused=True)
            if g is not None and not bool(torch.isfinite(g).all()):
                return "non-finite gradient"
    return None


def _check(name: str, fn: Fn, method: str | None, full: bool) -> None:
    key = name if method is None else f"{name}-{method}"
    cases = draw_cases(key, fn.modes, FULL_CASES)
    if not full:
        cases = cases[::SLICE]
    failures = []
    for c in cases:
        problem = run_case(name, fn, c, method)
        if problem is not None:
            failures.append(f"{c}: {problem}")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures[:10])


PARAMS = (
    [pytest.param(n, None, id=n) for n in list(ELEMENTWISE) + list(SELECTION)]
    + [pytest.param(n, m, id=f"{n}-{m}") for n in ORDERING for m in METHODS]
)


def _fn(name: str) -> Fn:
    return {**ELEMENTWISE, **SELECTION, **ORDERING}[name]


@pytest.mark.parametrize(("name", "method"), PARAMS)
def test_fuzz_slice(name: str, method: str | None) -> None:
    _check(name, _fn(name), method, full=False)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "method"), PARAMS)
def test_fuzz_full(name: str, method: str | None) -> None:
    _check(name, _fn(name), method, full=True)


@pytest.mark.parametrize(
    ("name", "method"), [pytest.param(n, m, id=f"{n}-{m}") for n in ORDERING for m in METHODS]
)
def test_fuzz_compat_hard_mode(name: str, method: str) -> None:
    """``mode="_hard"`` (softtorch 0.1.1's hard limit through the method's own code path) gives
    the values of ``mode="hard"``."""
    fn = ORDERING[name]
    c = Case((3, 5), torch.float32, "normal", 0.1, "_hard", -1, 2, 0.3)
    x = make_input(c.shape, c.dtype, c.kind, random.Random(0))
    try:
        hard = fn.call(x, c, 0.1, "hard", method)
    except CLEAR_ERRORS:
        pytest.skip("not defined for this method")
    compat = fn.call(x, c, 0.1, "_hard", method)
    for h, s in zip(_tensors(hard), _tensors(compat)):
        torch.testing.assert_close(s.double(), h.double())
