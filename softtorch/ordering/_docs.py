"""The parameters of the public ordering ops, described once: the ``Args:`` sections of their
docstrings.

The twelve ops share most of their parameters. :data:`PARAMS` describes each once, and
:data:`OVERRIDES` holds the per-op wording where the meaning differs (``dim=None`` flattens for
reductions but means the last dimension for sort-like ops; index-valued ops accept only the
methods with soft indices). :func:`document` appends the ``Args:`` section to an op's docstring
(before its ``Returns:`` / ``Example:`` sections), so ``help(softtorch.sort)`` and the API pages
(which render the runtime docstring) show every parameter from this one table.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable[..., object])

SORT_LIKE = frozenset({"sort", "argsort", "topk"})
#: Ops whose result is a SoftIndex only (no values): methods without soft indices are rejected.
INDEX_ONLY = frozenset({"argsort", "argmax", "argmin", "argmedian", "argquantile"})

PARAMS: dict[str, str] = {
    "x": "Input tensor; integer inputs are promoted to the default float dtype, float16 / "
    "bfloat16 are computed in float32 and returned in their dtype.",
    "dim": "Dimension to reduce; ``None`` flattens ``x`` first, like torch.",
    "keepdim": "Keep the reduced dimension with size 1, like torch.",
    "softness": "Width of the relaxation: a finite float > 0 or a 1-element tensor (which may "
    "require grad). The result tends to torch's as ``softness -> 0``.",
    "mode": '``"hard"`` (exactly torch), ``"smooth"`` (entropic), ``"c0"`` (quadratic: sparse), '
    '``"c1"`` / ``"c2"`` (p-norm 3/2, 4/3: sparse and smoother), or ``"_hard"``, the '
    "compatibility mode of softtorch 0.1.1: the method's own hard limit (softness -> 0) run "
    'through the soft code path, equal to ``"hard"`` up to float rounding, with one-hot soft '
    "indices (``fast_soft_sort``: the hard sort / rank).",
    "method": '``"softsort"``, ``"neuralsort"``, ``"sorting_network"``, ``"ot"``, '
    '``"perturbed"`` (Monte-Carlo perturbed optimiser) or ``"fast_soft_sort"`` (alias '
    '``"smooth_sort"``; values only, no soft indices).',
    "standardize": r"Relax on :math:`z = \sigma((x - \mu) / \sigma_x)` along ``dim`` instead of "
    "``x``, so that ``softness`` does not depend on the scale of ``x``.",
    "ot_kwargs": 'Solver options of ``method="ot"`` (``sinkhorn_tol``, ``sinkhorn_max_iter``, '
    "``lbfgs_tol``, ``lbfgs_max_iter``); ignored by the other methods.",
    "perturbed_kwargs": 'Options of ``method="perturbed"``: ``samples`` (int, default 100), '
    '``noise`` (``"gaussian"`` or ``"gumbel"``), ``generator`` (a ``torch.Generator`` for '
    "reproducible values and gradients), ``antithetic`` and ``baseline`` (variance reduction); "
    "ignored by the other methods.",
    "gated_grad": "``False`` detaches the soft index inside the expected values, so they get "
    "gradient only through ``x``.",
    "descending": "Sort in descending order.",
    "k": "Number of elements to select, ``1 <= k <= n`` (``k = 0`` only with ``mode=\"hard\"`` or "
    "an empty ``dim``, following ``torch.topk``; otherwise \"k must be positive\").",
    "largest": "``False`` selects the ``k`` smallest instead.",
    "q": "Quantile level(s) in [0, 1]: a float, a 0-d tensor, or a 1-D tensor of length ``m``, "
    "which prepends a dimension of size ``m``.",
    "interpolation": 'As in ``torch.quantile``: ``"linear"``, ``"lower"``, ``"higher"``, '
    '``"nearest"`` (half to even) or ``"midpoint"``.',
    "return_indices": "``False`` returns ``indices=None`` and, for softsort / neuralsort, never "
    "builds an ``n x n`` matrix.",
    "return_argquantile": "Also return the SoftIndex: ``(values, soft_index)``.",
    "return_log_probs": r"Return the SoftIndex as log-probabilities :math:`\log p` (computed "
    "stably; ``-inf`` at exact zeros).",
    "mask": "Bool tensor broadcastable to ``x``, ``True`` at real entries (lists of different "
    "lengths padded to one length): each slice's result is the op on its ``c`` real entries "
    "alone; padded entries get zero probability and zero gradient. Fills: values and soft-index "
    "rows at output positions ``>= c`` are ``0`` (``-inf`` log-probabilities), ranks of padded "
    "entries ``0``, soft-index columns of padded entries ``0``; a slice with no real entry gives "
    "``0`` values and all-zero soft indices. ``None``: every entry is real.",
    "log_prob_eps": "Clamp the SoftIndex at ``eps`` in ``(0, 1/n)`` and renormalise, "
    r":math:`p' = \max(p, \epsilon) / \sum_j \max(p_j, \epsilon)`; ``None`` keeps ``p``.",
}

OVERRIDES: dict[tuple[str, str], str] = {
    **{
        (op, "dim"): "Dimension to sort along; ``None`` means the last dimension."
        for op in SORT_LIKE
    },
    **{
        (op, "method"): '``"softsort"``, ``"neuralsort"``, ``"sorting_network"``, ``"ot"`` or '
        '``"perturbed"`` (the methods with soft indices).'
        for op in INDEX_ONLY
    },
    ("rank", "dim"): "Dimension to rank along; ``None`` flattens ``x`` first (flat ranks).",
    ("rank", "descending"): "``True`` (default): the largest input gets rank 1; ``False``: the "
    "smallest does.",
}

_TAIL = re.compile(r"^(Returns|Example|Examples|Raises|Note|Notes):\s*$", re.M)


def describe(op: str, parameter: str) -> str:
    """The description of ``parameter`` of the ordering op ``op`` (KeyError if none)."""
    return OVERRIDES.get((op, parameter), PARAMS[parameter])


def _words(text: str) -> list[str]:
    """Words of ``text``, a backtick span (``code``, a :math: role) kept as one word."""
    out: list[str] = []
    for w in text.split():
        if out and out[-1].count("`") % 2:
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def args_section(op: str, parameters: list[str]) -> str:
    """A Google-style ``Args:`` section (no indentation) for ``parameters`` of ``op``."""
    lines = ["Args:"]
    for p in parameters:
        words = _words(describe(op, p))
        line = f"    {p}:"
        for w in words:  # wrap at 96 columns (+ 4 of docstring indentation = 100)
            if len(line) + 1 + len(w) > 96:
                lines.append(line)
                line = "        " + w
            else:
                line += " " + w
        lines.append(line)
    return "\n".join(lines)


def document(fn: _F) -> _F:
    """Append the ``Args:`` section of ``fn``'s parameters to its docstring (before its
    ``Returns:`` / ``Example:`` sections)."""
    params = list(inspect.signature(fn).parameters)
    text = inspect.cleandoc(fn.__doc__ or "")
    section = args_section(fn.__name__, params)
    tail = _TAIL.search(text)
    if tail is None:
        fn.__doc__ = f"{text}\n\n{section}\n"
    else:
        fn.__doc__ = f"{text[: tail.start()].rstrip()}\n\n{section}\n\n{text[tail.start() :]}"
    return fn
