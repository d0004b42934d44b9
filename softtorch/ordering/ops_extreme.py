r"""Soft ``argmax`` / ``argmin`` / ``max`` / ``min``: the extreme rows of the soft permutation.

``argmax`` is the method's soft one-hot of the largest entry (its first descending row, or a
cheaper dedicated hook), ``argmin`` the same for the smallest; ``max`` / ``min`` are the expected
values under them, or the last / first soft sorted value for the value-only methods. Conventions
(standardization, SoftIndex layout, log-probabilities) are those of :mod:`softtorch.ordering.ops`.
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import as_float, autocast_off
from . import _mask, _take
from ._base import OrderingMethod, Softness
from ._common import (
    Cfg,
    Data,
    SoftIndex,
    cols,
    config,
    expect,
    finish,
    hard_index,
    hard_masked_index,
    method_impl,
    plain,
    prepare,
    probs,
    reduced,
    scores,
    scores_values,
    to_x,
)
from ._docs import document

__all__ = ["argmax", "argmin", "max", "min"]


def _soft_arg_extreme(
    impl: OrderingMethod, z: torch.Tensor, cfg: Cfg, largest: bool
) -> torch.Tensor:
    if cfg.log:
        fn = impl.log_argmax if largest else impl.log_argmin
    else:
        fn = impl.argmax if largest else impl.argmin
    return fn(z, cfg.softness, cfg.mode, options=cfg.options)


def _hard_masked(data: Data, cfg: Cfg, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked hard extreme: ``(values, one-hot index)``; empty slices give ``0`` and a zero row
    (``-inf`` in log space)."""
    assert data.mask is not None
    first = _mask.real_first(data.x, data.mask, descending=largest)[..., :1]
    idx = hard_masked_index(first, data, cfg)[..., 0, :]
    values = _mask.fill_positions(data.x.gather(-1, first), data.count)[..., 0]
    return values, idx


def _arg_extreme(
    x: object, dim: int | None, keepdim: bool, cfg: Cfg, largest: bool, mask: object
) -> SoftIndex:
    data = prepare(x, dim, flatten=True, cfg=cfg, mask=mask)
    n = data.n
    if (cfg.mode == "hard" or n == 0) and data.mask is not None and n:
        out = _hard_masked(data, cfg, largest)[1]
    elif cfg.mode == "hard" or n == 0:
        hard = torch.argmax if largest else torch.argmin
        idx = hard(data.x, dim=-1) if n else hard(as_float(x), dim=dim)  # type: ignore[arg-type]
        out = hard_index(idx, n, data.x.dtype, cfg)
    else:
        z, _ = scores(data, cfg)
        out = _soft_arg_extreme(method_impl(cfg, data), z, cfg, largest)
    return reduced(finish(out, cfg, cols(data, rows=False)), data, keepdim, trailing=1)


def _extreme(
    x: object, dim: int | None, keepdim: bool, cfg: Cfg, gated_grad: bool, largest: bool,
    mask: object,
) -> Any:  # fmt: skip
    data = prepare(x, dim, flatten=True, cfg=cfg, mask=mask)
    n = data.n
    want_index = dim is not None
    if not want_index:
        cfg = plain(cfg)
    kind = torch.return_types.max if largest else torch.return_types.min
    idx: torch.Tensor | None
    if n == 0:
        hard = torch.max if largest else torch.min
        return hard(as_float(x)) if dim is None else hard(as_float(x), dim, keepdim)  # type: ignore[arg-type]
    if cfg.mode == "hard" and data.mask is not None:
        values, idx = _hard_masked(data, cfg, largest)
    elif cfg.mode == "hard":
        values, hard_idx = _take.extreme(data.x, largest)
        idx = hard_index(hard_idx, n, data.x.dtype, cfg)
    else:
        impl = method_impl(cfg, data)
        z, stats, sv = scores_values(impl, data, cfg, descending=False)
        if sv is None:
            idx = _soft_arg_extreme(impl, z, cfg, largest)
            values = expect(probs(idx, cfg).unsqueeze(-2), data.x, gated_grad).squeeze(-1)
        elif data.mask is not None:  # position c - 1 (largest) or 0 of each slice
            last = (data.count - 1).clamp(min=0) if largest else torch.zeros_like(data.count)
            values = to_x(sv, stats, data.x, data.mask).gather(-1, last)[..., 0]
        else:
            pick = slice(-1, None) if largest else slice(0, 1)
            values = to_x(sv[..., pick], stats, data.x)[..., 0]
        if sv is not None:
            idx = None
            if want_index and impl.has_permutation:
                idx = _soft_arg_extreme(impl, z, cfg, largest)
    values = reduced(values, data, keepdim, trailing=0)
    if not want_index:
        return values
    if idx is not None:
        idx = reduced(finish(idx, cfg, cols(data, rows=False)), data, keepdim, trailing=1)
    out_i = idx
    return kind((values, out_i))


