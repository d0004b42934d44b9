"""Acceptance on unmodified plain-torch code: each function below is written as ordinary PyTorch,
knowing nothing of softtorch. Inside ``hard_mode`` it returns torch's result exactly; inside
``soft_mode`` at softness 1e-3 it is close to it; at a larger softness its gradients are finite
and non-zero where the hard code has none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softtorch.interception import hard_mode, soft_mode

# ------------------------------------------------------------------ unmodified "user" code


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(nn.ReLU()(self.conv2(x)))
        return self.head(x.flatten(1))


def cnn_loss(x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    return SmallCNN()(x).square().mean()


def spiking_neuron(current: torch.Tensor, thr: float = 1.0, decay: float = 0.8) -> torch.Tensor:
    """Leaky integrate-and-fire over time (dim 0), reset by subtraction; returns the spike count."""
    v = torch.zeros_like(current[0])
    count = torch.zeros_like(v)
    for t in range(current.shape[0]):
        v = decay * v + current[t]
        spike = (v - thr > 0).float()
        v = v - spike * thr
        count = count + spike
    return count.sum()


class TopKPool(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.topk(self.k, dim=1).values.mean(dim=1)


def topk_pool(x: torch.Tensor) -> torch.Tensor:
    return TopKPool(3)(x).sum()


def masked_mean(x: torch.Tensor) -> torch.Tensor:
    mask = x > 0.2
    return (x * mask).sum() / mask.sum().clamp(min=1)


def quantile_loss(residuals: torch.Tensor) -> torch.Tensor:
    """Mean of the residuals beyond their 80% quantile (a CVaR-style robust loss)."""
    q = torch.quantile(residuals, 0.8, dim=1, keepdim=True)
    tail = torch.where(residuals >= q, residuals, torch.zeros_like(residuals))
    return tail.sum() / residuals.shape[0]


LABELS = torch.tensor([0, 2, 1, 1, 0, 2])


def accuracy(logits: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=-1) == LABELS).float().mean()


# ------------------------------------------------------------------ cases


@dataclass
class Case:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    make: Callable[[torch.Generator], torch.Tensor]
    atol: float  # soft (1e-3) vs hard


CASES = [
    Case("cnn", cnn_loss, lambda g: torch.randn(2, 1, 8, 8, generator=g), 5e-3),
    Case("spiking", spiking_neuron, lambda g: torch.rand(6, 5, generator=g) * 0.9, 1e-3),
    Case("topk_pool", topk_pool, lambda g: torch.randn(4, 7, generator=g), 1e-2),
    Case("masked_mean", masked_mean, lambda g: torch.randn(12, generator=g), 1e-3),
    # 12 columns: the 0.8 quantile falls strictly between two residuals (at an exact tie the
    # soft comparison residual >= q is 1/2)
    Case("quantile_loss", quantile_loss, lambda g: torch.randn(3, 12, generator=g), 2e-2),
    Case("accuracy", accuracy, lambda g: torch.randn(6, 3, generator=g) * 2, 1e-3),
]


def _input(case: Case) -> torch.Tensor:
    return case.make(torch.Generator().manual_seed(7)).requires_grad_()


def _grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    if not out.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(out, x, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hard_mode_is_exact(case: Case) -> None:
    x = _input(case)
    ref = case.fn(x)
    with hard_mode():
        assert torch.equal(case.fn(x), ref)
    with soft_mode("hard"):
        assert torch.equal(case.fn(x), ref)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_soft_is_close_to_hard_at_small_softness(case: Case) -> None:
    x = _input(case)
    ref = case.fn(x)
    with soft_mode("smooth", 1e-3):
        got = case.fn(x)
    torch.testing.assert_close(got.detach(), ref.detach(), atol=case.atol, rtol=1e-3)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_gradients_where_hard_code_has_none(case: Case, mode: str) -> None:
    x = _input(case)
    hard = _grad(case.fn, x)
    with soft_mode(mode, 0.3):
        soft = _grad(case.fn, x)
    assert torch.isfinite(soft).all()
    assert float(soft.abs().sum()) > 0
    no_hard = hard == 0
    if case.name == "cnn":  # relu / max-pool have gradients here: the soft ones must differ
        assert not torch.allclose(soft, hard)
        return
    assert bool(no_hard.any()), "the hard code should have zero gradients somewhere"
    assert float(soft[no_hard].abs().sum()) > 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_straight_through_keeps_hard_values(case: Case) -> None:
    x = _input(case)
    ref = case.fn(x)
    with soft_mode("smooth", 0.3, straight_through=True):
        out = case.fn(x)
    torch.testing.assert_close(out.detach(), ref.detach(), atol=1e-5, rtol=1e-5)
