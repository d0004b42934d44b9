"""Simplex projections (softmax, sparsemax, p-norm 3/2 and 4/3) and the row-chunked evaluator."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import softtorch.simplex as sx
from softtorch.simplex import chunked_rows, project_simplex

SPARSE = {"c0": 1, "c1": 2, "c2": 3}
MODES = ("smooth", "c0", "c1", "c2")


def reference(s: torch.Tensor, e: int) -> torch.Tensor:
    """``relu(s - lam)^e`` with ``lam`` found by bisection on ``sum = 1`` (float64)."""
    s = s.double()
    top = s.max(-1, keepdim=True).values
    lo, hi = top - 1.0, top
    for _ in range(200):
        mid = (lo + hi) / 2
        f = torch.relu(s - mid).pow(e).sum(-1, keepdim=True)
        lo = torch.where(f > 1, mid, lo)
        hi = torch.where(f > 1, hi, mid)
    return torch.relu(s - (lo + hi) / 2).pow(e)


@pytest.mark.parametrize("mode", SPARSE)
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0, 1e4])
def test_sparse_modes_match_bisection(mode: str, scale: float) -> None:
    torch.manual_seed(0)
    s = torch.randn(64, 9, dtype=torch.float64) * scale
    p = project_simplex(s, mode)
    torch.testing.assert_close(p, reference(s, SPARSE[mode]), atol=1e-10, rtol=0)


@pytest.mark.parametrize("mode", SPARSE)
def test_sparse_modes_float32_large_rows(mode: str) -> None:
    torch.manual_seed(1)
    s = torch.randn(20, 500) * 3
    p = project_simplex(s, mode)
    assert (p - reference(s, SPARSE[mode])).abs().max() < 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_simplex_constraints(mode: str) -> None:
    torch.manual_seed(2)
    s = torch.randn(7, 3, 11) * 4
    p = project_simplex(s, mode)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(7, 3), atol=1e-6, rtol=0)


def test_smooth_is_softmax_and_hard_is_one_hot() -> None:
    s = torch.tensor([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]])
    torch.testing.assert_close(project_simplex(s, "smooth"), torch.softmax(s, -1))
    assert project_simplex(s, "hard").tolist() == [[0, 1, 0], [1, 0, 0]]


def test_c0_has_exact_zeros_and_known_value() -> None:
    p = project_simplex(torch.tensor([0.0, 0.5, 2.0]), "c0")
    assert p.tolist() == [0.0, 0.0, 1.0]
    p = project_simplex(torch.tensor([0.0, 0.5, 0.6]), "c0")
    torch.testing.assert_close(p, torch.tensor([0.0, 0.45, 0.55]))


def test_dim_argument() -> None:
    torch.manual_seed(3)
    s = torch.randn(4, 5, 6)
    for mode in MODES:
        a = project_simplex(s, mode, dim=1)
        b = project_simplex(s.transpose(1, 2), mode).transpose(1, 2)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str) -> None:
    torch.manual_seed(4)
    s = (torch.randn(3, 6, dtype=torch.float64) * 2).requires_grad_(True)
    assert gradcheck(lambda t: project_simplex(t, mode), (s,))


@pytest.mark.parametrize("mode", MODES)
def test_extreme_scores_are_finite(mode: str) -> None:
    s = torch.tensor(
        [[0.0, -1e30, 5.0, 5.0], [1e6, -1e6, 0.0, 1e6], [0.0, 0.0, 0.0, 0.0], [-1e-30, 0, 1e-30, 0]]
    ).requires_grad_(True)
    p = project_simplex(s, mode)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(4))
    (g,) = torch.autograd.grad((p * torch.randn(4, 4)).sum(), s)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("mode", MODES)
def test_minus_inf_scores_get_zero_weight(mode: str) -> None:
    p = project_simplex(torch.tensor([0.0, float("-inf"), 0.0]), mode)
    torch.testing.assert_close(p, torch.tensor([0.5, 0.0, 0.5]))


@pytest.mark.parametrize("mode", MODES)
def test_nan_propagates(mode: str) -> None:
    p = project_simplex(torch.tensor([[0.0, float("nan"), 1.0], [0.0, 1.0, 2.0]]), mode)
    assert torch.isnan(p[0]).any()
    assert torch.isfinite(p[1]).all()


@pytest.mark.parametrize("mode", MODES)
def test_empty_and_single(mode: str) -> None:
    assert project_simplex(torch.empty(3, 0), mode).shape == (3, 0)
    assert project_simplex(torch.empty(0, 4), mode).shape == (0, 4)
    assert project_simplex(torch.randn(5, 1), mode).eq(1).all()


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="valid modes"):
        project_simplex(torch.zeros(3), "c3")


def _rows_fn(a: int, b: int, z: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = project_simplex(-(z[..., a:b, None] - z[..., None, :]).abs() * 5.0, "c1")
    return p, (p @ w.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("which", ["rows", "values", "both", "sum"])
def test_chunked_rows_matches_plain(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(5)
    z0 = torch.rand(2, 23, dtype=torch.float64)
    w0 = torch.randn(2, 23, dtype=torch.float64)

    def run(budget: int) -> tuple[torch.Tensor, ...]:
        monkeypatch.setattr(sx, "CHUNK_BUDGET", budget)
        monkeypatch.setattr(sx, "PLAIN_BUDGET", budget)
        z, w = z0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        if which == "sum":
            out = chunked_rows(
                lambda a, b, zz, ww: _rows_fn(a, b, zz, ww)[0].sum(-2),
                23,
                (z, w),
                row_numel=46,
                cat_dim=None,
            )
            loss = (out * w0).sum()
        else:
            res = chunked_rows(_rows_fn, 23, (z, w), row_numel=46, cat_dim=(-2, -1))
            p, v = res
            loss = {
                "rows": (p * p).sum(),
                "values": (v * v).sum(),
                "both": (p * p).sum() + v.sum(),
            }[which]
            out = torch.cat((p.flatten(), v.flatten()))
        grads = torch.autograd.grad(loss, (z, w), allow_unused=True)
        grads = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, (z, w)))
        return (out.detach(), *grads)

    plain, chunked = run(1 << 20), run(100)
    for a, b in zip(plain, chunked):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
