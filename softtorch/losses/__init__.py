r"""Ranking and top-k losses on soft ranks, for lists of any (padded) length.

Every loss takes lists along the last axis, ``(..., n)``, an optional ``mask`` (bool,
broadcastable, ``True`` = a real entry) for padded batches of lists of different lengths, and the
ordering options of :func:`softtorch.rank` (``softness``, ``mode``, ``method``, default
``fast_soft_sort``: :math:`O(n \log n)` per list, no :math:`n \times n` matrix). Each loss is
``1 - metric`` with the metric's integer ranks replaced by soft ranks, and equals ``1 - `` the
exact metric as softness -> 0 (exactly, without gradient, in ``mode="hard"``).

* :func:`ndcg_loss`, :func:`map_loss` (:mod:`.retrieval`): 1 - NDCG@k, 1 - AP@k.
* :func:`spearman_loss`, :func:`kendall_loss` (:mod:`.correlation`): 1 - Spearman's rho,
  1 - Kendall's tau, with optional per-item weights.
* :func:`topk_mask`, :func:`multilabel_topk_loss` (:mod:`.topk`): soft top-k membership of each
  entry and 1 - soft top-k recall for targets with several positive classes.

Shared conventions (mask semantics, the soft rank cutoff :math:`c_k` of the ``@k`` metrics, the
``reduction`` and ``empty_target_action`` rules for lists whose metric is undefined) are in
:mod:`softtorch.losses._common`.
"""

from __future__ import annotations

from .correlation import kendall_loss, spearman_loss
from .retrieval import map_loss, ndcg_loss
from .topk import multilabel_topk_loss, topk_mask

__all__ = [
    "kendall_loss",
    "map_loss",
    "multilabel_topk_loss",
    "ndcg_loss",
    "spearman_loss",
    "topk_mask",
]
