"""Relaxed models: a training step (forward + cross-entropy + backward) inside ``soft_mode``
against the same step in plain torch (the baseline).

* ``cnn``: 3 blocks Conv3x3-ReLU-MaxPool2 (16, 32, 64 channels) and a linear head on
  16x3x64x64 (the model of issue 19);
* ``resnet18``: a ResNet-18-shaped network (BasicBlocks [2, 2, 2, 2], 64..512 channels,
  BatchNorm, ReLU, a 3x3 max-pool stem) on 8x3x64x64;
* ``encoder[relu|gelu]``: one ``nn.TransformerEncoderLayer`` (d 256, 8 heads, FFN 1024,
  batch_first) on 16x128x256 with a ``src_key_padding_mask``, mean-pooled into a linear head.

Modes ``smooth`` / ``c0`` / ``c1`` / ``c2`` (softness 0.1); the quick run has tiny shapes and
``smooth`` / ``c1`` only. Rows ``...,fused`` run the same step with the fused relu kernel and the
fast soft max-pool (``softtorch.kernels``) patched into the interception handlers for the
duration of the step. The library now routes relu through the fused kernel and pooling through
the fast route itself (``MaxPool2d(2)`` through the one-pass 2x2 kernel, which bypasses the patch),
so these rows run the same kernels as the plain rows and serve as a consistency check. Run at 1
and 2 threads (``run.py --threads``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SOFTNESS = 0.1
#: Paired (soft, hard) step repetitions of the summary's ratio.
PAIRED_REPS = 9


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN layers, ReLU, identity or 1x1-conv shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        return F.relu(out + self.short(x))


def resnet18(classes: int = 10, width: int = 64) -> nn.Module:
    """ResNet-18 layout: stem conv3x3-BN-ReLU-MaxPool, stages [2, 2, 2, 2], avg-pool, linear."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for j in range(2):
            layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def small_cnn(classes: int = 10, size: int = 64) -> nn.Module:
    """3 blocks Conv3x3-ReLU-MaxPool2 (16, 32, 64 channels) and a linear head."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (size // 8) ** 2, classes),
    )  # fmt: skip


class Encoder(nn.Module):
    """One TransformerEncoderLayer with a padding mask, mean-pooled into a linear head."""

    def __init__(self, d: int, activation: str) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d, 8, 4 * d, dropout=0.0, activation=activation,
                                                batch_first=True)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h = self.layer(x, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1))


@contextlib.contextmanager
def fused_handlers() -> Iterator[None]:
    """Patch the fused relu and the fast soft max-pool into the interception layer (benchmark
    only): ``softtorch.elementwise.relu`` -> :func:`softtorch.kernels.fused.ramp` for soft
    modes, ``ops_pool._pool`` -> :func:`softtorch.kernels.pool.pool`."""
    from softtorch import elementwise as ew
    from softtorch.interception import ops_pool
    from softtorch.kernels import fused
    from softtorch.kernels import pool as kpool

    old_relu, old_pool = ew.relu, ops_pool._pool

    def relu(x: torch.Tensor, softness: Any = 0.1, mode: str = "smooth",
             gated: bool = False) -> torch.Tensor:
        if mode == "hard":
            return old_relu(x, softness, mode, gated)
        return fused.ramp(x, softness, mode, gated)

    ew.relu = relu  # type: ignore[assignment]
    ops_pool._pool = lambda x, w, c: kpool.pool(x, w, c, ops_pool._reduce)  # type: ignore
    try:
        yield
    finally:
        ew.relu = old_relu  # type: ignore[assignment]
        ops_pool._pool = old_pool  # type: ignore[assignment]


def _step(model: nn.Module, mode: str | None, fused: bool) -> Callable[..., torch.Tensor]:
    import softtorch

    def fn(*inputs: torch.Tensor) -> torch.Tensor:
        *xs, target = inputs
        ctx = softtorch.soft_mode(mode, SOFTNESS) if mode else contextlib.nullcontext()
        patch = fused_handlers() if fused else contextlib.nullcontext()
        with patch, ctx:
            return F.cross_entropy(model(*xs), target)

    return fn


def _inputs(kind: str, quick: bool) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        if kind == "encoder":
            b, t, d = (2, 8, 32) if quick else (16, 128, 256)
            x = torch.randn(b, t, d, generator=g)
            lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
            pad = torch.arange(t).unsqueeze(0) >= lengths.unsqueeze(1)
            return x, pad, torch.randint(0, 10, (b,), generator=g)
        b = {"cnn": 16, "resnet18": 8}[kind]
        b, size = (2, 16) if quick else (b, 64)
        return torch.randn(b, 3, size, size, generator=g), torch.randint(0, 10, (b,), generator=g)

    return make


def _model(kind: str, quick: bool, variant: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "cnn":
        return small_cnn(size=16 if quick else 64)
    if kind == "resnet18":
        return resnet18(width=8 if quick else 64)
    return Encoder(32 if quick else 256, variant)


def summary(cases_: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """Lines under the table: each row's fwd+bwd ratio re-measured as the median of paired
    ratios (soft and hard step back to back, alternating order), robust to a loaded machine."""
    from bench_soft_mode import paired_ratio

    by_name = {c["name"]: c for c in cases_}
    lines = []
    for r in results:
        if r.skipped or r.fwdbwd_ratio is None:
            continue
        ratio = paired_ratio(by_name[r.name], reps=PAIRED_REPS)
        lines.append(f"- {r.name}: fwd+bwd ratio soft / hard = {ratio:.2f} (median of "
                     f"{PAIRED_REPS} paired ratios; table medians {r.fwdbwd_ratio:.2f})")
    return lines


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """One case per (model, mode[, fused]); the baseline is the plain torch step."""
    modes = ["smooth", "c1"] if quick else ["smooth", "c0", "c1", "c2"]
    out: list[dict[str, Any]] = []
    for kind, variants in (("cnn", [""]), ("resnet18", [""]), ("encoder", ["relu", "gelu"])):
        for variant in variants:
            model = _model(kind, quick, variant or "relu")
            name = f"{kind}[{variant}]" if variant else kind
            hard = _step(model, None, False)
            for mode in modes:
                for fused in (False, True):
                    if fused and variant == "gelu":
                        continue  # no relaxed op of the GELU encoder has a fused kernel
                    out.append({
                        "name": f"{name}[{mode}{',fused' if fused else ''}]",
                        "make": _inputs(kind, quick),
                        "fn": _step(model, mode, fused),
                        "baseline": hard,
                        "group": kind,
                    })  # fmt: skip
    return out
