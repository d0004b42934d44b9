r"""The registry: every torch callable that ``soft_mode`` / ``SoftTensor`` relax, and how.

One :class:`Op` per relaxed operation names its group, its handler (the relaxation together with
the adapter from torch's signature, see :mod:`softtorch.interception.context`), every spelling
torch offers (``torch.f``, ``Tensor.f``, in-place ``f_``, ``torch.nn.functional``, operator
methods) and the Python operators that reach it. The dispatcher, the selection by ``ops=`` /
``exclude=``, the coverage table in the docs (:func:`coverage_markdown`) and the coverage test all
read this table.

Regenerate the docs table with ``python -m softtorch.interception docs/coverage.md``.
"""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import ops_elementwise as E
from . import ops_integer as I
from . import ops_logic as L
from . import ops_order as O
from . import ops_pool as P
from . import ops_select as S

#: Groups in documentation order.
GROUPS: tuple[str, ...] = (
    "elementwise", "comparison", "logic", "ordering", "pooling", "selection", "integer",
)  # fmt: skip

#: When a call is relaxed: ``float`` -- a floating operand is on the gradient path (or soft
#: data); ``role`` -- the handler needs a SoftBool / SoftIndex operand and decides itself;
#: ``float|index`` -- either a floating operand on the path or a SoftIndex operand;
#: ``float|role`` -- a floating operand on the path, or any soft operand (the handler decides).
TRIGGERS: tuple[str, ...] = ("float", "role", "float|index", "float|role")

_NAMESPACES: dict[str, Any] = {"torch": torch, "Tensor": torch.Tensor, "F": F}
_INPLACE_DUNDERS = frozenset({"__iand__", "__ior__", "__ixor__"})


@dataclass(frozen=True)
class Spelling:
    """One way to call an op: ``path`` as written in code, ``target`` the object torch passes to
    ``__torch_function__``; ``adapt`` reorders its arguments into the handler's signature."""

    path: str
    target: Any
    inplace: bool
    adapt: Callable[..., tuple[tuple[Any, ...], dict[str, Any]]] | None = None


@dataclass(frozen=True)
class Op:
    """A relaxed operation: name, group, handler, spellings and documentation."""

    name: str
    group: str
    handler: Callable[..., Any]
    spellings: tuple[Spelling, ...]
    relaxation: str
    result: str
    operators: tuple[tuple[str, Callable[..., Any]], ...] = ()
    trigger: str = "float"


def _resolve(path: str) -> Any:
    head, *rest = path.split(".")
    obj = _NAMESPACES[head]
    for part in rest:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _is_inplace(path: str) -> bool:
    last = path.rsplit(".", 1)[-1]
    return last in _INPLACE_DUNDERS or (last.endswith("_") and not last.endswith("__"))


def _op(
    name: str,
    group: str,
    handler: Callable[..., Any],
    paths: str,
    relaxation: str,
    result: str = "value",
    *,
    operators: Iterable[tuple[str, Callable[..., Any]]] = (),
    adapt: dict[str, Callable[..., Any]] | None = None,
    trigger: str = "float",
) -> Op:
    assert group in GROUPS and trigger in TRIGGERS, (group, trigger)
    spellings = []
    for path in paths.split():
        target = _resolve(path)
        if target is not None:  # spellings missing from this torch version are skipped
            spellings.append(Spelling(path, target, _is_inplace(path), (adapt or {}).get(path)))
    return Op(name, group, handler, tuple(spellings), relaxation, result, tuple(operators), trigger)


def _methods(*names: str) -> str:
    """``torch.f Tensor.f Tensor.f_`` for each name (in-place only where torch has it)."""
    return " ".join(f"torch.{n} Tensor.{n} Tensor.{n}_" for n in names)


