"""Graph breaks of one catalog case under ``torch._dynamo.explain`` (shared by
``tests/integration/test_compile.py`` and ``scripts/graph_breaks.py``).

:func:`explain_case` traces a case of :mod:`_public_api` with Dynamo only (no Inductor code
generation) and summarises its graphs, graph breaks and their reasons (short reason and the
softtorch line that caused it).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import _public_api as api
import torch
import torch._dynamo as dynamo


@dataclass(frozen=True)
class Breaks:
    """Dynamo's view of one case: graphs, graph breaks and their summarised reasons."""

    graphs: int  # -1 when Dynamo raised
    breaks: int  # -1 when Dynamo raised
    reasons: tuple[str, ...]  # "<short reason> (<file>:<line>)", unique, sorted


def _short(reason: str) -> str:
    first = reason.strip().splitlines()[0]
    if "Tensor.item()" in first:
        return "Tensor.item() / float(tensor)"
    if "data-dependent" in first.lower() or "data dependent" in first.lower():
        return "data-dependent branch"
    if "marked as skipped" in first:
        m = re.search(r"function `([^`]+)`", reason)
        return f"call to skipped function {m.group(1)}" if m else "call to skipped function"
    return first[:80]


def _where(stack: list) -> str:
    frames = [f for f in stack if "/softtorch/" in f.filename.replace("\\", "/")]
    if not frames:
        return "user code"
    f = frames[-1]
    return f"softtorch/{f.filename.replace(chr(92), '/').split('/softtorch/')[-1]}:{f.lineno}"


def explain_case(case: api.Case, x: torch.Tensor | None = None) -> Breaks:
    """Trace ``case.fn`` with Dynamo (fresh caches) and summarise its graph breaks."""
    x = api.make_input().requires_grad_() if x is None else x
    dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one eager call first: lazy imports done on first use (the ordering method modules,
        # numba) would otherwise count as graph breaks of whichever case runs first
        case.fn(x)
        try:
            out = dynamo.explain(case.fn)(x)
        except Exception as err:  # Dynamo cannot trace the case at all
            msg = str(err).strip().splitlines()[0][:80]
            return Breaks(-1, -1, (f"Dynamo error: {type(err).__name__}: {msg}",))
    reasons = sorted(
        {f"{_short(str(b.reason))} ({_where(b.user_stack)})" for b in out.break_reasons}
    )
    return Breaks(out.graph_count, out.graph_break_count, tuple(reasons))
