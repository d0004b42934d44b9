"""Paired timing of masked vs unmasked ``method="ot"`` values ops in one process (issue 21).

For each op and mode, alternates one unmasked and one masked fwd+bwd step on ``(batch, n)``
float64 scores (masked rows: real counts uniform in ``[n/2, n]``, padding scattered) and prints
the medians and the median of the per-pair ratios (masked / unmasked), which a loaded machine
disturbs less than separate runs. ``--mem`` also runs every case in a fresh child process and
reports the peak RSS increase of one fwd+bwd step (:func:`_harness.peak_rss_step`).

``python benchmarks/paired_masked_ot.py [--batch 64] [--n 1000] [--repeat 7] [--threads 1]
[--ops rank,sort] [--modes smooth,c1] [--mem]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]  # this checkout's softtorch, not an installed one

from _harness import peak_rss_step  # noqa: E402

import softtorch as st  # noqa: E402

Op = Callable[..., torch.Tensor]

OPS: dict[str, Op] = {
    "sort": lambda x, kw: st.sort(x, return_indices=False, **kw).values,
    "rank": lambda x, kw: st.rank(x, dim=-1, **kw),
    "max": lambda x, kw: st.max(x, dim=-1, **kw).values,
    "quantile": lambda x, kw: st.quantile(x, torch.tensor([0.1, 0.5, 0.9]), dim=-1, **kw),
    "topk": lambda x, kw: st.topk(x, 10, dim=-1, **kw).values,
}
MODES = ("smooth", "c0", "c1", "c2")


def make(batch: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``(batch, n)`` float64 and a mask with real counts uniform in ``[n/2, n]``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, dtype=torch.float64, generator=g)
    lengths = torch.randint(n // 2, n + 1, (batch, 1), generator=g)
    m = torch.arange(n) < lengths
    m = m.gather(-1, torch.argsort(torch.rand(batch, n, generator=g), dim=-1))
    return torch.where(m, x, 0.0), m


def step_fn(op: str, mode: str, x: torch.Tensor, m: torch.Tensor | None) -> Callable[[], None]:
    """One fwd+bwd step of ``op`` (masked when ``m`` is given)."""
    kw = dict(softness=0.1, mode=mode, method="ot")
    if m is not None:
        kw["mask"] = m
    xr = x.clone().requires_grad_()

    def step() -> None:
        xr.grad = None
        OPS[op](xr, kw).sum().backward()

    return step


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def paired(op: str, mode: str, batch: int, n: int, repeat: int) -> tuple[float, float, float]:
    """Median unmasked and masked fwd+bwd seconds and the median paired ratio."""
    x, m = make(batch, n)
    un, ma = step_fn(op, mode, x, None), step_fn(op, mode, x, m)
    un()
    ma()  # warm-up (numba compilation)
    us, ms, rs = [], [], []
    for _ in range(repeat):
        u, v = timed(un), timed(ma)
        us.append(u)
        ms.append(v)
        rs.append(v / u)
    return statistics.median(us), statistics.median(ms), statistics.median(rs)


def child_peak(op: str, mode: str, batch: int, n: int, masked: bool) -> float:
    """Peak RSS increase (MB) of one step, measured in a fresh child process."""
    code = (
        f"import sys; sys.path[:0] = [{str(_HERE)!r}, {str(_HERE.parent)!r}]; import torch;"
        "from paired_masked_ot import make, step_fn; from _harness import peak_rss_step;"
        f"x, m = make({batch}, {n}); torch.set_num_threads(1);"
        f"s = step_fn({op!r}, {mode!r}, x, m if {masked} else None);"
        "print(peak_rss_step(s)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--mem", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _ = peak_rss_step  # re-exported for the child processes
    print(
        f"# {args.batch}x{args.n}, {args.threads} thread(s), median of {args.repeat} pairs",
        flush=True,
    )
    for op in args.ops.split(","):
        for mode in args.modes.split(","):
            u, v, r = paired(op, mode, args.batch, args.n, args.repeat)
            line = f"{op:9s} {mode:6s} unmasked {u * 1e3:8.1f} ms  masked {v * 1e3:8.1f} ms  "
            line += f"ratio {r:5.2f}"
            if args.mem:
                pu = child_peak(op, mode, args.batch, args.n, False)
                pm = child_peak(op, mode, args.batch, args.n, True)
                line += f"  peak MB unmasked {pu:7.1f} masked {pm:7.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
