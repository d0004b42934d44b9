r"""Soft order statistics: drop-in relaxations of torch's sort, argsort, topk, max, min, median,
quantile and rank, plus ``argmedian`` / ``argquantile`` / ``rank``.

This module is the public face of the op layer; the ops live by family in
:mod:`.ops_sort` (``sort``, ``argsort``, ``rank``), :mod:`.ops_extreme` (``max``, ``min``,
``argmax``, ``argmin``), :mod:`.ops_topk` (``topk``) and :mod:`.ops_quantile` (``quantile``,
``argquantile``, ``median``, ``argmedian``), on the shared plumbing of :mod:`._common`.

Every op takes ``softness`` (> 0), ``mode`` (``hard``, ``smooth``, ``c0``, ``c1``, ``c2``) and
``method`` (``softsort``, ``neuralsort``, ``sorting_network``, ``fast_soft_sort`` (alias
``smooth_sort``), ``ot``). ``mode="hard"`` returns torch's values exactly, with indices as one-hot
soft indices. ``mode="_hard"`` is the compatibility mode of softtorch 0.1.1: each method's hard
limit (its hard permutation, by default the one-hot rows of the exact stable argsort; the hard
sort / rank for ``fast_soft_sort``) run through the soft code path (:mod:`._hard`), equal to
``"hard"`` up to float rounding.

**Standardization.** With ``standardize=True`` the methods act on
:math:`z = \sigma((x - \mu)/\sqrt{\mathrm{Var}(x) + 10^{-6}})` along ``dim``
(:mod:`softtorch.ordering._standardize`), so softness is scale-free.

**Soft indices.** An index-valued result is a *SoftIndex*: torch's integer result shape plus one
trailing axis of length ``n`` (the size of ``dim``) holding a distribution over positions
(``keepdim`` keeps a singleton at ``dim``). ``argsort`` of shape ``(..., n)`` along the last axis is
``(..., n, n)``, row ``i`` the distribution of the ``i``-th sorted element.

**Log-probabilities.** Every op that returns a SoftIndex (``argmax``, ``argmin``, ``argsort``,
``argmedian``, ``argquantile``, and the ``indices`` of ``sort``, ``topk``, ``max``, ``min``,
``median`` and ``quantile(..., return_argquantile=True)``) takes keyword-only
``return_log_probs=False`` and ``log_prob_eps=None``. ``return_log_probs=True`` returns
:math:`\log p` instead of :math:`p` (values are unchanged): computed in log space where a stable
form exists (``smooth`` softsort / neuralsort rows are ``log_softmax`` of their scores, so
``[1000, 0, -1000]`` gives finite log-probabilities instead of underflowing), exactly ``-inf``
where ``hard`` or a sparse mode (``c0``, and ``c1`` / ``c2`` outside the support) gives exact zeros;
gradients flow through the finite entries (zero gradient at ``-inf``). ``ot`` and
``sorting_network`` take the log of their (composed) probabilities, so entries that underflow
there become ``-inf``. ``log_prob_eps`` (a float in ``(0, 1/n)``, ``n`` the number of candidate
positions) clamps each distribution at ``eps`` and renormalises it,
:math:`p' = \max(p, \epsilon) / \sum_j \max(p_j, \epsilon)` (``logsumexp``-normalised in log space),
so no entry is below :math:`\epsilon / (1 + n\epsilon)`; it applies to the returned SoftIndex
with or without ``return_log_probs`` (``exp`` of the log result always equals the probability
result). Both options have no effect when no SoftIndex is returned.

**Values.** For ``softsort``, ``neuralsort`` and ``ot`` values are expectations under the soft index
(``P @ x`` on the original ``x``; ``gated_grad=False`` detaches ``P`` so values get gradients only
through ``x``). ``fast_soft_sort`` and ``sorting_network`` compute sorted values directly (in ``z``
space, mapped back by :math:`\mathrm{logit}(v)\,\sigma_x + \mu`); ``gated_grad`` does not apply to
them. ``sort`` returns ``indices=None`` for these two methods (as the published package does; use
``argsort(..., method="sorting_network")`` for its soft permutation) and when
``return_indices=False`` (which never materialises ``n x n`` matrices for softsort / neuralsort).

**dim.** ``dim=None`` flattens the input for ``argmax``, ``argmin``, ``max``, ``min``, ``rank``,
``median``, ``argmedian``, ``quantile`` and ``argquantile`` (``rank`` then returns the flat ranks,
like ``numpy.argsort(axis=None)``); for ``sort``, ``argsort`` and ``topk`` it means the last dim.

**mask.** Every op takes keyword-only ``mask=`` (bool, broadcastable to ``x``, True at real
entries) for lists of different lengths padded to one length: each slice's result is the op on
its real entries alone, padded entries get zero probability and zero gradient, and padded output
positions get fixed fills (rules and mechanism: :mod:`._mask`, :mod:`._masked`).

Half-precision inputs are computed in float32 and returned in their dtype; integer inputs are
promoted to the default float dtype. Empty reductions raise like torch. Under ``torch.autocast``
the ops run with autocast disabled (their matmuls would otherwise drop to bfloat16 / float16), so
like torch's sort / max / quantile they return the input dtype, computed in float32 or better.
"""

from __future__ import annotations

from ._common import SoftIndex
from .ops_extreme import argmax, argmin, max, min
from .ops_quantile import argmedian, argquantile, median, quantile
from .ops_sort import argsort, rank, sort
from .ops_topk import topk

__all__ = [
    "SoftIndex",
    "argmax",
    "argmedian",
    "argmin",
    "argquantile",
    "argsort",
    "max",
    "median",
    "min",
    "quantile",
    "rank",
    "sort",
    "topk",
]
