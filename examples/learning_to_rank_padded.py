"""Learning to rank lists of different lengths with a masked soft NDCG (``softtorch.losses``).

Synthetic learning-to-rank data generated here: every query has its own number of documents
(5 to ``--max-items``), so a batch of queries is padded to one length and a ``mask`` marks the
real documents. Each query also has its own "topic": its documents' features are drawn around a
query-specific centre, and their graded relevance (0..4) depends on how a hidden nonlinear score
of the features compares *within the query* (graded by the within-query z-score of a noisy hidden
score). So only the order within a query matters, and NDCG@10 with gains ``2^rel - 1`` is the
metric. A small MLP scorer is trained with

    loss = softtorch.losses.ndcg_loss(scores, relevance, mask=mask, softness=s)

(soft ranks by the O(n log n) ``fast_soft_sort``; each query ranked among its real documents
only, padded entries get no gradient) and, as the pointwise baseline, with a masked mean-squared
error regression of the relevance labels. Both are evaluated with the exact NDCG@10 on held-out
queries (``ndcg_loss(..., mode="hard", k=10)`` is 1 - the exact metric).

Run::

    python examples/learning_to_rank_padded.py            # full
    python examples/learning_to_rank_padded.py --quick    # a few seconds

Uses one torch thread by default (``--threads``). Requires ``tqdm`` (``pip install
softtorch[examples]``).

Measured (torch 2.13, seed 0, one thread, on a shared 2-core machine under load), full mode:
held-out NDCG@10 0.945 with the masked soft NDCG loss vs 0.878 with the MSE baseline (0.967 for a
ranking by the hidden score, the upper bound) in 7 s (5 s CPU); ``--quick``: 0.919 vs 0.840
(upper bound 0.969) in 9 s (5 s CPU).
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


def make_data(
    queries: int, max_items: int, features: int, gen: torch.Generator, w: Tensor, v: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Padded features (q, n, d), relevance 0..4 (q, n), mask (q, n) and the hidden score."""
    lengths = torch.randint(5, max_items + 1, (queries, 1), generator=gen)
    mask = torch.arange(max_items) < lengths
    centre = 1.5 * torch.randn(queries, 1, features, generator=gen)  # the query's topic
    x = centre + torch.randn(queries, max_items, features, generator=gen)
    hidden = x @ w + 0.5 * torch.tanh(x @ v) * (x @ w)  # nonlinear hidden relevance score
    noisy = hidden + 0.3 * torch.randn(queries, max_items, generator=gen)
    m = mask.to(noisy.dtype)
    count = m.sum(-1, keepdim=True)
    mean = (noisy * m).sum(-1, keepdim=True) / count
    std = (((noisy - mean) * m).square().sum(-1, keepdim=True) / count).sqrt()
    z = (noisy - mean) / std  # graded within the query
    relevance = torch.floor(z + 1.0).clamp(0, 4)
    relevance = torch.where(mask, relevance, 0.0)
    x = torch.where(mask.unsqueeze(-1), x, 0.0)
    return x, relevance, mask, hidden


def ndcg_at(scores: Tensor, relevance: Tensor, mask: Tensor, k: int = 10) -> float:
    """Mean exact NDCG@k over the queries (gains 2^rel - 1)."""
    loss = st.losses.ndcg_loss(scores, relevance, mask=mask, k=k, mode="hard")
    return 1.0 - float(loss)


def scorer(features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, 1), nn.Flatten(-2))


def train(
    loss_name: str, data: tuple[Tensor, Tensor, Tensor], epochs: int, softness: float, seed: int
) -> nn.Module:
    x, rel, mask = data
    torch.manual_seed(seed)
    model = scorer(x.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in tqdm(range(epochs), desc=f"{loss_name:>9s}", leave=False):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 32):
            idx = perm[i : i + 32]
            scores = model(x[idx])
            if loss_name == "soft ndcg":
                loss = st.losses.ndcg_loss(scores, rel[idx], mask=mask[idx], softness=softness)
            else:
                err = torch.where(mask[idx], scores - rel[idx], 0.0)
                loss = err.square().sum() / mask[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (a few seconds)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-items", type=int, default=60, help="documents per query, at most")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--softness", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (6 if args.quick else 30)
    n_train, n_test = (300, 300) if args.quick else (1000, 500)

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    w = torch.randn(args.features, generator=gen) / args.features**0.5
    v = torch.randn(args.features, generator=gen) / args.features**0.5
    train_data = make_data(n_train, args.max_items, args.features, gen, w, v)[:3]
    x_te, rel_te, mask_te, hidden_te = make_data(n_test, args.max_items, args.features, gen, w, v)

    results: dict[str, float] = {}
    for loss_name in ("soft ndcg", "mse"):
        model = train(loss_name, train_data, epochs, args.softness, args.seed)
        with torch.no_grad():
            results[loss_name] = ndcg_at(model(x_te), rel_te, mask_te)
    oracle = ndcg_at(hidden_te, rel_te, mask_te)
    elapsed = time.perf_counter() - start

    lengths = mask_te.sum(-1)
    print(
        f"held-out NDCG@10 ({n_test} queries of {int(lengths.min())} to {int(lengths.max())} "
        f"documents, padded to {args.max_items}):"
    )
    soft = results["soft ndcg"]
    print(f"  trained on soft NDCG (softtorch.losses.ndcg_loss, masked): {soft:.3f}")
    print(f"  trained on MSE regression of the labels (baseline):        {results['mse']:.3f}")
    print(f"  ranking by the hidden score (upper bound):                 {oracle:.3f}")
    print(f"time: {elapsed:.1f} s")
    return results | {"oracle": oracle}


if __name__ == "__main__":
    main()
