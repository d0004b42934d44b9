"""Learning to rank by maximising a soft Spearman rank correlation (``softtorch.rank``).

Synthetic ranking data: each query has ``--items`` documents with ``--features`` features. The
relevance of a document is a monotone, heavy-tailed function of a hidden linear score plus noise,
``exp(2 <w, x>) + noise``, and every query's labels come with their own scale and offset (as when
each query is labelled on a different scale), so only the order *within* a query is meaningful.
Spearman's rank correlation is the Pearson correlation of the ranks; with hard ranks its gradient
is zero, with soft ranks

    r = softtorch.rank(scores, dim=-1, softness=s, descending=False)   # soft ranks in [1, n]
    rho = pearson(r, hard_ranks(relevance))

it is a differentiable, per-query, scale-free training objective (``loss = 1 - rho``). A small MLP
scorer is trained with it and, for comparison, with a pointwise mean-squared-error regression on the
raw labels. Both are evaluated with the exact (hard) Spearman correlation on held-out queries.

Run::

    python examples/learning_to_rank.py            # full
    python examples/learning_to_rank.py --quick    # a few seconds

Uses one torch thread by default (``--threads``): the tensors are tiny, so more threads only add
synchronisation. Requires ``tqdm`` (``pip install softtorch[examples]``).

Measured (torch 2.13, seed 0, one thread, on a shared 2-core machine at load ~8), full mode:
held-out Spearman 0.892 with the soft Spearman loss vs 0.884 with the MSE baseline (0.895 for a
ranking by the hidden score itself, the upper bound) in 41 s (13 s CPU); ``--quick``: 0.893 vs
0.846 (upper bound 0.898) in 12 s (6 s CPU).
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
    queries: int, items: int, features: int, noise: float, gen: torch.Generator, w: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Features (q, n, d), relevance (q, n) and the noiseless hidden score (q, n)."""
    x = torch.randn(queries, items, features, generator=gen)
    hidden = x @ w
    scale = torch.exp(1.5 * torch.randn(queries, 1, generator=gen))  # per-query scale ...
    offset = 5.0 * torch.randn(queries, 1, generator=gen)  # ... and offset of the labels
    noise_ = noise * torch.randn(queries, items, generator=gen)
    relevance = scale * (torch.exp(2.0 * hidden) + noise_) + offset
    return x, relevance, hidden


def hard_ranks(v: Tensor) -> Tensor:
    """Ascending ranks in [1, n] along the last dim (ties broken by position)."""
    return torch.argsort(torch.argsort(v, dim=-1), dim=-1).to(v.dtype) + 1.0


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation along the last dim."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-12)


def spearman(scores: Tensor, relevance: Tensor) -> Tensor:
    """Exact (hard) Spearman correlation per query."""
    return pearson(hard_ranks(scores), hard_ranks(relevance))


def soft_spearman(scores: Tensor, target_ranks: Tensor, softness: float) -> Tensor:
    """Spearman correlation with the scores' ranks replaced by softtorch's soft ranks."""
    r = st.rank(scores, dim=-1, softness=softness, descending=False)
    return pearson(r, target_ranks)


def scorer(features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 32), nn.Tanh(), nn.Linear(32, 1), nn.Flatten(-2))


def train(
    loss_name: str, x: Tensor, rel: Tensor, epochs: int, batch: int, softness: float, seed: int
) -> nn.Module:
    torch.manual_seed(seed)
    model = scorer(x.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    target_ranks = hard_ranks(rel)
    for _ in tqdm(range(epochs), desc=f"{loss_name:>13s}", leave=False):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            idx = perm[i : i + batch]
            scores = model(x[idx])
            if loss_name == "soft spearman":
                loss = 1.0 - soft_spearman(scores, target_ranks[idx], softness).mean()
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
    parser.add_argument("--softness", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (ops are tiny: 1 is fastest)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (8 if args.quick else 40)
    n_train, n_test = (200, 200) if args.quick else (1000, 500)

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    w = torch.randn(args.features, generator=gen) / args.features**0.5
    x_tr, rel_tr, _ = make_data(n_train, args.items, args.features, 0.5, gen, w)
    x_te, rel_te, hidden_te = make_data(n_test, args.items, args.features, 0.5, gen, w)

    results: dict[str, float] = {}
    for loss_name in ("soft spearman", "mse"):
        model = train(loss_name, x_tr, rel_tr, epochs, 32, args.softness, args.seed)
        with torch.no_grad():
            results[loss_name] = float(spearman(model(x_te), rel_te).mean())
    oracle = float(spearman(hidden_te, rel_te).mean())
    elapsed = time.perf_counter() - start

    print(f"held-out Spearman correlation ({n_test} queries x {args.items} items):")
    print(f"  trained on soft Spearman (softtorch.rank): {results['soft spearman']:.3f}")
    print(f"  trained on MSE regression (baseline):      {results['mse']:.3f}")
    print(f"  ranking by the hidden score (upper bound): {oracle:.3f}")
    print(f"time: {elapsed:.1f} s")
    return results | {"oracle": oracle}


if __name__ == "__main__":
    main()
