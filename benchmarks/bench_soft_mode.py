"""Overhead of ``soft_mode`` / ``SoftTensor`` dispatch.

* ``model_*``: forward+backward of a model with no relaxable op, run inside ``soft_mode``
  (baseline: the same pass outside it). Target: ratio <= 1.15.
* ``dispatch_*``: ``CALLS`` intercepted calls inside one ``soft_mode`` block (or on a SoftTensor)
  against the same relaxation called directly (``softtorch.relu(x)`` ...); ``(time - baseline) /
  CALLS`` is the dispatch overhead per call. Target: <= 30 us. Index results (sort, argmax)
  are torch's integers carrying the soft index, so their direct equivalent also runs torch's
  exact op. The suite summary (``summary``) re-measures each overhead as the median of paired,
  back-to-back differences, robust to a loaded machine, and for SoftTensor results also per
  intercepted call (the loss's ``out.sum()`` and ``+`` on SoftTensors are intercepted too).
* ``passthrough_add``: a non-relaxable op (``x + y``) inside the mode vs outside.

``python benchmarks/bench_soft_mode.py [--quick]`` prints both figures per case.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Intercepted calls per timed step of the ``dispatch_*`` cases.
CALLS = 20
SOFTNESS = 0.1


def _mlp(width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.LayerNorm(width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _cnn(ch: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, ch, 3, padding=1), nn.GELU(), nn.AvgPool2d(2),
        nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(2 * ch, 10),
    )  # fmt: skip


def _model_case(name: str, model: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    import softtorch

    def make() -> tuple[torch.Tensor]:
        torch.manual_seed(0)
        return (torch.randn(shape),)

    def fn(x: torch.Tensor) -> torch.Tensor:
        with softtorch.soft_mode("smooth", SOFTNESS):
            return model(x)

    return {"name": name, "shape": "x".join(map(str, shape)), "make": make, "fn": fn,
            "baseline": model}  # fmt: skip


def _repeat(call: Callable[..., Any], mode: bool) -> Callable[..., Any]:
    import softtorch

    def fn(*inputs: torch.Tensor) -> Any:
        if mode:  # scope="all": relaxed also in the harness's no_grad forward column
            with softtorch.soft_mode("smooth", SOFTNESS, scope="all"):
                outs = [call(*inputs) for _ in range(CALLS)]
        else:
            outs = [call(*inputs) for _ in range(CALLS)]
        return outs

    return fn


def _dispatch_case(
    name: str,
    intercepted: Callable[..., Any],
    direct: Callable[..., Any],
    shape: tuple[int, ...],
    k: int = 1,
    soft_data: bool = False,
    soft_outputs: bool = False,
) -> dict[str, Any]:
    import softtorch

    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        xs = tuple(torch.randn(shape, generator=g).requires_grad_() for _ in range(k))
        return tuple(softtorch.soft(x, softness=SOFTNESS) for x in xs) if soft_data else xs

    fn = _repeat(intercepted, mode=not soft_data)

    def baseline(*inputs: torch.Tensor) -> Any:
        plain = [t.as_subclass(torch.Tensor) for t in inputs]
        return _repeat(direct, mode=False)(*plain)

    # SoftTensor results: the harness's loss (``out.sum()`` per output, added up) makes two more
    # intercepted SoftTensor calls per relaxed call in the forward+backward step
    return {"name": name, "shape": "x".join(map(str, shape)), "make": make, "fn": fn,
            "baseline": baseline, "group": "dispatch",
            "intercepted_per_call": 3 if soft_outputs else 1}  # fmt: skip


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Benchmark cases (see the module docstring); ``quick`` shrinks the models."""
    import softtorch as st

    s = SOFTNESS
    mlp_shape, width, depth = ((32, 64), 64, 2) if quick else ((256, 512), 512, 4)
    cnn_shape, ch = ((4, 3, 16, 16), 8) if quick else ((32, 3, 32, 32), 32)
    torch.manual_seed(0)
    out = [
        _model_case("model_mlp_no_relaxable_ops", _mlp(width, depth), mlp_shape),
        _model_case("model_cnn_no_relaxable_ops", _cnn(ch), cnn_shape),
        _dispatch_case("dispatch_relu", torch.relu, lambda x: st.relu(x, s), (64,)),
        _dispatch_case("dispatch_gt", lambda x, y: x > y, lambda x, y: st.greater(x, y, s),
                       (64,), k=2, soft_outputs=True),
        # index results are torch's integers carrying the soft index: the direct equivalent
        # is the soft op plus torch's exact op
        _dispatch_case("dispatch_sort", torch.sort,
                       lambda x: (st.sort(x, softness=s), torch.sort(x).indices), (8, 16)),
        _dispatch_case("dispatch_argmax", lambda x: x.argmax(-1),
                       lambda x: (st.argmax(x, -1, softness=s), x.argmax(-1)), (8, 16)),
        _dispatch_case("dispatch_relu_soft_tensor", torch.relu, lambda x: st.relu(x, s), (64,),
                       soft_data=True, soft_outputs=True),
        _dispatch_case("passthrough_add", lambda x, y: x + y, lambda x, y: x + y, (64,), k=2),
    ]  # fmt: skip
    return out


