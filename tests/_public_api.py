"""Catalog of every public softtorch function as (function, variant) cases, for transform tests.

Shared by ``tests/integration/test_compile.py``, ``tests/integration/test_autocast.py``,
``tests/_graph_breaks.py`` and ``scripts/graph_breaks.py``.
A :class:`Case` is one public function with one variant (the ordering ``method``, the surrogate
``method``, or ``-``); its ``fn(x)`` calls the function in *every* mode of that variant and returns
the floating results as a flat tuple, so one ``torch.compile`` covers a whole mode group. The input
is a ``(3, 6)`` floating tensor with distinct entries; comparisons use ``y = 0.5 * x.roll(1, -1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import softtorch as st
from softtorch import surrogate as sg

MODES: tuple[str, ...] = ("hard", "smooth", "c0", "c1", "c2")
SIGMOIDAL_MODES: tuple[str, ...] = ("smooth", "c0", "c1", "_c1_pnorm", "c2", "_c2_pnorm")
# no "perturbed": Monte-Carlo, not finite-difference checkable and no torch.func support
# (tests/ordering/methods/test_perturbed_method.py covers it)
METHODS: tuple[str, ...] = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
INDEX_METHODS: tuple[str, ...] = ("softsort", "neuralsort", "ot", "sorting_network")
SHAPE: tuple[int, ...] = (3, 6)

Fn = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class Case:
    """One (public function, variant) pair; ``fn`` runs every mode of it."""

    func: str
    variant: str
    group: str
    fn: Fn
    #: random forward (stochastic surrogates): compare gradients and value ranges only
    stochastic: bool = False

    @property
    def id(self) -> str:
        return self.func if self.variant == "-" else f"{self.func}[{self.variant}]"


def make_input(dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """A ``(3, 6)`` tensor with well separated distinct entries (no ties, no exact zeros)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randperm(18, generator=g).to(torch.float64).reshape(SHAPE)
    return ((base - 8.7) / 6.0 + 0.01 * torch.rand(SHAPE, generator=g, dtype=torch.float64)).to(
        dtype
    )


