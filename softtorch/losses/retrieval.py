r"""Retrieval losses on soft ranks: ``ndcg_loss`` (1 - NDCG@k) and ``map_loss`` (1 - AP@k).

Both replace the integer rank :math:`\pi_i` (1 = top) of item :math:`i` by its soft rank
:math:`r_i` (:func:`softtorch.rank`, descending, default method ``fast_soft_sort``: an
:math:`O(n \log n)` permutahedron projection, so a list of 10,000 items costs no
:math:`n \times n` matrix) and the cutoff :math:`\mathbb{1}[\pi_i \le k]` by the soft cutoff
:math:`c_k(r_i)` of :mod:`softtorch.losses._common`. As softness -> 0 the soft ranks become the
exact ranks and each loss becomes one minus the exact metric.

**NDCG.** With gains :math:`g_i = 2^{y_i} - 1` (``gain="exp2"``, Burges et al.) or
:math:`g_i = y_i` (``gain="linear"``, torchmetrics' convention) and discount
:math:`d(r) = 1 / \log_2(1 + r)`:

.. math::

    \mathrm{DCG@k} = \sum_i g_i\, d(r_i)\, c_k(r_i), \qquad
    \mathrm{IDCG@k} = \sum_{j=1}^{n} g_{(j)}\, d(j)\, c_k(j),

where :math:`g_{(1)} \ge g_{(2)} \ge \dots` are the gains sorted (the ideal order, computed
exactly from the relevance, without gradient). The ideal uses the same cutoff weights at the
integer positions, so a perfect hard ranking has NDCG exactly 1 at every cutoff width; as the
width -> 0 both are the exact DCG@k / IDCG@k. ``loss = 1 - DCG@k / IDCG@k``. Because
:math:`d` is convex and the soft ranks of ``fast_soft_sort`` lie in the permutahedron (the convex
hull of the permutations of :math:`1..n`), DCG without cutoff never exceeds IDCG, so the loss is
in ``[0, 1]``.

**Average precision.** With binary relevance :math:`R = \{i : y_i > 0\}`, the precision at the
rank of a relevant item is :math:`|\{j \in R : \pi_j \le \pi_i\}| / \pi_i`, and the numerator is
the rank of :math:`i` among the relevant items alone. So, with :math:`r^R_i` the soft rank of
:math:`i` among the relevant items (:func:`softtorch.rank` with ``mask`` = relevant; again
:math:`O(n \log n)`, no pairwise matrix):

.. math::

    \mathrm{AP} = \frac{1}{|R|} \sum_{i \in R} \frac{r^R_i}{r_i}, \qquad
    \mathrm{AP@k} = \frac{\sum_{i \in R} (r^R_i / r_i)\, c_k(r_i)}{\sum_{j=1}^{|R|} c_k(j)}.

Without ``k`` this is torchmetrics' ``retrieval_average_precision``. With ``k`` the normaliser
is the numerator of a perfect hard ranking (relevant items at ranks :math:`1..|R|`), which tends
to :math:`\min(|R|, k)` (the number of relevant items a perfect top-k can hold; torchmetrics
divides by the number of relevant items that made the top k instead) as the width -> 0.

**Softness.** The default ``softness=1.0`` is softer than the ordering ops' 0.1: a loss needs
soft ranks to have a gradient (``fast_soft_sort`` ranks are piecewise linear in the scores, with
a zero Jacobian wherever no two items are pooled, which at softness 0.1 is almost everywhere).
"""

from __future__ import annotations

import torch

from .._checks import check_choice
from .._sigmoidal import SoftnessLike
from ._common import (
    check_cutoff_k,
    check_lists,
    check_options,
    check_values,
    cutoff,
    cutoff_width,
    longer_than,
    out_dtype,
    reduce_queries,
    safe_div,
    soft_ranks,
)

GAINS: tuple[str, ...] = ("exp2", "linear")

