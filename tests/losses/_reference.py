"""Independent per-list references for the loss tests: torchmetrics' exact metrics (tests that
need them skip without torchmetrics) and plain Python loops over the soft ranks of one unpadded
list (``softtorch.rank`` without ``mask``)."""

from __future__ import annotations

import math
from types import ModuleType

import pytest
import torch

import softtorch as st


def _tm(sub: str = "") -> ModuleType:
    """``torchmetrics.functional`` or its submodule ``sub`` (the test extra), or skip the test."""
    return pytest.importorskip("torchmetrics.functional" + (f".{sub}" if sub else ""))


def exact_ndcg(scores: torch.Tensor, rel: torch.Tensor, k: int | None, gain: str) -> float:
    """torchmetrics' NDCG@k of one list (integer relevance; ``exp2`` gains passed as targets)."""
    target = rel.long()
    if gain == "exp2":
        target = 2**target - 1
    return float(_tm("retrieval").retrieval_normalized_dcg(scores, target, top_k=k))


def exact_ap(scores: torch.Tensor, rel: torch.Tensor) -> float:
    """torchmetrics' AP of one list (its quirk: only scores > 0 can be relevant; callers pass
    positive scores)."""
    return float(_tm("retrieval").retrieval_average_precision(scores, rel > 0))


def exact_recall(scores: torch.Tensor, target: torch.Tensor, k: int) -> float:
    return float(_tm("retrieval").retrieval_recall(scores, target > 0, top_k=k))


