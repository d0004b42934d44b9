r"""Rank-correlation losses: ``spearman_loss`` (1 - Spearman's rho) and ``kendall_loss``
(1 - Kendall's tau), with optional per-item weights.

**Spearman.** :math:`\rho` is the Pearson correlation of the ranks. The predictions' ranks are
soft (:func:`softtorch.rank`, ascending, default ``fast_soft_sort``, :math:`O(n \log n)`); the
target's ranks are exact, with ties given their average rank (as ``scipy.stats.rankdata`` and
torchmetrics' ``spearman_corrcoef``), and get no gradient. With per-item weights
:math:`w_i \ge 0` the correlation is the weighted Pearson correlation

.. math::

    \rho_w = \frac{\sum_i w_i (r_i - \bar r)(t_i - \bar t)}
    {\sqrt{\sum_i w_i (r_i - \bar r)^2 \sum_i w_i (t_i - \bar t)^2}}, \qquad
    \bar r = \frac{\sum_i w_i r_i}{\sum_i w_i},

of the ranks (the ranks themselves are those among all real entries of the list: a weight says
how much an item's rank agreement counts, not whether it takes part in the ranking; use ``mask``
to remove items). ``w = 1`` gives Spearman's rho.

**Kendall.** :math:`\tau` compares every pair. ``kendall_loss`` has two relaxations. The default
(``method`` an ordering method, ``fast_soft_sort`` unless given) counts the concordant pairs by a
merge sort on the targets with soft ranks (:mod:`._merge`): exact as softness -> 0, :math:`\lceil
\log_2 n \rceil` batched soft-rank calls per list (:math:`O(n \log^2 n)` with ``fast_soft_sort``),
no per-item weights. ``method="pairwise"`` relaxes each pair's sign: with :math:`s^t_{ij} =
\mathrm{sign}(t_i - t_j)` and the soft sign :math:`s^p_{ij} = 2\,\mathrm{sigmoidal}(z_i - z_j,
\mathrm{softness}, \mathrm{mode}) - 1` of the standardized predictions :math:`z` (the ordering ops'
standardization over the list's real entries; exact ``sign`` in ``hard`` mode), and pair weights
:math:`w_i w_j`,

.. math::

    \tau_w = \frac{\sum_{i \ne j} w_i w_j\, s^t_{ij} s^p_{ij}}
    {\sqrt{\sum_{i \ne j} w_i w_j |s^t_{ij}| \cdot \sum_{i \ne j} w_i w_j}},

which for ``w = 1`` is Kendall's tau-b when the predictions have no ties (so tau-a without ties in
the target either), torchmetrics' default variant. Kendall's tau has no expression through the
ranks of the two lists alone; its cost per list depends on the band of the soft sign
(:mod:`._pairs`). Every soft sign here is exactly :math:`\pm 1` outside a band
:math:`|z_i - z_j| < h` (``c0`` / ``c1`` / ``c2``: :math:`h = 5\,\mathrm{softness}`, where
their polynomial reaches :math:`\pm 1`; ``smooth``: :math:`h = 40\,\mathrm{softness}`, beyond which
:math:`2\sigma - 1` rounds to exactly :math:`\pm 1` in float64; ``hard``: the empty band).
On CPU tensors in eager mode with numba, the pairs outside the band are counted by a sweep in
target order over Fenwick trees indexed by the prediction ranks (:math:`O(n \log n)`) and the
:math:`P` pairs inside it (a window of the sorted predictions) are summed directly, with
closed-form gradients: :math:`O(n \log n + P)` time and :math:`O(n)` memory, forward and
gradient, equal to the pair formula to rounding at any softness. :math:`P` shrinks with the
softness: about :math:`n^2 h / \mathrm{spread}` for scores spread evenly over a range wider than
the band, all :math:`n(n-1)/2` pairs when the band covers the scores (``smooth`` at the default
softness 0.1 on standardized scores is near that; ``c0`` / ``c1`` / ``c2`` there have about a
quarter of the pairs). ``hard`` is :math:`O(n \log n)`, and so is ``c0`` with a wide band (its
linear part summed by moments in the Fenwick trees). Elsewhere (other devices,
``torch.compile``, ``torch.func``, a tensor softness) every mode takes the :math:`O(n^2)` pair
formula in row blocks, :math:`O(n \cdot \mathrm{block})` memory (recomputed in the backward
pass).

The denominator (the weight of the pairs with distinct targets) costs :math:`O(n \log n)`. For
long lists with ``pairwise`` use a small softness or ``mode="c0"``.

Both equal 1 - the exact correlation as softness -> 0; ``spearman_loss`` and the pairwise
``kendall_loss`` lie in ``[0, 2]`` (the merge relaxation's soft counts can leave their hard range
slightly: -0.06 to 2.06 seen). ``spearman_loss`` and ``kendall_loss`` on soft ranks default to
``softness=1.0`` like the retrieval losses (soft enough for ``fast_soft_sort`` ranks to have a
gradient); the pairwise ``kendall_loss``'s softness is the width of its soft sign on standardized
scores in ``(0, 1)`` and defaults to 0.1.
"""

