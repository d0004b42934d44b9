"""Perturbed ordering functions against closed forms: two-entry argmax / sort / rank
(``Phi((x1 - x2) / (sqrt(2) s))`` for Gaussian noise), Gumbel argmax = softmax(x / s) and Gumbel
max = s logsumexp(x / s); gradients (rows of identical inputs are independent replicas, so their
mean is compared within 3 standard errors); shapes, dims, hard limits and errors."""

from __future__ import annotations

import math

import pytest
import torch

import softtorch
from softtorch.perturbation import (
    perturbed_argmax,
    perturbed_max,
    perturbed_rank,
    perturbed_sort,
    perturbed_topk,
    perturbed_topk_mask,
)

from ._closed_forms import Phi, phi

S = 0.5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def replicas(row: list[float], rows: int) -> torch.Tensor:
    return torch.tensor(row, dtype=torch.float64).expand(rows, len(row)).clone().requires_grad_()


def mean_and_se(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t.mean(0), t.std(0) / math.sqrt(t.shape[0])


def test_two_entry_argmax_value_and_gradient_shrink() -> None:
    d = 0.3
    p_exact = float(Phi(torch.tensor(d / (math.sqrt(2) * S))))
    g_exact = float(phi(torch.tensor(d / (math.sqrt(2) * S)))) / (math.sqrt(2) * S)
    rms = []
    for samples in (1000, 16000):
        x = replicas([d, 0.0], 32)  # 32 independent estimates
        p = perturbed_argmax(x, softness=S, samples=samples, generator=gen())
        (g,) = torch.autograd.grad(p[:, 0].sum(), x)
        ev, eg = p[:, 0].detach() - p_exact, g[:, 0] - g_exact
        torch.testing.assert_close(p.detach().sum(-1), torch.ones(32, dtype=torch.float64))
        # per-sample std of a Bernoulli <= 1/2; of a pair's gradient <= 1 / (2 sqrt(2) s) ...
        assert ev.abs().max() < 4 * 0.5 * math.sqrt(2) / math.sqrt(samples)
        assert eg.abs().max() < 4 * math.sqrt(2) / (2 * S) / math.sqrt(samples)
        rms.append((ev.pow(2).mean().sqrt(), eg.pow(2).mean().sqrt()))
    for i in (0, 1):
        assert 2.0 < float(rms[0][i] / rms[1][i]) < 8.0


@pytest.mark.parametrize("antithetic", [True, False])
def test_two_entry_argmax_gradient_unbiased(antithetic: bool) -> None:
    d = -0.2
    x = replicas([d, 0.0], 4000)
    p = perturbed_argmax(x, softness=S, samples=4, generator=gen(), antithetic=antithetic)
    (g,) = torch.autograd.grad(p[:, 0].sum(), x)
    m, se = mean_and_se(g[:, 0])
    exact = float(phi(torch.tensor(d / (math.sqrt(2) * S)))) / (math.sqrt(2) * S)
    assert abs(float(m) - exact) < 3 * float(se)


def test_gumbel_argmax_is_softmax_and_gradient_is_its_jacobian() -> None:
    row = [0.2, -0.1, 0.5, 0.0]
    x = replicas(row, 2000)
    p = perturbed_argmax(x, softness=S, samples=20, noise="gumbel", generator=gen())
    sm = torch.softmax(torch.tensor(row, dtype=torch.float64) / S, -1)
    m, se = mean_and_se(p.detach())
    assert ((m - sm).abs() < 3 * se + 1e-12).all()
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    (g,) = torch.autograd.grad((p * w).sum(), x)
    jac = (torch.diag(sm) - sm[:, None] * sm[None, :]) / S  # d softmax_j / d x_i
    m, se = mean_and_se(g)
    assert ((m - jac @ w).abs() < 3.5 * se).all(), (m, jac @ w, se)


def test_gumbel_max_is_logsumexp_with_softmax_gradient() -> None:
    row = [0.2, -0.1, 0.5, 0.0]
    x = torch.tensor(row, dtype=torch.float64, requires_grad=True)
    out = perturbed_max(x, softness=S, samples=40000, noise="gumbel", generator=gen())
    exact = S * torch.logsumexp(torch.tensor(row, dtype=torch.float64) / S, -1)
    assert abs(float(out.values.detach()) - float(exact)) < 0.02
    (g,) = torch.autograd.grad(out.values, x)
    torch.testing.assert_close(g, out.indices.detach())  # pathwise gradient = mean one-hot
    sm = torch.softmax(torch.tensor(row, dtype=torch.float64) / S, -1)
    torch.testing.assert_close(g, sm, atol=0.02, rtol=0)


def test_two_entry_sort_and_rank_closed_forms() -> None:
    d = 0.4
    q = float(Phi(torch.tensor(d / (math.sqrt(2) * S))))  # P(x1' > x2')
    x = torch.tensor([d, 0.0], dtype=torch.float64, requires_grad=True)
    srt = perturbed_sort(x, softness=S, samples=20000, generator=gen())
    tol = 4 * 0.5 * math.sqrt(2) / math.sqrt(20000)
    # ascending: slot 0 holds x1 with probability 1 - q
    assert abs(float(srt.indices[0, 0].detach()) - (1 - q)) < tol
    torch.testing.assert_close(srt.values, srt.indices @ x)
    r = perturbed_rank(x, softness=S, samples=20000, generator=gen())  # descending
    assert abs(float(r[0].detach()) - (1 + (1 - q))) < tol
    torch.testing.assert_close(r.sum(), torch.tensor(3.0, dtype=torch.float64))
    x2 = replicas([d, 0.0], 3000)
    r2 = perturbed_rank(x2, softness=S, samples=4, generator=gen())
    (g,) = torch.autograd.grad(r2[:, 0].sum(), x2)
    m, se = mean_and_se(g[:, 0])
    exact = -float(phi(torch.tensor(d / (math.sqrt(2) * S)))) / (math.sqrt(2) * S)
    assert abs(float(m) - exact) < 3 * float(se)


def test_sort_is_doubly_stochastic_and_rank_matches_sort() -> None:
    x = torch.randn(3, 5, 6)
    srt = perturbed_sort(x, dim=1, softness=0.3, samples=50, generator=gen())
    assert srt.indices.shape == (3, 5, 6, 5) and srt.values.shape == x.shape
    torch.testing.assert_close(srt.indices.sum(-1), torch.ones(3, 5, 6))
    torch.testing.assert_close(srt.indices.sum(1), torch.ones(3, 6, 5))
    r = perturbed_rank(x, dim=1, descending=False, softness=0.3, samples=50, generator=gen())
    pos = torch.arange(1, 6, dtype=x.dtype)
    torch.testing.assert_close(r, torch.einsum("bidj,i->bdj", srt.indices, pos).transpose(1, 2))


def test_dim_equals_transposed_input() -> None:
    x = torch.randn(4, 7)
    a = perturbed_sort(x, dim=0, samples=10, generator=gen())
    b = perturbed_sort(x.T, dim=-1, samples=10, generator=gen())
    torch.testing.assert_close(a.values, b.values.T)
    torch.testing.assert_close(a.indices, b.indices.transpose(0, 1))
    torch.testing.assert_close(
        perturbed_argmax(x, dim=0, samples=10, generator=gen()),
        perturbed_argmax(x.T, dim=1, samples=10, generator=gen()),
    )


def test_topk_consistency() -> None:
    x = torch.randn(5, 8)
    top = perturbed_topk(x, 3, softness=0.2, samples=20, generator=gen())
    assert top.indices.shape == (5, 3, 8) and top.values.shape == (5, 3)
    top1 = perturbed_topk(x, 1, softness=0.2, samples=20, generator=gen()).indices[:, 0]
    torch.testing.assert_close(top1, perturbed_argmax(x, softness=0.2, samples=20, generator=gen()))
    mask = perturbed_topk_mask(x, 3, softness=0.2, samples=20, generator=gen())
    torch.testing.assert_close(mask, top.indices.sum(-2))
    torch.testing.assert_close(mask.sum(-1), torch.full((5,), 3.0))
    low = perturbed_topk(x, 2, largest=False, softness=1e-6, samples=2)
    torch.testing.assert_close(low.values, torch.topk(x, 2, largest=False).values)


def test_small_softness_is_hard() -> None:
    x = torch.randn(6, 9, dtype=torch.float64)
    kw = dict(softness=1e-9, samples=2)
    one_hot = torch.nn.functional.one_hot(x.argmax(-1), 9).to(x.dtype)
    torch.testing.assert_close(perturbed_argmax(x, **kw), one_hot)
    torch.testing.assert_close(perturbed_max(x, **kw).values, x.max(-1).values)
    torch.testing.assert_close(perturbed_sort(x, **kw).values, x.sort(-1).values)
    hard_rank = softtorch.rank(x, dim=-1, mode="hard")
    torch.testing.assert_close(perturbed_rank(x, **kw), hard_rank)


def test_rows_are_independent_in_the_backward() -> None:
    """A row's gradient uses only its own samples: other rows' outputs cannot leak in."""
    x = torch.randn(2, 5, requires_grad=True)
    p = perturbed_argmax(x, softness=2.0, samples=16, generator=gen())
    (g,) = torch.autograd.grad(p[0].sum() * 0 + p[0, 1], x)
    assert (g[1] == 0).all() and (g[0] != 0).any()


def test_under_soft_mode_the_solvers_stay_hard() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    ref = perturbed_sort(x, samples=8, generator=gen())
    with softtorch.soft_mode("smooth", softness=0.1, scope="all"):
        got = perturbed_sort(x, samples=8, generator=gen())
    torch.testing.assert_close(got.indices, ref.indices)


def test_errors() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="k must be in"):
        perturbed_topk(x, 5)
    with pytest.raises(IndexError, match="out of range"):
        perturbed_argmax(x, dim=2)
    with pytest.raises(ValueError, match="even"):
        perturbed_sort(x, samples=3)
    with pytest.raises(ValueError, match="valid noises"):
        perturbed_rank(x, noise="cauchy")
    with pytest.raises(TypeError, match="floating"):
        perturbed_argmax(torch.arange(4))
    with pytest.raises(ValueError, match="softness"):
        perturbed_max(x, softness=float("nan"))


def test_argmax_dim_none_flattens() -> None:
    x = torch.randn(3, 4)
    p = perturbed_argmax(x, dim=None, softness=1e-9, samples=2)
    assert p.shape == (12,) and int(p.argmax()) == int(x.argmax())
