"""Fused elementwise kernels (``softtorch.kernels``) vs their composite formulas vs the hard op,
on 4M float32 elements (2048 x 2048), forward+backward, softness 0.1.

Per op and mode two rows with the same baseline (the hard torch op): ``op[mode,composite]`` (the
torch formulas of :mod:`softtorch.kernels.composite`, what the public functions run where the
kernels do not apply) and ``op[mode,fused]`` (:mod:`softtorch.kernels.fused`). ``relu`` is
also ``softrelu`` (the same function); ``heaviside`` is also ``sigmoidal``. Targets (issue 19):
fused <= 2x hard in ``smooth``, <= 3x in the other modes, ``round`` <= 4x; peak memory <= 2x the
hard op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SHAPE = (2048, 2048)
QUICK_SHAPE = (64, 64)
SOFTNESS = 0.1
MODES = ("smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm")
_HALF = torch.tensor(0.5)


def _one(shape: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        return (torch.randn(shape, generator=g).requires_grad_(True),)

    return make


def _two(shape: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        return tuple(torch.randn(shape, generator=g).requires_grad_(True) for _ in range(2))

    return make


def _impl(op: str, mode: str, which: str) -> Callable[..., torch.Tensor]:
    from softtorch.kernels import composite, fused

    mod: Any = fused if which == "fused" else composite
    s = SOFTNESS
    lo, hi = torch.tensor(-0.5), torch.tensor(0.5)
    unary = {"heaviside": composite.STEP, "sign": composite.SIGN, "abs": composite.ABS,
             "relu": composite.RAMP, "relu_gated": composite.GATED}
    if op in unary:
        code = unary[op]
        if op == "relu" and which == "fused":
            return lambda x: fused.ramp(x, s, mode)
        return lambda x: mod.unary(x, s, mode, code)
    if op == "clamp":
        return lambda x: mod.clamp(x, lo, hi, s, mode)
    if op == "round":
        return lambda x: mod.round(x, s, mode)
    if op == "greater":
        return lambda x, y: mod.binary(x, y, s, mode, composite.CMP, -1e-10)
    if op == "eq":
        return lambda x, y: mod.binary(x, y, s, mode, composite.EQ, 0.0, 1e-10)
    raise KeyError(op)


def _hard_heaviside(x: torch.Tensor) -> torch.Tensor:
    return torch.heaviside(x, _HALF.to(x.dtype))


# op -> (inputs, hard baseline)
_OPS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "relu": (_one, torch.relu),
    "relu_gated": (_one, torch.relu),
    "abs": (_one, torch.abs),
    "sign": (_one, torch.sign),
    "heaviside": (_one, _hard_heaviside),
    "clamp": (_one, lambda x: torch.clamp(x, -0.5, 0.5)),
    "round": (_one, torch.round),
    "greater": (_two, lambda x, y: (x > y).float()),
    "eq": (_two, lambda x, y: (x == y).float()),
}


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """Rows ``op[mode,composite]`` and ``op[mode,fused]`` for every op and mode."""
    shape = QUICK_SHAPE if quick else SHAPE
    modes = ("smooth", "c1") if quick else MODES
    out: list[dict[str, Any]] = []
    for op, (make, baseline) in _OPS.items():
        for mode in modes:
            for which in ("composite", "fused"):
                out.append({
                    "name": f"{op}[{mode},{which}]",
                    "shape": "x".join(map(str, shape)),
                    "make": make(shape),
                    "fn": _impl(op, mode, which),
                    "baseline": baseline,
                    "group": op,
                })  # fmt: skip
    return out
