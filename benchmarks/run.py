"""Benchmark runner: soft ops vs hard torch ops (see benchmarks/README.md).

    python benchmarks/run.py [--suite SUITE|all] (SUITE: elementwise, ordering, surrogate,
                             soft_mode, metrics, perturbed, fused, models, scaling,
                             ranking, targets)
                             [--quick] [--csv PATH] [--filter SUBSTR] [--repeat N] [--threads N]
                             [--mem auto|on|off]

Each suite is a module ``benchmarks/bench_<suite>.py`` exposing ``cases(quick=False)``. Timing runs
in this process. With memory measurement on (the default for full runs) every case is first run
in a fresh child process that measures the peak RSS increase of one forward+backward step under an
RSS watchdog; a case the watchdog kills is skipped before it can be timed here.

A case may also carry ``skip_if`` (a zero-argument callable returning a skip reason or None,
asked just before the case runs) and ``on_result`` (called with the case's Result once it has
run or been skipped): a suite uses them to stop a method once it gets too slow (``scaling``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch  # noqa: E402
from _harness import (  # noqa: E402
    Case,
    Result,
    RssWatchdog,
    case_key,
    check_cases,
    current_rss_mb,
    format_header,
    format_table,
    machine_info,
    max_mem_bytes,
    measure_memory,
    new_result,
    set_max_mem_gb,
    time_case,
    write_csv,
)

SUITES: tuple[str, ...] = (
    "elementwise", "ordering", "surrogate", "soft_mode", "metrics", "perturbed", "fused", "models",
    "scaling", "ranking", "targets",
)
CHILD_FLAG = "--_child"
#: glibc mmap threshold (bytes) in the memory child: fixed, so large frees are unmapped at once.
MMAP_THRESHOLD = 65536


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=(*SUITES, "all"), default="all")
    p.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run in seconds")
    p.add_argument("--csv", metavar="PATH", help="also write the results as CSV to PATH")
    p.add_argument(
        "--filter",
        metavar="SUBSTR",
        help="only cases whose 'name shape' contains SUBSTR ('|' separates alternatives)",
    )
    p.add_argument("--repeat", type=int, default=None, help="timing repeats (default 5, quick 3)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument(
        "--mem",
        choices=("auto", "on", "off"),
        default="auto",
        help="peak-RSS measurement in a fresh child per case (auto: on unless --quick)",
    )
    p.add_argument(
        "--max-mem-gb",
        type=float,
        default=6.0,
        help="per-case memory budget: predicted-larger cases are skipped, children exceeding it "
        "are killed (default 6, capped at half the available RAM)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="per-case child timeout (s)")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    p.add_argument("--results-dir", default=str(HERE / "results"), help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument(CHILD_FLAG, nargs=3, metavar=("SUITE", "NAME", "SHAPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.repeat < 1 or args.threads < 1:
        p.error("--repeat and --threads must be >= 1")
    if args.max_mem_gb <= 0:
        p.error("--max-mem-gb must be > 0")
    return args


def timing_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {"repeat": args.repeat, "target_s": 0.005, "budget_s": 2.0}
    return {"repeat": args.repeat, "target_s": 0.05, "budget_s": 20.0, "warmup_s": 0.5}


def setup_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set or parallel work already started
        pass


def load_cases(suite: str, quick: bool) -> list[Case]:
    """``bench_<suite>.cases(quick)`` (``cases()`` if the module takes no ``quick``)."""
    mod = importlib.import_module(f"bench_{suite}")
    cases_fn = mod.cases
    try:
        takes_quick = "quick" in inspect.signature(cases_fn).parameters
    except (TypeError, ValueError):
        takes_quick = False
    cases = list(cases_fn(quick=quick) if takes_quick else cases_fn())
    check_cases(cases, suite)
    return cases


def select(cases: list[Case], substr: str | None) -> list[Case]:
    if not substr:
        return cases
    alternatives = [a for a in substr.lower().split("|") if a]
    return [
        c for c in cases
        if any(a in f"{c['name']} {c.get('shape', '')}".lower() for a in alternatives)
    ]


# ------------------------------------------------------------------------------------ child side


def child_main(args: argparse.Namespace) -> int:
    """Measure one case's peak RSS (soft op, then baseline) under the RSS watchdog and print a
    JSON Result on the last stdout line. Started by :func:`measure_in_child`."""
    suite, name, shape = args._child
    setup_threads(args.threads)
    matches = [c for c in load_cases(suite, args.quick) if case_key(c) == (name, shape)]
    if not matches:
        print(f"no case {name!r} with shape {shape!r} in suite {suite!r}", file=sys.stderr)
        return 2
    limit_mb = (current_rss_mb() or 0.0) + max_mem_bytes() / 2**20
    res = new_result(matches[0], suite)
    with RssWatchdog(limit_mb):
        measure_memory(matches[0], res)
    sys.stdout.flush()
    print(json.dumps(res.to_json()))
    return 0


# ----------------------------------------------------------------------------------- parent side


def child_env(threads: int) -> dict[str, str]:
    """Environment of the memory child: thread caps, import path, and a fixed glibc mmap
    threshold so that freed tensors go back to the OS and RSS tracks live memory."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def measure_in_child(suite: str, case: Case, args: argparse.Namespace, res: Result) -> bool:
    """Fill ``res``'s memory columns from a fresh child process; False if the case must be
    skipped (killed by the watchdog, timed out, or the child crashed)."""
    name, shape = case_key(case)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, suite, name, shape,
        "--threads", str(args.threads), "--max-mem-gb", str(args.max_mem_gb),
    ] + (["--quick"] if args.quick else [])  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, env=child_env(args.threads)
        )
    except subprocess.TimeoutExpired:
        res.skipped = f"memory child timed out after {args.timeout:.0f} s"
        return False
    if proc.returncode == RssWatchdog.EXIT_CODE:
        res.skipped = f"killed: RSS exceeded the {max_mem_bytes() / 2**30:.3g} GB budget"
        return False
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        res.skipped = f"memory child failed: {err[:150]}"
        return False
    mem = Result.from_json(json.loads(lines[-1]))
    res.peak_mb, res.base_peak_mb = mem.peak_mb, mem.base_peak_mb
    res.notes = mem.notes + res.notes
    return True


