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
        assert {"sort[perturbed]", "rank[perturbed]", "perturbed[looped,N=16]"} <= names
    case = next(c for c in run.load_cases("perturbed", True) if c["name"] == "sort[perturbed]")
    res = h.time_case(case, "perturbed", repeat=1, target_s=0.001, budget_s=0.5, warmup_s=0.0)
    assert not res.skipped and res.fwdbwd_ms is not None
