"""torchmetrics' functional API, unmodified, inside ``soft_mode`` (issue 16: soft integers).

For every metric of the matrix in :mod:`tests.interception.tm_cases` (random logits / scores that
require grad, fixed seeds):

* smooth mode: value and gradient finite, gradient nonzero;
* hard mode: bit for bit the plain call;
* softness 1e-5: within 0.02 of the exact value;
* confusion counts: the soft tp + fp + tn + fn (or the confusion-matrix total) equals N;
* exact shadow: every integer / bool tensor the metric returns, and every one the metric computes
  on the way (seen by a spying ``TorchFunctionMode``), equals plain torch's;
* independent formulas: the binary and multiclass soft confusion counts equal the sums of the
  mode's own Bernoulli / categorical probabilities (``softtorch.greater`` and the argmax's
  ``soft_index``), and the metrics built from them follow.

The metrics that cannot be relaxed run inside the mode and equal the plain value.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

import softtorch

from .tm_cases import CASES, NOT_RELAXABLE, TMF, Case, K, N, make_inputs

pytest.importorskip("torchmetrics")
import torchmetrics.functional.classification as TMC  # noqa: E402

IDS = [c.name for c in CASES]
SOFTNESS = 0.1


def _plain(t: Tensor) -> Tensor:
    """The tensor as a plain ``torch.Tensor`` (same storage, no relaxation on later ops)."""
    return t.as_subclass(torch.Tensor) if isinstance(t, softtorch.SoftTensor) else t


def _exact(t: Tensor) -> Tensor:
    """What exact code sees of ``t``: a SoftBool's / SoftIndex's hard result, else the data."""
    return t.hard() if isinstance(t, softtorch.SoftTensor) else t


def _as_float(out: Tensor) -> Tensor:
    """The floating view of a metric result; call inside the block (an integer count's ``.float()``
    is its soft value)."""
    return out if out.is_floating_point() else out.float()


def _weights(shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """Fixed positive weights: a constant total (tp + fp + tn + fn = N) must not hide gradients."""
    g = torch.Generator().manual_seed(123)
    return torch.rand(shape, generator=g, dtype=torch.float64).add(0.5).to(dtype)


def soft_eval(case: Case, x: Tensor, t: Tensor, softness: float) -> tuple[Tensor, Tensor]:
    """The metric and its floating view inside ``soft_mode("smooth", softness)``."""
    with softtorch.soft_mode("smooth", softness=softness):
        out = case.call(x, t)
        y = _as_float(out)
    return out, y


def grad_of(y: Tensor, x: Tensor) -> Tensor | None:
    assert y.requires_grad, "the result has no gradient path to the inputs"
    w = _weights(y.shape, y.dtype)
    (g,) = torch.autograd.grad((_plain(y) * w).sum(), x, allow_unused=True)
    return g


# -------------------------------------------------------------------------------- (a) smooth


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_smooth_value_and_gradient(case: Case) -> None:
    x, t = make_inputs(case.kind)
    _, y = soft_eval(case, x, t, SOFTNESS)
    assert torch.isfinite(_plain(y)).all(), "soft value not finite"
    g = grad_of(y, x)
    assert g is not None, "no gradient reaches the inputs"
    assert torch.isfinite(g).all(), "gradient not finite"
    assert (g != 0).any(), "gradient is zero everywhere"


# ---------------------------------------------------------------------------------- (b) hard


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hard_mode_is_bit_exact(case: Case) -> None:
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("hard"):
        hard = case.call(x, t)
    assert hard.dtype == plain.dtype
    assert torch.equal(_plain(hard).detach(), plain.detach())


# ------------------------------------------------------------------------ (c) tiny softness


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_converges_to_exact(case: Case) -> None:
    x, t = make_inputs(case.kind)
    exact = case.call(x, t).detach().double()
    _, y = soft_eval(case, x, t, 1e-5)
    err = (_plain(y).detach().double() - exact).abs().max().item()
    assert err <= 0.02, f"soft value at softness 1e-5 is {err:.3g} from the exact one"


# ----------------------------------------------------------------------- (d) counts sum to N

COUNT_CASES = [c for c in CASES if c.counts is not None]


@pytest.mark.parametrize("case", COUNT_CASES, ids=[c.name for c in COUNT_CASES])
def test_soft_counts_sum_to_n(case: Case) -> None:
    x, t = make_inputs(case.kind)
    _, y = soft_eval(case, x, t, SOFTNESS)
    assert case.counts is not None
    totals = case.counts(_plain(y).detach().double())
    torch.testing.assert_close(totals, torch.full_like(totals, float(N)), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------- (e) exact shadow


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_returned_integers_equal_plain(case: Case) -> None:
    """The result has torch's dtype; an integer / bool result equals torch's values."""
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        out = case.call(x, t)
    assert out.dtype == plain.dtype, f"dtype {out.dtype} inside the mode, {plain.dtype} plain"
    assert out.shape == plain.shape
    if not plain.is_floating_point():
        assert torch.equal(_exact(out), plain)


class _Spy(TorchFunctionMode):
    """Records the tensor results of every user-level torch call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[Tensor]]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
        self.calls.append((name, [o for o in outs if isinstance(o, Tensor)]))
        return out


