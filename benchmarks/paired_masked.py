"""Paired timing of ``ndcg_loss`` masked vs unmasked in one process (issue 21).

Alternates one unmasked and one masked step (fwd+bwd, then a no-grad forward each) on the data of
:mod:`bench_ranking` (masked lists of length uniform in ``[n/2, n]``) and prints the medians and
the median of the per-pair ratios, which a loaded machine disturbs less than separate runs.

``python benchmarks/paired_masked.py [--batch 64] [--n 10000] [--repeat 9]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ranking import _make, _ndcg, _ndcg_masked  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(1)
    scores, rel, mask = _make(args.batch, args.n)()

    def step(fn):  # noqa: ANN001, ANN202
        scores.grad = None
        t = time.perf_counter()
        fn(scores, rel, mask).backward()
        return time.perf_counter() - t

    def fwd(fn):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        with torch.no_grad():
            fn(scores, rel, mask)
        return time.perf_counter() - t

    for fn in (_ndcg, _ndcg_masked):  # warm-up (numba compilation)
        step(fn)
    res: dict[str, list[float]] = {k: [] for k in ("u", "m", "r", "uf", "mf", "rf")}
    for _ in range(args.repeat):
        u, m = step(_ndcg), step(_ndcg_masked)
        uf, mf = fwd(_ndcg), fwd(_ndcg_masked)
        for k, v in zip(res, (u, m, m / u, uf, mf, mf / uf)):
            res[k].append(v)
    md = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"{args.batch}x{args.n}: fwd+bwd unmasked {md['u'] * 1e3:.1f} ms, masked "
        f"{md['m'] * 1e3:.1f} ms, paired ratio {md['r']:.2f} | forward unmasked "
        f"{md['uf'] * 1e3:.1f} ms, masked {md['mf'] * 1e3:.1f} ms, paired ratio {md['rf']:.2f}"
    )


if __name__ == "__main__":
    main()