def run_case(suite: str, case: Case, args: argparse.Namespace) -> Result:
    """Memory in a child (if on), then timing in this process; a reason from the case's
    ``skip_if`` skips it, and its ``on_result`` sees the result."""
    res = _run_case(suite, case, args)
    hook = case.get("on_result")
    if hook is not None:
        hook(res)
    return res


def _run_case(suite: str, case: Case, args: argparse.Namespace) -> Result:
    skip_if = case.get("skip_if")
    reason = None if case.get("skip") or skip_if is None else skip_if()
    if reason:
        res = new_result(case, suite)
        res.skipped = str(reason)
        return res
    if args.mem_on and not case.get("skip"):
        probe = new_result(case, suite)
        if not measure_in_child(suite, case, args, probe):
            return probe
        res = time_case(case, suite, **timing_kwargs(args))
        if not res.skipped:  # a failing op already says why; its memory note would repeat it
            res.peak_mb, res.base_peak_mb = probe.peak_mb, probe.base_peak_mb
            res.notes = probe.notes + res.notes
        return res
    return time_case(case, suite, **timing_kwargs(args))


def progress(i: int, total: int, suite: str, res: Result) -> None:
    if res.skipped:
        status = f"skipped: {res.skipped}"
    else:
        f = "-" if res.fwd_ms is None else f"{res.fwd_ms:.3f}"
        fb = "-" if res.fwdbwd_ms is None else f"{res.fwdbwd_ms:.3f}"
        mem = "" if res.peak_mb is None else f", peak {res.peak_mb:.1f} MB"
        status = f"fwd {f} ms, fwd+bwd {fb} ms{mem}"
    print(f"[{i}/{total}] {suite} {res.name} {res.shape}: {status}", file=sys.stderr, flush=True)