from __future__ import annotations

import torch

from .._checks import METHODS, check_choice
from .._sigmoidal import SoftnessLike
from ._common import (
    check_lists,
    check_options,
    check_values,
    masked_standardize,
    out_dtype,
    reduce_queries,
    safe_div,
    soft_ranks,
)
from ._merge import merge_concordance
from ._pairs import pair_sum, tie_free_weight

__all__ = ["PAIR_SOFTNESS", "RANK_SOFTNESS", "kendall_loss", "spearman_loss"]

#: ``kendall_loss``'s default softness with soft ranks (as ``spearman_loss``'s).
RANK_SOFTNESS: float = 1.0
#: ``kendall_loss``'s default softness of the pairwise soft sign (standardized scores in (0, 1)).
PAIR_SOFTNESS: float = 0.1
#: ``kendall_loss``'s relaxations: the pairwise soft sign, or the soft ranks of a method.
KENDALL_METHODS: tuple[str, ...] = ("pairwise", *METHODS)


def _kendall_method(method: object, weights: torch.Tensor | None) -> str:
    if method is None:
        return "fast_soft_sort" if weights is None else "pairwise"
    method_ = check_choice(method, KENDALL_METHODS, "method")
    if weights is not None and method_ != "pairwise":
        raise ValueError(
            f"kendall_loss: per-item weights need method='pairwise' (pair weights w_i w_j are "
            f"not a function of soft ranks), got method={method_!r}"
        )
    return method_


