"""Real third-party code (torchmetrics, a pure-PyTorch library; test-only dependency): metrics that
call topk / argsort / sort / comparisons / abs internally become differentiable inside soft_mode,
stay exact in hard mode and approach the hard value as the softness goes to 0."""

from __future__ import annotations

import pytest
import torch

from softtorch.interception import hard_mode, soft_mode

retrieval = pytest.importorskip("torchmetrics.functional.retrieval")
regression = pytest.importorskip("torchmetrics.functional.regression")


def _scores() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    preds = torch.randn(10, generator=g).requires_grad_()
    target = torch.tensor([1.0, 0, 0, 1, 0, 1, 0, 0, 1, 0])
    return preds, target


METRICS = {
    "precision@3": lambda p, t: retrieval.retrieval_precision(p, t, top_k=3),
    "recall@4": lambda p, t: retrieval.retrieval_recall(p, t, top_k=4),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_retrieval_metric(name: str) -> None:
    metric = METRICS[name]
    preds, target = _scores()
    ref = metric(preds, target)
    assert not ref.requires_grad  # the hard metric has no gradient w.r.t. the scores
    with hard_mode():
        assert torch.equal(metric(preds, target), ref)
    with soft_mode("smooth", 1e-3):
        close = metric(preds, target)
    torch.testing.assert_close(close.detach(), ref, atol=1e-3, rtol=0)
    with soft_mode("smooth", 0.3):
        value = metric(preds, target)
    (grad,) = torch.autograd.grad(value, preds)
    assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    # raising a relevant document's score raises the soft metric
    relevant = target.bool()
    assert float(grad[relevant].sum()) > 0 > float(grad[~relevant].sum())


def test_crps_sort_and_abs() -> None:
    g = torch.Generator().manual_seed(12)
    preds = torch.randn(4, 6, generator=g).requires_grad_()
    target = torch.randn(4, generator=g)
    crps = regression.continuous_ranked_probability_score
    ref = crps(preds, target)
    with hard_mode():
        assert torch.equal(crps(preds, target), ref)
    with soft_mode("smooth", 1e-3):
        close = crps(preds, target)
    torch.testing.assert_close(close, ref, atol=2e-3, rtol=0)
    with soft_mode("c2", 0.3):
        value = crps(preds, target)
    assert not torch.allclose(value, ref)
    (grad,) = torch.autograd.grad(value, preds)
    assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0


def test_integer_targets_are_gathered_softly_with_exact_bookkeeping() -> None:
    """Integer relevance labels indexed by a soft top-k: the precision is soft (a gradient
    reaches the scores) and its exact shadow is torch's value."""
    preds, target = _scores()
    ref = retrieval.retrieval_precision(preds, target.long(), top_k=3)
    with soft_mode("smooth", 0.3):
        got = retrieval.retrieval_precision(preds, target.long(), top_k=3)
    assert torch.equal(got.hard(), ref)
    (grad,) = torch.autograd.grad(got, preds)
    assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
