"""Relaxing third-party code: train a ranker on an NDCG metric with ``softtorch.soft_mode``.

``ndcg_at_k`` below is written the way a metrics library writes it, in plain torch (``argsort``,
``gather``, ``sort``, ``where``) and with no thought of gradients: the scores only enter through
``argsort``, so the metric is piecewise constant and ``ndcg.requires_grad`` is False. Evaluated
inside ``softtorch.soft_mode`` the same, unmodified function becomes a smooth surrogate of NDCG:

    with softtorch.soft_mode("smooth", softness=0.05):
        loss = -ndcg_at_k(model(x), relevance, k=5)    # argsort -> soft index, gather -> soft

``argsort`` returns torch's integer indices carrying a soft permutation, and ``gather`` with them
returns the expected gains under it, so the gradient reaches the scores. The ideal-DCG branch sorts
the labels, which need no gradient, and stays exact (``soft_mode`` relaxes only what gradients
pass through).

Data: queries of ``--items`` documents with graded relevance 0..3 from a noisy hidden linear score.
An MLP scorer is trained by maximising the relaxed NDCG@5 and evaluated with the exact metric on
held-out queries (before training, after training, and for a pointwise MSE regression on the labels
for comparison).

If torchmetrics is installed, the script ends by doing the same to a real library's metric:
``torchmetrics.functional.retrieval.retrieval_precision`` (which calls ``topk`` internally) of one
test query, evaluated inside ``soft_mode``, has a non-zero gradient w.r.t. the scores.

Run::

    python examples/third_party_metric.py            # full
    python examples/third_party_metric.py --quick    # a few seconds

Uses one torch thread by default (``--threads``): the tensors are tiny, so more threads only add
synchronisation. Requires ``tqdm`` (``pip install softtorch[examples]``).

Measured (torch 2.13, seed 0, one thread, on a shared 2-core machine at load ~8), full mode:
held-out NDCG@5 0.409 untrained, 0.884 after training on the relaxed metric, 0.888 for the MSE
baseline, in 30 s (15 s CPU); torchmetrics' precision@5 of the first test query: 0.600 hard (no
gradient), 0.590 inside ``soft_mode`` (gradient norm 0.226). ``--quick``: 0.412 -> 0.884 (MSE
0.890) in 11 s (8 s CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

try:
    import softtorch as st
except ModuleNotFoundError:  # run from a source checkout without installing softtorch
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import softtorch as st


# ----------------------------------------------------------- "third-party" code: do not modify


def ndcg_at_k(preds: Tensor, target: Tensor, k: int) -> Tensor:
    """Mean normalised discounted cumulative gain at k of each row's ranking by ``preds``."""
    order = preds.argsort(dim=-1, descending=True)
    gains = 2.0**target - 1.0
    ranked = gains.gather(-1, order)[..., :k]
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=preds.dtype, device=preds.device))
    dcg = (ranked * discounts).sum(-1)
    ideal = gains.sort(dim=-1, descending=True).values[..., :k]
    idcg = (ideal * discounts).sum(-1)
    return torch.where(idcg > 0, dcg / idcg, torch.zeros_like(dcg)).mean()


# ------------------------------------------------------------------------------------ our code


def make_data(
    queries: int, items: int, features: int, gen: torch.Generator, w: Tensor
) -> tuple[Tensor, Tensor]:
    """Features (q, n, d) and graded relevance in {0, 1, 2, 3} (q, n)."""
    x = torch.randn(queries, items, features, generator=gen)
    score = x @ w + 0.5 * torch.randn(queries, items, generator=gen)
    relevance = torch.bucketize(score, torch.tensor([0.5, 1.2, 1.8])).float()
    return x, relevance


def scorer(features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, 1), nn.Flatten(-2))


def train(
    loss_name: str, x: Tensor, rel: Tensor, epochs: int, k: int, softness: float, seed: int
) -> nn.Module:
    torch.manual_seed(seed)
    model = scorer(x.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in tqdm(range(epochs), desc=f"{loss_name:>12s}", leave=False):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 32):
            idx = perm[i : i + 32]
            scores = model(x[idx])
            if loss_name == "relaxed NDCG":
                with st.soft_mode("smooth", softness=softness):
                    loss = -ndcg_at_k(scores, rel[idx], k)
            else:
                loss = ((scores - rel[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (a few seconds)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--items", type=int, default=20, help="documents per query")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--softness", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (ops are tiny: 1 is fastest)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (6 if args.quick else 40)
    n_train, n_test = (200, 200) if args.quick else (1000, 500)

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    w = torch.randn(args.features, generator=gen) / args.features**0.5
    x_tr, rel_tr = make_data(n_train, args.items, args.features, gen, w)
    x_te, rel_te = make_data(n_test, args.items, args.features, gen, w)

    torch.manual_seed(args.seed)
    untrained = scorer(args.features)
    plain = ndcg_at_k(untrained(x_te), rel_te, args.k)
    print(f"outside soft_mode the metric has a gradient: {plain.requires_grad}")
    results = {"untrained": float(plain)}
    for loss_name in ("relaxed NDCG", "mse"):
        model = train(loss_name, x_tr, rel_tr, epochs, args.k, args.softness, args.seed)
        with torch.no_grad():
            results[loss_name] = float(ndcg_at_k(model(x_te), rel_te, args.k))
    elapsed = time.perf_counter() - start

    print(f"held-out NDCG@{args.k} ({n_test} queries x {args.items} items, exact metric):")
    print(f"  untrained scorer:                           {results['untrained']:.3f}")
    print(f"  trained on the metric inside soft_mode:     {results['relaxed NDCG']:.3f}")
    print(f"  trained on MSE regression of the labels:    {results['mse']:.3f}")
    print(f"time: {elapsed:.1f} s")
    torchmetrics_demo(model, x_te[0], rel_te[0], args.k, args.softness)
    return results


def torchmetrics_demo(model: nn.Module, x: Tensor, rel: Tensor, k: int, softness: float) -> None:
    """The same with a real library, if installed: torchmetrics' precision@k of one query."""
    try:
        from torchmetrics.functional.retrieval import retrieval_precision
    except ImportError:
        print("(torchmetrics is not installed: skipping its precision@k)")
        return
    scores = model(x)
    relevant = (rel >= 2).float()
    hard = retrieval_precision(scores, relevant, top_k=k)
    with st.soft_mode("smooth", softness=softness):
        soft = retrieval_precision(scores, relevant, top_k=k)
    (grad,) = torch.autograd.grad(soft, scores)
    print(
        f"torchmetrics retrieval_precision@{k} of one query: hard {float(hard):.3f} "
        f"(gradient: {hard.requires_grad}), inside soft_mode {float(soft.detach()):.3f} "
        f"(gradient norm {float(grad.norm()):.3f})"
    )


if __name__ == "__main__":
    main()
