"""kendall_loss with an ordering method (softtorch.losses._merge): the merge count of concordant
pairs on soft ranks. Values against the written-out recursion of ``_reference``, the exact tau
in the hard limit, padded lists against each list alone (hypothesis over lengths and ties),
order invariance, zero padded gradients, gradcheck per method x mode, the number of soft-rank
elements (no pair is formed) and argument errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from torch.autograd import gradcheck

import softtorch as st
from softtorch import losses as L
from softtorch.kernels import fused
from softtorch.losses import _merge

from . import _reference as ref

SOFT_MODES = ["smooth", "c0", "c1", "c2"]
METHODS = ["fast_soft_sort", "softsort", "neuralsort", "ot", "sorting_network"]


def _lists(b: int, n: int, seed: int, levels: int | None = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, generator=g, dtype=torch.float64)
    if levels is None:
        t = torch.randn(b, n, generator=g, dtype=torch.float64)
    else:
        t = torch.randint(0, levels, (b, n), generator=g).to(torch.float64)
    return x, t


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_values_match_written_out_recursion(method: str, mode: str) -> None:
    for n, levels in ((7, 3), (11, None), (16, 2)):
        x, t = _lists(3, n, seed=n, levels=levels)
        got = L.kendall_loss(x, t, softness=0.7, mode=mode, method=method, reduction="none")
        want = torch.tensor([1 - ref.soft_kendall_merge(x[i], t[i], 0.7, mode, method)
                             for i in range(3)], dtype=x.dtype)  # fmt: skip
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
        hard = L.kendall_loss(x, t, mode="hard", reduction="none")
        assert (got - hard).abs().max() > 1e-3  # really soft


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_hard_limit_is_exact_tau(mode: str) -> None:
    x, t = _lists(4, 29, seed=3)
    got = L.kendall_loss(x, t, softness=1e-7, mode=mode, reduction="none")
    want = torch.tensor([1 - ref.exact_kendall(x[i], t[i]) for i in range(4)], dtype=x.dtype)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(L.kendall_loss(x, t, mode="hard", reduction="none"), want,
                               rtol=0, atol=1e-6)  # fmt: skip


def test_exact_counts_by_brute_force() -> None:
    """The hard merge count C (hard ranks) equals the concordant pairs counted pair by pair."""
    x, t = _lists(5, 37, seed=9, levels=5)
    m = torch.rand(5, 37, generator=torch.Generator().manual_seed(1)) < 0.8
    c = _merge.merge_concordance(x, t, m, 1.0, "hard", "fast_soft_sort")
    pair = (m[:, :, None] & m[:, None, :]) & (t[:, :, None] > t[:, None, :])
    want = (pair & (x[:, :, None] > x[:, None, :])).sum((-1, -2)).to(x.dtype)
    torch.testing.assert_close(c, want, rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    lengths=hs.lists(hs.integers(0, 19), min_size=1, max_size=5),
    levels=hs.sampled_from([1, 2, 3, None]),
    mode=hs.sampled_from(["smooth", "c1"]),
    seed=hs.integers(0, 1000),
)
def test_padded_lists_equal_each_list_alone(lengths: list[int], levels: int | None, mode: str,
                                            seed: int) -> None:  # fmt: skip
    n = 19
    x, t = _lists(len(lengths), n, seed=seed, levels=levels)
    m = torch.arange(n) < torch.tensor(lengths)[:, None]
    xp = torch.where(m, x, 1e4).requires_grad_(True)
    got = L.kendall_loss(xp, t, mask=m, softness=0.5, mode=mode, reduction="none",
                         empty_target_action="neg")  # fmt: skip
    want = []
    for i, k in enumerate(lengths):
        if k == 0:
            want.append(1.0)  # no pair: undefined, "neg"
        else:
            want.append(float(L.kendall_loss(x[i, :k], t[i, :k], softness=0.5, mode=mode,
                                             reduction="none", empty_target_action="neg")))
    torch.testing.assert_close(got, torch.tensor(want, dtype=x.dtype), rtol=0, atol=1e-9)
    got.sum().backward()
    assert (xp.grad[~m] == 0).all() and torch.isfinite(xp.grad).all()


def test_invariant_to_the_order_of_items() -> None:
    x, t = _lists(3, 40, seed=5, levels=3)  # ties in the target: the order within a group
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        p = torch.randperm(40, generator=g)
        got = L.kendall_loss(x[:, p], t[:, p], reduction="none")
        torch.testing.assert_close(got, L.kendall_loss(x, t, reduction="none"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradcheck(method: str, mode: str) -> None:
    x, t = _lists(2, 9, seed=11, levels=3)
    x.requires_grad_(True)
    m = torch.ones(2, 9, dtype=torch.bool)
    m[1, 6:] = False
    assert gradcheck(lambda a: L.kendall_loss(a, t, mask=m, softness=0.8, mode=mode,
                                              method=method), (x,), atol=1e-6)  # fmt: skip


def test_kernels_and_torch_fallback_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x, t = _lists(4, 50, seed=8, levels=4)
    m = torch.rand(4, 50, generator=torch.Generator().manual_seed(3)) < 0.7
    out = {}
    for backend in ("auto", "torch"):
        monkeypatch.setattr(fused, "_backend", backend)
        xx = x.clone().requires_grad_(True)
        loss = L.kendall_loss(xx, t, mask=m, reduction="none")
        loss.sum().backward()
        out[backend] = (loss.detach(), xx.grad)
    torch.testing.assert_close(out["auto"], out["torch"], rtol=0, atol=1e-10)


def test_soft_rank_elements_are_n_log_n(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each level ranks the padded order once (plus the nodes with a boundary tie group): at
    most 2 N log2 N elements per list, no pair matrix."""
    seen: list[int] = []
    real = _merge.soft_ranks

    def count(x: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        seen.append(x.numel())
        return real(x, *a, **k)

    monkeypatch.setattr(_merge, "soft_ranks", count)
    for levels in (None, 5):
        seen.clear()
        x, t = _lists(2, 1000, seed=1, levels=levels)
        L.kendall_loss(x, t)
        assert sum(seen) <= 2 * 2 * 1024 * 10, (levels, sum(seen))
        assert max(seen) <= 2 * 2 * 1024


def test_errors() -> None:
    x, t = _lists(2, 6, seed=0)
    with pytest.raises(ValueError, match="pairwise"):
        L.kendall_loss(x, t, weights=torch.ones_like(x), method="fast_soft_sort")
    with pytest.raises(ValueError, match="'pairwise', 'softsort'"):
        L.kendall_loss(x, t, method="bogus")
    # weights without a method: the pairwise soft sign (its default softness 0.1)
    torch.testing.assert_close(L.kendall_loss(x, t, weights=torch.ones_like(x)),
                               L.kendall_loss(x, t, method="pairwise", softness=0.1))  # fmt: skip
    want = L.kendall_loss(x, t, method="fast_soft_sort", softness=1.0)
    torch.testing.assert_close(L.kendall_loss(x, t), want)


def test_long_list_with_one_item_or_none() -> None:
    for n in (0, 1):
        x = torch.zeros(3, n, requires_grad=True)
        out = L.kendall_loss(x, torch.zeros(3, n), reduction="none")
        assert (out == 0).all()
    assert st.losses.kendall_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]),
                                  mode="hard") == 0  # fmt: skip


def test_torch_func_transforms() -> None:
    """vmap over lists equals the batched call; jacrev equals backward (no data-dependent
    shapes under torch.func: every node is ranked)."""
    x, t = _lists(3, 13, seed=4, levels=3)
    m = torch.arange(13) < torch.tensor([[13], [7], [1]])
    got = torch.func.vmap(lambda a, b, c: L.kendall_loss(a, b, mask=c, reduction="none"))(x, t, m)
    want = L.kendall_loss(x, t, mask=m, reduction="none")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    jac = torch.func.jacrev(lambda a: L.kendall_loss(a, t, mask=m, reduction="none"))(x)
    for i in range(3):
        xx = x.clone().requires_grad_(True)
        L.kendall_loss(xx, t, mask=m, reduction="none")[i].backward()
        torch.testing.assert_close(jac[i], xx.grad, rtol=0, atol=1e-12)
