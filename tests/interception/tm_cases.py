"""The torchmetrics matrix of issue 16: each functional metric as one call on generated inputs.

Shared by ``test_torchmetrics.py``, ``scripts/torchmetrics_table.py`` and ``benchmarks/
bench_metrics.py``. A case is a metric call ``call(x, target)`` where ``x`` is the leaf that
requires grad (logits, scores or an image) and ``target`` the labels; the call makes the
predictions from ``x`` itself (``sigmoid`` for binary / multilabel probabilities), so the whole
path from the leaf runs inside the block under test. The morphology cases are written the way
image libraries write them (kornia's "unfold" path): pad with ``-inf``, take windows with
``unfold``, add a structuring-element neighbourhood (0 inside, ``-inf`` outside) and take the max.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

try:
    import torchmetrics.functional.classification as TMC
    import torchmetrics.functional.regression as TMG
    import torchmetrics.functional.retrieval as TMF
except ModuleNotFoundError:  # pragma: no cover - the test extra pins torchmetrics
    TMF = TMC = TMG = None

C = 4  # classes
L = 3  # labels
K = 5  # retrieval top_k
N = 64  # samples
R = 32  # retrieval documents of the query


@dataclass(frozen=True)
class Case:
    """One metric call of the matrix.

    Args:
        name: the test id (the torchmetrics function name plus variant).
        kind: the input generator (``binary``, ``multiclass``, ``multiclass_md``, ``multilabel``,
            ``retrieval``, ``graded``, ``rank``, ``image``).
        call: ``call(x, target)`` -> the metric.
        counts: for confusion counts: the number of samples the soft counts must sum to, per
            row of ``count_rows(out)``; None for other metrics.
    """

    name: str
    kind: str
    call: Callable[[Tensor, Tensor], Tensor]
    counts: Callable[[Tensor], Tensor] | None = None


# ---------------------------------------------------------------- morphology, kornia style


def _neighbourhood(se: Tensor) -> Tensor:
    """0 where the structuring element is on, -inf elsewhere (a flat structuring element)."""
    return torch.where(se > 0, 0.0, float("-inf")).to(torch.float64)


def dilation(image: Tensor, se: Tensor) -> Tensor:
    """Grey dilation of ``image`` (B, C, H, W) by the flat structuring element ``se`` (kh, kw):
    ``max`` over each window of the ``-inf``-padded image plus the neighbourhood."""
    kh, kw = se.shape
    padded = F.pad(image, (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2), value=float("-inf"))
    windows = padded.unfold(2, kh, 1).unfold(3, kw, 1)  # (B, C, H, W, kh, kw)
    nb = _neighbourhood(se).to(image.dtype).flip((0, 1))
    out, _ = torch.max(windows + nb, 4)
    out, _ = torch.max(out, 4)
    return out


def erosion(image: Tensor, se: Tensor) -> Tensor:
    """Grey erosion: ``-dilation(-image)`` with the reflected element."""
    return -dilation(-image, se.flip((0, 1)))


def opening(image: Tensor, se: Tensor) -> Tensor:
    """Opening: dilation of the erosion."""
    return dilation(erosion(image, se), se)


CROSS = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


# --------------------------------------------------------------------------------- inputs


#: Default size per input kind: samples, documents of the query, or the image side.
SIZES = {"retrieval": R, "graded": R, "image": 8}


def make_inputs(
    kind: str, seed: int = 0, n: int | None = None, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """The leaf ``x`` (requires grad) and the target of a case kind, from a fixed seed.

    Args:
        kind: the case kind (see :class:`Case`).
        seed: generator seed.
        n: samples (classification, rank), documents (retrieval) or image side; None: the
            default of the kind (:data:`SIZES`, else :data:`N`).
        dtype: floating dtype of the leaf.
    """
    n = n if n is not None else SIZES.get(kind, N)
    g = torch.Generator().manual_seed(seed)
    if kind == "binary":
        x = torch.randn(n, generator=g, dtype=dtype)
        t = (torch.rand(n, generator=g) < 0.4).long()
        x = x + 0.8 * t  # informative but imperfect
    elif kind == "multiclass":
        t = torch.randint(0, C, (n,), generator=g)
        x = torch.randn(n, C, generator=g, dtype=dtype) + F.one_hot(t, C).to(dtype)
    elif kind == "multiclass_md":  # (N, C, M) for exact match over the extra dim
        t = torch.randint(0, C, (n, 3), generator=g)
        x = torch.randn(n, C, 3, generator=g, dtype=dtype)
        x = x + 2.0 * F.one_hot(t, C).to(dtype).permute(0, 2, 1)
    elif kind == "multilabel":
        t = (torch.rand(n, L, generator=g) < 0.4).long()
        x = torch.randn(n, L, generator=g, dtype=dtype) + 0.8 * t
    elif kind == "retrieval":
        t = (torch.rand(n, generator=g) < 0.3).long()
        x = torch.randn(n, generator=g, dtype=dtype) + t
    elif kind == "graded":
        t = torch.randint(0, 4, (n,), generator=g)
        x = torch.randn(n, generator=g, dtype=dtype) + 0.5 * t
    elif kind == "rank":
        x = torch.randn(n, generator=g, dtype=dtype)
        t = x + torch.randn(n, generator=g, dtype=dtype)
    elif kind == "image":
        x = torch.rand(2, 1, n, n, generator=g, dtype=dtype)
        t = CROSS
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return x.requires_grad_(True), t


# ---------------------------------------------------------------------------------- cases


def _per_class(cm: Tensor) -> Tensor:
    """tp + fp + tn + fn per class of a stat-scores result ``(..., 5)``."""
    return cm[..., :4].sum(-1)


def _total(cm: Tensor) -> Tensor:
    """The sum of a confusion matrix ``(2, 2)``, ``(C, C)`` or ``(L, 2, 2)`` per matrix."""
    return cm.flatten(-2).sum(-1)


def _cases() -> list[Case]:
    if TMC is None:
        return []
    cases: list[Case] = []

    def sig(x: Tensor) -> Tensor:
        return x.sigmoid()

    families = [
        "accuracy", "precision", "recall", "f1_score", "fbeta_score", "specificity",
        "jaccard_index", "matthews_corrcoef", "cohen_kappa", "hamming_distance",
        "negative_predictive_value",
    ]  # fmt: skip
    for fam in families:
        extra = {"beta": 2.0} if fam == "fbeta_score" else {}
        b = getattr(TMC, f"binary_{fam}")
        mc = getattr(TMC, f"multiclass_{fam}")
        ml = getattr(TMC, f"multilabel_{fam}", None)  # torchmetrics has no multilabel kappa
        cases.append(Case(f"binary_{fam}", "binary", lambda x, t, f=b, e=extra: f(sig(x), t, **e)))
        cases.append(
            Case(f"multiclass_{fam}", "multiclass",
                 lambda x, t, f=mc, e=extra: f(x, t, num_classes=C, **e))
        )  # fmt: skip
        if ml is not None:
            cases.append(
                Case(f"multilabel_{fam}", "multilabel",
                     lambda x, t, f=ml, e=extra: f(sig(x), t, num_labels=L, **e))
            )  # fmt: skip
    cases += [
        Case("binary_stat_scores", "binary",
             lambda x, t: TMC.binary_stat_scores(sig(x), t), _per_class),
        Case("multiclass_stat_scores", "multiclass",
             lambda x, t: TMC.multiclass_stat_scores(x, t, num_classes=C, average=None),
             _per_class),
        Case("multilabel_stat_scores", "multilabel",
             lambda x, t: TMC.multilabel_stat_scores(sig(x), t, num_labels=L, average=None),
             _per_class),
        Case("binary_confusion_matrix", "binary",
             lambda x, t: TMC.binary_confusion_matrix(sig(x), t), _total),
        Case("multiclass_confusion_matrix", "multiclass",
             lambda x, t: TMC.multiclass_confusion_matrix(x, t, num_classes=C), _total),
        Case("multilabel_confusion_matrix", "multilabel",
             lambda x, t: TMC.multilabel_confusion_matrix(sig(x), t, num_labels=L), _total),
        Case("multiclass_exact_match", "multiclass_md",
             lambda x, t: TMC.multiclass_exact_match(x, t, num_classes=C)),
        Case("multilabel_exact_match", "multilabel",
             lambda x, t: TMC.multilabel_exact_match(sig(x), t, num_labels=L)),
        Case("multiclass_accuracy_top3", "multiclass",
             lambda x, t: TMC.multiclass_accuracy(x, t, num_classes=C, top_k=3)),
        Case("retrieval_precision", "retrieval",
             lambda x, t: TMF.retrieval_precision(x, t, top_k=K)),
        Case("retrieval_recall", "retrieval",
             lambda x, t: TMF.retrieval_recall(x, t, top_k=K)),
        Case("retrieval_fall_out", "retrieval",
             lambda x, t: TMF.retrieval_fall_out(x, t, top_k=K)),
        Case("retrieval_hit_rate", "retrieval",
             lambda x, t: TMF.retrieval_hit_rate(x, t, top_k=K)),
        Case("retrieval_r_precision", "retrieval",
             lambda x, t: TMF.retrieval_r_precision(x, t)),
        Case("retrieval_normalized_dcg", "graded",
             lambda x, t: TMF.retrieval_normalized_dcg(x, t, top_k=K)),
        Case("spearman_corrcoef", "rank", lambda x, t: TMG.spearman_corrcoef(x, t)),
        Case("kendall_rank_corrcoef", "rank", lambda x, t: TMG.kendall_rank_corrcoef(x, t)),
        Case("dilation", "image", dilation),
        Case("erosion", "image", erosion),
        Case("opening", "image", opening),
    ]  # fmt: skip
    return cases


#: The relaxable matrix.
CASES: list[Case] = _cases()

#: Metrics that run inside the mode but cannot be relaxed, with the reason (docs/coverage.md).
NOT_RELAXABLE: list[tuple[Case, str]] = (
    []
    if TMC is None
    else [
        (Case("binary_auroc", "binary", lambda x, t: TMC.binary_auroc(x.sigmoid(), t)),
         "the ROC curve is computed under torch.no_grad()"),
        (Case("binary_average_precision", "binary",
              lambda x, t: TMC.binary_average_precision(x.sigmoid(), t)),
         "the precision-recall curve is computed under torch.no_grad()"),
        (Case("retrieval_average_precision", "retrieval",
              lambda x, t: TMF.retrieval_average_precision(x, t)),
         "positions of the relevant documents by boolean-mask indexing (variable length)"),
        (Case("retrieval_reciprocal_rank", "retrieval",
              lambda x, t: TMF.retrieval_reciprocal_rank(x, t)),
         "the first relevant position comes from nonzero() (variable length)"),
    ]
)  # fmt: skip