__all__ = ["map_loss", "ndcg_loss"]


def _discount(r: torch.Tensor) -> torch.Tensor:
    return 1.0 / torch.log2(1.0 + r)


def _check_relevance(relevance: torch.Tensor, mask: torch.Tensor) -> None:
    check_values((relevance < 0) & mask, "relevance must be >= 0 on the real (unmasked) entries")


def ndcg_loss(
    scores: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int | None = None,
    softness: SoftnessLike = 1.0,
    mode: str = "smooth",
    method: str = "fast_soft_sort",
    gain: str = "exp2",
    reduction: str = "mean",
    empty_target_action: str = "skip",
    cutoff_softness: SoftnessLike | None = None,
    standardize: bool = True,
) -> torch.Tensor:
    r"""Soft NDCG loss :math:`1 - \mathrm{DCG@k} / \mathrm{IDCG@k}` per list (see the module
    docstring for the formulas), reduced over the lists.

    Lists lie along the last axis of ``scores`` ``(..., n)``. Equals 1 - the exact NDCG@k as
    softness -> 0 (``mode="hard"``: exactly, without gradient). The relevance gets no gradient.

    Args:
        scores: predicted scores ``(..., n)``; higher is ranked first.
        relevance: graded relevance labels ``>= 0``, same shape as ``scores``.
        mask: bool, broadcastable to ``scores``, ``True`` = a real entry; each list is ranked
            among its real entries only and padded entries get zero gradient. None: all real.
        k: the cutoff (NDCG@k), an int ``>= 1``; None, or at least a list's number of real
            entries: the full list.
        softness: softness of the soft ranks (> 0; see the module docstring for the default).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2`` (the ranks' and the cutoff's).
        method: the ordering method of :func:`softtorch.rank` (default ``fast_soft_sort``,
            :math:`O(n \log n)`).
        gain: ``"exp2"`` (:math:`2^y - 1`) or ``"linear"`` (:math:`y`).
        reduction: ``"mean"`` (over the lists with a defined NDCG), ``"sum"`` or ``"none"``
            (shape ``scores.shape[:-1]``).
        empty_target_action: lists without a relevant entry (IDCG = 0): ``"skip"`` (loss 0,
            left out of the mean), ``"neg"`` (loss 1) or ``"pos"`` (loss 0, counted).
        cutoff_softness: width of the soft cutoff :math:`c_k` in rank units (default
            ``softness * k``).
        standardize: standardize the scores of each list before ranking (see
            :func:`softtorch.rank`).

    Example:
        >>> scores = torch.tensor([[0.1, 0.2, 0.3, 4.0, 70.0]])
        >>> relevance = torch.tensor([[10.0, 0.0, 0.0, 1.0, 5.0]])
        >>> ndcg_loss(scores, relevance, mode="hard", gain="linear")
        tensor(0.3043)
    """
    mode_, softness_ = check_options(mode, softness, reduction, empty_target_action)
    x, rel, mask_ = check_lists(scores, relevance, mask, ("scores", "relevance"))
    kk = check_cutoff_k(k)
    n = x.shape[-1]
    if kk is not None and kk >= n:
        kk = None
    g_choice = check_choice(gain, GAINS, "gain")
    rel = rel.detach()
    _check_relevance(rel, mask_)
    g = torch.exp2(rel) - 1.0 if g_choice == "exp2" else rel
    g = torch.where(mask_, g, 0.0)

    r = soft_ranks(x, mask_, softness_, mode_, method, standardize)
    w = _discount(r)
    pos = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    iw = _discount(pos)
    if kk is not None:
        width = cutoff_width(cutoff_softness, softness_, kk)
        active = longer_than(mask_, kk)
        w = w * cutoff(kk + 0.5 - r, width, mode_, active)
        iw = iw * cutoff(kk + 0.5 - pos, width, mode_, active)
    dcg = torch.where(mask_, g * w, 0.0).sum(-1)
    ideal = torch.sort(g, dim=-1, descending=True).values
    idcg = (ideal * iw).sum(-1)
    defined = ~(idcg <= 0)  # NaN propagates instead of counting as undefined
    loss = 1.0 - safe_div(dcg, idcg, defined)
    return reduce_queries(loss, defined, reduction, empty_target_action, out_dtype(scores))


