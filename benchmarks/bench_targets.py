"""The ordering targets of issue 19 in one run: every row beside its target, its hard op and floor.

Rows (float32, softness 0.1, forward + backward of the sum of the outputs):

* ``softsort`` / ``neuralsort`` values at (1, 1e4) in ``smooth`` (and ``c0`` / ``c1`` / ``c2``):
  ``sort_values`` (``sort(..., return_indices=False)``), ``rank``, ``topk`` (k = 1000; values
  and the k x n soft indices; ``n // 10`` in the quick run), ``max``, ``quantile`` (q = 0.3),
  ``median``; target <= 250 ms and <= 100 MB peak; ``sort_values`` at (1, 1e5) in ``smooth``:
  target <= 30 s and <= 1 GB.
* soft indices: ``sort`` (values and the n x n soft permutation) and ``argsort`` of ``softsort``
  / ``neuralsort`` at (1, 1e4) against ``nxn_floor`` (an autograd op writing an n x n float32
  output from n inputs, whose backward reads the n x n gradient): target <= 2x the floor.
* ``ot``: ``sort_values`` and ``rank`` at (1, 1e4) ``smooth`` (<= 1 s, <= 300 MB), ``sort`` with
  the n x n plan at (1, 1e4) (against the floor); ``sort_values`` in ``c0`` / ``c1`` / ``c2`` at
  (16, 1000) (<= 1 s).
* ``sorting_network``: ``topk`` (k = 1000) at (1, 1e4) (<= 1 s), ``argsort`` at (1, 1e4)
  (<= 15 s).

``summary`` prints each target with its measured figure and "met" / "SHORT".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from _floor import nxn_floor
from _harness import memory_skip

SOFTNESS = 0.1
Q = 0.3
K = 1000
N = 10_000
VALUE_OPS: tuple[str, ...] = ("sort_values", "rank", "topk", "max", "quantile", "median")
MODES: tuple[str, ...] = ("smooth", "c0", "c1", "c2")


def _st() -> Any:
    return importlib.import_module("softtorch")


def _k(n: int) -> int:
    return min(K, max(1, n // 10))


def _soft(op: str, method: str, mode: str) -> Callable[[torch.Tensor], Any]:
    kw: dict[str, Any] = {"dim": -1, "softness": SOFTNESS, "mode": mode, "method": method}

    def fn(x: torch.Tensor) -> Any:
        st = _st()
        if op == "sort_values":
            return st.sort(x, return_indices=False, **kw).values
        if op == "topk":
            return st.topk(x, _k(x.shape[-1]), **kw)
        if op == "quantile":
            return st.quantile(x, Q, **kw)
        return getattr(st, op)(x, **kw)

    return fn


def _hard(op: str) -> Callable[[torch.Tensor], Any]:
    table: dict[str, Callable[[torch.Tensor], Any]] = {
        "sort_values": lambda x: torch.sort(x, dim=-1).values,
        "sort": lambda x: torch.sort(x, dim=-1),
        "rank": lambda x: torch.argsort(torch.argsort(x, dim=-1), dim=-1).float() + 1,
        "topk": lambda x: torch.topk(x, _k(x.shape[-1]), dim=-1),
        "max": lambda x: torch.max(x, dim=-1),
        "quantile": lambda x: torch.quantile(x, Q, dim=-1),
        "median": lambda x: torch.median(x, dim=-1),
        "argsort": lambda x: torch.argsort(x, dim=-1),
    }
    return table[op]


def _make(batch: int, n: int) -> Callable[[], tuple[torch.Tensor]]:
    def make() -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(batch, n, generator=g).requires_grad_(True),)

    return make


def _case(
    op: str,
    method: str,
    mode: str,
    batch: int,
    n: int,
    ms: float | None,
    mb: float | None,
    predicted: float,
) -> dict[str, Any]:
    label = method if mode == "smooth" else f"{method},{mode}"
    case: dict[str, Any] = {
        "name": f"{op}[{label}]",
        "shape": f"{batch}x{n}",
        "make": _make(batch, n),
        "fn": _soft(op, method, mode),
        "baseline": _hard(op),
        "group": method,
        "target_ms": ms,
        "target_mb": mb,
    }
    skip = memory_skip(predicted, f"{method} {op}")
    if skip:
        case["skip"] = skip
    return case


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """The target rows (``quick``: the same rows at n = 64, for the smoke test)."""
    n = 64 if quick else N
    big = 128 if quick else 100_000
    ot_b, ot_n = (2, 32) if quick else (16, 1000)
    dense = 10.0 * n * n * 4  # a dense n x n path: about ten float32 n x n buffers
    out: list[dict[str, Any]] = [
        {
            "name": "nxn_floor",
            "shape": f"1x{n}",
            "make": _make(1, n),
            "fn": nxn_floor,
            "baseline": None,
            "group": "floor",
        }
    ]
    for method in ("softsort", "neuralsort"):
        for mode in MODES:
            for op in VALUE_OPS if mode == "smooth" else ("sort_values", "rank"):
                out.append(_case(op, method, mode, 1, n, 250.0, 100.0, dense))
        out.append(_case("sort_values", method, "smooth", 1, big, 30_000.0, 1024.0, 64e6))
        for op in ("sort", "argsort"):
            out.append(_case(op, method, "smooth", 1, n, None, None, dense))
    for op in ("sort_values", "rank"):
        out.append(_case(op, "ot", "smooth", 1, n, 1000.0, 300.0, dense))
    out.append(_case("sort", "ot", "smooth", 1, n, None, None, dense))
    for mode in ("c0", "c1", "c2"):
        for op in ("sort_values", "rank"):
            out.append(_case(op, "ot", mode, ot_b, ot_n, 1000.0, None, 10.0 * ot_b * ot_n**2 * 4))
    out.append(_case("topk", "sorting_network", "smooth", 1, n, 1000.0, None, dense))
    out.append(_case("argsort", "sorting_network", "smooth", 1, n, 15_000.0, None, dense))
    return out


def summary(cases_: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """One line per target: the measured fwd+bwd time / peak memory, the limit, met or SHORT.

    Soft-index rows (``sort`` / ``argsort`` of softsort / neuralsort, ``sort[ot]``) are compared
    with ``nxn_floor`` at the same shape (target <= 2x the floor's fwd+bwd time).
    """
    by_case = {(c["name"], c["shape"]): c for c in cases_}
    floor = {r.shape: r for r in results if r.name == "nxn_floor" and r.fwdbwd_ms}
    lines = []
    for r in results:
        case = by_case.get((r.name, r.shape), {})
        if r.name == "nxn_floor":
            continue
        if r.skipped or not r.fwdbwd_ms:
            lines.append(f"- {r.name} {r.shape}: not measured ({r.skipped or 'failed'})")
            continue
        parts = []
        ok = True
        if case.get("target_ms") is not None:
            ok &= r.fwdbwd_ms <= case["target_ms"]
            parts.append(f"{r.fwdbwd_ms:.1f} ms (limit {case['target_ms']:.0f})")
        elif r.shape in floor and r.group in ("softsort", "neuralsort", "ot"):
            ratio = r.fwdbwd_ms / floor[r.shape].fwdbwd_ms
            ok &= ratio <= 2.0
            parts.append(f"{r.fwdbwd_ms:.1f} ms = {ratio:.2f}x the n x n floor (limit 2x)")
        else:
            continue
        if case.get("target_mb") is not None and r.peak_mb is not None:
            ok &= r.peak_mb <= case["target_mb"]
            parts.append(f"peak {r.peak_mb:.0f} MB (limit {case['target_mb']:.0f})")
        lines.append(f"- {r.name} {r.shape}: {', '.join(parts)}: {'met' if ok else 'SHORT'}")
    return lines


__all__ = ["cases", "nxn_floor", "summary"]
