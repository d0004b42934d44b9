"""Benchmark cases for :mod:`softtorch.perturbation` (consumed by ``benchmarks/run.py``).

Cases ``perturbed[batched|looped,N=...]``: time per value + gradient of ``softtorch.perturbed`` on
an elementwise step of a ``(64,)`` float32 vector against the number of samples ``N`` in
(16, 64, 256, 1024) (quick: 4, 16), evaluated with one batched call (``batched=True``) or a
Python loop over the samples. The cost is ``N`` evaluations of ``fn`` plus ``O(N x input)`` for
the noise and the estimator; the loop adds Python overhead per sample.

The perturbed ordering relaxations are ``method="perturbed"`` of the ordering ops: their rows
(``sort[perturbed]``, ``rank[perturbed]``, ...) are in ``benchmarks/bench_ordering.py``, next to
the other methods at the same shapes.

The baseline is the unsmoothed step (no gradient). ``softtorch`` is imported lazily in each case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SOFTNESS = 0.1
SAMPLES = (16, 64, 256, 1024)
QUICK_SAMPLES = (4, 16)
VECTOR = 64


def _make(*shape: int) -> Callable[[], tuple[torch.Tensor]]:
    def make() -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(*shape, generator=g).requires_grad_(True),)

    return make


def _step(t: torch.Tensor) -> torch.Tensor:
    return (t > 0).to(t.dtype)


def _perturbed_fn(samples: int, batched: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        from softtorch.perturbation import perturbed

        return perturbed(_step, softness=SOFTNESS, samples=samples, batched=batched)(x)

    return fn


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Cases as dicts: ``name``, ``shape``, ``make``, ``fn``, ``baseline``, ``group``."""
    out: list[dict[str, Any]] = []
    for samples in QUICK_SAMPLES if quick else SAMPLES:
        for batched in (True, False):
            kind = "batched" if batched else "looped"
            out.append(
                {
                    "name": f"perturbed[{kind},N={samples}]",
                    "shape": f"({VECTOR},)",
                    "make": _make(VECTOR),
                    "fn": _perturbed_fn(samples, batched),
                    "baseline": _step,
                    "group": "perturbed",
                }
            )
    return out
