"""Smoke test of benchmarks/bench_perturbed.py: the case contract and one tiny timed case."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _harness as h  # noqa: E402
import run  # noqa: E402


def test_perturbed_suite_cases_and_one_run() -> None:
    assert "perturbed" in run.SUITES
    for quick in (True, False):
        cases = run.load_cases("perturbed", quick)  # validates keys and uniqueness
        names = {c["name"] for c in cases}
        assert {"perturbed[batched,N=16]", "perturbed[looped,N=16]"} <= names
        # the ordering method sits next to the other methods in the ordering suite
        ordering = {(c["name"], c["shape"]) for c in run.load_cases("ordering", quick)}
        assert {("sort[perturbed]", "8x16" if quick else "16x1000")} <= ordering
    case = next(c for c in run.load_cases("ordering", True) if c["name"] == "sort[perturbed]")
    res = h.time_case(case, "ordering", repeat=1, target_s=0.001, budget_s=0.5, warmup_s=0.0)
    assert not res.skipped and res.fwdbwd_ms is not None
