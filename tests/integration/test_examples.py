"""Every example runs with ``--quick`` in a subprocess and prints a sensible result.

The thresholds are far below the measured ``--quick`` figures (quoted per check), so they catch a
broken example or a relaxation that stopped training, not run-to-run noise. The subprocesses use
one torch thread each: the examples are tiny and the test workers already share the cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> str:
    path = EXAMPLES / f"{name}.py"
    if not path.exists():
        pytest.skip(f"examples/{name}.py is not in this checkout")
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def number_after(label: str, text: str) -> list[float]:
    """The numbers on the line that contains ``label`` (after the label)."""
    for line in text.splitlines():
        if label in line:
            tail = line.split(label, 1)[1]
            return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", tail)]
    raise AssertionError(f"no line with {label!r} in:\n{text}")


def test_quick_example_runs() -> None:
    out = run_example("quick_example")
    assert "SoftTorch sort (soft mode):" in out


def test_learning_to_rank() -> None:
    out = run_example("learning_to_rank", "--quick")
    (soft,) = number_after("trained on soft Spearman (softtorch.rank):", out)
    assert soft > 0.7  # measured 0.893 (MSE baseline 0.846, upper bound 0.898)


def test_topk_classification() -> None:
    out = run_example("topk_classification", "--quick")
    top1, top3 = number_after("soft top-k loss:", out)
    assert top1 > 70.0 and top3 > 90.0  # measured 95.2% / 99.4%


def test_third_party_metric() -> None:
    out = run_example("third_party_metric", "--quick")
    assert "outside soft_mode the metric has a gradient: False" in out
    (untrained,) = number_after("untrained scorer:", out)
    (trained,) = number_after("trained on the metric inside soft_mode:", out)
    assert trained > untrained + 0.2  # measured 0.412 -> 0.884
    if "torchmetrics retrieval_precision" in out:  # torchmetrics installed (test extra)
        (norm,) = number_after("gradient norm", out)
        assert norm > 0  # measured 1.148


def test_quantile_regression() -> None:
    out = run_example("quantile_regression", "--quick")
    median_err, ok, trials = number_after("soft LQS (softtorch.quantile)", out)
    assert median_err < 0.5 and ok >= trials - 1  # measured 0.069, 3/3 (least squares: 2.263)


def test_spiking_network() -> None:
    out = run_example("spiking_network", "--quick")
    assert "accuracy" in out.lower()
