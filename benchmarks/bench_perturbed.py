"""Benchmark cases for :mod:`softtorch.perturbation` (consumed by ``benchmarks/run.py``).

Two families:

* ``perturbed[batched|looped,N=...]``: time per value + gradient of ``softtorch.perturbed`` on an
  elementwise step of a ``(64,)`` float32 vector against the number of samples ``N`` in
  (16, 64, 256, 1024) (quick: 4, 16), evaluated with one batched call (``batched=True``) or a
  Python loop over the samples. The cost is ``N`` evaluations of ``fn`` plus ``O(N x input)`` for
  the noise and the estimator; the loop adds Python overhead per sample.
* ``{argmax,max,topk,sort,rank}[perturbed]``: the perturbed-optimiser ordering functions with
  ``samples=100`` (quick: 10), Gaussian noise, softness 0.1, on ``(batch, n)`` in (256, 10),
  (64, 100), (16, 1000) (quick: (8, 16)), named like ``benchmarks/bench_ordering.py``'s rows so
  they sit next to the other methods; topk uses ``k = max(1, n // 10)``.

The baseline is the hard torch op (no gradient). ``softtorch`` is imported lazily in each case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SOFTNESS = 0.1
SAMPLES = (16, 64, 256, 1024)
QUICK_SAMPLES = (4, 16)
VECTOR = 64
ORDER_SAMPLES = 100
QUICK_ORDER_SAMPLES = 10
SHAPES: tuple[tuple[int, int], ...] = ((256, 10), (64, 100), (16, 1000))
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((8, 16),)
OPS: tuple[str, ...] = ("argmax", "max", "topk", "sort", "rank")


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


def _order_fn(op: str, n: int, samples: int) -> Callable[[torch.Tensor], Any]:
    def fn(x: torch.Tensor) -> Any:
        from softtorch.perturbation import ordering as po

        kw = dict(softness=SOFTNESS, samples=samples)
        if op == "topk":
            return po.perturbed_topk(x, max(1, n // 10), dim=-1, **kw)
        return getattr(po, f"perturbed_{op}")(x, dim=-1, **kw)

    return fn


def _order_baseline(op: str, n: int) -> Callable[[torch.Tensor], Any]:
    if op == "argmax":
        return lambda x: torch.argmax(x, dim=-1)
    if op == "max":
        return lambda x: torch.max(x, dim=-1)
    if op == "topk":
        return lambda x: torch.topk(x, max(1, n // 10), dim=-1)
    if op == "sort":
        return lambda x: torch.sort(x, dim=-1)
    return lambda x: torch.argsort(torch.argsort(x, dim=-1), dim=-1)


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
    order_samples = QUICK_ORDER_SAMPLES if quick else ORDER_SAMPLES
    for batch, n in QUICK_SHAPES if quick else SHAPES:
        for op in OPS:
            out.append(
                {
                    "name": f"{op}[perturbed]",
                    "shape": f"{batch}x{n}",
                    "make": _make(batch, n),
                    "fn": _order_fn(op, n, order_samples),
                    "baseline": _order_baseline(op, n),
                    "group": "perturbed",
                }
            )
    return out