def map_loss(
    scores: torch.Tensor,
    relevance: torch.Tensor,
    mask: torch.Tensor | None = None,
    k: int | None = None,
    softness: SoftnessLike = 1.0,
    mode: str = "smooth",
    method: str = "fast_soft_sort",
    reduction: str = "mean",
    empty_target_action: str = "skip",
    cutoff_softness: SoftnessLike | None = None,
    standardize: bool = True,
) -> torch.Tensor:
    r"""Soft average-precision loss :math:`1 - \mathrm{AP@k}` per list (formula in the module
    docstring); with ``reduction="mean"`` this is 1 - MAP.

    Equals 1 - the exact AP (torchmetrics' ``retrieval_average_precision`` without ``k``) as
    softness -> 0. Costs two soft ranks per list (all real entries, and the relevant ones).

    Args:
        scores: predicted scores ``(..., n)``; higher is ranked first.
        relevance: relevance labels, same shape; an entry is relevant when its label is ``> 0``.
        mask: bool, broadcastable to ``scores``, ``True`` = a real entry (padded entries are
            never relevant and get zero gradient). None: all real.
        k: the cutoff (AP@k, normalised by its value for a perfect ranking, which tends to
            :math:`\min(|R|, k)`), an int ``>= 1``; None, or at least a list's number of real
            entries: the full list.
        softness: softness of the soft ranks (> 0).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2``.
        method: the ordering method of :func:`softtorch.rank` (default ``fast_soft_sort``).
        reduction: ``"mean"`` (over the lists with a relevant entry), ``"sum"`` or ``"none"``.
        empty_target_action: lists without a relevant entry: ``"skip"`` (loss 0, left out of the
            mean), ``"neg"`` (loss 1) or ``"pos"`` (loss 0, counted).
        cutoff_softness: width of the soft cutoff in rank units (default ``softness * k``).
        standardize: standardize the scores of each list (and of its relevant entries) before
            ranking.

    Example:
        >>> scores = torch.tensor([[0.2, 0.3, 0.5]])
        >>> relevant = torch.tensor([[1.0, 0.0, 1.0]])
        >>> map_loss(scores, relevant, mode="hard")
        tensor(0.1667)
    """
    mode_, softness_ = check_options(mode, softness, reduction, empty_target_action)
    x, rel, mask_ = check_lists(scores, relevance, mask, ("scores", "relevance"))
    kk = check_cutoff_k(k)
    n = x.shape[-1]
    if kk is not None and kk >= n:
        kk = None
    relevant = (rel.detach() > 0) & mask_
    count = relevant.sum(-1).to(x.dtype)
    defined = count > 0
    r = soft_ranks(x, mask_, softness_, mode_, method, standardize)
    # rank among the relevant items; lists without any are all-padded here (undefined anyway)
    r_rel = soft_ranks(x, relevant, softness_, mode_, method, standardize)
    prec = r_rel / r
    if kk is not None:
        width = cutoff_width(cutoff_softness, softness_, kk)
        active = longer_than(mask_, kk)
        prec = prec * cutoff(kk + 0.5 - r, width, mode_, active)
        pos = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
        ideal = cutoff(kk + 0.5 - pos, width, mode_, active)  # relevant items at 1..|R|
        count = torch.where(pos <= count.unsqueeze(-1), ideal, 0.0).sum(-1)
    ap = safe_div(torch.where(relevant, prec, 0.0).sum(-1), count, defined)
    return reduce_queries(1.0 - ap, defined, reduction, empty_target_action, out_dtype(scores))
