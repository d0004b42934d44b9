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
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import _public_api as api  # noqa: E402
from _graph_breaks import Breaks, explain_case  # noqa: E402


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
