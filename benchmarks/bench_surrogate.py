"""Benchmark cases for :mod:`softtorch.surrogate` (consumed by ``benchmarks/run.py``).

One case per surrogate method on 4M float32 elements (64K in quick mode): ``fn`` is
``threshold(x, method)`` (the runner times its forward and forward + backward), ``baseline`` the
plain hard spike ``(x > 0).float()``, which has no gradient (its fwd+bwd column is forward only).
The forward costs a little more than the baseline because NaN is propagated (one extra kernel)
and ``autograd.Function.apply`` binds its arguments; the backward costs a few elementwise kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

N_FULL = 4 * 1024 * 1024
N_QUICK = 64 * 1024


def _maker(n: int) -> Callable[[], tuple[torch.Tensor]]:
    def make() -> tuple[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return (torch.randn(n, generator=gen, dtype=torch.float32).requires_grad_(),)

    return make


def _surrogate_fn(method: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        from softtorch.surrogate import threshold  # lazy: the runner works as modules land

        return threshold(x, method)

    return fn


def _baseline(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).float()


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Cases as dicts: ``name``, ``shape``, ``make``, ``fn``, ``baseline``, ``group``."""
    from softtorch.surrogate import METHODS

    n = N_QUICK if quick else N_FULL
    return [
        {
            "name": f"surrogate.threshold[{method}]",
            "shape": f"({n},)",
            "make": _maker(n),
            "fn": _surrogate_fn(method),
            "baseline": _baseline,
            "group": "surrogate",
        }
        for method in METHODS
    ]
