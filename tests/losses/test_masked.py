"""Padded batches: with ``mask`` every loss on a padded batch equals the loss of each list's real
entries alone (including lists of length 1 and 0), whatever the padded values, and padded
entries get exactly zero gradient."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

import softtorch as st
from softtorch import losses as L

pytestmark = pytest.mark.skipif(
    "mask" not in inspect.signature(st.rank).parameters,
    reason="softtorch.rank has no mask= in this checkout (issue 21, branch mask)",
)

LENGTHS = [1, 2, 3, 5, 9, 12, 0]
N = 12


def padded(lengths: list[int], seed: int = 0, pad: float = 1e3):
    """Scores, integer relevance (a relevant item first) and mask of lists padded to N; padded
    entries hold ``pad`` values that would rank first and be relevant if they counted."""
    gen = torch.Generator().manual_seed(seed)
    b = len(lengths)
    scores = torch.rand(b, N, generator=gen, dtype=torch.float64) + 0.1
    rel = torch.randint(0, 4, (b, N), generator=gen).to(torch.float64)
    rel[:, 0] = 2.0
    mask = torch.arange(N) < torch.tensor(lengths)[:, None]
    scores = torch.where(mask, scores, pad)
    rel = torch.where(mask, rel, 3.0)
    return scores, rel, mask


CASES = {
    "ndcg": lambda s, y, m, **kw: L.ndcg_loss(s, y, mask=m, **kw),
    "ndcg@3": lambda s, y, m, **kw: L.ndcg_loss(s, y, mask=m, k=3, **kw),
    "map": lambda s, y, m, **kw: L.map_loss(s, y, mask=m, **kw),
    "map@2": lambda s, y, m, **kw: L.map_loss(s, y, mask=m, k=2, **kw),
    "spearman": lambda s, y, m, **kw: L.spearman_loss(s, y, mask=m, **kw),
    "kendall": lambda s, y, m, **kw: L.kendall_loss(s, y, mask=m, **kw),
    "topk": lambda s, y, m, **kw: L.multilabel_topk_loss(s, (y > 1).to(s.dtype), 1, mask=m, **kw),
    "topk_mask": lambda s, y, m, **kw: L.topk_mask(s, 3, mask=m, **kw).sum(-1),
}


def per_list(name: str, s, y, lengths, **kw) -> torch.Tensor:
    out = []
    for i, n in enumerate(lengths):
        if n == 0 or (name == "topk_mask" and n <= 3):
            out.append(float(min(n, 3)) if name == "topk_mask" else 0.0)  # documented rules
            continue
        out.append(float(CASES[name](s[i, :n], y[i, :n], None, **kw)))
    return torch.tensor(out, dtype=s.dtype)


def _check_padded(name: str, mode: str, method: str | None) -> None:
    s, y, m = padded(LENGTHS)
    kw: dict = {"softness": 0.5, "mode": mode}
    if method is not None:
        kw["method"] = method
    red = {} if name == "topk_mask" else {"reduction": "none"}
    got = CASES[name](s, y, m, **kw, **red)
    want = per_list(name, s, y, LENGTHS, **kw, **red)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


RANKED = list(CASES)  # kendall_loss: the merge count on the method's soft ranks


@pytest.mark.parametrize("name", RANKED)
@pytest.mark.parametrize("mode", ["hard", "smooth", "c1"])
@pytest.mark.parametrize("method", ["fast_soft_sort", "neuralsort"])
def test_padded_batch_equals_per_list(name: str, mode: str, method: str) -> None:
    _check_padded(name, mode, method)


@pytest.mark.parametrize("mode", ["hard", "smooth", "c1"])
@pytest.mark.parametrize("method", [None, "pairwise"])
def test_padded_kendall_equals_per_list(mode: str, method: str | None) -> None:
    _check_padded("kendall", mode, method)


@pytest.mark.slow
@pytest.mark.parametrize("name", RANKED)
@pytest.mark.parametrize("mode", ["c0", "c2"])
@pytest.mark.parametrize("method", ["softsort", "ot", "sorting_network", "fast_soft_sort"])
def test_padded_sweep(name: str, mode: str, method: str) -> None:
    _check_padded(name, mode, method)


@pytest.mark.parametrize("name", list(CASES))
def test_padded_entries_get_zero_gradient(name: str) -> None:
    s, y, m = padded(LENGTHS, seed=1)
    s.requires_grad_(True)
    CASES[name](s, y, m, softness=1.0).sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert torch.all(s.grad[~m] == 0)
    assert s.grad[m].abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(hs.lists(hs.integers(0, 7), min_size=1, max_size=4), hs.integers(0, 2**16))
def test_ndcg_random_lengths(lengths: list[int], seed: int) -> None:
    s, y, m = padded(lengths, seed=seed)
    got = L.ndcg_loss(s, y, mask=m, k=2, softness=0.3, reduction="none")
    want = torch.tensor(
        [0.0 if n == 0 else float(L.ndcg_loss(s[i, :n], y[i, :n], k=2, softness=0.3))
         for i, n in enumerate(lengths)],
        dtype=s.dtype,
    )  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", L.__all__)
def test_docstring_examples(name: str) -> None:
    fn = getattr(L, name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(fn, name, globs={"torch": torch, name: fn}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