def _ops() -> tuple[Op, ...]:
    SB, SI = "SoftBool", "SoftIndex"
    VI = "(values, SoftIndex)"
    relu_s = "soft relu r_s (smooth: s softplus(x/s))"
    ops = [
        # ------------------------------------------------------------------ elementwise
        _op("relu", "elementwise", E.relu, "torch.relu torch.relu_ Tensor.relu Tensor.relu_ "
            "F.relu F.relu_", relu_s + "; nn.ReLU"),
        _op("relu6", "elementwise", E.relu6, "F.relu6", "soft clamp(x, 0, 6)"),
        _op("hardtanh", "elementwise", E.hardtanh, "F.hardtanh F.hardtanh_",
            "soft clamp(x, min_val, max_val); nn.Hardtanh, nn.ReLU6"),
        _op("clamp", "elementwise", E.clamp, "torch.clamp torch.clamp_ torch.clip torch.clip_ "
            "Tensor.clamp Tensor.clamp_ Tensor.clip Tensor.clip_",
            "b - r_s(b - a - r_s(x - a)) (one-sided: a + r_s(x - a), b - r_s(b - x))"),
        _op("clamp_min", "elementwise", E.clamp_min,
            _methods("clamp_min") + " torch.clamp_min_", "a + r_s(x - a)"),
        _op("clamp_max", "elementwise", E.clamp_max,
            _methods("clamp_max") + " torch.clamp_max_", "b - r_s(b - x)"),
        _op("abs", "elementwise", E.abs_, "torch.abs torch.abs_ torch.absolute Tensor.abs "
            "Tensor.abs_ Tensor.absolute Tensor.absolute_ Tensor.__abs__", "x sign_s(x)",
            operators=[("abs(x)", builtins.abs)]),
        _op("sign", "elementwise", E.sign, _methods("sign", "sgn"), "2 sigma_s(x) - 1"),
        _op("heaviside", "elementwise", E.heaviside, _methods("heaviside"),
            "sigma_s(x) (surrogate: spikes forward, surrogate gradient)"),
        _op("round", "elementwise", E.round_, "torch.round torch.round_ Tensor.round "
            "Tensor.round_", "staircase of soft steps (arXiv 2504.19026); decimals= scales"),
        _op("floor", "elementwise", E.floor, "torch.floor torch.floor_ Tensor.floor "
            "Tensor.floor_", "round_s(x - 1/2)"),
        _op("floor_divide", "elementwise", E.floor_divide, _methods("floor_divide")
            + " Tensor.__floordiv__ Tensor.__rfloordiv__ Tensor.__ifloordiv__",
            "floor_s(x / y)", operators=[("x // y", operator.floordiv)],
            adapt={"Tensor.__rfloordiv__": E.rfloordiv}),
        _op("ceil", "elementwise", E.ceil, "torch.ceil torch.ceil_ Tensor.ceil Tensor.ceil_",
            "round_s(x + 1/2)"),
        _op("trunc", "elementwise", E.trunc, "torch.trunc torch.trunc_ Tensor.trunc "
            "Tensor.trunc_ torch.fix torch.fix_ Tensor.fix Tensor.fix_",
            "round_s(x - sign_s(x) / 2)"),
        _op("maximum", "elementwise", E.maximum, "torch.maximum Tensor.maximum",
            "b + r_s(a - b) (also torch.max(a, b))"),
        _op("minimum", "elementwise", E.minimum, "torch.minimum Tensor.minimum",
            "a - r_s(a - b) (also torch.min(a, b))"),
        # ------------------------------------------------------------------ comparison
        _op("gt", "comparison", L.gt, _methods("gt", "greater") + " Tensor.__gt__",
            "sigma_s(x - y - eps)", SB, operators=[("x > y", operator.gt)]),
        _op("ge", "comparison", L.ge, _methods("ge", "greater_equal") + " Tensor.__ge__",
            "sigma_s(x - y + eps)", SB, operators=[("x >= y", operator.ge)]),
        _op("lt", "comparison", L.lt, _methods("lt", "less") + " Tensor.__lt__",
            "sigma_s(y - x - eps)", SB, operators=[("x < y", operator.lt)]),
        _op("le", "comparison", L.le, _methods("le", "less_equal") + " Tensor.__le__",
            "sigma_s(y - x + eps)", SB, operators=[("x <= y", operator.le)]),
        _op("eq", "comparison", L.eq, _methods("eq") + " Tensor.__eq__",
            "min(1, 2 sigma_s(eps - |x - y|_s)); SoftIndex == label: P[..., label]; "
            "SoftBools: soft XNOR", SB, operators=[("x == y", operator.eq)],
            trigger="float|index"),
        _op("ne", "comparison", L.ne, _methods("ne", "not_equal") + " Tensor.__ne__",
            "1 - eq", SB, operators=[("x != y", operator.ne)], trigger="float|index"),
        _op("isclose", "comparison", L.isclose, "torch.isclose Tensor.isclose",
            "soft |x - y| <= atol + rtol |y|", SB),
        # ------------------------------------------------------------------ logic
        _op("logical_not", "logic", L.logical_not, _methods("logical_not", "bitwise_not")
            + " Tensor.__invert__", "1 - a", SB, operators=[("~m", operator.invert)],
            trigger="role"),
        _op("logical_and", "logic", L.logical_and, _methods("logical_and", "bitwise_and")
            + " Tensor.__and__ Tensor.__rand__ Tensor.__iand__", "a b", SB,
            operators=[("m & n", operator.and_), ("m &= n", operator.iand)], trigger="role"),
        _op("logical_or", "logic", L.logical_or, _methods("logical_or", "bitwise_or")
            + " Tensor.__or__ Tensor.__ror__ Tensor.__ior__", "1 - (1 - a)(1 - b)", SB,
            operators=[("m | n", operator.or_), ("m |= n", operator.ior)], trigger="role"),
        _op("logical_xor", "logic", L.logical_xor, _methods("logical_xor", "bitwise_xor")
            + " Tensor.__xor__ Tensor.__rxor__ Tensor.__ixor__", "or(and(a, not b), and(not a, b))",
            SB, operators=[("m ^ n", operator.xor), ("m ^= n", operator.ixor)], trigger="role"),
        _op("all", "logic", L.all_, "torch.all Tensor.all", "product along dim(s)", SB,
            trigger="role"),
        _op("any", "logic", L.any_, "torch.any Tensor.any", "1 - prod(1 - a) along dim(s)", SB,
            trigger="role"),
        _op("where", "logic", L.where, "torch.where Tensor.where",
            "c x + (1 - c) y (exact where a branch is not finite)",
            adapt={"Tensor.where": L.tensor_where}, trigger="role"),
        _op("masked_fill", "logic", L.masked_fill, "torch.masked_fill Tensor.masked_fill "
            "Tensor.masked_fill_", "where(m, value, x) (exact for a non-finite value)",
            trigger="role"),
        # ------------------------------------------------------------------ ordering
        _op("sort", "ordering", O.sort, "torch.sort Tensor.sort",
            "P x for the soft permutation P (default neuralsort)", VI),
        _op("argsort", "ordering", O.argsort, "torch.argsort Tensor.argsort",
            "soft permutation P", SI),
        _op("msort", "ordering", O.msort, "torch.msort Tensor.msort", "soft sort along dim 0"),
        _op("topk", "ordering", O.topk, "torch.topk Tensor.topk",
            "first k rows of the descending soft permutation", VI),
        _op("kthvalue", "ordering", O.kthvalue, "torch.kthvalue Tensor.kthvalue",
            "row k - 1 of the ascending soft sort", VI),
        _op("max", "ordering", O.max_, "torch.max Tensor.max",
            "E_P[x] under the soft argmax (default softsort); max(a, b) = maximum",
            "value / " + VI),
        _op("min", "ordering", O.min_, "torch.min Tensor.min",
            "E_P[x] under the soft argmin; min(a, b) = minimum", "value / " + VI),
        _op("amax", "ordering", O.amax, "torch.amax Tensor.amax",
            "soft max over the merged dims"),
        _op("amin", "ordering", O.amin, "torch.amin Tensor.amin",
            "soft min over the merged dims"),
        _op("argmax", "ordering", O.argmax, "torch.argmax Tensor.argmax", "soft argmax", SI),
        _op("argmin", "ordering", O.argmin, "torch.argmin Tensor.argmin", "soft argmin", SI),
        _op("median", "ordering", O.median, "torch.median Tensor.median",
            "row (n - 1) // 2 of the soft sort", "value / " + VI),
        _op("nanmedian", "ordering", O.nanmedian, "torch.nanmedian Tensor.nanmedian",
            "soft median; exact on slices with NaN", "value / " + VI),
        _op("quantile", "ordering", O.quantile, "torch.quantile Tensor.quantile",
            "interpolated rows of the soft sort"),
        _op("nanquantile", "ordering", O.nanquantile, "torch.nanquantile Tensor.nanquantile",
            "soft quantile; exact on slices with NaN"),
        _op("cummax", "ordering", O.cummax, "torch.cummax Tensor.cummax",
            "E_p[x_..j], p = simplex projection of prefix scores / s", VI),
        _op("cummin", "ordering", O.cummin, "torch.cummin Tensor.cummin",
            "cummax of the reflected scores", VI),
    ]
    pool_doc = "log-mean-exp (smooth) / sparse expectation (c0-c2) per window"
    for nd in (1, 2, 3):
        ops += [
            _op(f"max_pool{nd}d", "pooling", getattr(P, f"max_pool{nd}d"),
                f"F.max_pool{nd}d torch.max_pool{nd}d", pool_doc + f"; nn.MaxPool{nd}d"),
            _op(f"max_pool{nd}d_with_indices", "pooling",
                getattr(P, f"max_pool{nd}d_with_indices"),
                f"F.max_pool{nd}d_with_indices torch.max_pool{nd}d_with_indices",
                pool_doc + "; torch's integer indices", "(values, indices)"),
            _op(f"adaptive_max_pool{nd}d", "pooling", getattr(P, f"adaptive_max_pool{nd}d"),
                f"F.adaptive_max_pool{nd}d", pool_doc + f"; nn.AdaptiveMaxPool{nd}d"),
            _op(f"adaptive_max_pool{nd}d_with_indices", "pooling",
                getattr(P, f"adaptive_max_pool{nd}d_with_indices"),
                f"F.adaptive_max_pool{nd}d_with_indices torch.adaptive_max_pool{nd}d",
                pool_doc + "; torch's integer indices", "(values, indices)"),
        ]
    ops += [
        # ------------------------------------------------------------------ selection
        _op("gather", "selection", S.gather, "torch.gather Tensor.gather",
            "sum_j P[..., j] x[..., j, ...]", trigger="role"),
        _op("take_along_dim", "selection", S.take_along_dim,
            "torch.take_along_dim Tensor.take_along_dim", "sum_j P[..., j] x[..., j, ...]",
            trigger="role"),
        _op("index_select", "selection", S.index_select,
            "torch.index_select Tensor.index_select", "P applied along dim", trigger="role"),
        _op("take", "selection", S.take, "torch.take Tensor.take", "P applied to x.flatten()",
            trigger="role"),
        _op("getitem", "selection", S.getitem, "Tensor.__getitem__",
            "x[idx], x[..., idx], x[rows, idx]: P applied along the indexed dim",
            operators=[("x[idx]", operator.getitem)], trigger="role"),
    ]
    SI_ = "SoftInt"
    ops += [
        # ------------------------------------------------------------------ soft integers
        _op("bincount", "integer", I.bincount, "torch.bincount Tensor.bincount",
            "soft counts sum_i p_i(v) (weights: sum_i w_i p_i(v))", SI_ + " / SoftFloat",
            trigger="float|role"),
        _op("scatter_add", "integer", I.scatter_add,
            "torch.scatter_add Tensor.scatter_add Tensor.scatter_add_",
            "x + sum over the index distribution of src (E[src] for soft src)",
            SI_ + " / SoftFloat", trigger="role"),
        _op("index_add", "integer", I.index_add,
            "torch.index_add Tensor.index_add Tensor.index_add_",
            "x + P^T (alpha src) along dim", SI_ + " / SoftFloat", trigger="role"),
        _op("scatter_reduce", "integer", I.scatter_reduce,
            "torch.scatter_reduce Tensor.scatter_reduce Tensor.scatter_reduce_",
            "reduce='sum': as scatter_add", SI_ + " / SoftFloat", trigger="role"),
        _op("scatter", "integer", I.scatter, "torch.scatter Tensor.scatter Tensor.scatter_",
            "P^T src (normalised where the exact write covers a slice; x (1 - P^T 1) + P^T src "
            "elsewhere)", SI_ + " / SoftFloat", trigger="role"),
        _op("setitem", "integer", I.setitem, "Tensor.__setitem__",
            "x[idx] = v with a SoftIndex idx: as scatter (rank[argsort] = arange is a soft rank)",
            "in place", operators=[("x[idx] = v", operator.setitem)], trigger="role"),
        _op("index_put", "integer", I.index_put,
            "torch.index_put Tensor.index_put Tensor.index_put_",
            "as x[idx] = v; accumulate=True: x + P^T v", SI_ + " / SoftFloat", trigger="role"),
        _op("embedding", "integer", I.embedding, "F.embedding", "P W (nn.Embedding)",
            trigger="role"),
        _op("bucketize", "integer", I.bucketize, "torch.bucketize",
            "bucket ids: p_i = S_i - S_(i+1), S_i = sigma_s(x - b_(i-1))", SI_),
        _op("searchsorted", "integer", I.searchsorted, "torch.searchsorted",
            "as bucketize (1-D sorted sequence)", SI_),
        _op("histc", "integer", I.histc, "torch.histc Tensor.histc",
            "soft counts sum_i sigma_s(x_i - e_j) - sigma_s(x_i - e_(j+1))", "SoftFloat"),
        _op("unique", "integer", I.unique, "torch.unique Tensor.unique",
            "distinct values: soft sort; inverse: soft rank (column of the soft permutation)",
            "(values, SoftIndex, counts)"),
        _op("one_hot", "integer", I.one_hot, "F.one_hot",
            "exact one-hot (int64) with P(X = c)", SI_, trigger="role"),
    ]
    return tuple(ops)


