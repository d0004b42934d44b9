"""softtorch.losses: each loss is 1 - torchmetrics' exact metric per list as softness -> 0 (and
in hard mode), matches a per-list loop over the soft ranks at moderate softness, has finite
nonzero gradients (float64 gradcheck), and rejects bad input with clear errors."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st
from softtorch import losses as L

from . import _reference as ref

MODES = ["hard", "smooth", "c0", "c1", "c2"]
SOFT_MODES = ["smooth", "c0", "c1", "c2"]
TINY = 1e-6  # softness at which ranks and cutoffs are exact for these lists


def lists(b: int = 4, n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive float64 scores (b, n) without ties and integer relevance 0..3 with a relevant
    item in every list."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(b, n, generator=gen, dtype=torch.float64) + 0.1
    rel = torch.randint(0, 4, (b, n), generator=gen).to(torch.float64)
    rel[:, 0] = 2.0
    return scores, rel


def per_list(fn: Callable[[torch.Tensor, torch.Tensor], float], a: torch.Tensor,
             b: torch.Tensor) -> torch.Tensor:  # fmt: skip
    return torch.tensor([fn(a[i], b[i]) for i in range(a.shape[0])], dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# hard limit: 1 - torchmetrics
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("k", "gain"), [(None, "exp2"), (3, "linear"), (5, "exp2")])
def test_ndcg_hard_limit_is_torchmetrics(mode: str, k: int | None, gain: str) -> None:
    s, rel = lists()
    got = L.ndcg_loss(s, rel, k=k, softness=TINY, mode=mode, gain=gain, reduction="none")
    want = 1 - per_list(lambda a, b: ref.exact_ndcg(a, b, k, gain), s, rel)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_map_hard_limit_is_torchmetrics(mode: str) -> None:
    s, rel = lists()
    got = L.map_loss(s, rel, softness=TINY, mode=mode, reduction="none")
    want = 1 - per_list(ref.exact_ap, s, rel)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_correlations_hard_limit_are_torchmetrics(mode: str) -> None:
    s, rel = lists()  # relevance has ties: torchmetrics averages them (Spearman) / tau-b
    got = L.spearman_loss(s, rel, softness=TINY, mode=mode, reduction="none")
    torch.testing.assert_close(got, 1 - per_list(ref.exact_spearman, s, rel), atol=1e-6, rtol=0)
    for method in ("fast_soft_sort", "pairwise", "neuralsort"):
        got = L.kendall_loss(s, rel, softness=TINY, mode=mode, method=method, reduction="none")
        want = 1 - per_list(ref.exact_kendall, s, rel)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_topk_hard_limit(mode: str) -> None:
    s, rel = lists()
    target = (rel > 1).to(s.dtype)  # 1..n positives per list
    member = L.topk_mask(s, 4, softness=TINY, mode=mode)
    exact = torch.zeros_like(s).scatter(-1, s.topk(4, dim=-1).indices, 1.0)
    torch.testing.assert_close(member, exact, atol=1e-6, rtol=0)
    got = L.multilabel_topk_loss(s, target, 4, softness=TINY, mode=mode, reduction="none")
    cap = target.sum(-1).clamp_max(4) / target.sum(-1)  # recall capped at min(|Y|, k)
    want = 1 - per_list(lambda a, b: ref.exact_recall(a, b, 4), s, target) / cap
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# moderate softness: a per-list loop over the soft ranks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", ["fast_soft_sort", "neuralsort"])
def test_soft_values_match_loops(mode: str, method: str) -> None:
    s, rel = lists(b=3, n=9, seed=1)
    soft = 1.0
    kw = {"softness": soft, "mode": mode, "method": method, "reduction": "none"}
    for k in (None, 3):
        got = L.ndcg_loss(s, rel, k=k, **kw)
        want = 1 - per_list(
            lambda a, b, k=k: ref.soft_ndcg(a, b, k, "exp2", soft, mode, method), s, rel
        )
        torch.testing.assert_close(got, want)
        hard = L.ndcg_loss(s, rel, k=k, mode="hard", reduction="none")
        assert (got - hard).abs().max() > 1e-3  # really soft
        got = L.map_loss(s, rel, k=k, **kw)
        want = 1 - per_list(lambda a, b, k=k: ref.soft_ap(a, b, k, soft, mode, method), s, rel)
        torch.testing.assert_close(got, want)
    w = torch.rand(s.shape, generator=torch.Generator().manual_seed(2), dtype=s.dtype)
    for weights in (None, w):
        got = L.spearman_loss(s, rel, weights=weights, **kw)
        want = torch.tensor(
            [1 - ref.soft_spearman(s[i], rel[i], None if weights is None else weights[i],
                                   soft, mode, method) for i in range(3)],
            dtype=s.dtype,
        )  # fmt: skip
        torch.testing.assert_close(got, want)
    got = L.kendall_loss(s, rel, **kw)
    want = torch.tensor([1 - ref.soft_kendall_merge(s[i], rel[i], soft, mode, method)
                         for i in range(3)], dtype=s.dtype)  # fmt: skip
    torch.testing.assert_close(got, want)
    assert (got - L.kendall_loss(s, rel, mode="hard", reduction="none")).abs().max() > 1e-3
    kw["method"] = "pairwise"
    for weights in (None, w):
        want = torch.tensor(
            [1 - ref.soft_kendall(s[i], rel[i], None if weights is None else weights[i],
                                  0.1 * soft, mode) for i in range(3)],
            dtype=s.dtype,
        )  # fmt: skip
        got = L.kendall_loss(s, rel, weights=weights, **(kw | {"softness": 0.1 * soft}))
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_soft_topk_matches_loop(mode: str) -> None:
    s, rel = lists(b=3, n=9, seed=12)
    target = (rel > 1).to(s.dtype)
    target[1] = torch.linspace(0, 1, 9, dtype=s.dtype)  # soft labels
    for k in (1, 3):
        member = L.topk_mask(s, k, mode=mode)
        loss = L.multilabel_topk_loss(s, target, k, mode=mode, reduction="none")
        for i in range(3):
            m, recall = ref.soft_topk_recall(s[i], target[i], k, 1.0, mode, "fast_soft_sort")
            torch.testing.assert_close(member[i], torch.tensor(m, dtype=s.dtype))
            torch.testing.assert_close(loss[i], torch.tensor(1 - recall, dtype=s.dtype))
        hard = L.multilabel_topk_loss(s, target, k, mode="hard", reduction="none")
        assert (loss - hard).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_multilabel_topk_loss_trains_to_exact_top_k(mode: str) -> None:
    """Descending on the soft loss alone puts every sample's 3 positives in its top 3."""
    gen = torch.Generator().manual_seed(15)
    y = torch.zeros(8, 20)
    for i in range(8):
        y[i, torch.randperm(20, generator=gen)[:3]] = 1.0
    x = torch.randn(8, 20, generator=gen).requires_grad_(True)
    assert L.multilabel_topk_loss(x, y, 3, mode="hard") > 0.5
    opt = torch.optim.Adam([x], lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        L.multilabel_topk_loss(x, y, 3, mode=mode).backward()
        opt.step()
    assert L.multilabel_topk_loss(x, y, 3, mode="hard") == 0


def test_weights_semantics() -> None:
    s, rel = lists(b=2, n=10, seed=3)
    pairwise = partial(L.kendall_loss, method="pairwise")
    for loss in (L.spearman_loss, pairwise):
        plain = loss(s, rel, reduction="none")
        # a constant weight is no weight; a zero weight drops the item from the correlation
        torch.testing.assert_close(loss(s, rel, weights=torch.full_like(s, 3.0), reduction="none"),
                                   plain)  # fmt: skip
        w = torch.ones_like(s)
        w[:, 4] = 0.0
        got = loss(s, rel, weights=w, mode="hard", reduction="none")
        keep = [i for i in range(10) if i != 4]
        want = loss(s[:, keep], rel[:, keep], mode="hard", reduction="none")
        if loss is pairwise:  # pairs only: exactly the item removed
            torch.testing.assert_close(got, want)
        else:  # ranks are over all items; with the item dropped they shift by one above it
            assert not torch.allclose(got, plain)


# ------------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------------

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ndcg": lambda s, y, **kw: L.ndcg_loss(s, y, **kw),
    "ndcg@3": lambda s, y, **kw: L.ndcg_loss(s, y, k=3, **kw),
    "map": lambda s, y, **kw: L.map_loss(s, y, **kw),
    "spearman": lambda s, y, **kw: L.spearman_loss(s, y, **kw),
    "kendall": lambda s, y, **kw: L.kendall_loss(s, y, **kw),
    "topk": lambda s, y, **kw: L.multilabel_topk_loss(s, (y > 1).to(s.dtype), 3, **kw),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_gradients_finite_and_nonzero(name: str, mode: str) -> None:
    s, rel = lists(b=3, n=20, seed=4)
    s.requires_grad_(True)
    LOSSES[name](s, rel, mode=mode, softness=1.0).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert s.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck_float64(name: str) -> None:
    s, rel = lists(b=2, n=6, seed=5)
    s.requires_grad_(True)
    assert gradcheck(lambda t: LOSSES[name](t, rel, softness=1.0), (s,), atol=1e-6)


@pytest.mark.parametrize("name", ["ndcg@3", "spearman", "kendall", "topk"])
def test_learnable_softness(name: str) -> None:
    s, rel = lists(b=2, n=8, seed=13)
    soft = torch.tensor(0.7, dtype=s.dtype, requires_grad=True)
    loss = LOSSES[name](s, rel, softness=soft)
    loss.backward()
    assert soft.grad is not None and torch.isfinite(soft.grad) and soft.grad != 0
    torch.testing.assert_close(loss.detach(), LOSSES[name](s, rel, softness=0.7))


def test_extreme_inputs_stay_finite() -> None:
    s, rel = lists(b=2, n=8, seed=6)
    for scale, soft in ((1e6, 1e-6), (1e-6, 1e4), (1.0, 1e4)):
        x = (s * scale).requires_grad_(True)
        for name, fn in LOSSES.items():
            loss = fn(x, rel, softness=soft)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (name, scale, soft)
            x.grad = None


@pytest.mark.parametrize("name", list(LOSSES))
def test_nan_propagates(name: str) -> None:
    s, rel = lists(b=2, n=6, seed=14)
    s[0, 2] = float("nan")
    got = LOSSES[name](s, rel, reduction="none")
    assert torch.isnan(got[0]) and torch.isfinite(got[1])
    assert torch.isnan(LOSSES[name](s, rel))


@pytest.mark.parametrize(
    "name",
    ["ndcg@3", pytest.param("map", marks=pytest.mark.slow),
     pytest.param("spearman", marks=pytest.mark.slow),
     pytest.param("kendall", marks=pytest.mark.slow), pytest.param("topk", marks=pytest.mark.slow)],
)  # fmt: skip
def test_compiles_without_graph_breaks(name: str) -> None:
    import torch._dynamo as dynamo

    s, rel = lists(b=3, n=8, seed=16)
    mask = torch.arange(8) < torch.tensor([[3], [8], [5]])

    def fn(t: torch.Tensor) -> torch.Tensor:
        return LOSSES[name](t, rel, mask=mask)

    dynamo.reset()
    assert dynamo.explain(fn)(s).graph_break_count == 0
    x = s.clone().requires_grad_(True)
    got = torch.compile(fn, backend="aot_eager")(x)
    torch.testing.assert_close(got, fn(s))
    got.backward()
    assert torch.isfinite(x.grad).all() and torch.all(x.grad[~mask] == 0)


# ------------------------------------------------------------------------------------------------
# reduction, undefined lists, layout
# ------------------------------------------------------------------------------------------------


def test_reduction_and_empty_target_action() -> None:
    s, rel = lists(b=3, n=6, seed=7)
    rel[1] = 0.0  # no relevant item
    none = L.ndcg_loss(s, rel, reduction="none")
    assert none[1] == 0
    torch.testing.assert_close(L.ndcg_loss(s, rel), (none[0] + none[2]) / 2)
    torch.testing.assert_close(L.ndcg_loss(s, rel, reduction="sum"), none.sum())
    neg = L.ndcg_loss(s, rel, empty_target_action="neg", reduction="none")
    assert neg[1] == 1
    torch.testing.assert_close(L.ndcg_loss(s, rel, empty_target_action="neg"), neg.mean())
    torch.testing.assert_close(L.ndcg_loss(s, rel, empty_target_action="pos"), none.mean())
    assert L.map_loss(s, rel, reduction="none")[1] == 0
    # constant target: correlation undefined
    assert L.spearman_loss(s, rel, reduction="none")[1] == 0
    assert L.kendall_loss(s, rel, empty_target_action="neg", reduction="none")[1] == 1
    zero = L.ndcg_loss(s, torch.zeros_like(rel))  # nothing defined: mean of nothing is 0
    assert zero == 0


def test_batch_layout() -> None:
    s, rel = lists(b=6, n=7, seed=8)
    flat = L.ndcg_loss(s, rel, k=3, reduction="none")
    got = L.ndcg_loss(s.reshape(2, 3, 7), rel.reshape(2, 3, 7), k=3, reduction="none")
    torch.testing.assert_close(got, flat.reshape(2, 3))
    one = L.ndcg_loss(s[0], rel[0], k=3, reduction="none")
    assert one.shape == () and torch.allclose(one, flat[0])


def test_float32_and_integer_relevance() -> None:
    s, rel = lists(b=2, n=5, seed=9)
    got = L.ndcg_loss(s.float(), rel.long(), reduction="none")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), L.ndcg_loss(s, rel, reduction="none"), atol=1e-5,
                               rtol=0)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


