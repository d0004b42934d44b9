"""Draw the ``scaling`` benchmark suite as a log-log chart: forward + backward time against n.

    python scripts/scaling_chart.py [--csv PATH] [--out docs/img/scaling.png]

Reads a CSV written by ``benchmarks/run.py --suite scaling`` (default: the newest
``benchmarks/results/*-scaling*.csv``, full runs before ``-quick`` ones), takes the ``sort[...]``
rows at batch 1 (``shape`` ``1xN``) and draws one line per ``group`` (method, ``torch.sort``,
``torchsort``) through its ``fwdbwd_ms`` values. A method skipped at larger n (time or memory cap)
ends where its last measured point is; the legend says at which n it stopped.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "img" / "scaling.png"
#: Drawing order and style: hard references dashed, softtorch methods solid.
ORDER: tuple[str, ...] = (
    "torch.sort", "torchsort", "fast_soft_sort", "softsort", "neuralsort", "ot",
    "sorting_network", "perturbed",
)  # fmt: skip
DASHED = {"torch.sort", "torchsort"}

Series = dict[str, list[tuple[int, float]]]


def newest_scaling_csv(results_dir: Path = RESULTS) -> Path | None:
    """The newest ``*-scaling*.csv`` in ``results_dir`` (full runs preferred over quick ones)."""
    paths = sorted(
        results_dir.glob("*-scaling*.csv"),
        key=lambda p: ("-quick" not in p.stem, p.stat().st_mtime),
    )
    return paths[-1] if paths else None


def read_series(path: Path) -> tuple[Series, dict[str, int], str]:
    """Per group: ``(n, ms)`` points; per group the first skipped n; the machine description."""
    series: Series = {}
    stopped: dict[str, int] = {}
    machine = ""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("suite") not in ("scaling", None) or not row["case"].startswith("sort["):
                continue
            shape = row.get("shape", "")
            if not shape.startswith("1x"):
                continue
            group = row.get("group") or row["case"]
            n = int(shape[2:])
            machine = machine or f"{row.get('cpu', '')}, {row.get('threads', '')} thread(s)"
            t = row.get("fwdbwd_ms", "")
            if row.get("status") == "skipped" or not t:
                stopped[group] = min(n, stopped.get(group, n))
                continue
            series.setdefault(group, []).append((n, float(t)))
    return series, stopped, machine


def draw(series: Series, stopped: dict[str, int], title: str, out: Path) -> Path:
    """Write the chart to ``out``."""
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    groups = [g for g in ORDER if g in series] + sorted(set(series) - set(ORDER))
    for group in groups:
        pts = sorted(series[group])
        label = group if group not in stopped else f"{group} (skipped from n = {stopped[group]:,})"
        ax.plot(
            [n for n, _ in pts],
            [t for _, t in pts],
            "--" if group in DASHED else "-",
            marker="o",
            markersize=4,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (batch 1, float32)")
    ax.set_ylabel("sort forward + backward (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, help="a CSV of benchmarks/run.py --suite scaling")
    p.add_argument("--out", type=Path, default=OUT, help="the PNG to write")
    args = p.parse_args(argv)
    path = args.csv or newest_scaling_csv()
    if path is None:
        print("no *-scaling*.csv in benchmarks/results/; pass --csv", file=sys.stderr)
        return 1
    series, stopped, machine = read_series(path)
    if not series:
        print(f"{path}: no sort[...] rows at batch 1", file=sys.stderr)
        return 1
    title = f"softtorch.sort scaling ({path.name}; {machine})"
    if "quick" in path.stem or max(n for pts in series.values() for n, _ in pts) < 10_000:
        title += "\nquick run: provisional, small n only"
    print(draw(series, stopped, title, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
