"""Train a classifier directly on torchmetrics' F1 score (or MCC) with ``softtorch.soft_mode``.

On an imbalanced problem the metric you report (F1, Matthews correlation) is not the loss you
train (cross-entropy): a model fitted by cross-entropy and thresholded at 0.5 under-predicts the
rare class. ``torchmetrics.functional.binary_f1_score`` is piecewise constant in the
predictions (it thresholds them and counts), so it has no gradient -- but evaluated inside
``soft_mode`` the same, unmodified library call is a smooth surrogate of itself:

    with softtorch.soft_mode("smooth", softness=0.1):
        loss = 1 - torchmetrics.functional.binary_f1_score(torch.sigmoid(logits), target)

The threshold ``probs > 0.5`` becomes a Bernoulli probability, torchmetrics' true / false
positive counts become expected counts, and the gradient reaches the model (issue 16: soft
integers; the counts keep torch's exact integer values beside the soft ones).

Data: 20-D Gaussian features, a noisy nonlinear score, about 7% positives. Three MLPs with the
same initialisation are trained full-batch with Adam: on binary cross-entropy, on 1 - F1 and on
1 - MCC (both torchmetrics calls inside ``soft_mode``). All are evaluated on held-out data with
the exact metrics (plain torch, threshold 0.5).

Run::

    python examples/train_on_the_metric.py            # full
    python examples/train_on_the_metric.py --quick    # a few seconds

Requires ``torchmetrics`` and ``tqdm`` (``pip install softtorch[examples]``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.classification import binary_f1_score, binary_matthews_corrcoef
from tqdm import tqdm

try:
    import softtorch as st
except ModuleNotFoundError:  # run from a source checkout without installing softtorch
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import softtorch as st

LOSSES = ("cross-entropy", "soft F1", "soft MCC")


def make_data(n: int, features: int, gen: torch.Generator, w: Tensor) -> tuple[Tensor, Tensor]:
    """Features (n, d) and labels in {0, 1} with about 7% positives."""
    x = torch.randn(n, features, generator=gen)
    score = x @ w + 0.5 * torch.tanh(x[:, 0] * x[:, 1]) + 0.6 * torch.randn(n, generator=gen)
    return x, (score > 1.9).long()


def mlp(features: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, 1), nn.Flatten(0)
    )  # fmt: skip


def loss_of(name: str, logits: Tensor, y: Tensor, softness: float) -> Tensor:
    """The training loss: BCE, or one minus torchmetrics' metric evaluated inside soft_mode."""
    if name == "cross-entropy":
        return F.binary_cross_entropy_with_logits(logits, y.float())
    metric = binary_f1_score if name == "soft F1" else binary_matthews_corrcoef
    with st.soft_mode("smooth", softness=softness):
        return 1 - metric(torch.sigmoid(logits), y)


def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Exact held-out F1 and MCC (plain torch, threshold 0.5)."""
    with torch.no_grad():
        p = torch.sigmoid(model(x))
    return float(binary_f1_score(p, y)), float(binary_matthews_corrcoef(p, y))


def train(
    name: str, x: Tensor, y: Tensor, steps: int, lr: float, softness: float, seed: int
) -> tuple[nn.Module, str]:
    """Full-batch Adam; returns the model and a note ("" or why it did not train)."""
    torch.manual_seed(seed)
    model = mlp(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(steps), desc=f"{name:>13s}", leave=False):
        loss = loss_of(name, model(x), y, softness)
        if not loss.requires_grad:
            return model, "no gradient (soft_mode could not relax the metric): not trained"
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, ""


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (a few seconds)")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (full batch)")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--softness", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny ops: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = args.steps or (150 if args.quick else 600)
    n_train, n_test = (2000, 4000) if args.quick else (8000, 20000)

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    w = torch.randn(args.features, generator=gen) / args.features**0.5
    x_tr, y_tr = make_data(n_train, args.features, gen, w)
    x_te, y_te = make_data(n_test, args.features, gen, w)
    print(f"train {n_train} / test {n_test} samples, positives {float(y_tr.float().mean()):.1%}")

    results: dict[str, tuple[float, float]] = {}
    notes: dict[str, str] = {}
    for name in LOSSES:
        model, notes[name] = train(name, x_tr, y_tr, steps, args.lr, args.softness, args.seed)
        results[name] = evaluate(model, x_te, y_te)
    elapsed = time.perf_counter() - start

    print("held-out F1 / MCC (exact torchmetrics, threshold 0.5):")
    for name in LOSSES:
        f1, mcc = results[name]
        note = f"  [{notes[name]}]" if notes[name] else ""
        print(f"  trained on {name + ':':<15s} {f1:.3f} {mcc:.3f}{note}")
    print(f"time: {elapsed:.1f} s")
    return results


if __name__ == "__main__":
    main()