def _flat(out: Any) -> list[torch.Tensor]:
    """Floating tensors of a (nested) result, in order; None and integer tensors dropped."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return []


def _modes(call: Callable[[str], Any], modes: tuple[str, ...] = MODES) -> Fn:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for m in modes for t in _flat(call(m, x)))  # type: ignore[call-arg]

    return fn


def _y(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x.roll(1, -1)


def _nograd_hard(mode: str, x: torch.Tensor) -> torch.Tensor:
    return x.detach() if mode == "hard" else x


def _elementwise() -> list[Case]:
    calls: dict[str, Callable[[str, torch.Tensor], Any]] = {
        "relu": lambda m, x: (st.relu(x, mode=m), st.relu(x, mode=m, gated=True)),
        "abs": lambda m, x: st.abs(x, mode=m),
        "sign": lambda m, x: st.sign(x, mode=m),
        # torch.heaviside has no derivative: the hard mode gets a detached input
        "heaviside": lambda m, x: st.heaviside(_nograd_hard(m, x), mode=m),
        "round": lambda m, x: st.round(2.0 * x, mode=m),
        "clamp": lambda m, x: (st.clamp(x, -0.5, 0.7, mode=m), st.clamp(x, _y(x), None, mode=m)),
    }
    cases = [Case(k, "-", "elementwise", _modes(v)) for k, v in calls.items()]
    sig = {
        "sigmoidal": lambda m, x: st.sigmoidal(x, 0.3, m),
        "softrelu": lambda m, x: (st.softrelu(x, 0.3, m), st.softrelu(x, 0.3, m, gated=True)),
    }
    cases += [Case(k, "-", "elementwise", _modes(v, SIGMOIDAL_MODES)) for k, v in sig.items()]
    return cases


_CMP = ("greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose")


def _cmp_call(fn: Callable[..., torch.Tensor], name: str) -> Callable[[str, torch.Tensor], Any]:
    if name == "isclose":
        return lambda m, x: fn(x, _y(x), 0.1, 1e-5, 0.05, mode=m)
    return lambda m, x: fn(x, _y(x), mode=m)


def _comparison() -> list[Case]:
    return [Case(k, "-", "comparison", _modes(_cmp_call(getattr(st, k), k))) for k in _CMP]


def _logic() -> list[Case]:
    def p(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3.0 * x)

    calls: dict[str, Callable[[torch.Tensor], Any]] = {
        "logical_not": lambda x: st.logical_not(p(x)),
        "logical_and": lambda x: [st.logical_and(p(x), p(_y(x)), g) for g in (False, True)],
        "logical_or": lambda x: [st.logical_or(p(x), p(_y(x)), g) for g in (False, True)],
        "logical_xor": lambda x: [st.logical_xor(p(x), p(_y(x)), g) for g in (False, True)],
        "all": lambda x: [st.all(p(x), -1, use_geometric_mean=g) for g in (False, True)],
        "any": lambda x: [st.any(p(x), 0, use_geometric_mean=g) for g in (False, True)],
        "where": lambda x: st.where(p(x), x, _y(x)),
    }
    return [Case(k, "-", "logic", lambda x, c=v: tuple(_flat(c(x)))) for k, v in calls.items()]


def _selection() -> list[Case]:
    def w(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(3.0 * x, -1)  # (3, 6): soft indices over the 6 columns

    calls: dict[str, Callable[[torch.Tensor], Any]] = {
        "take_along_dim": lambda x: (
            st.take_along_dim(x, w(x).unsqueeze(1), dim=1),
            st.take_along_dim(x, torch.softmax(x.reshape(1, -1), -1), dim=None),
        ),
        "take": lambda x: (
            st.take(x, torch.softmax(x.reshape(1, -1), -1)),
            st.take(x, w(x)[:2], dim=1),
        ),
        "index_select": lambda x: (
            st.index_select(x, w(x), dim=1),
            st.index_select(x, w(x)[0], dim=1, keepdim=False),
        ),
        "narrow": lambda x: (st.narrow(x, w(x), 3, dim=1), st.narrow(x, w(x)[:, :4], 3, dim=1)),
    }
    return [Case(k, "-", "selection", lambda x, c=v: tuple(_flat(c(x)))) for k, v in calls.items()]


#: ordering op -> call(fn, mode, method, x); index ops take INDEX_METHODS only
_ORDER_INDEX: dict[str, Callable[..., Any]] = {
    "argmax": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "argmin": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "argmedian": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "argquantile": lambda f, m, me, x: f(x, 0.3, dim=-1, mode=m, method=me),
    "argsort": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
}
_ORDER_VALUE: dict[str, Callable[..., Any]] = {
    "max": lambda f, m, me, x: (f(x, dim=-1, mode=m, method=me), f(x, mode=m, method=me)),
    "min": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "median": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "quantile": lambda f, m, me, x: f(x, 0.3, dim=-1, mode=m, method=me),
    "rank": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "sort": lambda f, m, me, x: f(x, dim=-1, mode=m, method=me),
    "topk": lambda f, m, me, x: f(x, 2, dim=-1, mode=m, method=me),
}


def _ordering(suffix: str) -> list[Case]:
    group = "straight_through" if suffix else "ordering"
    cases = []
    for table, methods in ((_ORDER_INDEX, INDEX_METHODS), (_ORDER_VALUE, METHODS)):
        for op, call in table.items():
            f = getattr(st, op + suffix)
            for me in methods:

                def c(m: str, x: torch.Tensor, f: Any = f, me: str = me, call: Any = call) -> Any:
                    return call(f, m, me, x)

                cases.append(Case(op + suffix, me, group, _modes(c)))
    return cases


def _straight_through() -> list[Case]:
    ew = {
        "relu_st": lambda m, x: st.relu_st(x, mode=m),
        "abs_st": lambda m, x: st.abs_st(x, mode=m),
        "sign_st": lambda m, x: st.sign_st(x, mode=m),
        "heaviside_st": lambda m, x: st.heaviside_st(_nograd_hard(m, x), mode=m),
        "round_st": lambda m, x: st.round_st(2.0 * x, mode=m),
        "clamp_st": lambda m, x: st.clamp_st(x, -0.5, 0.7, mode=m),
    }
    cases = [Case(k, "-", "straight_through", _modes(v)) for k, v in ew.items()]
    names = [k + "_st" for k in _CMP] + ["equal_st"]
    for k in names:
        base = "eq" if k == "equal_st" else k[:-3]
        cases.append(Case(k, "-", "straight_through", _modes(_cmp_call(getattr(st, k), base))))
    cases += [
        Case(
            "heaviside_st",
            "surrogate=super",
            "straight_through",
            lambda x: (st.heaviside_st(x, surrogate="super"),),
        ),
        Case(
            "sign_st",
            "surrogate=atan",
            "straight_through",
            lambda x: (st.sign_st(x, surrogate="atan", alpha=3.0),),
        ),
        Case(
            "st",
            "-",
            "straight_through",
            _modes(lambda m, x: st.st(st.relu)(x, 0.2, m, gated=True)),
        ),
        Case(
            "grad_replace",
            "-",
            "straight_through",
            lambda x: (
                st.grad_replace(lambda t, forward: torch.relu(t) if forward else F.silu(t))(x),
            ),
        ),
    ]
    rank_st = [c for c in _ordering("_st") if c.func == "rank_st"]
    cases += [Case("ranking_st", c.variant, c.group, c.fn) for c in rank_st]
    return cases


def _surrogate() -> list[Case]:
    cases = []
    for name in sg.METHODS:
        stoch = sg.SURROGATES[name].stochastic

        def thr(x: torch.Tensor, name: str = name) -> tuple[torch.Tensor, ...]:
            a = torch.full_like(x[0], 1.5)
            return (sg.threshold(x, name), sg.threshold(x, name, a), sg.sign(x, name, 2.0))

        cases.append(Case("surrogate.threshold", name, "surrogate", thr, stoch))
    fns = {
        "super_fn": False,
        "heavi_tanh_fn": False,
        "heavi_erfc_fn": False,
        "heavi_circ_fn": False,
        "heavi_tent_fn": False,
        "logistic_fn": True,
        "circ_dist_fn": True,
    }
    for k, stoch in fns.items():
        fn = getattr(sg, k)
        cases.append(Case(f"surrogate.{k}", "-", "surrogate", lambda x, f=fn: (f(x, 2.0),), stoch))
    return cases


def _interception() -> list[Case]:
    def model(x: torch.Tensor, method: str | None) -> list[torch.Tensor]:
        """Unmodified torch code: every group of relaxations soft_mode intercepts."""
        y = _y(x)
        s = torch.sort(x, dim=-1)
        top = torch.topk(x, 2, dim=-1).values
        mask = (x > y).float()
        i = x.argmax(-1, keepdim=True)
        picked = torch.gather(x, -1, i)
        return [
            s.values,
            top,
            mask,
            F.relu(x),
            torch.clamp(x, -0.5, 0.5),
            torch.where(x > 0, x, y),
            picked,
            torch.median(x, dim=-1).values,
        ]

    cases = []
    for me in (None, *METHODS):

        def fn(x: torch.Tensor, me: str | None = me) -> tuple[torch.Tensor, ...]:
            outs: list[torch.Tensor] = []
            for m in ("smooth", "c1"):
                with st.soft_mode(m, 0.2, method=me):
                    outs += model(x, me)
            return tuple(outs)

        cases.append(Case("soft_mode", me or "default", "interception", fn))

    def fn_st(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with st.soft_mode("smooth", 0.2, straight_through=True):
            return tuple(model(x, None))

    def fn_tensor(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s = st.soft(x, mode="smooth", softness=0.2)
        out = model(s, None)
        return tuple(o.as_subclass(torch.Tensor) for o in out)

    cases += [
        Case("soft_mode", "straight_through", "interception", fn_st),
        Case("SoftTensor", "-", "interception", fn_tensor),
    ]
    return cases


def _perturbation() -> list[Case]:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Batched evaluation of a torch function, global RNG: traceable without breaks."""
        step = st.perturbed(
            lambda t: (t > 0).to(t.dtype) + F.relu(t), softness=0.2, samples=8, batched=True
        )
        return (step(x),)

    return [Case("perturbed", "-", "perturbation", fn)]


