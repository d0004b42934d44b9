"""torchmetrics' functional metrics plain vs inside ``soft_mode`` (issue 16), and the mode's
overhead on a model with no relaxable op.

* ``tm_<metric>``: the metric call of the test matrix (``tests/interception/tm_cases.py``)
  inside ``soft_mode("smooth", softness=0.1, scope="all")`` (``scope="all"``: the forward column,
  which the harness runs under ``no_grad``, is relaxed too); an integer result (stat scores,
  confusion matrices) is taken ``.float()``, its soft view. Baseline: the plain call (no
  gradient, so its fwd+bwd column is its forward, marked). A metric the mode cannot relax yet
  has no gradient and no fwd+bwd figure.
* ``model_mlp_gelu_tanh``: forward+backward of an MLP with only GELU / tanh (nothing to relax)
  inside ``soft_mode`` vs outside. Target: ratio <= 1.05 (the suite summary re-measures it as a
  median of paired ratios).

``python benchmarks/run.py --suite metrics [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

SOFTNESS = 0.1
#: Target of the model overhead ratio (inside / outside soft_mode).
MODEL_TARGET = 1.05

#: Input size per case kind: (quick, full); samples, documents, or the image side.
SIZES = {"retrieval": (32, 512), "graded": (32, 512), "image": (8, 64), "rank": (64, 512)}
DEFAULT_SIZE = (64, 4096)


def _metric_case(case: Any, quick: bool) -> dict[str, Any]:
    import softtorch
    from tests.interception.tm_cases import make_inputs

    n = SIZES.get(case.kind, DEFAULT_SIZE)[0 if quick else 1]

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        return make_inputs(case.kind, seed=0, n=n)

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with softtorch.soft_mode("smooth", softness=SOFTNESS, scope="all"):
            out = case.call(x, t)
            return out if out.is_floating_point() else out.float()

    def baseline(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return case.call(x, t)

    return {"name": f"tm_{case.name}", "shape": str(n), "make": make, "fn": fn,
            "baseline": baseline, "group": "torchmetrics"}  # fmt: skip


def _mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width, width), nn.GELU() if i % 2 == 0 else nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """The metric cases and the model-overhead case; ``quick`` uses tiny inputs."""
    from bench_soft_mode import _model_case

    try:
        from tests.interception.tm_cases import CASES
    except ImportError:  # torchmetrics missing: only the model case
        CASES = []
    out = [_metric_case(c, quick) for c in CASES]
    shape, width, depth = ((32, 64), 64, 2) if quick else ((256, 512), 512, 4)
    torch.manual_seed(0)
    out.append(_model_case("model_mlp_gelu_tanh", _mlp(width, depth), shape))
    return out


def summary(cases_: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """The model's paired overhead ratio against :data:`MODEL_TARGET`, and how many metrics have
    a gradient inside the mode."""
    from bench_soft_mode import paired_ratio

    lines = []
    by_name = {c["name"]: c for c in cases_}
    metrics = [r for r in results if r.name.startswith("tm_") and not r.skipped]
    with_grad = [
        r for r in metrics
        if r.fwdbwd_ms is not None and not any("no grad" in n or "failed" in n for n in r.notes)
    ]  # fmt: skip
    lines.append(f"- torchmetrics: {len(with_grad)} / {len(metrics)} metrics have a gradient "
                 "inside soft_mode")  # fmt: skip
    for r in results:
        if r.name.startswith("model") and not r.skipped and r.fwdbwd_ratio is not None:
            ratio = paired_ratio(by_name[r.name])
            ok = "ok" if ratio <= MODEL_TARGET else "ABOVE TARGET"
            lines.append(f"- {r.name}: fwd+bwd ratio inside / outside soft_mode = {ratio:.3f} "
                         f"(median of paired ratios; target <= {MODEL_TARGET}: {ok})")  # fmt: skip
    return lines