def test_bad_input() -> None:
    s, rel = lists(b=2, n=5)
    with pytest.raises(ValueError, match="shape"):
        L.ndcg_loss(s, rel[:, :4])
    with pytest.raises(ValueError, match="k must be >= 1"):
        L.ndcg_loss(s, rel, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        L.map_loss(s, rel, k=2.0)
    with pytest.raises(ValueError, match=r"k must be in \[1, n\]"):
        L.topk_mask(s, 6)
    with pytest.raises(ValueError, match="unknown mode"):
        L.spearman_loss(s, rel, mode="soft")
    with pytest.raises(ValueError, match="unknown method"):
        L.ndcg_loss(s, rel, method="bogus")
    with pytest.raises(ValueError, match="softness"):
        L.kendall_loss(s, rel, softness=0.0)
    with pytest.raises(ValueError, match="softness"):
        L.ndcg_loss(s, rel, softness=torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(ValueError, match="unknown reduction"):
        L.ndcg_loss(s, rel, reduction="avg")
    with pytest.raises(ValueError, match="unknown empty_target_action"):
        L.ndcg_loss(s, rel, empty_target_action="error!")
    with pytest.raises(ValueError, match="unknown gain"):
        L.ndcg_loss(s, rel, gain="log")
    with pytest.raises(ValueError, match="relevance must be >= 0"):
        L.ndcg_loss(s, -rel)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        L.spearman_loss(s, rel, weights=-torch.ones_like(s))
    with pytest.raises(ValueError, match="weights must have the shape"):
        L.kendall_loss(s, rel, weights=torch.ones(5))
    with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
        L.ndcg_loss(s, rel, mask=torch.ones_like(s))
    with pytest.raises(ValueError, match="does not broadcast"):
        L.ndcg_loss(s, rel, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one dimension"):
        L.ndcg_loss(s[0, 0], rel[0, 0])
    with pytest.raises(TypeError, match="complex"):
        L.spearman_loss(s.to(torch.complex128), rel)
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\]"):
        L.multilabel_topk_loss(s, rel, 2)


def test_exported_and_documented() -> None:
    assert st.losses is L and "losses" in st.__all__
    for name in L.__all__:
        doc = getattr(L, name).__doc__
        assert doc is not None and "Args:" in doc and "Example:" in doc, name


# ------------------------------------------------------------------------------------------------
# slow sweep: every ordering method
# ------------------------------------------------------------------------------------------------

ALL_METHODS = ["softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_sweep_methods(method: str, mode: str) -> None:
    s, rel = lists(b=3, n=10, seed=11)
    kw = {"mode": mode, "method": method, "reduction": "none"}
    for k in (None, 4):
        got = L.ndcg_loss(s, rel, k=k, softness=TINY, **kw)
        want = 1 - per_list(lambda a, b, k=k: ref.exact_ndcg(a, b, k, "exp2"), s, rel)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        got = L.ndcg_loss(s, rel, k=k, softness=0.5, **kw)
        want = 1 - per_list(
            lambda a, b, k=k: ref.soft_ndcg(a, b, k, "exp2", 0.5, mode, method), s, rel
        )
        torch.testing.assert_close(got, want)
        got = L.map_loss(s, rel, k=k, softness=0.5, **kw)
        want = 1 - per_list(lambda a, b, k=k: ref.soft_ap(a, b, k, 0.5, mode, method), s, rel)
        torch.testing.assert_close(got, want)
    got = L.map_loss(s, rel, softness=TINY, **kw)
    torch.testing.assert_close(got, 1 - per_list(ref.exact_ap, s, rel), atol=1e-5, rtol=0)
    got = L.spearman_loss(s, rel, softness=TINY, **kw)
    torch.testing.assert_close(got, 1 - per_list(ref.exact_spearman, s, rel), atol=1e-5, rtol=0)
    x = s.clone().requires_grad_(True)
    for name, fn in LOSSES.items():
        if name == "kendall":
            continue
        fn(x, rel, softness=0.5, method=method, mode=mode).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, name
        x.grad = None


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(name: str, dtype: torch.dtype) -> None:
    """Half inputs return half losses computed in float32 (a float16 pair count of 50 items
    would overflow: 2450^2 > 65504), equal to the float32 loss to the half's rounding."""
    s, rel = lists(b=4, n=50, seed=21)
    want = LOSSES[name](s.float(), rel.float(), reduction="none")
    x = s.to(dtype).requires_grad_(True)
    got = LOSSES[name](x, rel.to(dtype), reduction="none")
    assert got.dtype == dtype
    tol = 4e-3 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(got.float(), want, rtol=0, atol=tol)
    got.sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all()
    mask = L.topk_mask(s.to(dtype), 3)
    assert mask.dtype == dtype
