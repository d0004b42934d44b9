r"""Soft ``quantile`` / ``argquantile`` / ``median`` / ``argmedian``: interpolated sorted rows.

For a level ``q`` the sorted position ``q (n - 1)`` lies between rows ``lo`` and ``hi`` of the
ascending soft permutation; the soft index is ``(1 - w) P[lo] + w P[hi]`` with torch's
``interpolation`` weight ``w``, the value its expectation (or the same combination of the soft
sorted values). The median is row ``floor((n - 1) / 2)``. Only the needed rows are computed
(the method's ``permutation_rows`` hook). Conventions are those of :mod:`softtorch.ordering.ops`.
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import INTERPOLATIONS, autocast_off, check_choice
from ..simplex import is_concrete
from . import _mask, _take
from ._base import Softness
from ._common import (
    Cfg,
    Data,
    SoftIndex,
    cols,
    config,
    expect,
    finish,
    hard_index,
    method_impl,
    one_hot,
    plain,
    prepare,
    probs,
    reduced,
    scores,
    scores_values,
    to_x,
)
from ._docs import document
from ._logspace import log_mix, safe_log

__all__ = ["argmedian", "argquantile", "median", "quantile"]


def _check_q(q: object, data: Data) -> tuple[torch.Tensor, bool]:
    """``q`` as a 1-D tensor in the compute dtype, and whether it was a scalar."""
    if isinstance(q, bool):
        raise TypeError("q must be a float or a tensor, got bool")
    if isinstance(q, (int, float)):
        if not 0.0 <= float(q) <= 1.0:
            raise ValueError(f"q values must be in [0, 1] (and not NaN), got {[float(q)]}")
        return torch.tensor([float(q)], dtype=data.x.dtype, device=data.x.device), True
    elif isinstance(q, torch.Tensor):
        if q.is_complex():
            raise TypeError("q must be real, got a complex tensor")
        if q.ndim > 1:
            raise ValueError(f"q must be a scalar or a 1-D tensor, got shape {tuple(q.shape)}")
        scalar = q.ndim == 0
        qt = q.detach().reshape(-1).to(device=data.x.device, dtype=data.x.dtype)
    else:
        raise TypeError(f"q must be a float or a tensor, got {type(q).__name__}")
    if qt.numel() and is_concrete(qt) and not bool(((qt >= 0) & (qt <= 1)).all()):
        raise ValueError(f"q values must be in [0, 1] (and not NaN), got {qt.tolist()}")
    return qt, scalar




def _quantile_positions(
    q: torch.Tensor, n: int | torch.Tensor, interpolation: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted positions ``lo``, ``hi`` and the weight of ``hi``, following ``torch.quantile``
    (per slice for a tensor ``n`` of shape ``(..., 1)``: positions ``(..., m)``)."""
    pos = q * (n - 1)
    if interpolation == "lower":
        lo = hi = pos.floor()
    elif interpolation == "higher":
        lo = hi = pos.ceil()
    elif interpolation == "nearest":
        lo = hi = pos.round()
    else:
        lo, hi = pos.floor(), pos.ceil()
    if interpolation == "linear":
        w = pos - lo
    elif interpolation == "midpoint":
        w = torch.full_like(pos, 0.5)
    else:
        w = torch.zeros_like(pos)
    return lo.long(), hi.long(), w


