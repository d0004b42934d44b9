r"""Soft ``sort`` / ``argsort`` / ``rank``: the whole soft permutation and its ranks.

``sort`` returns ``P @ x`` for the method's soft permutation ``P`` (or the method's soft sorted
values), ``argsort`` returns ``P`` itself and ``rank`` the soft ranks in ``[1, n]``. Conventions
(standardization, SoftIndex layout, log-probabilities) are those of :mod:`softtorch.ordering.ops`.
"""

from __future__ import annotations

import torch

from .._checks import autocast_off
from . import _mask, _take
from ._base import Softness
from ._common import (
    SoftIndex,
    along,
    cols,
    config,
    expect,
    finish,
    hard_index,
    hard_masked_index,
    method_impl,
    plain,
    prepare,
    scores,
    scores_values,
    to_x,
)
from ._docs import document

__all__ = ["argsort", "rank", "sort"]


@document
@autocast_off
def sort(
    x: torch.Tensor,
    dim: int | None = -1,
    descending: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    return_indices: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> torch.return_types.sort:
    r"""Soft ``torch.sort``: ``torch.return_types.sort(values, indices)``.

    With the method's soft permutation ``P`` (row ``i``: the distribution over inputs of the
    ``i``-th sorted element, rows summing to 1), ``values = P @ x`` and ``indices = P`` (SoftIndex
    of shape ``x.shape + (n,)`` with the sorted axis at ``dim``). ``fast_soft_sort`` and
    ``sorting_network`` compute the sorted values directly (``indices`` None).

    Returns:
        ``torch.return_types.sort(values, indices)``.

    Example:
        >>> sort(torch.tensor([-0.2, -1.0, 0.3, 1.0])).values
        tensor([-0.8792, -0.1641,  0.2767,  0.8738])
    """
    cfg = config(
        "sort",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        perturbed_kwargs=perturbed_kwargs,
    )
    if not return_indices:
        cfg = plain(cfg)
    data = prepare(x, dim, flatten=False, cfg=cfg, mask=mask)
    n = data.n
    idx: torch.Tensor | None = None
    if (cfg.mode == "hard" or n == 0) and data.mask is not None:
        order = _mask.real_first(data.x, data.mask, descending=bool(descending))
        values = _mask.fill_positions(data.x.gather(-1, order), data.count)
        if return_indices:
            idx = hard_masked_index(order, data, cfg)
    elif cfg.mode == "hard" or n == 0:
        values, order = _take.sort(data.x, descending=bool(descending))
        if return_indices:
            idx = hard_index(order, n, data.x.dtype, cfg)
    else:
        impl = method_impl(cfg, data)
        z, stats, sv = scores_values(impl, data, cfg, descending=bool(descending))
        if sv is not None:
            values = to_x(sv, stats, data.x, data.mask)
        elif return_indices and cfg.log:
            idx = impl.log_permutation(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
            values = expect(idx.exp(), data.x, gated_grad)
        elif return_indices and gated_grad:
            idx, values = impl.permutation_with_values(
                z, data.x, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
        elif return_indices:
            idx = impl.permutation(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
            values = expect(idx, data.x, gated_grad)
        else:
            zz = z if gated_grad else z.detach()
            values = impl.permute_values(
                zz, data.x, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
    out_idx = None if idx is None else along(finish(idx, cfg, cols(data)), data, index=True)
    return torch.return_types.sort((along(values, data, index=False), out_idx))


@document
@autocast_off
def argsort(
    x: torch.Tensor,
    dim: int | None = -1,
    descending: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> SoftIndex:
    r"""Soft ``torch.argsort``: the soft permutation ``P``, SoftIndex of shape ``x.shape + (n,)``.

    Along the last axis, row ``i`` of the trailing ``(n, n)`` block is the distribution over
    inputs of the ``i``-th sorted element (rows sum to 1; with ``return_log_probs=True`` their
    logs, each row's ``logsumexp`` 0). Hard mode is the one-hot permutation matrix.

    Returns:
        SoftIndex of shape ``x.shape + (n,)`` with the sorted axis at ``dim``.
    """
    cfg = config(
        "argsort",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        perturbed_kwargs=perturbed_kwargs,
    )
    data = prepare(x, dim, flatten=False, cfg=cfg, mask=mask)
    n = data.n
    if (cfg.mode == "hard" or n == 0) and data.mask is not None:
        order = _mask.real_first(data.x, data.mask, descending=bool(descending))
        out = hard_masked_index(order, data, cfg)
    elif cfg.mode == "hard" or n == 0:
        order = torch.argsort(data.x, dim=-1, descending=bool(descending))
        out = hard_index(order, n, data.x.dtype, cfg)
    else:
        z, _ = scores(data, cfg)
        impl = method_impl(cfg, data)
        fn = impl.log_permutation if cfg.log else impl.permutation
        out = fn(z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options)
    return along(finish(out, cfg, cols(data)), data, index=True)


def _hard_rank(x: torch.Tensor, descending: bool) -> torch.Tensor:
    order = torch.argsort(x, dim=-1, descending=descending, stable=True)
    return (torch.argsort(order, dim=-1, stable=True) + 1).to(x.dtype)


@document
@autocast_off
def rank(
    x: torch.Tensor,
    dim: int | None = None,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    descending: bool = True,
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    *,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Soft ranks in ``[1, n]`` along ``dim`` (flattened input when None).

    :math:`r_k = \sum_i i\, Q_{ik}` for a soft assignment ``Q`` of inputs to sorted positions
    (each method's own form). With ``descending=True`` (default) the largest entry gets rank 1;
    hard mode (ties broken by a stable sort) is ``argsort(argsort(x, stable=True), stable=True)
    + 1``.

    Returns:
        Soft ranks, same shape as ``x`` (flat when ``dim`` is None).

    Example:
        >>> rank(torch.tensor([-0.2, -1.0, 0.3, 1.0]), descending=False)
        tensor([1.9950, 1.0548, 3.0239, 3.9228])
    """
    cfg = config(
        "rank", mode, softness, method, standardize, ot_kwargs, need_index=False,
        perturbed_kwargs=perturbed_kwargs,
    )  # fmt: skip
    data = prepare(x, dim, flatten=True, mask=mask)
    if (cfg.mode == "hard" or data.n == 0) and data.mask is not None:
        out = _mask.hard_ranks(data.x, data.mask, descending=bool(descending))
    elif cfg.mode == "hard" or data.n == 0:
        out = _hard_rank(data.x, bool(descending))
    else:
        impl = method_impl(cfg, data)
        out = impl.fused_rank(
            data.x,
            cfg.softness,
            cfg.mode,
            descending=bool(descending),
            standardize=cfg.standardize,
            options=cfg.options,
        )
        if out is None:
            z, _ = scores(data, cfg)
            out = impl.rank(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
    return along(out, data, index=False)