def paired_overhead(case: dict[str, Any], reps: int = 150) -> tuple[float, float | None]:
    """Dispatch overhead per call in us (forward, forward+backward): the median over ``reps`` of
    the paired difference (intercepted step - direct step, run back to back), divided by
    ``CALLS``. Pairing cancels the drift of a loaded machine that separate medians keep."""
    from _harness import make_steps

    inputs = case["make"]()
    f1, fb1 = make_steps(case["fn"], inputs)
    f0, fb0 = make_steps(case["baseline"], inputs, hard_op=True)

    def median_diff(a: Callable[[], Any], b: Callable[[], Any]) -> float:
        a(), b()
        diffs = []
        for i in range(reps):
            pair = (a, b) if i % 2 == 0 else (b, a)
            t = []
            for step in pair:
                t0 = time.perf_counter()
                step()
                t.append(time.perf_counter() - t0)
            diffs.append(t[0] - t[1] if i % 2 == 0 else t[1] - t[0])
        return statistics.median(diffs) * 1e6 / CALLS

    fwd = median_diff(f1, f0)
    both = median_diff(fb1, fb0) if fb1 is not None and fb0 is not None else None
    return fwd, both


def paired_ratio(case: dict[str, Any], reps: int = 60) -> float:
    """Median over ``reps`` of (forward+backward inside soft_mode) / (outside), run back to back
    in alternating order."""
    from _harness import make_steps

    inputs = case["make"]()
    _, fb1 = make_steps(case["fn"], inputs)
    _, fb0 = make_steps(case["baseline"], inputs)
    assert fb1 is not None and fb0 is not None
    fb1(), fb0()
    ratios = []
    for i in range(reps):
        t = {}
        for step in (fb1, fb0) if i % 2 == 0 else (fb0, fb1):
            t0 = time.perf_counter()
            step()
            t[step] = time.perf_counter() - t0
        ratios.append(t[fb1] / t[fb0])
    return statistics.median(ratios)


def summary(cases_: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """Lines printed under the suite's table: model ratios and paired dispatch overheads."""
    lines = []
    by_name = {c["name"]: c for c in cases_}
    for r in results:
        if r.skipped:
            continue
        if r.name.startswith("model") and r.fwdbwd_ratio is not None:
            ratio = paired_ratio(by_name[r.name])
            lines.append(f"- {r.name}: fwd+bwd ratio inside / outside soft_mode = "
                         f"{ratio:.3f} (median of paired ratios; table medians "
                         f"{r.fwdbwd_ratio:.3f}; target <= 1.15)")  # fmt: skip
        elif r.name in by_name and not r.name.startswith("model"):
            case = by_name[r.name]
            fwd, both = paired_overhead(case)
            tail = "-" if both is None else f"{both:.1f} us"
            k = case.get("intercepted_per_call", 1)
            if both is not None and k > 1:
                per = both * CALLS / (k * CALLS - 1)
                tail += f" ({per:.1f} us per intercepted call: {k} per relaxed call with the loss)"
            lines.append(
                f"- {r.name}: dispatch overhead per call {fwd:.1f} us forward, {tail} "
                "forward+backward (median of paired differences; target <= 30 us)"
            )
    return lines


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent), str(here)]
    from _harness import format_table, time_case

    results = [time_case(c, "soft_mode", repeat=5) for c in cases(quick="--quick" in argv)]
    print(format_table(results))
    print()
    unit = next((r.base_fwd_ms for r in results if r.name == "passthrough_add"), None)
    if unit:  # a plain x + y call, to compare figures across machines and loads
        print(f"reference: one plain x + y call = {unit * 1e3 / CALLS:.2f} us")
    for r in results:
        if r.fwdbwd_ms is None or r.base_fwdbwd_ms is None:
            continue
        if r.name.startswith("model"):
            print(f"{r.name}: fwd+bwd ratio in/out of soft_mode = {r.fwdbwd_ratio:.3f}")
        else:
            fwd = (r.fwd_ms - r.base_fwd_ms) * 1e3 / CALLS  # type: ignore[operator]
            both = (r.fwdbwd_ms - r.base_fwdbwd_ms) * 1e3 / CALLS
            print(f"{r.name}: dispatch overhead per call {fwd:.1f} us (forward), "
                  f"{both:.1f} us (forward+backward)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
