"""How ``softtorch.sort`` scales with n: forward + backward at batch 1, n from 1e2 to 1e5.

One row per (method, n): ``sort[method]`` for ``softsort``, ``neuralsort``, ``fast_soft_sort``,
``ot``, ``sorting_network`` and ``perturbed`` (softness 0.1, mode ``smooth``, values only), the
hard ``torch.sort`` (``sort[torch]``) and torchsort's ``soft_sort`` (``l2``, strength 0.1) when
torchsort is importable, each at n in :data:`NS` (:data:`QUICK_NS` with ``--quick``). Every soft
row also times ``torch.sort`` as its baseline.

Methods are capped one n at a time (the rows of a method run in increasing n): a method is
skipped, with the reason in the note, at every n after one where its forward + backward took more
than :data:`CAP_S` seconds, failed, or was skipped, and where its peak memory extrapolated from
the previous two measured n (growth exponent clipped to [1, 2]) exceeds :data:`CAP_BYTES`.
``scripts/scaling_chart.py`` draws the CSV of a run as a log-log chart (``docs/img/scaling.png``).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import torch

SOFTNESS = 0.1
METHODS: tuple[str, ...] = (
    "softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network", "perturbed",
)  # fmt: skip
NS: tuple[int, ...] = (100, 300, 1000, 3000, 10_000, 30_000, 100_000)
QUICK_NS: tuple[int, ...] = (100, 300, 1000)
#: A method whose forward + backward at one n took longer (seconds) is skipped at larger n.
CAP_S: float = 20.0
#: A method whose extrapolated peak memory at the next n exceeds this (bytes) is skipped.
CAP_BYTES: float = 2.0 * 2**30


class _Cap:
    """Per-method state: the last measured (n, seconds, peak MB) and why later n are skipped."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float | None]] = []  # (n, peak MB)
        self.stop: str | None = None

    def skip_reason(self, n: int) -> str | None:
        if self.stop:
            return self.stop
        mem = [(k, p) for k, p in self.points if p is not None and p > 0]
        if len(mem) >= 2:
            (n1, p1), (n2, p2) = mem[-2], mem[-1]
            expo = min(2.0, max(1.0, math.log(p2 / p1) / math.log(n2 / n1)))
            predicted = p2 * (n / n2) ** expo * 2**20
            if predicted > CAP_BYTES:
                return (
                    f"predicted peak {predicted / 2**30:.1f} GB > cap {CAP_BYTES / 2**30:.1f} GB "
                    f"(from n = {n2}: {p2:.0f} MB, growth n^{expo:.2f})"
                )
        return None

    def record(self, n: int, res: Any) -> None:
        if self.stop:  # skipped by the cap: the first reason stands
            return
        if res.skipped:
            self.stop = f"skipped at n = {n} ({res.skipped})"
            return
        t = res.fwdbwd_ms
        if t is None:
            self.stop = f"no forward + backward time at n = {n}"
            return
        self.points.append((n, res.peak_mb))
        if t > CAP_S * 1e3:
            self.stop = f"n = {n} took {t / 1e3:.1f} s > cap {CAP_S:.0f} s"


def _make(n: int) -> Callable[[], tuple[torch.Tensor]]:
    def make() -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(1, n, generator=g).requires_grad_(True),)

    return make


def _soft_sort(method: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        st = importlib.import_module("softtorch")
        kw = {"dim": -1, "softness": SOFTNESS, "mode": "smooth", "method": method}
        return st.sort(x, return_indices=False, **kw).values

    return fn


def _torchsort(x: torch.Tensor) -> torch.Tensor:
    ts = importlib.import_module("torchsort")
    return ts.soft_sort(x, regularization="l2", regularization_strength=SOFTNESS)


def _hard_sort(x: torch.Tensor) -> torch.Tensor:
    return torch.sort(x, dim=-1).values


def _rows(label: str, group: str, fn: Callable[..., Any], ns: tuple[int, ...], **kw: Any) -> list:
    cap = _Cap()
    out = []
    for n in ns:
        out.append(
            {
                "name": f"sort[{label}]",
                "shape": f"1x{n}",
                "make": _make(n),
                "fn": fn,
                "baseline": None if label == "torch" else _hard_sort,
                "group": group,
                "skip_if": (lambda n=n: cap.skip_reason(n)),
                "on_result": (lambda res, n=n: cap.record(n, res)),
                **kw,
            }
        )
    return out


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Rows grouped by method, each method's rows in increasing n (the cap needs that order)."""
    ns = QUICK_NS if quick else NS
    out = _rows("torch", "torch.sort", _hard_sort, ns)
    for method in METHODS:
        out += _rows(method, method, _soft_sort(method), ns)
    if importlib.util.find_spec("torchsort") is not None:
        out += _rows("torchsort,l2", "torchsort", _torchsort, ns, peer="torchsort")
    else:
        out.append(
            {
                "name": "sort[torchsort,l2]",
                "shape": "",
                "make": _make(10),
                "fn": _torchsort,
                "baseline": None,
                "group": "torchsort",
                "peer": "torchsort",
                "skip": "torchsort not installed (see benchmarks/README.md)",
            }
        )
    return out


def summary(cases: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """How to draw the chart."""
    return [
        "- chart: `python scripts/scaling_chart.py --csv <this run's CSV>` "
        "(writes docs/img/scaling.png)"
    ]
