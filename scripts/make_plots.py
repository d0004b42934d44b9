"""Draw the documentation's figures into ``docs/img`` (matplotlib, Agg backend, PNG).

Run from the repository root: ``python scripts/make_plots.py [--only GROUP ...] [--out DIR]``.

Groups:

* ``elementwise``: every elementwise relaxation (and the comparisons ``greater`` / ``eq``) in every
  mode at two softness values, value and derivative; the sigmoidal kernels;
* ``ordering``: soft sort and soft rank of a fixed vector against softness for each method; the
  soft permutation matrix (``argsort``) as a heat map per method, modes ``smooth`` and ``c0``;
* ``bench``: time and peak memory against ``n`` (log-log) of ``sort`` per method from the newest
  ``benchmarks/results/*.csv`` written by ``benchmarks/run.py`` (a placeholder figure when there
  is no CSV or it has no ordering rows).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import softtorch as st  # noqa: E402

MODES = ("smooth", "c0", "c1", "c2")
MODE_COLORS = {"smooth": "tab:blue", "c0": "tab:orange", "c1": "tab:green", "c2": "tab:red"}
METHODS = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
INDEX_METHODS = ("softsort", "neuralsort", "ot", "sorting_network")
#: Softness sweep per method (fast_soft_sort regularises a permutahedron projection: its useful
#: softness range is about 20x larger than the row-wise methods').
SWEEPS = {m: (1e-3, 3.0) for m in METHODS} | {"fast_soft_sort": (1e-2, 1e2)}
#: The fixed vector of the ordering figures: two near-ties and one outlier.
X_ORDER = torch.tensor([0.9, -1.2, 0.35, 0.3, 2.5, -0.4, 0.0], dtype=torch.float64)
DPI = 110


def _save(fig: plt.Figure, out: Path, name: str) -> Path:
    path = out / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


# ------------------------------------------------------------------------------------ elementwise

Relaxation = Callable[[torch.Tensor, float, str], torch.Tensor]

#: name -> (function(x, softness, mode), x range, the two softness values, title)
ELEMENTWISE: dict[str, tuple[Relaxation, tuple[float, float], tuple[float, float], str]] = {
    "heaviside": (lambda x, s, m: st.heaviside(x, s, m), (-1.5, 1.5), (0.05, 0.2), "heaviside(x)"),
    "sign": (lambda x, s, m: st.sign(x, s, m), (-1.5, 1.5), (0.05, 0.2), "sign(x)"),
    "abs": (lambda x, s, m: st.abs(x, s, m), (-1.5, 1.5), (0.05, 0.2), "abs(x)"),
    "relu": (lambda x, s, m: st.relu(x, s, m), (-1.5, 1.5), (0.05, 0.2), "relu(x)"),
    "relu_gated": (
        lambda x, s, m: st.relu(x, s, m, gated=True),
        (-1.5, 1.5),
        (0.05, 0.2),
        "relu(x, gated=True)",
    ),
    "clamp": (
        lambda x, s, m: st.clamp(x, -0.5, 0.5, s, m),
        (-1.5, 1.5),
        (0.05, 0.2),
        "clamp(x, -0.5, 0.5)",
    ),
    "round": (lambda x, s, m: st.round(x, s, m), (-2.0, 2.0), (0.02, 0.1), "round(x)"),
    "greater": (
        lambda x, s, m: st.greater(x, torch.zeros_like(x), s, m),
        (-1.5, 1.5),
        (0.05, 0.2),
        "greater(x, 0)",
    ),
    "eq": (
        lambda x, s, m: st.eq(x, torch.zeros_like(x), s, m),
        (-1.5, 1.5),
        (0.05, 0.2),
        "eq(x, 0)",
    ),
}


def _value_and_grad(fn: Relaxation, x: torch.Tensor, s: float, mode: str) -> tuple:
    xg = x.clone().requires_grad_(True)
    y = fn(xg, s, mode)
    try:
        (g,) = torch.autograd.grad(y.sum(), xg, allow_unused=True)
    except RuntimeError:  # hard ops without a derivative (heaviside, comparisons)
        g = None
    g = torch.zeros_like(x) if g is None else g
    return y.detach().numpy(), g.detach().numpy()


def plot_elementwise(out: Path) -> list[Path]:
    """One figure per relaxation: columns = two softness values, rows = value and derivative."""
    paths = []
    for name, (fn, (lo, hi), softnesses, title) in ELEMENTWISE.items():
        grid = torch.linspace(lo, hi, 1601, dtype=torch.float64)
        x = (grid[1:] + grid[:-1]) / 2  # midpoints: no sample exactly on a kink of a c0 curve
        hard_y, hard_g = _value_and_grad(fn, x, 1.0, "hard")
        fig, axes = plt.subplots(2, 2, figsize=(9, 5.6), sharex=True)
        for col, s in enumerate(softnesses):
            ax_v, ax_g = axes[0, col], axes[1, col]
            ax_v.plot(x, hard_y, "k--", lw=1.2, label="hard")
            ax_g.plot(x, hard_g, "k--", lw=1.2, label="hard")
            for mode in MODES:
                y, g = _value_and_grad(fn, x, s, mode)
                ax_v.plot(x, y, color=MODE_COLORS[mode], lw=1.6, label=mode)
                ax_g.plot(x, g, color=MODE_COLORS[mode], lw=1.6, label=mode)
            ax_v.set_title(f"{title}, softness = {s:g}")
            ax_g.set_title(f"d/dx {title}, softness = {s:g}")
            ax_g.set_xlabel("x")
            for ax in (ax_v, ax_g):
                ax.grid(alpha=0.3)
        axes[0, 0].legend(loc="best", fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out, f"elementwise_{name}.png"))
    return paths


def plot_sigmoidal(out: Path) -> Path:
    """The S-shaped kernels (all six sigmoidal modes) and their derivatives at softness 0.1."""
    from softtorch import sigmoidal

    x = torch.linspace(-0.8, 0.8, 1601, dtype=torch.float64)
    fig, (ax_v, ax_g) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"_c1_pnorm": ("tab:green", ":"), "_c2_pnorm": ("tab:red", ":")}
    for mode in (*MODES, "_c1_pnorm", "_c2_pnorm"):
        color, ls = styles.get(mode, (MODE_COLORS.get(mode, "k"), "-"))
        xg = x.clone().requires_grad_(True)
        y = sigmoidal(xg, 0.1, mode)
        (g,) = torch.autograd.grad(y.sum(), xg)
        ax_v.plot(x, y.detach(), color=color, ls=ls, lw=1.6, label=mode)
        ax_g.plot(x, g, color=color, ls=ls, lw=1.6, label=mode)
    ax_v.plot(x, (x > 0).double(), "k--", lw=1.0, label="hard")
    ax_v.set_title("sigmoidal(x, softness=0.1, mode)")
    ax_g.set_title("d/dx sigmoidal")
    for ax in (ax_v, ax_g):
        ax.axvspan(-0.5, 0.5, color="0.92", zorder=0)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax_v.legend(fontsize=8)
    ax_g.text(
        0.02, 0.95, "grey: band |x| < 5 softness", transform=ax_g.transAxes, va="top", fontsize=8
    )
    fig.tight_layout()
    return _save(fig, out, "sigmoidal_modes.png")


# --------------------------------------------------------------------------------------- ordering


def plot_sort_vs_softness(out: Path) -> Path:
    """Soft sorted values and soft ranks of X_ORDER against softness, one column per method."""
    x = X_ORDER
    n = x.numel()
    fig, axes = plt.subplots(2, len(METHODS), figsize=(4.0 * len(METHODS), 7.0), sharey="row")
    colors = plt.get_cmap("viridis")(torch.linspace(0, 0.95, n).tolist())
    hard_sorted = torch.sort(x).values
    hard_rank = torch.argsort(torch.argsort(x)) + 1
    for col, method in enumerate(METHODS):
        lo, hi = SWEEPS[method]
        ss = torch.logspace(math.log10(lo), math.log10(hi), 60).tolist()
        vals = torch.stack([st.sort(x, softness=s, method=method).values for s in ss])
        ranks = torch.stack([st.rank(x, softness=s, method=method, descending=False) for s in ss])
        ax_s, ax_r = axes[0, col], axes[1, col]
        for i in range(n):
            ax_s.plot(ss, vals[:, i], color=colors[i], lw=1.6)
            ax_s.axhline(float(hard_sorted[i]), color=colors[i], ls=":", lw=0.8)
        order = torch.argsort(x)
        for i in range(n):
            j = int(order[i])  # colour each input by its hard rank, like the values above
            ax_r.plot(ss, ranks[:, j], color=colors[i], lw=1.6, label=f"x = {float(x[j]):g}")
            ax_r.axhline(float(hard_rank[j]), color=colors[i], ls=":", lw=0.8)
        ax_s.set_title(f"sort, method={method!r}")
        ax_r.set_title(f"rank, method={method!r}")
        for ax in (ax_s, ax_r):
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
        ax_r.set_xlabel("softness")
    axes[0, 0].set_ylabel("soft sorted values (dotted: hard)")
    axes[1, 0].set_ylabel("soft rank, ascending (dotted: hard)")
    axes[1, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"x = {[round(float(v), 2) for v in x]}, mode='smooth', standardize=True", y=1.0)
    fig.tight_layout()
    return _save(fig, out, "sort_vs_softness.png")


def plot_permutations(out: Path) -> Path:
    """argsort(x) soft permutation matrices per method, modes smooth (top) and c0 (bottom)."""
    x = X_ORDER
    n = x.numel()
    order = torch.argsort(x)  # columns in sorted order: the hard permutation is the identity
    modes = ("smooth", "c0")
    ncol = len(INDEX_METHODS)
    fig, axes = plt.subplots(len(modes), ncol, figsize=(3.4 * ncol, 6.6))
    for r, mode in enumerate(modes):
        for c, method in enumerate(INDEX_METHODS):
            p = st.argsort(x, softness=0.1, mode=mode, method=method)[:, order]
            ax = axes[r, c]
            im = ax.imshow(p, cmap="magma", vmin=0.0, vmax=1.0)
            zeros = int((p == 0).sum())
            ax.set_title(f"{method}, {mode}\nexact zeros: {zeros}/{n * n}", fontsize=10)
            ax.set_xticks(range(n), [f"{float(v):g}" for v in x[order]], rotation=90, fontsize=7)
            ax.set_yticks(range(n), [str(i) for i in range(n)], fontsize=7)
            if c == 0:
                ax.set_ylabel("sorted position")
            if r == len(modes) - 1:
                ax.set_xlabel("input value (in sorted order)")
    fig.colorbar(im, ax=axes, shrink=0.6, label="P[i, j]")
    fig.suptitle(
        "argsort(x, softness=0.1): row i = distribution of the i-th smallest element over the "
        "inputs\n(columns in sorted order, so the hard result is the identity)"
    )
    return _save(fig, out, "permutation_matrices.png")


# -------------------------------------------------------------------------------------- benchmarks

_CASE = re.compile(r"^(?P<op>\w+)\[(?P<label>[^\]]+)\]$")


def newest_csv(results_dir: Path) -> Path | None:
    """The newest CSV with ``sort`` rows at two or more ``n``; full runs before ``-quick`` ones."""
    files = sorted(
        results_dir.glob("*.csv"), key=lambda p: ("-quick" not in p.stem, p.stat().st_mtime)
    )
    for path in reversed(files):
        if any(len(pts) >= 2 for pts in read_sort_rows(path).values()):
            return path
    return None


Point = tuple[int, int, float | None, float | None]  # (n, batch, fwd+bwd ms, peak MB)


def read_sort_rows(path: Path, op: str = "sort") -> dict[str, list[Point]]:
    """label -> points ``(n, batch, fwd+bwd ms, peak MB)`` of the ``op[label]`` rows of a CSV.

    Columns used (``CSV_COLUMNS`` of ``benchmarks/_harness.py``): ``case`` (``op[method]`` or
    ``op[method,mode]``), ``shape`` (``BATCHxN``), ``fwdbwd_ms``, ``base_fwdbwd_ms``, ``peak_mb``,
    ``base_peak_mb``, ``status``. The hard torch baseline is returned as ``torch (hard)``; for an
    ``n`` measured at several batch sizes the largest batch is kept.
    """
    series: dict[str, dict[int, Point]] = defaultdict(dict)

    def add(label: str, n: int, batch: int, t: float | None, mem: float | None) -> None:
        old = series[label].get(n)
        if t is not None and (old is None or batch > old[1]):
            series[label][n] = (n, batch, t, mem)

    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            m = _CASE.match(row.get("case") or "")
            if row.get("status") != "ok" or not m or m.group("op") != op:
                continue
            try:
                batch, n = (int(v) for v in (row.get("shape") or "").split("x"))
            except ValueError:
                continue
            add(m.group("label"), n, batch, _num(row, "fwdbwd_ms"), _num(row, "peak_mb"))
            add("torch (hard)", n, batch, _num(row, "base_fwdbwd_ms"), _num(row, "base_peak_mb"))
    return {label: [pts[n] for n in sorted(pts)] for label, pts in series.items() if pts}


def _num(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def _placeholder(out: Path, name: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)
    return _save(fig, out, name)


def plot_benchmarks(out: Path, results_dir: Path) -> list[Path]:
    """Time and memory of sort (forward+backward) per method against n, log-log, per row."""
    path = newest_csv(results_dir)
    series = read_sort_rows(path) if path else {}
    if path is None:
        msg = (
            "No benchmark results yet.\nRun `python benchmarks/run.py --suite ordering`, then\n"
            "`python scripts/make_plots.py --only bench`."
        )
        return [_placeholder(out, f"bench_{key}.png", msg) for key in ("time", "memory")]
    paths = []
    for key, idx, ylabel in (
        ("time", 2, "forward + backward time per row [ms]"),
        ("memory", 3, "peak RSS increase per row [MB]"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        drawn = 0
        for label, pts in sorted(series.items()):
            xy = [(p[0], p[idx] / p[1]) for p in pts if p[idx] is not None and p[idx] > 0]
            if len(xy) < 2:
                continue
            style = "k--" if label == "torch (hard)" else "-"
            ax.plot(*zip(*xy), style, marker="o", ms=4, lw=1.5, label=label)
            drawn += 1
        name = f"bench_{key}.png"
        if not drawn:
            plt.close(fig)
            paths.append(_placeholder(out, name, f"No {key} figures in {path.name}."))
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n (length of the sorted dimension)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"softtorch.sort, {key} vs n (total / batch), from {path.name}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out, name))
    return paths


# ------------------------------------------------------------------------------------------- main

GROUPS = ("elementwise", "ordering", "bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    if "elementwise" in args.only:
        plot_sigmoidal(args.out)
        plot_elementwise(args.out)
    if "ordering" in args.only:
        plot_sort_vs_softness(args.out)
        plot_permutations(args.out)
    if "bench" in args.only:
        plot_benchmarks(args.out, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
