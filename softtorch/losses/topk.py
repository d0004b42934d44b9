r"""Soft top-k membership and a multi-label top-k loss, from the soft rank.

**Membership.** Item :math:`i` is in the top ``k`` when its descending rank is at most ``k``; on
the soft rank :math:`r_i` (:func:`softtorch.rank`, any method and mode) the membership is the soft
cutoff of :mod:`softtorch.losses._common`,

.. math:: m_i = c_k(r_i) = \mathrm{sigmoidal}(k + \tfrac12 - r_i,\ \tau,\ \mathrm{mode})
    \in [0, 1],

exactly the 0/1 top-k indicator in ``hard`` mode and its limit as softness -> 0. Unlike the column
sums of a soft top-k permutation (``softtorch.topk(...).indices.sum(-2)``), it needs no
``k x n`` matrix and works for the value-only methods (``fast_soft_sort``, :math:`O(n \log n)`).
:math:`\sum_i m_i` is about ``k`` but not exactly ``k`` for soft ranks.

**Multi-label top-k loss.** For a target :math:`y \in [0, 1]^n` with several positive classes
(multi-hot), the soft top-k recall is

.. math:: \mathrm{recall@k} = \frac{\sum_i y_i m_i}{\sum_{j=1}^{n} y_{(j)}\, c_k(j)},

with :math:`y_{(1)} \ge y_{(2)} \ge \dots` the sorted targets: the denominator is the numerator
of a perfect hard ranking (positives first), so a perfect ranking scores exactly 1, and it tends
to :math:`\min(\sum_i y_i, k)` for multi-hot targets as the width -> 0. So recall@k is the
fraction of the positives that a top-k prediction can hold which it does hold (1 when the k
highest scores cover all positives, or are all positive when there are more than k). The loss is
``1 - recall@k``; as softness -> 0 it equals 1 - torchmetrics' ``retrieval_recall(top_k=k)``
when :math:`\sum_i y_i \le k` and 1 - the exact capped recall otherwise.

The default ``softness=1.0`` (as for every loss of :mod:`softtorch.losses`) is softer than the
ordering ops' 0.1: at 0.1 ``fast_soft_sort`` ranks are almost hard and have almost no gradient.
"""

from __future__ import annotations

import torch

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

__all__ = ["multilabel_topk_loss", "topk_mask"]


def _membership(
    x: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    softness: SoftnessLike,
    mode: str,
    method: str,
    cutoff_softness: SoftnessLike | None,
    standardize: bool,
) -> torch.Tensor:
    r = soft_ranks(x, mask, softness, mode, method, standardize)
    width = cutoff_width(cutoff_softness, softness, k)
    m = cutoff(k + 0.5 - r, width, mode, longer_than(mask, k))
    return torch.where(mask, m, 0.0)


def topk_mask(
    scores: torch.Tensor,
    k: int,
    mask: torch.Tensor | None = None,
    softness: SoftnessLike = 1.0,
    mode: str = "smooth",
    method: str = "fast_soft_sort",
    cutoff_softness: SoftnessLike | None = None,
    standardize: bool = True,
) -> torch.Tensor:
    r"""Soft top-k membership :math:`m_i = c_k(r_i) \in [0, 1]` of every entry along the last axis
    (formula in the module docstring); ``mode="hard"`` gives the exact top-k indicator (ties
    broken like :func:`softtorch.rank`).

    Args:
        scores: scores ``(..., n)``.
        k: how many entries are selected, ``1 <= k <= n``; a padded list with fewer than ``k``
            real entries has all of them selected.
        mask: bool, broadcastable to ``scores``, ``True`` = a real entry; padded entries get
            membership 0 and zero gradient. None: all real.
        softness: softness of the soft ranks (> 0).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2`` (ranks and cutoff).
        method: the ordering method of :func:`softtorch.rank` (default ``fast_soft_sort``).
        cutoff_softness: width of the cutoff in rank units (default ``softness * k``).
        standardize: standardize each list before ranking (see :func:`softtorch.rank`).

    Returns:
        Membership values in ``[0, 1]``, the shape of ``scores``.

    Example:
        >>> topk_mask(torch.tensor([0.1, 3.0, -1.0, 2.0]), 2, mode="hard")
        tensor([0., 1., 0., 1.])
    """
    mode_, softness_ = check_options(mode, softness, "none", "skip")
    x, _, mask_ = check_lists(scores, scores, mask, ("scores", "scores"))
    kk = check_cutoff_k(k, x.shape[-1], allow_none=False)
    assert kk is not None
    out = _membership(x, mask_, kk, softness_, mode_, method, cutoff_softness, standardize)
    dtype = out_dtype(scores)
    return out if dtype is None else out.to(dtype)


def multilabel_topk_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    k: int,
    mask: torch.Tensor | None = None,
    softness: SoftnessLike = 1.0,
    mode: str = "smooth",
    method: str = "fast_soft_sort",
    reduction: str = "mean",
    empty_target_action: str = "skip",
    cutoff_softness: SoftnessLike | None = None,
    standardize: bool = True,
) -> torch.Tensor:
    r"""Multi-label top-k loss :math:`1 - \mathrm{recall@k}` per sample: the soft top-k recall
    :math:`\sum_i y_i m_i`, normalised by its value for a perfect ranking (formula in the module
    docstring; the normaliser tends to :math:`\min(\sum_i y_i, k)`).

    Args:
        scores: class scores (logits) ``(..., n)``, one sample per leading index.
        target: multi-hot targets in ``[0, 1]`` (bool or float), same shape.
        k: the size of the predicted set, ``1 <= k <= n``.
        mask: bool, broadcastable to ``scores``, ``True`` = a real entry (class). None: all real.
        softness: softness of the soft ranks (> 0).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2``.
        method: the ordering method of :func:`softtorch.rank` (default ``fast_soft_sort``).
        reduction: ``"mean"`` (over the samples with a positive class), ``"sum"`` or ``"none"``.
        empty_target_action: samples without a positive class: ``"skip"`` (loss 0, left out of
            the mean), ``"neg"`` (loss 1) or ``"pos"`` (loss 0, counted).
        cutoff_softness: width of the cutoff in rank units (default ``softness * k``).
        standardize: standardize each sample's scores before ranking.

    Example:
        >>> scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        >>> target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
        >>> multilabel_topk_loss(scores, target, 2, mode="hard")
        tensor(0.5000)
    """
    mode_, softness_ = check_options(mode, softness, reduction, empty_target_action)
    x, y, mask_ = check_lists(scores, target, mask, ("scores", "target"))
    kk = check_cutoff_k(k, x.shape[-1], allow_none=False)
    assert kk is not None
    y = torch.where(mask_, y.detach(), 0.0)
    check_values((y < 0) | (y > 1), "target must be in [0, 1] (multi-hot labels)")
    m = _membership(x, mask_, kk, softness_, mode_, method, cutoff_softness, standardize)
    pos = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    width = cutoff_width(cutoff_softness, softness_, kk)
    ideal = cutoff(kk + 0.5 - pos, width, mode_, longer_than(mask_, kk))
    best = (torch.sort(y, dim=-1, descending=True).values * ideal).sum(-1)
    defined = y.sum(-1) > 0
    recall = safe_div((y * m).sum(-1), best, defined)
    return reduce_queries(1.0 - recall, defined, reduction, empty_target_action, out_dtype(scores))