def _spied(case: Case, x: Tensor, t: Tensor, mode: Any) -> list[tuple[str, list[Tensor]]]:
    spy = _Spy()
    with mode:
        with spy:
            case.call(x, t)
    return spy.calls


class _NoMode:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_observed_integer_equals_plain(case: Case) -> None:
    """Exact-shadow invariant along the way: the metric's code takes the same calls inside the
    mode, and each integer or bool tensor it computes equals the one plain torch computes."""
    x, t = make_inputs(case.kind)
    ref = _spied(case, x, t, _NoMode())
    got = _spied(case, x, t, softtorch.soft_mode("smooth", softness=SOFTNESS))
    names_ref, names_got = [n for n, _ in ref], [n for n, _ in got]
    if names_got != names_ref:  # e.g. a count that is float in the mode skips a `.float()`
        i = next((i for i, (a, b) in enumerate(zip(names_ref, names_got)) if a != b), None)
        i = min(len(names_ref), len(names_got)) if i is None else i
        raise AssertionError(
            f"the code took another path in the mode at call {i}: plain "
            f"{names_ref[max(i - 2, 0) : i + 2]}, in the mode {names_got[max(i - 2, 0) : i + 2]}"
        )
    for i, ((name, r_outs), (_, g_outs)) in enumerate(zip(ref, got)):
        for r, g in zip(r_outs, g_outs):
            if r.is_floating_point() or r.is_complex():
                continue
            e = _exact(g)
            ok = e.shape == r.shape and torch.equal(e.to(r.dtype), r)
            assert ok, f"call {i} ({name}): integer result differs from plain torch"
            if not (isinstance(g, softtorch.SoftTensor) and g.is_soft_bool):
                # a SoftBool keeps its soft values in a float tensor by design; any other
                # integer result must have torch's dtype
                assert g.dtype == r.dtype, f"call {i} ({name}): dtype {g.dtype}, plain {r.dtype}"


# ------------------------------------------------------- deterministic-algorithms path

BINCOUNT_CASES = [
    c
    for c in CASES
    if c.name
    in {"binary_confusion_matrix", "multiclass_confusion_matrix", "multilabel_confusion_matrix",
        "binary_matthews_corrcoef", "multiclass_accuracy"}
]  # fmt: skip


@pytest.mark.parametrize("case", BINCOUNT_CASES, ids=[c.name for c in BINCOUNT_CASES])
def test_deterministic_bincount_path_agrees(case: Case) -> None:
    """With ``torch.use_deterministic_algorithms(True)`` torchmetrics' ``_bincount`` counts by
    ``torch.eq(x[:, None], arange(minlength)).sum(0)`` instead of ``torch.bincount``: the soft
    counts (``==`` as probability mass) must be the same."""
    x, t = make_inputs(case.kind)
    _, y = soft_eval(case, x, t, SOFTNESS)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        _, y_det = soft_eval(case, x, t, SOFTNESS)
    finally:
        torch.use_deterministic_algorithms(prev)
    assert y_det.dtype == y.dtype
    torch.testing.assert_close(_plain(y_det).detach(), _plain(y).detach(), atol=1e-6, rtol=0)
    assert y_det.requires_grad


# ------------------------------------------------------------------ independent formulas


def _binary_soft_counts(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """tp, fp, tn, fn as sums of the Bernoulli probabilities P(sigmoid(x) > 0.5)."""
    p = softtorch.greater(x.sigmoid(), torch.tensor(0.5, dtype=x.dtype), softness=SOFTNESS)
    p = _plain(p).detach()
    tf = t.to(p.dtype)
    return (p * tf).sum(), (p * (1 - tf)).sum(), ((1 - p) * (1 - tf)).sum(), ((1 - p) * tf).sum()


BINARY_FORMULAS = {
    "binary_accuracy": lambda tp, fp, tn, fn: (tp + tn) / (tp + fp + tn + fn),
    "binary_precision": lambda tp, fp, tn, fn: tp / (tp + fp),
    "binary_recall": lambda tp, fp, tn, fn: tp / (tp + fn),
    "binary_specificity": lambda tp, fp, tn, fn: tn / (tn + fp),
    "binary_negative_predictive_value": lambda tp, fp, tn, fn: tn / (tn + fn),
    "binary_f1_score": lambda tp, fp, tn, fn: 2 * tp / (2 * tp + fp + fn),
    "binary_fbeta_score": lambda tp, fp, tn, fn: 5 * tp / (5 * tp + 4 * fn + fp),  # beta = 2
    "binary_jaccard_index": lambda tp, fp, tn, fn: tp / (tp + fp + fn),
    "binary_hamming_distance": lambda tp, fp, tn, fn: (fp + fn) / (tp + fp + tn + fn),
    "binary_matthews_corrcoef": lambda tp, fp, tn, fn: (
        (tp * tn - fp * fn) / ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).sqrt()
    ),
    "binary_stat_scores": lambda tp, fp, tn, fn: torch.stack([tp, fp, tn, fn, tp + fn]),
    "binary_confusion_matrix": lambda tp, fp, tn, fn: torch.stack([tn, fp, fn, tp]).view(2, 2),
}
FORMULA_CASES = [c for c in CASES if c.name in BINARY_FORMULAS]