def exact_spearman(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(_tm().spearman_corrcoef(pred, target))


def exact_kendall(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(_tm().kendall_rank_corrcoef(pred, target))


def _step(x: float, width: float, mode: str) -> float:
    if mode == "hard":
        return float(x > 0)
    return float(st.sigmoidal(torch.tensor(x, dtype=torch.float64), width, mode))


def soft_ndcg(
    scores: torch.Tensor, rel: torch.Tensor, k: int | None, gain: str, softness: float,
    mode: str, method: str, width: float | None = None,
) -> float:  # fmt: skip
    """NDCG@k of one list from its soft ranks, as a loop over the items."""
    n = scores.shape[-1]
    r = st.rank(scores, dim=-1, softness=softness, mode=mode, method=method).tolist()
    g = [(2.0**v - 1.0) if gain == "exp2" else v for v in rel.tolist()]
    if k is not None and k >= n:
        k = None
    tau = softness * k if (k is not None and width is None) else width
    dcg = idcg = 0.0
    for i in range(n):
        c = 1.0 if k is None else _step(k + 0.5 - r[i], tau, mode)  # type: ignore[arg-type]
        dcg += g[i] / math.log2(1.0 + r[i]) * c
    for j, gj in enumerate(sorted(g, reverse=True), start=1):
        c = 1.0 if k is None else _step(k + 0.5 - j, tau, mode)  # type: ignore[arg-type]
        idcg += gj / math.log2(1.0 + j) * c
    return dcg / idcg


def soft_ap(
    scores: torch.Tensor, rel: torch.Tensor, k: int | None, softness: float, mode: str,
    method: str,
) -> float:  # fmt: skip
    """AP@k of one list: precision at each relevant item from two soft rankings (all items, and
    the relevant sub-list on its own)."""
    kw = {"dim": -1, "softness": softness, "mode": mode, "method": method}
    r = st.rank(scores, **kw).tolist()
    idx = [i for i, v in enumerate(rel.tolist()) if v > 0]
    r_rel = st.rank(scores[idx], **kw).tolist()
    n = scores.shape[-1]
    if k is not None and k >= n:
        k = None
    total = 0.0
    for j, i in enumerate(idx):
        c = 1.0 if k is None else _step(k + 0.5 - r[i], softness * k, mode)
        total += r_rel[j] / r[i] * c
    if k is None:
        return total / len(idx)
    # normalised by the same sum for a perfect ranking: relevant items at ranks 1..|R|
    return total / sum(_step(k + 0.5 - j, softness * k, mode) for j in range(1, len(idx) + 1))


def soft_topk_recall(
    scores: torch.Tensor, target: torch.Tensor, k: int, softness: float, mode: str, method: str
) -> tuple[list[float], float]:
    """Membership of each item and the top-k recall normalised by a perfect ranking's."""
    r = st.rank(scores, dim=-1, softness=softness, mode=mode, method=method).tolist()
    m = [_step(k + 0.5 - ri, softness * k, mode) for ri in r]
    y = target.tolist()
    best = sum(
        yj * _step(k + 0.5 - j, softness * k, mode)
        for j, yj in enumerate(sorted(y, reverse=True), start=1)
    )
    return m, sum(a * b for a, b in zip(y, m)) / best


def soft_spearman(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None, softness: float,
    mode: str, method: str,
) -> float:  # fmt: skip
    """Weighted Pearson correlation (numpy-style loop) of the soft ranks and the exact average
    ranks of the target."""
    r = st.rank(pred, dim=-1, softness=softness, mode=mode, method=method, descending=False)
    t = target.tolist()
    tr = [sum(1.0 for b in t if b < a) + (sum(1.0 for b in t if b == a) + 1) / 2 for a in t]
    w = [1.0] * len(t) if weights is None else weights.tolist()
    rr = r.tolist()
    sw = sum(w)
    mr = sum(wi * a for wi, a in zip(w, rr)) / sw
    mt = sum(wi * a for wi, a in zip(w, tr)) / sw
    cov = sum(wi * (a - mr) * (b - mt) for wi, a, b in zip(w, rr, tr))
    va = sum(wi * (a - mr) ** 2 for wi, a in zip(w, rr))
    vb = sum(wi * (b - mt) ** 2 for wi, b in zip(w, tr))
    return cov / math.sqrt(va * vb)


def _standardized(pred: torch.Tensor) -> list[float]:
    """The ordering ops' standardization of one list, sigmoid((x - mean) / sqrt(var + 1e-6))."""
    x = pred.tolist()
    n = len(x)
    mu = sum(x) / n
    sd = math.sqrt(sum((v - mu) ** 2 for v in x) / n + 1e-6)
    return [1.0 / (1.0 + math.exp(-(v - mu) / sd)) for v in x]


def soft_kendall(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None, softness: float,
    mode: str,
) -> float:  # fmt: skip
    """Weighted soft tau over all ordered pairs, a double loop on the standardized predictions."""
    z = _standardized(pred)
    n = len(z)
    t = target.tolist()
    w = [1.0] * n if weights is None else weights.tolist()
    num = tied = pairs = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            st_ = (t[i] > t[j]) - (t[i] < t[j])
            if mode == "hard":
                sp = float((z[i] > z[j]) - (z[i] < z[j]))
            else:
                sp = 2.0 * _step(z[i] - z[j], softness, mode) - 1.0
            num += w[i] * w[j] * st_ * sp
            tied += w[i] * w[j] * abs(st_)
            pairs += w[i] * w[j]
    return num / math.sqrt(tied * pairs)


def soft_kendall_merge(
    pred: torch.Tensor, target: torch.Tensor, softness: float, mode: str, method: str
) -> float:  # fmt: skip
    """Soft tau of one list by the merge count of ``kendall_loss``'s ordering methods, written
    out: the recursive halving of the (target, score) order as Python index lists, each soft
    rank taken by ``softtorch.rank`` on the subset alone (no mask, no padding)."""
    z = _standardized(pred)
    n = len(z)
    t = target.tolist()
    order = sorted(range(n), key=lambda i: (t[i], z[i]))

    def ranks(items: list[int]) -> dict[int, float]:
        if len(items) == 1:
            return {items[0]: 1.0}
        v = torch.tensor([z[i] for i in items], dtype=torch.float64)
        r = st.rank(v, dim=-1, softness=softness, mode=mode, method=method, descending=False,
                    standardize=False)  # fmt: skip
        return dict(zip(items, r.tolist()))

    def concordant(block: list[int], width: int) -> float:
        if len(block) < 2 or width < 2:
            return 0.0
        lower, upper = block[: width // 2], block[width // 2 :]
        total = concordant(lower, width // 2) + concordant(upper, width // 2)
        if not upper:
            return total
        bound = t[lower[-1]]
        r_node, r_up = ranks(block), ranks(upper)
        strict = [j for j in lower if t[j] < bound]
        r_strict = ranks(strict + upper) if strict else r_up
        for i in upper:
            total += (r_node[i] if t[i] > bound else r_strict[i]) - r_up[i]
        return total

    size = 1
    while size < n:
        size *= 2
    c = concordant(order, size)
    distinct = sum(1 for i in range(n) for j in range(n) if t[i] != t[j])
    return (4.0 * c - distinct) / math.sqrt(distinct * n * (n - 1))
