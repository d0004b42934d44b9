"""Ordering ops x methods vs the hard torch ops, on (batch, n) float32 inputs along the last dim.

Ops: ``sort``, ``rank``, ``topk`` (k = max(1, n // 10)), ``max``, ``quantile`` (q = 0.3) and
``argsort`` (no ``fast_soft_sort``), each with ``softsort``, ``neuralsort``, ``sorting_network``,
``fast_soft_sort``, ``ot`` and ``perturbed`` (default ``perturbed_kwargs``: 100 Gaussian samples)
at softness 0.1, mode ``smooth`` (``fast_soft_sort`` also ``c0``, the L2 regulariser, in the full
run), at (batch, n) in (256, 10), (64, 100), (16, 1000), (1, 10000). Scaling rows:
``fast_soft_sort`` sort/rank at (8, 1e5), (1, 1e5), (1, 1e6) and ``sort``
of every method at (1, 1e5); ``sort`` of ``ot`` in modes ``c0`` / ``c1`` / ``c2`` at (16, 1000).
Streamed rows (values without an ``n x n`` matrix):
``sort_values`` (``sort(..., return_indices=False)``) of ``softsort`` / ``neuralsort`` at (1, 1e4)
and (1, 1e5), and their ``rank``, ``max``, ``quantile`` at (1, 1e5); ``sort_values`` and ``rank``
of ``softsort`` in modes ``c0`` / ``c1`` / ``c2`` (streamed window sums) at (1, 1e4) and (1, 1e5).
Peers:
``torchsort.soft_sort`` / ``soft_rank`` (regularization ``l2`` and ``kl``, strength 0.1) at the
``fast_soft_sort`` shapes when torchsort is importable.

Cases whose predicted memory exceeds the budget (``_harness.max_mem_bytes``) are listed as skipped,
so no n x n matrix is built at n = 1e5. ``softtorch`` is imported lazily inside each case.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import torch
from _harness import memory_skip

SOFTNESS = 0.1
Q = 0.3
METHODS: tuple[str, ...] = (
    "softsort", "neuralsort", "sorting_network", "fast_soft_sort", "ot", "perturbed",
)
PERTURBED_SAMPLES = 100  # the default of perturbed_kwargs["samples"]
OPS: tuple[str, ...] = ("sort", "rank", "topk", "max", "quantile", "argsort")
SHAPES: tuple[tuple[int, int], ...] = ((256, 10), (64, 100), (16, 1000), (1, 10000))
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((8, 16),)
FSS_SCALING: tuple[tuple[int, int], ...] = ((8, 100_000), (1, 100_000), (1, 1_000_000))
QUICK_FSS_SCALING: tuple[tuple[int, int], ...] = ((1, 1000),)
SORT_SCALING: tuple[tuple[int, int], ...] = ((1, 100_000),)
STREAM_METHODS: tuple[str, ...] = ("softsort", "neuralsort")
#: Ops whose softsort / neuralsort results are values computed without an n x n matrix.
STREAM_OPS: tuple[str, ...] = ("sort_values", "rank", "max", "quantile")
#: Methods whose sparse-mode (c0 / c1 / c2) values and ranks are streamed too, and those ops.
CSTREAM_METHODS: tuple[str, ...] = ("softsort",)
CSTREAM_OPS: tuple[str, ...] = ("sort_values", "rank")
CSTREAM_MODES: tuple[str, ...] = ("c0", "c1", "c2")
TORCHSORT_REGS: tuple[str, ...] = ("l2", "kl")
#: The sparse OT modes, timed on ``sort`` (values and soft indices) at one shape.
OT_MODES: tuple[str, ...] = ("c0", "c1", "c2")
OT_SHAPE: tuple[int, int] = (16, 1000)
_F32 = 4  # bytes


def topk_k(n: int) -> int:
    return max(1, n // 10)


def _network_layers(n: int) -> int:
    """Comparator layers of a bitonic network on n (padded to a power of two) inputs."""
    lg = max(1, math.ceil(math.log2(max(n, 2))))
    return lg * (lg + 1) // 2


def predicted_bytes(op: str, method: str, batch: int, n: int) -> float:
    """A deliberately generous estimate of the peak forward+backward memory of one case.

    n x n methods keep about 8 n x n float32 buffers alive (scores, plan / permutation, softmax
    intermediates and their gradients); OT with k + 1 anchors for topk; the sorting network keeps
    its per-layer values for backward (values-only ops) or a soft permutation (index ops);
    ``perturbed`` keeps its noise and sampled orders (``samples x batch x n``, float32 + int64)
    plus the expected rows (``n x n`` for sort-like ops, ``k x n`` for topk).
    """
    if method == "perturbed":
        sampled = 4.0 * PERTURBED_SAMPLES * batch * n * (_F32 + 8)
        if op in ("rank", "max"):
            return sampled
        rows = topk_k(n) if op == "topk" else n
        return sampled + 8.0 * batch * n * rows * _F32
    if method == "fast_soft_sort":
        return 40.0 * batch * n * _F32
    if method in STREAM_METHODS and op in STREAM_OPS:  # O(n) + blocks of a few MB
        return 64.0 * batch * n * 8 + 64e6
    if method == "sorting_network":
        if op in ("sort", "max", "quantile"):
            return 4.0 * batch * n * _network_layers(n) * _F32
        return 8.0 * batch * n * n * _F32
    if method == "ot" and op == "topk":
        return 8.0 * batch * n * (topk_k(n) + 1) * _F32
    return 8.0 * batch * n * n * _F32


def _softtorch() -> Any:
    return importlib.import_module("softtorch")


def _soft_fn(op: str, method: str, mode: str, n: int) -> Callable[[torch.Tensor], Any]:
    kw: dict[str, Any] = {"dim": -1, "softness": SOFTNESS, "mode": mode, "method": method}

    def fn(x: torch.Tensor) -> Any:
        st = _softtorch()
        f = getattr(st, "sort" if op == "sort_values" else op, None)
        if f is None:
            raise AttributeError(f"softtorch.{op} is not available")
        if op == "topk":
            return f(x, topk_k(n), **kw)
        if op == "quantile":
            return f(x, Q, **kw)
        if op == "sort_values":
            return f(x, return_indices=False, **kw).values
        return f(x, **kw)

    return fn


def _hard_rank(x: torch.Tensor, descending: bool = True) -> torch.Tensor:
    """Hard ranks in [1, n] along the last dim (softtorch's default: largest gets rank 1)."""
    return torch.argsort(torch.argsort(x, dim=-1, descending=descending), dim=-1).float() + 1


def _baseline(op: str, n: int) -> Callable[[torch.Tensor], Any]:
    if op == "sort":
        return lambda x: torch.sort(x, dim=-1)
    if op == "sort_values":
        return lambda x: torch.sort(x, dim=-1).values
    if op == "rank":
        return _hard_rank
    if op == "topk":
        return lambda x: torch.topk(x, topk_k(n), dim=-1)
    if op == "max":
        return lambda x: torch.max(x, dim=-1)
    if op == "quantile":
        return lambda x: torch.quantile(x, Q, dim=-1)
    if op == "argsort":
        return lambda x: torch.argsort(x, dim=-1)
    raise ValueError(f"unknown op {op!r}; valid ops are: {', '.join(OPS)}")


def _make(batch: int, n: int) -> Callable[[], tuple[torch.Tensor]]:
    def make() -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(batch, n, generator=g).requires_grad_(True),)

    return make