#: Every relaxed operation, in documentation order.
REGISTRY: tuple[Op, ...] = _ops()


def _index() -> dict[Any, tuple[Op, Spelling]]:
    out: dict[Any, tuple[Op, Spelling]] = {}
    for op in REGISTRY:
        for sp in op.spellings:
            if sp.target in out:
                other = out[sp.target][0].name
                if other != op.name:
                    raise RuntimeError(f"{sp.path} is registered for {other!r} and {op.name!r}")
                continue  # an alias of a spelling already listed (e.g. F.relu_ is torch.relu_)
            out[sp.target] = (op, sp)
    return out


#: Every torch callable the registry knows, with its op and spelling.
BY_TARGET: dict[Any, tuple[Op, Spelling]] = _index()


def ops() -> tuple[Op, ...]:
    """The registry entries (the accessor behind ``softtorch.registry``)."""
    return REGISTRY


def names() -> frozenset[str]:
    """Every op name and group name accepted by ``ops=`` / ``exclude=``."""
    return frozenset(op.name for op in REGISTRY) | frozenset(GROUPS)


@dataclass(frozen=True)
class Entry:
    """What the dispatcher needs for one torch callable (flattened for a fast lookup)."""

    handler: Callable[..., Any]
    inplace: bool
    adapt: Callable[..., Any] | None
    trigger: str