def tensor_softness_case() -> Case:
    """relu, greater and sort with a 0-d tensor softness (range-checked only in eager mode)."""
    sft = torch.tensor(0.2, dtype=torch.float64)

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            st.relu(x, softness=sft),
            st.greater(x, _y(x), softness=sft),
            st.sort(x, softness=sft).values,
        )

    return Case("tensor softness", "-", "misc", fn)


def all_cases() -> list[Case]:
    """Every (public function, variant) case, in a stable order."""
    return (
        _elementwise()
        + _comparison()
        + _logic()
        + _selection()
        + _ordering("")
        + _straight_through()
        + _ordering("_st")
        + _surrogate()
        + _interception()
        + _perturbation()
    )


def public_names() -> set[str]:
    """Every public callable name the catalog must cover (``softtorch.*`` and surrogate's)."""
    skip = {
        "SoftBool",
        "SoftIndex",
        "SoftConfig",
        "registry",
        "surrogate",
        "current_mode",
        "hard_mode",
        "soft",
        "positive_softness",  # softplus(raw) + floor: the learnable softness map (test_learnable)
    }
    names = {
        k
        for k, v in vars(st).items()
        if not k.startswith("_") and callable(v) and k not in skip and not isinstance(v, type)
    }
    names |= {"SoftTensor", "soft_mode"}
    names |= {
        f"surrogate.{k}" for k in ("threshold",) + tuple(n for n in sg.__all__ if n.endswith("_fn"))
    }
    return names
