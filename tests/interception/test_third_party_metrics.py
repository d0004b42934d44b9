"""Soft integers on metric and lookup code written independently of torchmetrics (issue 16).

Each function below is written the way another library writes it (sklearn's confusion matrix
by ``bincount(y_true * n + y_pred)``, a top-k accuracy by ``scatter``, precision@k by ``gather``,
NDCG by ``argsort`` + ``gather`` of integer relevance + ``cumsum``, a calibration error by
``bucketize`` + ``bincount(weights=...)``, a histogram entropy by ``histc``, an embedding lookup
of an ``argmax``, Spearman by ``rank[idx] = arange``, a quantized error by ``x // 0.5``) and is
not modified: the mechanism has to be general. Properties checked for each:

* ``soft_mode("smooth", softness=0.1)``: finite value, finite nonzero gradient;
* ``soft_mode("hard")``: bit for bit the plain call;
* softness 1e-5: within 0.02 of the exact value;
* independent formulas where the relaxation has a closed form in the mode's own probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import softtorch

SOFTNESS = 0.1
C = 5  # classes
Q, D = 4, 12  # queries, documents per query
K = 3

# --------------------------------------------------------- "third-party" code: do not modify


def balanced_accuracy(logits: Tensor, y_true: Tensor) -> Tensor:
    """sklearn style: confusion matrix by bincount, then the mean per-class recall."""
    n = logits.shape[-1]
    y_pred = logits.argmax(-1)
    cm = torch.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)
    return (cm.diag().float() / cm.sum(1).float()).mean()


def topk_accuracy(logits: Tensor, y_true: Tensor, k: int = 2) -> Tensor:
    """A top-k hit mask by scattering ones at the top-k indices."""
    idx = logits.topk(k, dim=1).indices
    hit = torch.zeros_like(logits, dtype=torch.long).scatter(1, idx, torch.ones_like(idx))
    return hit.gather(1, y_true[:, None]).sum().float() / y_true.numel()


def precision_at_k(scores: Tensor, relevant: Tensor, k: int = K) -> Tensor:
    """Fraction of relevant documents among each query's k best scores."""
    return relevant.gather(1, scores.topk(k, dim=1).indices).float().mean()


def ndcg_at_k(scores: Tensor, relevance: Tensor, k: int = K) -> Tensor:
    """Integer gains 2^rel - 1 in score order, discounted and accumulated by cumsum."""
    order = scores.argsort(dim=1, descending=True)
    gains = 2 ** relevance.gather(1, order) - 1  # int64
    disc = 1.0 / torch.log2(torch.arange(2, relevance.shape[1] + 2, dtype=torch.float64))
    dcg = (gains * disc).cumsum(1)[:, k - 1]
    ideal = 2 ** relevance.sort(1, descending=True).values - 1
    idcg = (ideal * disc).cumsum(1)[:, k - 1]
    return (dcg / idcg).mean()


def calibration_error(logits: Tensor, y_true: Tensor, bins: int = 5) -> Tensor:
    """Expected calibration error: confidences bucketed by ``bucketize``, per-bin accuracy and
    confidence by ``bincount`` with weights."""
    probs = logits.softmax(-1)
    conf, pred = probs.max(-1)
    correct = (pred == y_true).to(conf.dtype)
    edges = torch.linspace(0, 1, bins + 1, dtype=conf.dtype)[1:-1]
    b = torch.bucketize(conf, edges)
    count = torch.bincount(b, minlength=bins).to(conf.dtype)
    acc = torch.bincount(b, weights=correct, minlength=bins)
    cf = torch.bincount(b, weights=conf, minlength=bins)
    return (acc - cf).abs().sum() / count.sum()


def histogram_entropy(x: Tensor, bins: int = 8) -> Tensor:
    """Entropy of the histogram of ``x`` over [-3, 3] (``torch.histc``)."""
    h = torch.histc(x, bins=bins, min=-3.0, max=3.0)
    p = h / h.sum()
    return -(p * torch.log(p + 1e-12)).sum()


_EMB = torch.nn.Embedding(C, 3).double().requires_grad_(False)
with torch.no_grad():
    _EMB.weight.copy_(torch.randn(C, 3, generator=torch.Generator().manual_seed(7)))


def embedding_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Distance between the embedding of the predicted class and the target's."""
    return (_EMB(logits.argmax(-1)) - _EMB(target)).pow(2).sum(-1).mean()