def _order_stat(
    data: Data,
    cfg: Cfg,
    lo: torch.Tensor,
    hi: torch.Tensor,
    w: torch.Tensor,
    *,
    want_values: bool,
    want_index: bool,
    gated_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Soft ``(1 - w) sorted[lo] + w sorted[hi]`` (..., m) and its SoftIndex (..., m, n)
    (log-probabilities with ``cfg.log``)."""
    m = lo.shape[0]
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    impl = method_impl(cfg)
    if want_values:
        z, stats, sv = scores_values(impl, data, cfg, descending=False)
    else:
        (z, stats), sv = scores(data, cfg), None
    if sv is not None:
        xs = to_x(sv, stats, data.x)
        values = (1.0 - w) * _take.index_select_last(xs, lo) + w * _take.index_select_last(xs, hi)
    if want_index and cfg.log:
        rows = impl.log_permutation_rows(
            z, torch.cat((lo, hi)), cfg.softness, cfg.mode, descending=False, options=cfg.options
        )
        idx = log_mix(rows[..., :m, :], rows[..., m:, :], w)
        if values is None and want_values:
            values = expect(idx.exp(), data.x, gated_grad)
    elif want_index or (want_values and sv is None):
        rows = impl.permutation_rows(
            z, torch.cat((lo, hi)), cfg.softness, cfg.mode, descending=False, options=cfg.options
        )
        wc = w.unsqueeze(-1)
        idx = (1.0 - wc) * rows[..., :m, :] + wc * rows[..., m:, :]
        if values is None and want_values:
            values = expect(idx, data.x, gated_grad)
    return values, idx


def _masked_order_stat(
    data: Data,
    cfg: Cfg,
    q: torch.Tensor,
    interp: str,
    *,
    want_values: bool,
    want_index: bool,
    gated_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """:func:`_order_stat` of a masked op: positions ``q (c - 1)`` of each slice's ``c`` real
    entries (rows gathered per slice from the full soft permutation / sorted values; values
    without indices from the method's ``permute_values``, no soft permutation); a slice
    without real entries gives ``0`` and a zero SoftIndex row."""
    assert data.mask is not None
    c = data.count
    n = data.n
    lo, hi, w = _quantile_positions(q, (c - 1).clamp(min=0).to(data.x.dtype) + 1, interp)
    lo, hi = lo.clamp(0, n - 1), hi.clamp(0, n - 1)
    empty = c == 0
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    if cfg.mode == "hard":
        order = _mask.real_first(data.x, data.mask, descending=False)
        xs = data.x.gather(-1, order)
        if want_values:
            v = torch.lerp(xs.gather(-1, lo), xs.gather(-1, hi), w)
            values = torch.where(empty, 0.0, v)
        if want_index:
            oh_lo = one_hot(order.gather(-1, lo), n, data.x.dtype)
            oh_hi = one_hot(order.gather(-1, hi), n, data.x.dtype)
            wc = w.unsqueeze(-1)
            out = torch.where(empty.unsqueeze(-1), 0.0, (1.0 - wc) * oh_lo + wc * oh_hi)
            idx = safe_log(out) if cfg.log else out
        return values, idx
    impl = method_impl(cfg, data)
    if want_values:
        z, stats, sv = scores_values(impl, data, cfg, descending=False)
    else:
        (z, stats), sv = scores(data, cfg), None
    if sv is not None:
        xs = to_x(sv, stats, data.x, data.mask)
        values = (1.0 - w) * xs.gather(-1, lo) + w * xs.gather(-1, hi)
    elif want_values and not want_index:  # sorted values without the soft permutation
        zz = z if gated_grad else z.detach()
        xs = impl.permute_values(
            zz, data.x, cfg.softness, cfg.mode, descending=False, options=cfg.options
        )
        values = (1.0 - w) * xs.gather(-1, lo) + w * xs.gather(-1, hi)
    if want_index or (want_values and values is None):
        hook = impl.log_permutation if cfg.log else impl.permutation
        perm = hook(z, cfg.softness, cfg.mode, descending=False, options=cfg.options)

        def rows(pos: torch.Tensor) -> torch.Tensor:
            return perm.gather(-2, pos.unsqueeze(-1).expand(*pos.shape, n))

        if cfg.log:
            idx = log_mix(rows(lo), rows(hi), w)
        else:
            wc = w.unsqueeze(-1)
            idx = (1.0 - wc) * rows(lo) + wc * rows(hi)
        if values is None and want_values:
            values = expect(probs(idx, cfg), data.x, gated_grad)
    return values, idx


def _hard_quantile_index(
    data: Data, lo: torch.Tensor, hi: torch.Tensor, w: torch.Tensor, cfg: Cfg
) -> torch.Tensor:
    order = torch.sort(data.x, dim=-1, stable=True).indices
    n = data.n
    oh_lo = one_hot(order.index_select(-1, lo), n, data.x.dtype)
    oh_hi = one_hot(order.index_select(-1, hi), n, data.x.dtype)
    wc = w.unsqueeze(-1)
    out = (1.0 - wc) * oh_lo + wc * oh_hi
    return safe_log(out) if cfg.log else out


def _quantile(
    x: object,
    q: object,
    dim: int | None,
    keepdim: bool,
    cfg: Cfg,
    interpolation: object,
    *,
    want_values: bool,
    want_index: bool,
    gated_grad: bool,
    mask: object = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    interp = check_choice(interpolation, INTERPOLATIONS, "interpolation")
    if not want_index:
        cfg = plain(cfg)
    data = prepare(x, dim, flatten=True, cfg=cfg, mask=mask)
    qt, scalar = _check_q(q, data)
    n = data.n
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    if data.x.numel() == 0:
        torch.quantile(data.x, qt, dim=-1)  # raises like torch (empty input)
    lo, hi, w = _quantile_positions(qt, n, interp)
    if data.mask is not None:
        values, idx = _masked_order_stat(
            data, cfg, qt, interp, want_values=want_values, want_index=want_index,
            gated_grad=gated_grad,
        )  # fmt: skip
    elif cfg.mode == "hard":
        if want_values:
            values = _take.quantile(data.x, qt, interp)
        if want_index:
            idx = _hard_quantile_index(data, lo, hi, w, cfg)
    else:
        values, idx = _order_stat(
            data,
            cfg,
            lo,
            hi,
            w,
            want_values=want_values,
            want_index=want_index,
            gated_grad=gated_grad,
        )

    def layout(t: torch.Tensor | None, trailing: int) -> torch.Tensor | None:
        if t is None:
            return None
        t = t.movedim(-1 - trailing, 0)
        t = reduced(t, data, keepdim, trailing=trailing, lead=1)
        return t.squeeze(0) if scalar else t

    out_idx = None if idx is None else finish(idx, cfg, cols(data))
    return layout(values, 0), layout(out_idx, 1)


@document
@autocast_off
def quantile(
    x: torch.Tensor,
    q: torch.Tensor | float,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    interpolation: str = "linear",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    return_argquantile: bool = False,
    gated_grad: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> Any:
    r"""Soft ``torch.quantile``: ``interpolation`` applied to the soft sorted rows.

    The sorted position ``q (n - 1)`` lies between rows ``lo`` and ``hi`` of the ascending soft
    permutation ``P``; with torch's interpolation weight ``w`` (``linear``: the fractional part)
    the soft index is :math:`(1 - w) P_{lo} + w P_{hi}` and the value its expectation (or the
    same combination of the soft sorted values for ``fast_soft_sort`` / ``sorting_network``).

    Returns:
        The quantile values (shape of ``torch.quantile``), or ``(values, soft_index)`` with
        ``return_argquantile=True``.

    Example:
        >>> quantile(torch.tensor([-0.2, -1.0, 0.3, 1.0]), 0.2)
        tensor(-0.4501)
    """
    cfg = config(
        "quantile",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=bool(return_argquantile),
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        perturbed_kwargs=perturbed_kwargs,
    )
    values, idx = _quantile(
        x,
        q,
        dim,
        keepdim,
        cfg,
        interpolation,
        want_values=True,
        want_index=bool(return_argquantile),
        gated_grad=gated_grad,
        mask=mask,
    )
    return (values, idx) if return_argquantile else values


@document
@autocast_off
def argquantile(
    x: torch.Tensor,
    q: torch.Tensor | float,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    interpolation: str = "linear",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> SoftIndex:
    r"""SoftIndex of :func:`quantile`: :math:`(1 - w) P_{lo} + w P_{hi}`.

    Hard mode is the one- or two-hot index of ``torch.quantile``'s interpolation
    (``[0.6, 0.4, 0, 0]`` for ``q = 0.2`` on ``[-0.2, -1.0, 0.3, 1.0]``). With
    ``return_log_probs=True`` it is :math:`\log((1 - w) P_{lo} + w P_{hi})` computed from the log
    rows.

    Returns:
        SoftIndex of shape ``torch.quantile(x, q, dim, keepdim).shape + (n,)``.
    """
    cfg = config(
        "argquantile",
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
    _, idx = _quantile(
        x,
        q,
        dim,
        keepdim,
        cfg,
        interpolation,
        want_values=False,
        want_index=True,
        gated_grad=True,
        mask=mask,
    )
    assert idx is not None
    return idx


def _median(
    x: object, dim: int | None, keepdim: bool, cfg: Cfg, gated_grad: bool, *, want_values: bool,
    mask: object = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, Data]:
    want_index = dim is not None or not want_values
    if not want_index:
        cfg = plain(cfg)
    data = prepare(x, dim, flatten=True, cfg=cfg, mask=mask)
    n = data.n
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    if data.mask is not None and n:  # the lower middle: q = 1/2 with "lower" interpolation
        half = torch.full((1,), 0.5, dtype=data.x.dtype, device=data.x.device)
        has_index = cfg.mode == "hard" or method_impl(cfg).has_permutation
        values, idx = _masked_order_stat(
            data, cfg, half, "lower", want_values=want_values,
            want_index=want_index and has_index, gated_grad=gated_grad,
        )  # fmt: skip
        values = None if values is None else values.squeeze(-1)
        idx = None if idx is None else idx.squeeze(-2)
    elif cfg.mode == "hard" or n == 0:
        if n == 0 and dim is None and want_values:
            values = torch.median(data.x)
        else:
            values, mid_idx = _take.median(data.x)
            if want_index:
                idx = hard_index(mid_idx, n, data.x.dtype, cfg)
    else:
        mid = torch.tensor([(n - 1) // 2], device=data.x.device)
        w = torch.zeros(1, dtype=data.x.dtype, device=data.x.device)
        impl_has_index = method_impl(cfg).has_permutation
        values, idx = _order_stat(
            data,
            cfg,
            mid,
            mid,
            w,
            want_values=want_values,
            want_index=want_index and impl_has_index,
            gated_grad=gated_grad,
        )
        values = None if values is None else values.squeeze(-1)
        idx = None if idx is None else idx.squeeze(-2)
    out_v = None if values is None else reduced(values, data, keepdim, trailing=0)
    out_i = None
    if idx is not None:
        out_i = reduced(finish(idx, cfg, cols(data, rows=False)), data, keepdim, trailing=1)
    return out_v, out_i, data


@document
@autocast_off
def median(
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> Any:
    r"""Soft ``torch.median``: the lower middle, row :math:`\lfloor (n - 1) / 2 \rfloor` of the
    ascending soft permutation ``P``; the value is :math:`P_{mid} \cdot x` (or the middle soft
    sorted value for ``fast_soft_sort`` / ``sorting_network``).

    Returns:
        Without ``dim``: a 0-d value; with ``dim``: ``torch.return_types.median(values, indices)``
        with SoftIndex ``indices`` (``None`` for ``fast_soft_sort``).
    """
    cfg = config(
        "median",
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
    values, idx, _ = _median(x, dim, keepdim, cfg, gated_grad, want_values=True, mask=mask)
    if dim is None:
        return values
    return torch.return_types.median((values, idx))


@document
@autocast_off
def argmedian(
    x: torch.Tensor,
    dim: int | None = None,
    keepdim: bool = False,
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
    r"""SoftIndex of :func:`median`: row :math:`\lfloor (n - 1) / 2 \rfloor` of the ascending
    soft permutation (hard mode: the one-hot of ``torch.median``'s index).

    Returns:
        SoftIndex of shape ``torch.median(x, dim, keepdim).values.shape + (n,)``.
    """
    cfg = config(
        "argmedian",
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
    _, idx, _ = _median(x, dim, keepdim, cfg, True, want_values=False, mask=mask)
    assert idx is not None
    return idx