def results_basename(info: dict[str, str], args: argparse.Namespace) -> str:
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "_", info["machine"])
    name = f"{machine}-{_dt.date.today().isoformat()}"
    if args.suite != "all":
        name += f"-{args.suite}"
    if args.quick:
        name += "-quick"
    return name


def suite_summary(suite: str, cases: list[Case], results: list[Result]) -> list[str]:
    """Extra lines of a suite (``bench_<suite>.summary(cases, results)`` if it defines one)."""
    fn = getattr(importlib.import_module(f"bench_{suite}"), "summary", None)
    if fn is None:
        return []
    try:
        return list(fn(cases, results))
    except Exception as e:  # a summary must never lose the table
        return [f"- summary failed: {type(e).__name__}: {e}"]


def markdown_report(
    tables: list[tuple[str, list[Result]]],
    info: dict[str, str],
    args: argparse.Namespace,
    summaries: dict[str, list[str]] | None = None,
) -> str:
    mem = "on (fresh child process per case)" if args.mem_on else "off"
    lines = [
        "# softtorch benchmarks",
        "",
        format_header(info),
        "",
        f"date {_dt.datetime.now().isoformat(timespec='seconds')} | repeat {args.repeat} | "
        f"quick {args.quick} | memory {mem} | filter {args.filter or '-'}",
        "",
        "Times are medians in ms (forward under no_grad; fwd+bwd = forward + backward of the sum "
        "of the outputs); ratios = soft / hard baseline; peak MB = peak RSS increase of one "
        "forward+backward step in a fresh process (see benchmarks/README.md).",
    ]
    for suite, results in tables:
        lines += ["", f"## {suite}", "", format_table(results)]
        if summaries and summaries.get(suite):
            lines += [""] + summaries[suite]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_max_mem_gb(args.max_mem_gb)
    if args._child:
        return child_main(args)
    args.mem_on = args.mem == "on" or (args.mem == "auto" and not args.quick)
    info = machine_info(args.threads)
    suites = list(SUITES) if args.suite == "all" else [args.suite]

    plan: list[tuple[str, list[Case]]] = []
    for suite in suites:
        try:
            cases = select(load_cases(suite, args.quick), args.filter)
        except Exception as e:  # a missing or broken suite module must not stop the others
            print(f"suite {suite}: skipped: cannot load bench_{suite} ({e})", file=sys.stderr)
            continue
        plan.append((suite, cases))
    if args.list:
        for suite, cases in plan:
            for c in cases:
                skip = f"  (skipped: {c['skip']})" if c.get("skip") else ""
                print(f"{suite:12s} {c['name']:40s} {c.get('shape', '')}{skip}")
        return 0

    setup_threads(args.threads)
    print(format_header(info), file=sys.stderr)
    total = sum(len(c) for _, c in plan)
    tables: list[tuple[str, list[Result]]] = []
    i = 0
    for suite, cases in plan:
        results = []
        for case in cases:
            i += 1
            res = run_case(suite, case, args)
            progress(i, total, suite, res)
            results.append(res)
        tables.append((suite, results))

    end_load = machine_info(args.threads)["load"]
    info["load"] = f"{info['load']} (start) / {end_load} (end)"
    print(format_header(info))
    summaries = {}
    for (suite, cases), (_, results) in zip(plan, tables):
        summaries[suite] = suite_summary(suite, cases, results)
    for suite, results in tables:
        print(f"\n## {suite}\n")
        print(format_table(results))
        if summaries[suite]:
            print("\n" + "\n".join(summaries[suite]))
    all_results = [r for _, rs in tables for r in rs]
    if args.csv:
        write_csv(all_results, args.csv, info)
    if not args.no_save and all_results:
        out = Path(args.results_dir)
        out.mkdir(parents=True, exist_ok=True)
        base = str(out / results_basename(info, args))
        Path(base + ".md").write_text(markdown_report(tables, info, args, summaries))
        write_csv(all_results, base + ".csv", info)
        print(f"\nwrote {base}.md and {base}.csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