@pytest.mark.parametrize("case", FORMULA_CASES, ids=[c.name for c in FORMULA_CASES])
def test_binary_metrics_follow_the_bernoulli_counts(case: Case) -> None:
    """A relaxed ``probs > 0.5`` is Bernoulli(p): tp = sum p t, fp = sum p (1 - t), ... and the
    metric is its formula of those soft counts (``==`` with the target is the probability mass)."""
    x, t = make_inputs(case.kind)
    _, y = soft_eval(case, x, t, SOFTNESS)
    want = BINARY_FORMULAS[case.name](*_binary_soft_counts(x, t))
    torch.testing.assert_close(_plain(y).detach().double(), want, atol=1e-5, rtol=1e-5)


def test_binary_cohen_kappa_follows_the_bernoulli_counts() -> None:
    x, t = make_inputs("binary")
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        k = TMC.binary_cohen_kappa(x.sigmoid(), t)
    tp, fp, tn, fn = _binary_soft_counts(x, t)
    n = tp + fp + tn + fn
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n**2
    torch.testing.assert_close(_plain(k).detach().double(), (po - pe) / (1 - pe), atol=1e-5, rtol=0)


def test_multiclass_confusion_matrix_is_the_sum_of_categoricals() -> None:
    """cm[t_i, c] = sum_i P(argmax_i = c); macro accuracy = mean_c cm[c, c] / sum_c' cm[c, c']."""
    x, t = make_inputs("multiclass")
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        probs = _plain(x.argmax(1).soft_index).detach()
        cm = TMC.multiclass_confusion_matrix(x, t, num_classes=4).float()
        acc = TMC.multiclass_accuracy(x, t, num_classes=4)
    want = torch.zeros(4, 4, dtype=torch.float64).index_add_(0, t, probs)
    torch.testing.assert_close(_plain(cm).detach().double(), want, atol=1e-5, rtol=0)
    macro = (want.diag() / want.sum(1)).mean()
    torch.testing.assert_close(_plain(acc).detach().double(), macro, atol=1e-5, rtol=0)


def test_retrieval_precision_is_the_expected_relevant_count() -> None:
    """precision@k = E[#relevant among the top k] / k, with torchmetrics' own filter (documents
    with score <= 0 count as irrelevant): sum over top-k slots j and documents d of
    P(slot j holds d) * P(score_d > 0) * target_d."""
    x, t = make_inputs("retrieval")
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        prec = TMF.retrieval_precision(x, t, top_k=K)
        xf = x.float()
        pos = _plain(xf > 0).detach().double()
        slots = _plain(xf.topk(K, dim=-1)[1].soft_index).detach().double()  # (K, n)
    want = (slots @ (pos * t.double())).sum() / K
    torch.testing.assert_close(_plain(prec).detach().double(), want, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------- not relaxable

NR_IDS = [c.name for c, _ in NOT_RELAXABLE]


@pytest.mark.parametrize("case,reason", NOT_RELAXABLE, ids=NR_IDS)
def test_not_relaxable_metrics_run_exactly(case: Case, reason: str) -> None:
    """These compute their curves under ``torch.no_grad()`` (AUROC / average precision) or index by
    ``nonzero`` / a boolean mask (variable-length results: retrieval average precision, reciprocal
    rank). Inside the mode they must run and give torch's exact value; a gradient is not
    expected (``reason`` is the documented cause)."""
    x, t = make_inputs(case.kind)
    plain = case.call(x, t)
    with softtorch.soft_mode("smooth", softness=SOFTNESS):
        out = case.call(x, t)
    assert out.dtype == plain.dtype
    assert torch.equal(_plain(out).detach(), plain.detach()), reason


# ----------------------------------------------------------------------------- sweeps


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("n", [16, 200])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sweep(case: Case, seed: int, n: int, dtype: torch.dtype) -> None:
    """(a), (b), (c) over seeds, sizes and dtypes."""
    x, t = make_inputs(case.kind, seed=seed, n=n if case.kind != "image" else 12, dtype=dtype)
    plain = case.call(x, t)
    with softtorch.soft_mode("hard"):
        hard = case.call(x, t)
    assert torch.equal(_plain(hard).detach(), plain.detach())
    _, y = soft_eval(case, x, t, SOFTNESS)
    assert torch.isfinite(_plain(y)).all()
    g = grad_of(y, x)
    assert g is not None and torch.isfinite(g).all() and (g != 0).any()
    _, y5 = soft_eval(case, x, t, 1e-5)
    err = (_plain(y5).detach().double() - plain.detach().double()).abs().max().item()
    assert err <= 0.02
