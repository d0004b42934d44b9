"""Overhead of ``soft_mode`` / ``SoftTensor`` dispatch.

* ``model_*``: forward+backward of a model with no relaxable op, run inside ``soft_mode``
  (baseline: the same pass outside it). Target: ratio <= 1.15.
* ``dispatch_*``: ``CALLS`` intercepted calls inside one ``soft_mode`` block (or on a SoftTensor)
  against the same relaxation called directly (``softtorch.relu(x)`` ...); ``(time - baseline) /
  CALLS`` is the dispatch overhead per call. Target: <= 30 us.
* ``passthrough_add``: a non-relaxable op (``x + y``) inside the mode vs outside.

``python benchmarks/bench_soft_mode.py [--quick]`` prints both figures per case.
"""

from __future__ import annotations

import sys
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

    return {"name": name, "shape": "x".join(map(str, shape)), "make": make, "fn": fn,
            "baseline": baseline, "group": "dispatch"}  # fmt: skip


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
                       (64,), k=2),
        _dispatch_case("dispatch_sort", torch.sort, lambda x: st.sort(x, softness=s), (8, 16)),
        _dispatch_case("dispatch_argmax", lambda x: x.argmax(-1),
                       lambda x: st.argmax(x, -1, softness=s), (8, 16)),
        _dispatch_case("dispatch_relu_soft_tensor", torch.relu, lambda x: st.relu(x, s), (64,),
                       soft_data=True),
        _dispatch_case("passthrough_add", lambda x, y: x + y, lambda x, y: x + y, (64,), k=2),
    ]  # fmt: skip
    return out


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
