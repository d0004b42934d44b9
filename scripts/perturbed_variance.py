"""Gradient variance of ``softtorch.perturbed``'s estimators against the number of samples.

Run from the repository root: ``python scripts/perturbed_variance.py [--seeds R] [--quick]``.

For each test function with a closed-form Gaussian smoothing (Heaviside, relu, abs, a staircase
of three steps) at ``x = 0.3``, ``softness = 0.5``, the script draws ``R`` independent gradient
estimates per sample count ``N`` and estimator and reports their variance:

* ``plain``: the score-function estimator ``mean_i f(x + sZ_i) Z_i / s``;
* ``baseline``: plus the leave-one-out baseline;
* ``antithetic``: antithetic pairs ``(Z, -Z)`` (the default, baseline included);
* ``linear``: antithetic pairs plus the leave-one-out linear control variate
  (``baseline="linear"``);
* ``reparam``: the pathwise average of autograd gradients (only where ``f`` is continuous).

It writes the log-log plot ``docs/img/perturbed_variance.png`` and prints a markdown table (the
variance times ``N``, which is constant for a ``1/N`` estimator) and the mean bias in standard
errors, for docs/branching.md. A second table shows the dependence on the input dimension ``d``:
the variance x N of the first gradient coordinate of ``relu(x).sum()`` (``x = 0.3`` everywhere)
for the default estimator and the linear control variate, at N = 16 and 256 (300 seeds).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from softtorch.perturbation import perturbed  # noqa: E402

X0, S = 0.3, 0.5
STEPS = (-0.5, 0.0, 0.5)


def _Phi(t: float) -> float:  # noqa: N802
    return 0.5 * math.erfc(-t / math.sqrt(2))


def _phi(t: float) -> float:
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


#: name -> (fn, exact gradient of the smoothing at X0, continuous?)
FUNCTIONS = {
    "heaviside": (lambda t: (t > 0).to(t.dtype), _phi(X0 / S) / S, False),
    "relu": (torch.relu, _Phi(X0 / S), True),
    "abs": (torch.abs, 2 * _Phi(X0 / S) - 1, True),
    "staircase": (
        lambda t: sum((t > c).to(t.dtype) for c in STEPS),
        sum(_phi((X0 - c) / S) / S for c in STEPS),
        False,
    ),
}
ESTIMATORS = {
    "plain": dict(antithetic=False, baseline=False),
    "baseline": dict(antithetic=False, baseline=True),
    "antithetic": dict(antithetic=True, baseline=True),
    "linear": dict(antithetic=True, baseline="linear"),
    "reparam": dict(antithetic=True, estimator="reparam"),
}


def gradients(fn, samples: int, seeds: int, **options) -> torch.Tensor:  # noqa: ANN001
    gen = torch.Generator().manual_seed(samples)
    smooth = perturbed(fn, softness=S, samples=samples, batched=True, generator=gen, **options)
    out = torch.empty(seeds, dtype=torch.float64)
    for r in range(seeds):
        x = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
        out[r] = torch.autograd.grad(smooth(x), x)[0]
    return out


def dimension_table(seeds: int = 300) -> list[str]:
    """Variance x N of d/dx_0 of ``relu(x).sum()`` against the dimension, mean vs linear."""
    lines = ["| d | N | default (antithetic + mean) | linear |", "|---:|---:|---:|---:|"]
    for d in (1, 8, 64):
        for n in (16, 256):
            cells = []
            for baseline in (True, "linear"):
                gen = torch.Generator().manual_seed(1000 * d + n)
                smooth = perturbed(
                    lambda t: torch.relu(t).sum(-1), softness=S, samples=n, batched=True,
                    generator=gen, baseline=baseline,
                )  # fmt: skip
                g = torch.empty(seeds, dtype=torch.float64)
                for r in range(seeds):
                    x = torch.full((d,), X0, dtype=torch.float64, requires_grad=True)
                    g[r] = torch.autograd.grad(smooth(x), x)[0][0]
                cells.append(f"{float(g.var()) * n:.3g}")
            lines.append(f"| {d} | {n} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000, help="estimates per point (default 1000)")
    p.add_argument("--quick", action="store_true", help="few seeds and sample counts")
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "perturbed_variance.png"))
    args = p.parse_args()
    sizes = (4, 16, 64) if args.quick else (4, 16, 64, 256, 1024)
    seeds = 50 if args.quick else args.seeds

    var: dict[tuple[str, str], list[float]] = {}
    worst_bias = 0.0
    for name, (fn, exact, continuous) in FUNCTIONS.items():
        for est, options in ESTIMATORS.items():
            if est == "reparam" and not continuous:
                continue
            row = []
            for n in sizes:
                g = gradients(fn, n, seeds, **options)
                row.append(float(g.var()))
                worst_bias = max(
                    worst_bias, abs(float(g.mean()) - exact) / float(g.std() / math.sqrt(seeds))
                )
            var[(name, est)] = row

    fig, axes = plt.subplots(1, len(FUNCTIONS), figsize=(4 * len(FUNCTIONS), 3.6), sharex=True)
    styles = {"plain": "o-", "baseline": "s--", "antithetic": "^-", "linear": "v-", "reparam": "d:"}
    for ax, name in zip(axes, FUNCTIONS):
        for est in ESTIMATORS:
            if (name, est) in var:
                ax.loglog(sizes, var[(name, est)], styles[est], label=est)
        ax.set_title(f"{name} (x={X0}, s={S})")
        ax.set_xlabel("samples N")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("variance of the gradient estimate")
    axes[1].legend()  # the relu panel has every estimator
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({seeds} seeds per point)\n")

    print(
        "| function | estimator | "
        + " | ".join(f"N={n}" for n in sizes)
        + " | var x N at N="
        + str(sizes[-1])
        + " |"
    )
    print("|---|---|" + "---:|" * (len(sizes) + 1))
    for (name, est), row in var.items():
        cells = " | ".join(f"{v:.3g}" for v in row)
        print(f"| {name} | {est} | {cells} | {row[-1] * sizes[-1]:.3g} |")
    print(f"\nlargest |mean - exact| over {sum(map(len, var.values()))} points: "
          f"{worst_bias:.2f} standard errors\n")  # fmt: skip
    if not args.quick:
        print("\n".join(dimension_table()))


if __name__ == "__main__":
    main()
