"""Shared descriptions of softtorch's recurring parameters (for docstrings without ``Args:``).

The relaxations share most of their parameters (``x``, ``softness``, ``mode``, ``method``, ``dim``,
``standardize`` ...). :func:`args_section` renders a Google-style ``Args:`` section for the
parameters of a public function from :data:`GLOSSARY`, with per-function wording from
:data:`OVERRIDES` where the meaning differs (``dim=None`` flattens for reductions but means the last
dimension for sort-like ops, for example). Used by ``rst_to_markdown.RstToMarkdown`` only when the
function's own docstring documents no parameters.
"""

from __future__ import annotations

SORT_LIKE = frozenset({"sort", "argsort", "topk"})
REDUCTIONS = frozenset(
    {"argmax", "argmin", "max", "min", "median", "argmedian", "quantile", "argquantile", "rank"}
)
COMPARISONS = frozenset(
    {"greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose"}
)
LOGIC = frozenset({"logical_and", "logical_or", "logical_xor", "logical_not", "all", "any"})
SELECTION = frozenset({"take_along_dim", "take", "index_select", "narrow"})
ELEMENTWISE = frozenset(
    {"heaviside", "sign", "abs", "relu", "clamp", "round", "sigmoidal", "softrelu"}
)
#: Public functions that get a generated ``Args:`` section when they have none.
PUBLIC = (
    SORT_LIKE
    | REDUCTIONS
    | COMPARISONS
    | LOGIC
    | SELECTION
    | ELEMENTWISE
    | {"where", "st", "grad_replace", "soft"}
)

GLOSSARY: dict[str, str] = {
    "x": "Input tensor. Integer inputs are promoted to the default float dtype; complex inputs "
    "raise `TypeError`.",
    "y": "Second operand, broadcast with `x`.",
    "softness": "Width of the relaxation: a finite float > 0 (or a 1-element tensor, which may "
    "require grad). Smaller is closer to the hard function.",
    "mode": '`"hard"` (exactly torch), `"smooth"`, `"c0"`, `"c1"` or `"c2"`; see '
    "[Concepts](../concepts.md#modes).",
    "method": 'Ordering method: `"softsort"`, `"neuralsort"`, `"fast_soft_sort"` (alias '
    '`"smooth_sort"`; values and ranks only), `"ot"` or `"sorting_network"`; see '
    "[Choosing a method](../choosing-a-method.md).",
    "standardize": "Relax on `sigmoid((x - mean) / std)` along `dim`, so that `softness` does not "
    "depend on the scale of `x`; see [Concepts](../concepts.md#standardize).",
    "ot_kwargs": 'Solver options for `method="ot"`: `sinkhorn_tol`, `sinkhorn_max_iter`, '
    "`lbfgs_tol`, `lbfgs_max_iter`.",
    "gated_grad": "`False` stops the gradient through the soft permutation, so values receive "
    "gradient only through `x`.",
    "keepdim": "Keep the reduced dimension with size 1, like torch.",
    "k": "Number of elements to select, `0 <= k <= n`.",
    "largest": "`False` selects the `k` smallest instead.",
    "q": "Quantile level(s) in [0, 1]: a float, a 0-d tensor, or a 1-d tensor of length `m`, which "
    "prepends a dimension of size `m`.",
    "interpolation": 'As in `torch.quantile`: `"linear"`, `"lower"`, `"higher"`, `"nearest"` or '
    '`"midpoint"`.',
    "return_indices": "`False` returns `indices=None` and avoids building the `n x n` soft "
    "permutation.",
    "return_argquantile": "Also return the SoftIndex: `(values, soft_index)`.",
    "epsilon": "Tiny shift that fixes the value at equality in the limit softness -> 0.",
    "gated": "`False`: the integral of the sigmoidal (`smooth`: softplus); `True`: "
    "`x * sigmoidal(x)` (`smooth`: SiLU).",
    "a": "Lower bound (`None`: none), a float or a tensor broadcastable with `x`.",
    "b": "Upper bound (`None`: none), a float or a tensor broadcastable with `x`.",
    "neighbor_radius": "Number of soft steps on each side of `x` (integer >= 1).",
    "rtol": "Relative tolerance, as in `torch.isclose`.",
    "atol": "Absolute tolerance, as in `torch.isclose`.",
    "use_geometric_mean": "Combine with the geometric mean instead of the product.",
    "condition": "SoftBool: the weight of `x` (`1 - condition` is the weight of `y`).",
    "soft_index": "SoftIndex: a distribution over the `n` positions of `dim` in its trailing axis.",
    "soft_start": "SoftIndex over the possible start positions along `dim`.",
    "length": "Length of the slice, as in `torch.narrow`.",
    "straight_through": "Exact (hard) values forward, the relaxation's gradient backward.",
    "ops": "Relax only these op names or groups (`None`: all); see the "
    "[coverage table](../coverage.md).",
    "exclude": "Op names or groups to leave exact.",
    "surrogate": 'With `straight_through=True`: a `softtorch.surrogate` method (e.g. `"super"`) '
    "whose gradient comparisons against thresholds use backward.",
}

OVERRIDES: dict[tuple[str, str], str] = {
    **{(f, "dim"): "Dimension to sort along; `None` means the last dimension." for f in SORT_LIKE},
    **{
        (f, "dim"): "Dimension to reduce along; `None` flattens `x` first, like torch."
        for f in REDUCTIONS
    },
    ("rank", "dim"): "Dimension to rank along; `None` flattens `x` first.",
    ("argsort", "descending"): "Sort in descending order.",
    ("sort", "descending"): "Sort in descending order.",
    ("rank", "descending"): "`True` (default): the largest input gets rank 1; `False`: the "
    "smallest does.",
    **{(f, "dim"): "Dimension to reduce; `None`: all elements." for f in ("all", "any")},
    **{(f, "x"): "SoftBool (floats in [0, 1]; bools are accepted)." for f in LOGIC},
    **{(f, "y"): "Second SoftBool, broadcast with `x`." for f in LOGIC},
    ("all", "epsilon"): "Added inside the logarithm of the geometric mean.",
    ("any", "epsilon"): "Added inside the logarithm of the geometric mean.",
    ("where", "x"): "Values where `condition` is 1.",
    ("where", "y"): "Values where `condition` is 0.",
    **{(f, "dim"): "Dimension of `x` that the soft index selects along." for f in SELECTION},
    ("sigmoidal", "mode"): '`"smooth"`, `"c0"`, `"c1"`, `"c2"`, `"_c1_pnorm"` or `"_c2_pnorm"`.',
    ("softrelu", "mode"): '`"smooth"`, `"c0"`, `"c1"`, `"c2"`, `"_c1_pnorm"` or `"_c2_pnorm"`.',
    ("isclose", "epsilon"): "Tiny shift added to the tolerance.",
    ("st", "fn"): "The relaxation to wrap; it must take a `mode` argument.",
    ("grad_replace", "fn"): "The function to wrap; it must take a `forward` flag: `True` for the "
    "forward value, `False` for the computation whose gradient is used.",
    ("soft", "x"): "Data to wrap (integers are promoted to the default float dtype).",
}


def describe(function: str, parameter: str) -> str | None:
    """The description of ``parameter`` of ``function``, or None if there is no entry."""
    return OVERRIDES.get((function, parameter), GLOSSARY.get(parameter))


def args_section(function: str, parameters: list[str]) -> str:
    """A Google-style ``Args:`` section for the described ``parameters`` (empty if none)."""
    lines = [f"    {p}: {d}" for p in parameters if (d := describe(function, p)) is not None]
    return "Args:\n" + "\n".join(lines) if lines else ""
