r"""Ranking losses (issue 21): ``softtorch.losses.ndcg_loss`` vs an :math:`O(n^2)` NeuralSort NDCG.

* ``ndcg_loss[fast_soft_sort]``: ``softtorch.losses.ndcg_loss(scores, relevance, k=10)``, soft
  ranks by permutahedron projection, :math:`O(n \log n)` time and :math:`O(n)` memory per list.
* ``ndcg_loss[fast_soft_sort,masked]``: the same on a padded batch (list lengths uniform in
  ``[n/2, n]``, ``mask=``).
* ``sort[ot,masked]`` (first shape only): soft sorted values by ``method="ot"`` on the padded
  batch, one batched solve for all list lengths (``mode="smooth"``); ``sort[ot,per-list]``: the
  same values by one unmasked call per list (the loop a user without ``mask=`` writes). Their
  baseline is ``torch.sort`` with the padded entries moved last.
* ``neuralndcg_dense``: NDCG@10 from the NeuralSort relaxation of the permutation matrix
  (Grover et al., 2019; the NeuralNDCG of Pobrotyn & Bialobrzeski, 2021, without Sinkhorn
  scaling), written here in plain torch:
  :math:`P_{i\cdot} = \mathrm{softmax}(((n + 1 - 2i)\, s - A \mathbf{1}) / \tau)` with
  :math:`A_{jk} = |s_j - s_k|`, DCG@k :math:`= \sum_{i \le k} d(i) (P g)_i`. It materialises
  several ``n x n`` buffers per list: at (64, 10,000) that is ~25 GB per buffer in float32,
  so the case is skipped when its predicted memory exceeds the budget (``--max-mem-gb``).

* ``kendall_loss[<method>,<mode>]`` (issue 21): ``softtorch.losses.kendall_loss(pred, target,
  mode=<mode>, method=<method>)``, integer targets 0..4, each method at its default softness.
  ``fast_soft_sort`` (the default): the merge count on soft ranks, ``ceil(log2 n)`` batched
  soft-rank calls, :math:`O(n \log^2 n)`. ``pairwise``: the soft sign of every pair at softness
  0.1 on standardized scores, the numba band + count kernel, :math:`O(n \log n + P)` with
  :math:`P` the pairs closer than the soft sign's band (``smooth``: 40 softness, near all pairs
  here; ``c1``: 5 softness, about a quarter of the pairs); skipped above ``PAIRWISE_PAIRS_MAX``
  pairs. ``kendall_loss[pairwise,smooth,torch]``: the :math:`O(n^2)` torch fallback
  (``set_backend("torch")``), skipped above ``DENSE_PAIRS_MAX`` pairs. Baseline: the exact tau
  (``mode="hard"``, no gradient). ``...,continuous]``: real-valued targets (no ties: every node
  of the merge counts; with graded targets the nodes inside one target group are skipped).
  Shapes (64, 100 / 1,000 / 10,000) and (1, 100,000)
  (``--quick``: 4 x 16 and 1 x 64).

Baseline of every NDCG case: the exact NDCG@10 (``torch.sort`` + discount, no gradient). Relevance
is an integer 0..4 (``exp2`` gains), scores float32 ``requires_grad``; batch 64 x n = 100, 1,000,
10,000 (``--quick``: 4 x 16 and 4 x 64).

``python benchmarks/run.py --suite ranking [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from _harness import memory_skip  # noqa: E402

K = 10
SOFTNESS = 0.1
TAU = 1.0  # NeuralSort temperature
#: n x n float32 buffers alive in one NeuralSort NDCG forward+backward (A, the scores, P, its
#: softmax grad, the broadcast temporaries): a generous estimate.
DENSE_BUFFERS = 8
#: The O(n^2) torch kendall_loss runs only up to this many (ordered) pairs per call.
DENSE_PAIRS_MAX = 1e9
#: The pairwise kendall_loss kernel runs only up to this many (ordered) pairs per call.
PAIRWISE_PAIRS_MAX = 7e9


def _discount(n: int, dtype: torch.dtype) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, n + 2, dtype=dtype))


def exact_ndcg(scores: torch.Tensor, rel: torch.Tensor, k: int = K) -> torch.Tensor:
    """Mean exact NDCG@k (hard, no gradient)."""
    g = torch.exp2(rel) - 1
    d = _discount(scores.shape[-1], scores.dtype)
    d[k:] = 0
    order = torch.argsort(scores.detach(), dim=-1, descending=True)
    dcg = (torch.gather(g, -1, order) * d).sum(-1)
    idcg = (torch.sort(g, dim=-1, descending=True).values * d).sum(-1)
    return (dcg / idcg.clamp_min(1e-12)).mean()


def neuralsort_ndcg_loss(scores: torch.Tensor, rel: torch.Tensor, k: int = K) -> torch.Tensor:
    """1 - NDCG@k with the NeuralSort soft permutation (O(n^2) time and memory per list)."""
    n = scores.shape[-1]
    s = scores.unsqueeze(-1)  # (b, n, 1)
    a1 = (s - s.transpose(-1, -2)).abs().sum(-1, keepdim=True)  # (b, n, 1): A 1
    scale = (n + 1 - 2 * torch.arange(1, k + 1, dtype=scores.dtype)).unsqueeze(-1)  # (k, 1)
    logits = (scale * s.transpose(-1, -2) - a1.transpose(-1, -2)) / TAU  # (b, k, n)
    p = torch.softmax(logits, dim=-1)  # the first k rows of the soft permutation
    g = torch.exp2(rel) - 1
    d = _discount(k, scores.dtype)
    dcg = ((p @ g.unsqueeze(-1)).squeeze(-1) * d).sum(-1)
    idcg = (torch.sort(g, dim=-1, descending=True).values[..., :k] * d).sum(-1)
    return (1 - dcg / idcg.clamp_min(1e-12)).mean()


def _make(b: int, n: int, seed: int = 0):
    def make() -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        scores = torch.randn(b, n, generator=gen).requires_grad_(True)
        rel = torch.randint(0, 5, (b, n), generator=gen).float()
        lengths = torch.randint(n // 2, n + 1, (b, 1), generator=gen)
        mask = torch.arange(n) < lengths
        return scores, rel, mask

    return make


def _ndcg(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import softtorch

    return softtorch.losses.ndcg_loss(scores, rel, k=K, softness=SOFTNESS)


def _ndcg_masked(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import softtorch

    return softtorch.losses.ndcg_loss(scores, rel, mask=mask, k=K, softness=SOFTNESS)


def _ot_sort_masked(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import softtorch

    return softtorch.sort(scores, mask=mask, method="ot", softness=SOFTNESS).values


def _ot_sort_per_list(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import softtorch

    rows = [
        softtorch.sort(s[m], method="ot", softness=SOFTNESS, return_indices=False).values
        for s, m in zip(scores, mask)
    ]
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)


def _sort_baseline(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.sort(scores.masked_fill(~mask, float("inf")), dim=-1).values


def _dense(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # the dense loss uses k rows but the row scores A 1 need the full n x n difference matrix
    return neuralsort_ndcg_loss(scores, rel)


def _baseline(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return exact_ndcg(scores, rel)


def _make_kendall(b: int, n: int, seed: int = 0, continuous: bool = False):
    def make() -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(seed)
        pred = torch.randn(b, n, generator=gen).requires_grad_(True)
        if continuous:
            target = torch.randn(b, n, generator=gen)
        else:
            target = torch.randint(0, 5, (b, n), generator=gen).float()
        return pred, target

    return make


def _kendall(mode: str, method: str | None = None, backend: str = "auto"):
    def fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import softtorch
        from softtorch.kernels.fused import set_backend

        set_backend(backend)
        try:
            return softtorch.losses.kendall_loss(pred, target, mode=mode, method=method)
        finally:
            set_backend("auto")

    return fn


def kendall_cases(quick: bool = False) -> list[dict[str, Any]]:
    """The ``kendall_loss`` rows (see the module docstring)."""
    shapes = [(4, 16), (1, 64)] if quick else [(64, 100), (64, 1000), (64, 10000), (1, 100_000)]
    out: list[dict[str, Any]] = []
    for b, n in shapes:
        common = {"shape": f"{b}x{n}", "make": _make_kendall(b, n), "group": "kendall",
                  "baseline": _kendall("hard")}  # fmt: skip
        for mode in ("smooth", "c1", "c0"):
            out.append({"name": f"kendall_loss[fast_soft_sort,{mode}]",
                        "fn": _kendall(mode, "fast_soft_sort")} | common)  # fmt: skip
        for mode in ("smooth", "c1"):
            row = {"name": f"kendall_loss[pairwise,{mode}]", "fn": _kendall(mode, "pairwise")}
            if b * n * n > PAIRWISE_PAIRS_MAX:
                row["skip"] = f"pairwise kernel: {b * n * n:.0e} pairs > {PAIRWISE_PAIRS_MAX:.0e}"
            out.append(row | common)
        cont = common | {"make": _make_kendall(b, n, continuous=True)}
        out.append({"name": "kendall_loss[fast_soft_sort,smooth,continuous]",
                    "fn": _kendall("smooth", "fast_soft_sort")} | cont)  # fmt: skip
        dense = {"name": "kendall_loss[pairwise,smooth,torch]",
                 "fn": _kendall("smooth", "pairwise", backend="torch")}  # fmt: skip
        if b * n * n > DENSE_PAIRS_MAX:
            dense["skip"] = f"O(n^2) torch fallback: {b * n * n:.0e} pairs > {DENSE_PAIRS_MAX:.0e}"
        out.append(dense | common)
    return out


def cases(quick: bool = False) -> list[dict[str, Any]]:
    shapes = [(4, 16), (4, 64)] if quick else [(64, 100), (64, 1000), (64, 10000)]
    out: list[dict[str, Any]] = []
    for b, n in shapes[:1]:
        common = {"shape": f"{b}x{n}", "make": _make(b, n), "baseline": _sort_baseline}
        out.append({"name": "sort[ot,masked]", "fn": _ot_sort_masked, "group": "ot"} | common)
        out.append({"name": "sort[ot,per-list]", "fn": _ot_sort_per_list, "group": "ot"} | common)
    for b, n in shapes:
        shape = f"{b}x{n}"
        common = {"shape": shape, "make": _make(b, n), "baseline": _baseline}
        out.append({"name": "ndcg_loss[fast_soft_sort]", "fn": _ndcg,
                    "group": "fast_soft_sort"} | common)  # fmt: skip
        out.append({"name": "ndcg_loss[fast_soft_sort,masked]", "fn": _ndcg_masked,
                    "group": "fast_soft_sort"} | common)  # fmt: skip
        dense = {"name": "neuralndcg_dense", "fn": _dense, "group": "neuralsort"} | common
        skip = memory_skip(DENSE_BUFFERS * 4.0 * b * n * n, "O(n^2) NeuralSort NDCG")
        if skip:
            dense["skip"] = skip
        out.append(dense)
    return out + kendall_cases(quick)


def summary(cases_: list[dict[str, Any]], results: list[Any]) -> list[str]:
    """fwd+bwd time and peak memory of the dense NDCG relative to ``ndcg_loss``, per shape."""
    by = {(r.name, r.shape): r for r in results}
    lines = []
    for r in results:
        if r.name.startswith("kendall_loss[pairwise,smooth"):
            ours = by.get(("kendall_loss[fast_soft_sort,smooth]", r.shape))
            if ours and not r.skipped and not ours.skipped and r.fwdbwd_ms and ours.fwdbwd_ms:
                lines.append(f"- {r.shape}: {r.name} / kendall_loss (fast_soft_sort merge count) "
                             f"fwd+bwd time {r.fwdbwd_ms / ours.fwdbwd_ms:.1f}x")  # fmt: skip
            continue
        if r.name != "neuralndcg_dense":
            continue
        ours = by.get(("ndcg_loss[fast_soft_sort]", r.shape))
        if ours is None or r.skipped or ours.skipped or not ours.fwdbwd_ms or not r.fwdbwd_ms:
            lines.append(f"- {r.shape}: dense NeuralSort NDCG {r.skipped or 'not comparable'}")
            continue
        mem = ""
        if r.peak_mb and ours.peak_mb:
            mem = f", peak memory {r.peak_mb / max(ours.peak_mb, 1e-3):.1f}x"
        lines.append(
            f"- {r.shape}: dense NeuralSort NDCG / ndcg_loss fwd+bwd time "
            f"{r.fwdbwd_ms / ours.fwdbwd_ms:.1f}x{mem}"
        )
    return lines


__all__ = ["cases", "exact_ndcg", "kendall_cases", "neuralsort_ndcg_loss", "summary"]