def _case(op: str, method: str, mode: str, batch: int, n: int) -> dict[str, Any]:
    label = method if mode == "smooth" else f"{method},{mode}"
    case: dict[str, Any] = {
        "name": f"{op}[{label}]",
        "shape": f"{batch}x{n}",
        "make": _make(batch, n),
        "fn": _soft_fn(op, method, mode, n),
        "baseline": _baseline(op, n),
        "group": method,
    }
    skip = memory_skip(predicted_bytes(op, method, batch, n), f"{method} {op}")
    if skip:
        case["skip"] = skip
    return case


def _torchsort_fn(op: str, reg: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(x: torch.Tensor) -> torch.Tensor:
        ts = importlib.import_module("torchsort")
        f = ts.soft_sort if op == "sort" else ts.soft_rank
        return f(x, regularization=reg, regularization_strength=SOFTNESS)

    return fn


def _peer_cases(shapes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    if importlib.util.find_spec("torchsort") is None:
        return [
            {
                "name": "sort[torchsort]",
                "shape": "",
                "make": _make(1, 10),
                "fn": _torchsort_fn("sort", "l2"),
                "baseline": None,
                "peer": "torchsort",
                "group": "fast_soft_sort",
                "skip": "torchsort not installed (see benchmarks/README.md)",
            }
        ]
    out = []
    for batch, n in shapes:
        for op in ("sort", "rank"):
            for reg in TORCHSORT_REGS:
                out.append(
                    {
                        "name": f"{op}[torchsort,{reg}]",
                        "shape": f"{batch}x{n}",
                        "make": _make(batch, n),
                        "fn": _torchsort_fn(op, reg),
                        "baseline": _baseline("sort", n)
                        if op == "sort"
                        else (lambda x: _hard_rank(x, descending=False)),
                        "group": "fast_soft_sort",
                        "peer": "torchsort",
                    }
                )
    return out


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Grid cases grouped by shape, then the scaling rows, then the torchsort peer rows."""
    shapes = list(QUICK_SHAPES if quick else SHAPES)
    fss_scaling = list(QUICK_FSS_SCALING if quick else FSS_SCALING)
    out: list[dict[str, Any]] = []
    for batch, n in shapes:
        for op in OPS:
            for method in METHODS:
                if op == "argsort" and method == "fast_soft_sort":
                    continue
                out.append(_case(op, method, "smooth", batch, n))
                if method == "fast_soft_sort" and op in ("sort", "rank") and not quick:
                    out.append(_case(op, method, "c0", batch, n))
    for batch, n in fss_scaling:
        for op in ("sort", "rank"):
            out.append(_case(op, "fast_soft_sort", "smooth", batch, n))
            if not quick:  # quadratic regularisation: the counterpart of torchsort's l2
                out.append(_case(op, "fast_soft_sort", "c0", batch, n))
    if not quick:
        for batch, n in SORT_SCALING:
            for method in METHODS:
                if method != "fast_soft_sort":
                    out.append(_case("sort", method, "smooth", batch, n))
        for mode in OT_MODES:  # the p-norm OT plans (issue 19: <= 1 s each)
            out.append(_case("sort", "ot", mode, *OT_SHAPE))
        for method in STREAM_METHODS:
            out.append(_case("sort_values", method, "smooth", 1, 10_000))
            for op in STREAM_OPS:
                out.append(_case(op, method, "smooth", 1, 100_000))
        for method in CSTREAM_METHODS:
            for mode in CSTREAM_MODES:
                for op in CSTREAM_OPS:
                    for n in (10_000, 100_000):
                        out.append(_case(op, method, mode, 1, n))
    out += _peer_cases(shapes + fss_scaling)
    return out
