r"""Kendall's tau from soft ranks: the concordant-pair count of a merge sort on the targets
(Knight's :math:`O(n \log n)` algorithm) with each merge's count read off soft ranks.

For one list with scores :math:`u` and targets :math:`t`, order the items by target (ties by
score) and pad the order to :math:`N = 2^L \ge n` positions. The nodes of level :math:`\ell` are
the blocks :math:`[kS, (k+1)S)` of that order, :math:`S = N / 2^\ell`, each the union of a lower
half :math:`A` (smaller targets) and an upper half :math:`B`; every pair of items with distinct
targets is split by exactly one node. With :math:`r_V(i)` the ascending rank of :math:`u_i` among
the items of a set :math:`V`, the number of items of :math:`A` with a target below :math:`t_i` and a
score below :math:`u_i`, for :math:`i \in B`, is

.. math::

    c_i = r_{V_i}(i) - r_B(i), \qquad
    V_i = \begin{cases} A \cup B & t_i > \max_A t \\
    (A \setminus \{j : t_j = t_i\}) \cup B & t_i = \max_A t \end{cases}

(only the tie group at the boundary of the halves can hold items of both). The concordant pairs
are :math:`C = \sum_{\text{nodes}} \sum_{i \in B} c_i`, and with :math:`P` the pairs with distinct
targets Kendall's signed sum is :math:`\sum_{i \ne j} \mathrm{sign}(t_i - t_j)\,\mathrm{sign}(u_i -
u_j) = 2(C - (P - C)) = 4C - 2P`. The relaxation replaces every rank by the soft rank of an
ordering method (:func:`softtorch.rank` with ``mask``, ``standardize=False``): :math:`c_i` becomes
a soft count, exact as softness -> 0. Every soft rank is taken on a real set of the list (the
padded order only aligns the sets), so a padded list gives the result of its real entries alone,
and the result does not depend on the order of the items.

Cost: one batched soft-rank call per level on :math:`N` positions per list (the upper halves'
ranks :math:`r_B` are the next level's node ranks), plus the boundary sets :math:`V_i` of the
nodes whose halves share a target: :math:`O(n \log^2 n)` time with ``fast_soft_sort`` and
:math:`O(n)` memory per level, kept for the backward pass (:math:`O(n \log n)` in all). In eager
mode a level ranks only the nodes that count something or are the upper half of one that does
(graded targets leave out every node inside one target group) and have two real items; under
``torch.compile`` and ``torch.func`` every node is ranked (no data-dependent shapes).
"""

from __future__ import annotations

import torch

from .._checks import _is_compiling
from .._sigmoidal import SoftnessLike
from ._common import soft_ranks

__all__ = ["merge_concordance"]


