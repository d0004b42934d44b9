"""Run the full autograd completeness matrix (issue 8) without pytest and print the figures.

Usage: ``python scripts/autograd_matrix.py [--fast] [--filter SUBSTRING] [--transform NAME] [-v]``

The case table and the checks live in ``tests/integration/test_autograd_matrix.py``; this script
crosses every case with every applicable transform, catches each failure and prints:

* per transform: configurations (function x mode x method) passed / total;
* (function, transform) pairs: a pair passes when every configuration of the function passes;
* every failing (configuration, transform) with the first line of its error, split into
  *pending* (in-flight ordering fixes, ``xfail`` in the test file) and *unexpected*.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_matrix():  # noqa: ANN202 - module object
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(
        "autograd_matrix_cases", ROOT / "tests" / "integration" / "test_autograd_matrix.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _reason(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = " ".join(lines[:2]) if lines else type(err).__name__
    return first[:220]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only the default (fast) subset")
    parser.add_argument("--filter", default="", help="only cases whose id contains this")
    parser.add_argument("--transform", default="", help="only this transform")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every result")
    args = parser.parse_args()

    m = _load_matrix()
    warnings.simplefilter("ignore")
    cases = [m.BY_ID[i] for i in m.FAST_IDS] if args.fast else m.CASES
    cases = [c for c in cases if args.filter in c.id]

    per_transform: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    pair_ok: dict[tuple[str, str], bool] = {}
    pending_fail: list[tuple[str, str, str, str]] = []
    unexpected: list[tuple[str, str, str]] = []
    pending_pass: list[tuple[str, str]] = []
    start = time.perf_counter()
    for case in cases:
        for transform in case.transforms:
            if args.transform and transform != args.transform:
                continue
            why_pending = m.pending(case, transform)
            t0 = time.perf_counter()
            try:
                m.run(case, transform)
                ok, err = True, ""
            except Exception as e:  # noqa: BLE001 - every failure is reported
                ok, err = False, _reason(e)
            dt = time.perf_counter() - t0
            per_transform[transform][1] += 1
            per_transform[transform][0] += ok
            key = (case.function, transform)
            pair_ok[key] = pair_ok.get(key, True) and ok
            if not ok and why_pending:
                pending_fail.append((case.id, transform, why_pending, err))
            elif not ok:
                unexpected.append((case.id, transform, err))
            elif why_pending:
                pending_pass.append((case.id, transform))
            if args.verbose:
                print(f"{'PASS' if ok else 'FAIL'} {dt:6.2f}s {case.id} {transform} {err}")
    elapsed = time.perf_counter() - start

    total = sum(v[1] for v in per_transform.values())
    passed = sum(v[0] for v in per_transform.values())
    print(f"\nconfigurations x transforms: {passed} / {total} pass ({elapsed:.0f} s)")
    for t in m.TRANSFORMS:
        if t in per_transform:
            p, n = per_transform[t]
            print(f"  {t:16s} {p:5d} / {n}")
    n_pairs = len(pair_ok)
    ok_pairs = sum(pair_ok.values())
    print(f"(function, transform) pairs: {ok_pairs} / {n_pairs} pass in every configuration")
    failing_pairs = sorted(k for k, v in pair_ok.items() if not v)
    if failing_pairs:
        print("  failing pairs: " + ", ".join(f"{f}:{t}" for f, t in failing_pairs))
    if pending_pass:
        print(f"\npending (xfail) that now pass: {len(pending_pass)}")
    if pending_fail:
        print(f"\npending failures (in-flight fixes, xfail): {len(pending_fail)}")
        by_reason: dict[str, list[str]] = defaultdict(list)
        for cid, t, why, _ in pending_fail:
            by_reason[why].append(f"{cid}:{t}")
        for why, items in by_reason.items():
            print(f"  {len(items):4d} x {why}")
            if args.verbose:
                for it in items:
                    print(f"         {it}")
    print(f"\nunexpected failures: {len(unexpected)}")
    for cid, t, err in unexpected:
        print(f"  {cid} :: {t} :: {err}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