@dataclass(frozen=True)
class Tables:
    """Dispatch tables for one selection: ``plain`` for calls without soft data (ops that can
    relax plain tensors), ``soft`` for calls with a SoftTensor operand (every selected op)."""

    plain: dict[Any, Entry]
    soft: dict[Any, Entry]


@functools.lru_cache(maxsize=64)
def tables(selected: frozenset[str] | None, excluded: frozenset[str]) -> Tables:
    """Dispatch tables for the ops named (by op or group) in ``selected`` (None: all), minus
    ``excluded``."""
    plain_t: dict[Any, Entry] = {}
    soft_t: dict[Any, Entry] = {}
    for target, (op, sp) in BY_TARGET.items():
        keys = {op.name, op.group}
        if selected is not None and not keys & selected or keys & excluded:
            continue
        entry = Entry(op.handler, sp.inplace, sp.adapt, op.trigger)
        soft_t[target] = entry
        if op.trigger != "role":
            plain_t[target] = entry
    return Tables(plain_t, soft_t)


def coverage_markdown() -> str:
    """The coverage table of ``docs/coverage.md``, generated from the registry."""
    lines = [
        "# Coverage of `soft_mode` and `SoftTensor`",
        "",
        "<!-- generated by softtorch.interception.registry.coverage_markdown(); regenerate with",
        "     `python -m softtorch.interception docs/coverage.md` -->",
        "",
        "Every torch callable below is relaxed inside `softtorch.soft_mode(...)` and on",
        "`softtorch.soft(...)` data. `s` is the softness, `sigma_s` the mode's sigmoidal, `r_s`",
        "the soft relu, `P` a soft index (a distribution over positions). Comparisons return",
        "SoftBools (float truth values that act as torch's exact mask wherever a boolean is",
        "needed); index results are torch's integers carrying their soft index. Logic and",
        "selection ops relax only SoftBool / SoftIndex operands. In-place spellings write the",
        "relaxed result.",
        "",
        f"{len(REGISTRY)} ops, {len(BY_TARGET)} distinct torch callables.",
        "",
        "Beyond the table, every op on soft integers (SoftBool, SoftIndex, SoftInt) follows the",
        "soft-integer algebra (`softtorch.interception.discrete`, see *Relaxing third-party",
        "code*): ops tagged `pointwise` in torch's op registry (arithmetic, `//`, `%`,",
        "comparisons, `where` ...), casts, linear reductions (`sum`, `cumsum`, `mean`, `trace`)",
        "and shape ops keep torch's exact integers and carry the distribution.",
        "",
        "What stays exact (no fixed-shape relaxation exists): `nonzero` / `argwhere` /",
        "boolean-mask indexing (variable-length results), code under `torch.no_grad()`, Python",
        "branches. In torchmetrics 1.9 this leaves `binary_auroc` and",
        "`binary_average_precision` (curves under `torch.no_grad()`),",
        "`retrieval_average_precision` (boolean-mask indexing) and `retrieval_reciprocal_rank`",
        "(`nonzero`) exact, without a gradient.",
    ]
    for group in GROUPS:
        lines += ["", f"## {group}", "", "| op | spellings | relaxation | result |",
                  "|---|---|---|---|"]  # fmt: skip
        for op in REGISTRY:
            if op.group != group:
                continue
            spell = [f"`{sp.path}`" for sp in op.spellings]
            spell += [f"`{label}`" for label, _ in op.operators]
            cells = [f"`{op.name}`", ", ".join(spell), op.relaxation, op.result]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) the coverage table at ``argv[0]``."""
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"] or ["docs/coverage.md"]
    text = coverage_markdown()
    if check:
        with open(paths[0], encoding="utf-8") as f:
            if f.read() != text:
                print(f"{paths[0]} is out of date; run python -m softtorch.interception")
                return 1
        return 0
    with open(paths[0], "w", encoding="utf-8") as f:
        f.write(text)
    return 0