def _target_order(u: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Indices that sort each row by target, ties by score, padded entries last."""
    by_score = torch.argsort(u.detach(), dim=-1, stable=True)
    key = torch.where(mask, t, torch.inf).gather(-1, by_score)
    return by_score.gather(-1, torch.argsort(key, dim=-1, stable=True))


def _pad_to(x: torch.Tensor, size: int, value: float | bool) -> torch.Tensor:
    extra = size - x.shape[-1]
    if extra == 0:
        return x
    return torch.cat([x, x.new_full((*x.shape[:-1], extra), value)], dim=-1)


def _level_flags(
    tt: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per node (row) of one level: upper items above the lower half's largest target, upper
    items tied with it, lower items tied with it, and whether the tied upper items have other
    lower items to count (the nodes that need the boundary ranks)."""
    half = tt.shape[-1] // 2
    bound = tt[:, half - 1 : half]
    t_up, m_up = tt[:, half:], m[:, half:]
    above = m_up & (t_up > bound)
    tied = m_up & (t_up == bound)
    low_tied = m[:, :half] & (tt[:, :half] == bound)
    need = tied.any(-1) & (m[:, :half] & ~low_tied).any(-1)
    return above, tied, low_tied, need


def _odd(rows: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(rows, device=device) % 2) == 1


def _ranks(
    x: torch.Tensor,
    m: torch.Tensor,
    rows: torch.Tensor,
    eager: bool,
    softness: SoftnessLike,
    mode: str,
    method: str,
) -> torch.Tensor:
    """Ascending soft ranks of each row's real entries; in eager mode only the ``rows`` (bool)
    are ranked and the others hold 1 (otherwise all rows)."""
    if not eager:
        return soft_ranks(x, m, softness, mode, method, False, descending=False)
    sel = rows.nonzero().squeeze(-1)
    out = torch.ones_like(x)
    if sel.numel() == 0:
        return out
    if sel.numel() == x.shape[0]:
        return soft_ranks(x, m, softness, mode, method, False, descending=False)
    r = soft_ranks(x[sel], m[sel], softness, mode, method, False, descending=False)
    return out.index_copy(0, sel, r)


def merge_concordance(
    u: torch.Tensor,
    t: torch.Tensor,
    mask: torch.Tensor,
    softness: SoftnessLike,
    mode: str,
    method: str,
) -> torch.Tensor:
    r"""Soft count :math:`C` of the concordant pairs of each list (module docstring).

    Args:
        u: scores ``(..., n)`` (finite at real entries).
        t: targets, same shape (no gradient; finite at real entries).
        mask: bool, same shape, ``True`` = a real entry.
        softness: softness of the soft ranks (> 0).
        mode: ``smooth``, ``c0``, ``c1`` or ``c2`` (``hard`` gives the exact count).
        method: the ordering method of the soft ranks.

    Returns:
        :math:`C` per list, shape ``u.shape[:-1]``, in ``u``'s dtype.
    """
    lead, n = u.shape[:-1], u.shape[-1]
    rows = 1
    for d in lead:
        rows *= d
    u2, t2, m2 = u.reshape(rows, n), t.detach().reshape(rows, n), mask.reshape(rows, n)
    # zero, but on the graph of u (a loss of lists without pairs still has a gradient: 0)
    total = torch.where(m2, u2, 0.0).sum(-1) * 0.0
    if n < 2:
        return total.reshape(lead)
    levels = (n - 1).bit_length()
    size = 1 << levels
    order = _target_order(u2, t2, m2)
    us = _pad_to(u2.gather(-1, order), size, 0.5)
    ts = _pad_to(torch.where(m2, t2, torch.inf).gather(-1, order), size, torch.inf)
    ms = _pad_to(m2.gather(-1, order), size, False)
    flags = [_level_flags(ts.reshape(-1, size >> lv), ms.reshape(-1, size >> lv))
             for lv in range(levels)]  # fmt: skip
    # data-dependent row selection only in plain eager mode (not under torch.compile, whose
    # shapes must not depend on data, nor under torch.func transforms: vmap has no nonzero)
    eager = not (_is_compiling() or torch._C._are_functorch_transforms_active())  # torch internal
    upper_ranks: torch.Tensor | None = None  # node ranks of the level below (blocks of half size)
    for level in reversed(range(levels)):  # node size 2, 4, ..., size
        width = size >> level
        half = width // 2
        x, m = us.reshape(-1, width), ms.reshape(-1, width)
        above, tied, low_tied, need = flags[level]
        # a node's ranks serve its own count and, as an upper half, its parent's
        wanted = above.any(-1)
        if level > 0:
            parent = flags[level - 1][0].any(-1) | flags[level - 1][3]
            wanted = wanted | (parent.repeat_interleave(2) & _odd(x.shape[0], x.device))
        wanted = wanted & (m.sum(-1) >= 2)
        tie_rows = not eager or bool(need.any())
        if tie_rows:  # the node ranks and the boundary sets V_i in one call
            keep = torch.cat([m[:, :half] & ~low_tied, m[:, half:]], dim=-1)
            both = _ranks(torch.cat([x, x]), torch.cat([m, keep]), torch.cat([wanted, need]),
                          eager, softness, mode, method)  # fmt: skip
            node, inner = both[: x.shape[0]], both[x.shape[0] :]
        else:
            node = _ranks(x, m, wanted, eager, softness, mode, method)
        if upper_ranks is None:  # halves of one item: rank 1
            r_up = torch.ones_like(node[:, half:])
        else:
            r_up = upper_ranks.reshape(-1, 2, half)[:, 1]
        count = torch.where(above, node[:, half:] - r_up, 0.0).sum(-1)
        if tie_rows:
            use = tied & need[:, None]
            count = count + torch.where(use, inner[:, half:] - r_up, 0.0).sum(-1)
        total = total + count.reshape(rows, -1).sum(-1)
        upper_ranks = node
    return total.reshape(lead)