def _rank(x: Tensor) -> Tensor:
    idx = x.argsort()
    r = torch.empty_like(idx)
    r[idx] = torch.arange(x.numel())
    return r.to(x.dtype)


def spearman(x: Tensor, y: Tensor) -> Tensor:
    """Spearman's rho as the Pearson correlation of ranks made by ``rank[idx] = arange``."""
    rx, ry = _rank(x), _rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return (rx * ry).sum() / (rx.norm() * ry.norm())


def quantized_error(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error of ``x`` quantized to a grid of 0.5 by floor division."""
    return ((x // 0.5) * 0.5 - y).abs().mean()


# ------------------------------------------------------------------------------ test cases


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Tensor, Tensor], Tensor]
    inputs: Callable[[int], tuple[Tensor, Tensor]]


def _classes(seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, C, (64,), generator=g)
    x = torch.randn(64, C, generator=g, dtype=torch.float64) + 1.5 * F.one_hot(t, C)
    return x.requires_grad_(True), t


def _queries(seed: int, graded: bool) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    rel = torch.randint(0, 4 if graded else 2, (Q, D), generator=g)
    rel[:, 0] = 1  # every query has a relevant document
    x = torch.randn(Q, D, generator=g, dtype=torch.float64) + 0.7 * rel
    return x.requires_grad_(True), rel


def _paired(seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), x.detach() + 0.7 * torch.randn(48, generator=g).double()


def _values(seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 1.2 * torch.randn(64, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), x.detach() + 0.1 * torch.randn(64, generator=g).double()


CASES = [
    Case("balanced_accuracy_bincount", balanced_accuracy, _classes),
    Case("topk_accuracy_scatter", topk_accuracy, _classes),
    Case("precision_at_k_gather", precision_at_k, lambda s: _queries(s, False)),
    Case("ndcg_argsort_gather_cumsum", ndcg_at_k, lambda s: _queries(s, True)),
    Case("calibration_error_bucketize", calibration_error, _classes),
    Case("histogram_entropy_histc", lambda x, _: histogram_entropy(x), _values),
    Case("embedding_of_argmax", embedding_loss, _classes),
    Case("spearman_rank_scatter", spearman, _paired),
    Case("quantized_error_floordiv", quantized_error, _values),
]
IDS = [c.name for c in CASES]


def _plain(t: Tensor) -> Tensor:
    return t.as_subclass(torch.Tensor) if isinstance(t, softtorch.SoftTensor) else t


def _soft(case: Case, x: Tensor, t: Tensor, softness: float) -> Tensor:
    with softtorch.soft_mode("smooth", softness=softness):
        out = case.call(x, t)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_smooth_value_and_gradient(case: Case) -> None:
    x, t = case.inputs(0)
    y = _soft(case, x, t, SOFTNESS)
    assert torch.isfinite(_plain(y)).all()
    assert y.requires_grad, "no gradient path to the inputs"
    (g,) = torch.autograd.grad(_plain(y).sum(), x, allow_unused=True)
    assert g is not None and torch.isfinite(g).all()
    assert (g != 0).any(), "gradient is zero everywhere"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hard_mode_is_bit_exact(case: Case) -> None:
    x, t = case.inputs(0)
    plain = case.call(x, t)
    with softtorch.soft_mode("hard"):
        hard = case.call(x, t)
    assert hard.dtype == plain.dtype
    assert torch.equal(_plain(hard).detach(), plain.detach())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_converges_to_exact(case: Case) -> None:
    x, t = case.inputs(0)
    exact = case.call(x, t).detach()
    y = _soft(case, x, t, 1e-5)
    assert y.dtype == exact.dtype
    err = (_plain(y).detach() - exact).abs().max().item()
    assert err <= 0.02, f"soft value at softness 1e-5 is {err:.3g} from the exact one"


# ----------------------------------------------------------------- independent formulas


def test_balanced_accuracy_is_the_sum_of_categoricals() -> None:
    """cm[t_i, c] = sum_i P(argmax_i = c): bincount of a soft integer sums its distributions."""
    x, t = _classes(0)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        p = _plain(x.argmax(-1).soft_index).detach()
        got = balanced_accuracy(x, t)
    cm = torch.zeros(C, C, dtype=torch.float64).index_add_(0, t, p)
    want = (cm.diag() / cm.sum(1)).mean()
    torch.testing.assert_close(_plain(got).detach().double(), want, atol=1e-5, rtol=0)


def test_precision_at_k_is_the_expected_relevant_count() -> None:
    """gather of integer data by a soft index = the expectation under the index's distribution."""
    x, rel = _queries(0, False)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        slots = _plain(x.topk(K, dim=1).indices.soft_index).detach()  # (Q, K, D)
        got = precision_at_k(x, rel)
    want = (slots @ rel.double().unsqueeze(-1)).mean()
    torch.testing.assert_close(_plain(got).detach().double(), want, atol=1e-5, rtol=0)


def test_rank_scatter_is_the_soft_rank() -> None:
    """``r[idx] = arange`` through a soft permutation P (row j: where the j-th smallest is) is
    ``P^T arange``: the expected position of each element."""
    x, _ = _paired(0)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        perm = _plain(x.argsort().soft_index).detach()  # (n, n)
        got = _rank(x)
    want = perm.T @ torch.arange(x.numel(), dtype=torch.float64)
    torch.testing.assert_close(_plain(got).detach(), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fill", [0, 10**12, -7])
def test_scatter_through_a_permutation_ignores_the_old_content(fill: int) -> None:
    """``r[argsort_idx] = v`` overwrites every position exactly, so the soft result must not
    depend on what ``r`` held before (``torch.empty_like`` storage is uninitialised memory)."""
    x, _ = _paired(0)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        idx = x.argsort()
        r = torch.full_like(idx, fill)
        r[idx] = torch.arange(x.numel())
        got = r.to(x.dtype)
        ref = torch.zeros_like(idx)
        ref[idx] = torch.arange(x.numel())
        want = ref.to(x.dtype)
    torch.testing.assert_close(_plain(got).detach(), _plain(want).detach(), atol=1e-9, rtol=0)


def test_embedding_of_a_soft_index_is_the_expected_row() -> None:
    """``emb(idx)`` with a SoftIndex is ``P @ weight``; the exact view is torch's lookup."""
    x, _ = _classes(0)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        idx = x.argmax(-1)
        p = _plain(idx.soft_index).detach()
        got = _EMB(idx)
    torch.testing.assert_close(_plain(got).detach(), p @ _EMB.weight, atol=1e-6, rtol=0)


def test_soft_integer_results_keep_the_exact_values() -> None:
    """Integer tensors computed from soft data show torch's exact values (the exact shadow):
    the confusion matrix, the scattered top-k mask, the bucket ids of the input. (Bucket ids of a
    *relaxed* float, e.g. a soft ``max`` value, are computed from its soft value and need not
    equal torch's: floating results carry no exact shadow.)"""
    x, t = _classes(0)
    n = C
    ref_cm = torch.bincount(t * n + x.argmax(-1), minlength=n * n)
    edges = torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64)
    col = x[:, 0].contiguous()
    ref_b = torch.bucketize(col, edges)
    idx = x.topk(2, dim=1).indices
    ref_hit = torch.zeros_like(x, dtype=torch.long).scatter(1, idx, torch.ones_like(idx))
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        cm = torch.bincount(t * n + x.argmax(-1), minlength=n * n)
        b = torch.bucketize(col, edges)  # a producer of soft integers from floats
        si = x.topk(2, dim=1).indices
        hit = torch.zeros_like(x, dtype=torch.long).scatter(1, si, torch.ones_like(si))
        soft_cm = cm.float()
    for got, ref in ((cm, ref_cm), (b, ref_b), (hit, ref_hit)):
        assert got.dtype == ref.dtype
        assert torch.equal(got.hard() if isinstance(got, softtorch.SoftTensor) else got, ref)
    assert soft_cm.requires_grad  # the floating view carries the soft counts
    torch.testing.assert_close(
        _plain(soft_cm).detach().sum(), torch.tensor(64.0), atol=1e-6, rtol=0
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sweep(case: Case, seed: int) -> None:
    x, t = case.inputs(seed)
    plain = case.call(x, t)
    with softtorch.soft_mode("hard"):
        assert torch.equal(_plain(case.call(x, t)).detach(), plain.detach())
    y = _soft(case, x, t, SOFTNESS)
    (g,) = torch.autograd.grad(_plain(y).sum(), x, allow_unused=True)
    assert g is not None and torch.isfinite(g).all() and (g != 0).any()
    y5 = _soft(case, x, t, 1e-5)
    assert (_plain(y5).detach() - plain.detach()).abs().max().item() <= 0.02
