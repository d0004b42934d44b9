"""Print a markdown table of ``torch.compile`` graph breaks per public softtorch function x variant.

Each (function, variant) case of ``tests/_public_api.py`` runs every mode of the function in one
function; ``torch._dynamo.explain`` traces it on a ``(3, 6)`` float64 input that requires grad and
reports the graphs and the graph breaks (reason, and the softtorch line that caused it). Only
Dynamo runs here (no Inductor code generation), so the whole catalog takes about a minute.

Usage::

    python scripts/graph_breaks.py            # the table (docs/compile.md embeds it)
    python scripts/graph_breaks.py --summary  # one line per case with a break, with locations
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch._dynamo as dynamo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import _public_api as api  # noqa: E402


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


def _cell(b: Breaks) -> str:
    if b.breaks < 0:
        return "error"
    return "0" if b.breaks == 0 else f"**{b.breaks}**"


def table(results: dict[str, tuple[api.Case, Breaks]]) -> str:
    """Markdown: ordering ops as a function x method grid, everything else as a list."""
    lines = []
    grid: dict[str, dict[str, Breaks]] = {}
    rest: list[tuple[api.Case, Breaks]] = []
    for case, b in results.values():
        if case.group in ("ordering", "straight_through") and case.variant in api.METHODS:
            grid.setdefault(case.func, {})[case.variant] = b
        else:
            rest.append((case, b))
    head = "| function | " + " | ".join(f"`{m}`" for m in api.METHODS) + " |"
    lines += [head, "|---" * (len(api.METHODS) + 1) + "|"]
    for func, row in grid.items():
        cells = [_cell(row[m]) if m in row else "n/a" for m in api.METHODS]
        lines.append(f"| `{func}` | " + " | ".join(cells) + " |")
    lines += ["", "| function | variant | graph breaks |", "|---|---|---|"]
    for case, b in rest:
        lines.append(f"| `{case.func}` | {case.variant} | {_cell(b)} |")
    causes: dict[str, list[str]] = {}
    for case, b in results.values():
        for r in b.reasons:
            causes.setdefault(r, []).append(case.id)
    lines += ["", "| cause of the break (summarised) | cases |", "|---|---|"]
    for r, ids in sorted(causes.items()):
        lines.append(f"| {r} | {len(ids)} |")
    return "\n".join(lines)


def run(
    cases: list[api.Case] | None = None, progress: bool = False
) -> dict[str, tuple[api.Case, Breaks]]:
    """Explain every case (default: the whole catalog)."""
    torch._logging.set_logs(dynamo=logging.ERROR)
    results = {}
    for case in cases if cases is not None else api.all_cases():
        t0 = time.perf_counter()
        results[case.id] = (case, explain_case(case))
        if progress:
            print(f"{case.id}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", action="store_true", help="list the cases with breaks")
    p.add_argument("--progress", action="store_true", help="time per case on stderr")
    p.add_argument("--only", default=None, help="substring filter on case ids")
    p.add_argument("--exclude", default=None, help="skip case ids containing this substring")
    args = p.parse_args()
    cases = [
        c
        for c in api.all_cases()
        if (args.only is None or args.only in c.id)
        and (args.exclude is None or args.exclude not in c.id)
    ]
    results = run(cases, progress=args.progress)
    if args.summary:
        for cid, (_, b) in results.items():
            if b.breaks:
                print(f"{cid}: {b.breaks} breaks, {b.graphs} graphs; " + "; ".join(b.reasons))
        total = sum(1 for _, b in results.values() if b.breaks == 0)
        print(f"{total}/{len(results)} cases trace as one graph")
        return
    print(table(results))


if __name__ == "__main__":
    main()