def average_ranks(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact ascending ranks in ``[1, n_q]`` of each list's real entries, ties averaged
    (``scipy.stats.rankdata(method="average")``); padded entries hold 1."""
    inf = torch.tensor(float("inf"), dtype=t.dtype, device=t.device)
    v = torch.where(mask, t, inf).detach().contiguous()
    s = torch.sort(v, dim=-1).values
    lo = torch.searchsorted(s, v, right=False)
    hi = torch.searchsorted(s, v, right=True)
    return torch.where(mask, (lo + hi + 1).to(t.dtype) / 2, 1.0)


def _weights(weights: torch.Tensor | None, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return mask.to(x.dtype)
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be a tensor or None, got {type(weights).__name__}")
    if weights.is_complex():
        raise TypeError("weights must be real, got a complex tensor")
    if weights.shape != x.shape:
        raise ValueError(
            f"weights must have the shape of pred: got {tuple(weights.shape)} and {tuple(x.shape)}"
        )
    check_values(((weights < 0) | weights.isnan()) & mask, "weights must be >= 0 (and not NaN)")
    return torch.where(mask, weights.to(x.dtype), 0.0)


def spearman_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    softness: SoftnessLike = 1.0,
    mode: str = "smooth",
    method: str = "fast_soft_sort",
    reduction: str = "mean",
    empty_target_action: str = "skip",
    standardize: bool = True,
) -> torch.Tensor:
    r"""Soft Spearman loss :math:`1 - \rho_w` per list (formula in the module docstring).

    Equals 1 - torchmetrics' ``spearman_corrcoef`` of each list as softness -> 0.

    Args:
        pred: predictions ``(..., n)``, one list per leading index.
        target: targets, same shape (ranked exactly, ties averaged, no gradient).
        weights: per-item weights ``>= 0``, same shape, or None (all 1).
        mask: bool, broadcastable to ``pred``, ``True`` = a real entry; lists are ranked among
            their real entries only, padded entries get zero gradient. None: all real.
        softness: softness of the soft ranks (> 0).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2``.
        method: the ordering method of :func:`softtorch.rank` (default ``fast_soft_sort``).
        reduction: ``"mean"`` (over the lists with a defined correlation), ``"sum"`` or
            ``"none"`` (shape ``pred.shape[:-1]``).
        empty_target_action: lists whose correlation is undefined (fewer than two weighted
            entries or a constant target): ``"skip"`` (loss 0, left out of the mean), ``"neg"``
            (loss 1) or ``"pos"`` (loss 0, counted).
        standardize: standardize each list before ranking (see :func:`softtorch.rank`).

    Example:
        >>> spearman_loss(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0]),
        ...               mode="hard")
        tensor(0.2000)
    """
    mode_, softness_ = check_options(mode, softness, reduction, empty_target_action)
    x, t, mask_ = check_lists(pred, target, mask, ("pred", "target"))
    w = _weights(weights, x, mask_)
    r = soft_ranks(x, mask_, softness_, mode_, method, standardize, descending=False)
    tr = average_ranks(t, mask_)
    sw = w.sum(-1, keepdim=True)
    some = sw > 0
    dr = r - safe_div((w * r).sum(-1, keepdim=True), sw, some)
    dt = tr - safe_div((w * tr).sum(-1, keepdim=True), sw, some)
    cov = (w * dr * dt).sum(-1)
    vv = (w * dr.square()).sum(-1) * (w * dt.square()).sum(-1)
    defined = ~(vv <= 0)  # NaN (from NaN input) propagates instead of counting as undefined
    one = torch.ones((), dtype=vv.dtype, device=vv.device)
    rho = safe_div(cov, torch.sqrt(torch.where(defined, vv, one)), defined)
    return reduce_queries(1.0 - rho, defined, reduction, empty_target_action, out_dtype(pred))


def kendall_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    softness: SoftnessLike | None = None,
    mode: str = "smooth",
    method: str | None = None,
    reduction: str = "mean",
    empty_target_action: str = "skip",
    standardize: bool = True,
) -> torch.Tensor:
    r"""Soft Kendall loss :math:`1 - \tau_w` per list (formulas in the module docstring).

    Two relaxations (``method``): the soft ranks of an ordering method counting the concordant
    pairs of a merge sort on the targets (default ``fast_soft_sort``: :math:`O(n \log^2 n)` time,
    :math:`O(n)` memory per list in every mode), or ``"pairwise"``, the soft sign of every pair
    (:math:`O(n \log n + P)` on CPU with numba, :math:`P` the pairs closer than the soft sign's
    band; the only one with per-item weights).

    Equals 1 - torchmetrics' ``kendall_rank_corrcoef`` (variant ``"b"``) of each list as
    softness -> 0 (predictions without ties).

    Args:
        pred: predictions ``(..., n)``, one list per leading index.
        target: targets, same shape (exact signs, no gradient).
        weights: per-item weights ``>= 0`` (pair weight :math:`w_i w_j`), or None (all 1).
        mask: bool, broadcastable to ``pred``, ``True`` = a real entry; padded entries take no
            part (also not in the standardization) and get zero gradient. None: all real.
        softness: softness of the soft ranks, or (``pairwise``) the width of the soft sign on
            the standardized predictions (> 0). None: ``RANK_SOFTNESS`` (1.0, as
            ``spearman_loss``) for the soft ranks, ``PAIR_SOFTNESS`` (0.1) for ``pairwise``.
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2`` (:func:`softtorch.sigmoidal`).
        method: ``"pairwise"`` or an ordering method of :func:`softtorch.rank` (``softsort``,
            ``neuralsort``, ``fast_soft_sort``, ``ot``, ``sorting_network``, ``perturbed``).
            None: ``fast_soft_sort``, or ``pairwise`` when ``weights`` are given (pair weights
            :math:`w_i w_j` have no soft-rank form; an ordering method with weights raises).
        reduction: ``"mean"`` (over the lists with a defined tau), ``"sum"`` or ``"none"``.
        empty_target_action: lists whose tau is undefined (no weighted pair with distinct
            targets): ``"skip"`` (loss 0, left out of the mean), ``"neg"`` (loss 1) or
            ``"pos"`` (loss 0, counted).
        standardize: compare :math:`\sigma` of the z-scored predictions (scale-free softness);
            False compares the raw predictions.

    Example:
        >>> kendall_loss(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0]),
        ...              mode="hard")
        tensor(0.3333)
    """
    method_ = _kendall_method(method, weights)
    if softness is None:
        softness = PAIR_SOFTNESS if method_ == "pairwise" else RANK_SOFTNESS
    mode_, softness_ = check_options(mode, softness, reduction, empty_target_action)
    x, t, mask_ = check_lists(pred, target, mask, ("pred", "target"))
    w = _weights(weights, x, mask_)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    z = masked_standardize(x, mask_) if standardize else torch.where(mask_, x, zero)
    t = torch.where(mask_, t.detach(), zero)
    # a NaN among a list's real predictions or targets makes its tau NaN (as torch would)
    bad = ((torch.isnan(z) | torch.isnan(t)) & mask_).any(-1)
    z = torch.where(torch.isnan(z), zero, z)
    t = torch.where(torch.isnan(t), zero, t)
    distinct = tie_free_weight(t, w)
    if method_ == "pairwise" or mode_ == "hard":
        num = pair_sum(z, t, w, softness_, mode_)
    else:  # sum of sign products = 4 C - T over the ordered pairs (._merge)
        num = 4.0 * merge_concordance(z, t, mask_, softness_, mode_, method_) - distinct
    sw = w.sum(-1)
    pairs = sw * sw - w.square().sum(-1)
    vv = distinct * pairs
    nan = torch.full((), float("nan"), dtype=vv.dtype, device=vv.device)
    vv = torch.where(bad, nan, vv)
    defined = ~(vv <= 0)  # NaN (from NaN input) propagates instead of counting as undefined
    one = torch.ones((), dtype=vv.dtype, device=vv.device)
    tau = safe_div(num, torch.sqrt(torch.where(defined, vv, one)), defined)
    return reduce_queries(1.0 - tau, defined, reduction, empty_target_action, out_dtype(pred))