@document
@autocast_off
def argmax(
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "softsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> SoftIndex:
    r"""Soft ``torch.argmax``: a distribution over the positions of ``dim`` (SoftIndex).

    The method's soft one-hot of the largest entry: for ``softsort`` with the ``smooth`` mode
    :math:`p = \mathrm{softmax}(-|\max_j z_j - z| / s)`; in general the first row of the
    descending soft permutation (:func:`sort`). The shape is torch's result shape plus a trailing
    axis of size ``n`` (``(n,)`` for a vector); see *Log-probabilities* in
    :mod:`softtorch.ordering.ops` for ``return_log_probs`` / ``log_prob_eps``.

    Returns:
        SoftIndex of shape ``torch.argmax(x, dim, keepdim).shape + (n,)``.

    Example:
        >>> argmax(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.0215, 0.0022, 0.1176, 0.8586])
        >>> argmax(torch.tensor([1000.0, 0.0, -1000.0]), standardize=False, return_log_probs=True)
        tensor([     0., -10000., -20000.])
    """
    cfg = config(
        "argmax",
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
    return _arg_extreme(x, dim, keepdim, cfg, largest=True, mask=mask)


@document
@autocast_off
def argmin(
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "softsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> SoftIndex:
    r"""Soft ``torch.argmin``: a distribution over the positions of ``dim`` (SoftIndex).

    The method's soft one-hot of the smallest entry, :func:`argmax` of the reversed order (the
    default hook is ``argmax(1 - z)`` on the standardized scores).

    Returns:
        SoftIndex of shape ``torch.argmin(x, dim, keepdim).shape + (n,)``.
    """
    cfg = config(
        "argmin",
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
    return _arg_extreme(x, dim, keepdim, cfg, largest=False, mask=mask)


@document
@autocast_off
def max(  # noqa: A001
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "softsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> Any:
    r"""Soft ``torch.max``: :math:`\sum_j p_j x_j` for ``p = argmax(x)`` (or, for
    ``fast_soft_sort`` / ``sorting_network``, the largest soft sorted value).

    Returns:
        Without ``dim``: a 0-d value. With ``dim``: ``torch.return_types.max(values, indices)``
        with SoftIndex ``indices`` (``None`` for ``fast_soft_sort``).
    """
    cfg = config(
        "max",
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
    return _extreme(x, dim, keepdim, cfg, gated_grad, largest=True, mask=mask)


@document
@autocast_off
def min(  # noqa: A001
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "softsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> Any:
    r"""Soft ``torch.min``: :math:`\sum_j p_j x_j` for ``p = argmin(x)`` (or, for
    ``fast_soft_sort`` / ``sorting_network``, the smallest soft sorted value).

    Returns:
        Without ``dim``: a 0-d value. With ``dim``: ``torch.return_types.min(values, indices)``
        with SoftIndex ``indices`` (``None`` for ``fast_soft_sort``).
    """
    cfg = config(
        "min",
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
    return _extreme(x, dim, keepdim, cfg, gated_grad, largest=False, mask=mask)
