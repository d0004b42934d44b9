"""Paired old-vs-new timing of sorting_network soft top-k rows (issue 19), one process.

``topk(x, k, method="sorting_network")`` forward + backward with the transposed rows computed
layer by layer (``_transposed.GROUPED = False``, the previous kernels) and by layer groups
(``GROUPED = True``, :mod:`softtorch.ordering.methods.sorting_network._grouped`), interleaved
so that machine load hits both alike; prints per-repeat times (thread CPU time and wall time)
and the median new / old ratio.

    python benchmarks/paired_sn_rows.py --n 10000 --k 1000 --repeat 5 --threads 1
    python benchmarks/paired_sn_rows.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import softtorch as st
import softtorch.ordering.methods.sorting_network._transposed as tr


def _step(x: torch.Tensor, k: int, weights: torch.Tensor, grouped: bool) -> tuple[float, float]:
    tr.GROUPED = grouped
    xx = x.clone().requires_grad_(True)
    c0, w0 = time.thread_time(), time.perf_counter()
    out = st.topk(xx, k, dim=-1, method="sorting_network", softness=0.1)
    (out.values.sum() + (out.indices * weights).sum()).backward()
    return time.thread_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> list[float]:
    """Run the paired comparison; returns the per-repeat CPU-time ratios new / old.

    Args:
        argv: command-line arguments (default: ``sys.argv``).
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny shape (smoke run)")
    args = p.parse_args(argv)
    n, k, reps = (300, 30, 1) if args.quick else (args.n, args.k, args.repeat)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, n, generator=gen)
    weights = torch.randn(1, k, n, generator=gen)
    default = tr.GROUPED
    try:
        _step(x, k, weights, False)  # compile / warm both paths
        _step(x, k, weights, True)
        ratios = []
        for i in range(reps):
            old = _step(x, k, weights, False)
            new = _step(x, k, weights, True)
            ratios.append(new[0] / old[0])
            print(
                f"repeat {i}: old cpu {old[0]:.3f} s wall {old[1]:.3f} s | new cpu {new[0]:.3f} s "
                f"wall {new[1]:.3f} s | new/old cpu {ratios[-1]:.3f}"
            )
        print(f"median new/old (cpu time): {statistics.median(ratios):.3f}")
    finally:
        tr.GROUPED = default
    return ratios


if __name__ == "__main__":
    main()
