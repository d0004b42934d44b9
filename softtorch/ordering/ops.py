r"""Soft order statistics: drop-in relaxations of torch's sort, argsort, topk, max, min, median,
quantile and rank, plus ``argmedian`` / ``argquantile`` / ``rank``.

Every op takes ``softness`` (> 0), ``mode`` (``hard``, ``smooth``, ``c0``, ``c1``, ``c2``) and
``method`` (``softsort``, ``neuralsort``, ``sorting_network``, ``fast_soft_sort`` (alias
``smooth_sort``), ``ot``). ``mode="hard"`` returns torch's values exactly, with indices as one-hot
soft indices.

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

Half-precision inputs are computed in float32 and returned in their dtype; integer inputs are
promoted to the default float dtype. Empty reductions raise like torch. Under ``torch.autocast``
the ops run with autocast disabled (their matmuls would otherwise drop to bfloat16 / float16), so
like torch's sort / max / quantile they return the input dtype, computed in float32 or better.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import (
    INDEX_METHODS,
    INTERPOLATIONS,
    METHODS,
    MODES,
    as_float,
    autocast_off,
    canonical_dim,
    check_choice,
    check_method,
    check_mode,
    check_softness,
)
from . import _take
from ._base import OrderingMethod, Softness, get_method
from ._logspace import clamp_log_probs, clamp_probs, log_mix, safe_log
from ._standardize import Stats, unstandardize
from ._standardize import standardize as _standardize

__all__ = [
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

SoftIndex = torch.Tensor
_HALF = (torch.float16, torch.bfloat16)
_VALUE_ONLY = tuple(m for m in METHODS if m not in INDEX_METHODS)


# ----------------------------------------------------------------------------------------------
# validation and layout
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cfg:
    mode: str
    softness: Softness
    method: str
    standardize: bool
    options: dict[str, Any] | None
    log: bool = False  # return_log_probs
    eps: float | None = None  # log_prob_eps


def _check_log_prob_eps(eps: object) -> float | None:
    """``log_prob_eps``: None or a real number in ``(0, 1)`` (``< 1/n`` is checked per input)."""
    if eps is None:
        return None
    if isinstance(eps, torch.Tensor) and eps.ndim == 0 and not eps.is_complex():
        eps = eps.item()
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"log_prob_eps must be a float or None, got {type(eps).__name__}")
    e = float(eps)
    if not (math.isfinite(e) and 0.0 < e < 1.0):
        raise ValueError(f"log_prob_eps must be a float in (0, 1/n), got {eps!r}")
    return e


def _config(
    op: str,
    mode: object,
    softness: Softness,
    method: object,
    standardize: object,
    ot_kwargs: object,
    *,
    need_index: bool,
    return_log_probs: object = False,
    log_prob_eps: object = None,
) -> _Cfg:
    mode_ = check_mode(mode, MODES)
    softness_ = check_softness(softness)
    if need_index:
        if method in _VALUE_ONLY or method == "smooth_sort":
            raise ValueError(
                f"{op}() returns soft indices, but method {method!r} computes sorted values only "
                "and has no soft indices; use one of: " + ", ".join(repr(m) for m in INDEX_METHODS)
            )
        method_ = check_method(method, INDEX_METHODS)
    else:
        method_ = check_method(method, METHODS)
    if ot_kwargs is not None and not isinstance(ot_kwargs, dict):
        raise TypeError(f"ot_kwargs must be a dict or None, got {type(ot_kwargs).__name__}")
    options = ot_kwargs if method_ == "ot" else None
    eps = _check_log_prob_eps(log_prob_eps)
    return _Cfg(
        mode_,  # type: ignore[arg-type]
        softness_,
        method_,  # type: ignore[arg-type]
        bool(standardize),
        options,  # type: ignore[arg-type]
        bool(return_log_probs),
        eps,
    )


def _impl(cfg: _Cfg) -> OrderingMethod:
    try:
        return get_method(cfg.method)
    except KeyError:
        raise ValueError(
            f"method {cfg.method!r} is not available in this installation "
            f"(module softtorch.ordering.{cfg.method} is missing)"
        ) from None


@dataclass(frozen=True)
class _Data:
    x: torch.Tensor  # compute dtype, reduced axis last
    dtype: torch.dtype  # result dtype
    dim: int | None  # canonical dim in the input, None when flattened
    ndim: int  # input ndim

    @property
    def n(self) -> int:
        return self.x.shape[-1]


def _prepare(x: object, dim: int | None, *, flatten: bool, cfg: _Cfg | None = None) -> _Data:
    xt = as_float(x)  # type: ignore[arg-type]
    dtype = xt.dtype
    if dtype in _HALF:
        xt = xt.float()
    if dim is None and flatten:
        data = _Data(xt.reshape(-1), dtype, None, xt.ndim)
    else:
        d = canonical_dim(-1 if dim is None else dim, xt.ndim)
        xl = xt.reshape(1) if xt.ndim == 0 else xt.movedim(d, -1)
        data = _Data(xl, dtype, d, xt.ndim)
    if cfg is not None and cfg.eps is not None and data.n > 0 and not cfg.eps < 1.0 / data.n:
        raise ValueError(
            f"log_prob_eps must be in (0, 1/n) = (0, {1.0 / data.n:.6g}) for n = {data.n} "
            f"candidates along the reduced dimension, got {cfg.eps!r}"
        )
    return data


def _reduced(
    t: torch.Tensor, data: _Data, keepdim: bool, *, trailing: int, lead: int = 0
) -> torch.Tensor:
    """Lay out a reduced result ``lead + batch + trailing`` like torch (keepdim, 0-d input)."""
    if keepdim:
        if data.dim is None:
            shape = list(t.shape[:lead]) + [1] * data.ndim + list(t.shape[t.ndim - trailing :])
            t = t.reshape(shape)
        elif data.ndim > 0:
            t = t.unsqueeze(lead + data.dim)
    return t.to(data.dtype)


def _along(t: torch.Tensor, data: _Data, *, index: bool) -> torch.Tensor:
    """Move the sorted axis (last for values, second-to-last for soft indices) back to ``dim``."""
    if data.dim is None:
        return t.to(data.dtype)
    if data.ndim == 0:
        if t.shape[-2 if index else -1] == 1:
            t = t.reshape(t.shape[-1:] if index else ())
        return t.to(data.dtype)
    return t.movedim(-2 if index else -1, data.dim).to(data.dtype)


def _scores(data: _Data, cfg: _Cfg) -> tuple[torch.Tensor, Stats | None]:
    if cfg.standardize:
        return _standardize(data.x)
    return data.x, None


def _scores_values(
    impl: OrderingMethod, data: _Data, cfg: _Cfg, *, descending: bool
) -> tuple[torch.Tensor, Stats | None, torch.Tensor | None]:
    """``(z, stats, sv)``: scores, standardization stats and the method's soft sorted values.

    Tries the method's fused kernel on ``data.x`` first (values already in x units: ``stats`` is
    None, and ``z`` is only computed when the method also has soft permutations).
    """
    fused = impl.fused_sorted_values(
        data.x,
        cfg.softness,
        cfg.mode,
        descending=descending,
        standardize=cfg.standardize,
        options=cfg.options,
    )
    if fused is not None:
        z = _scores(data, cfg)[0] if impl.has_permutation else data.x
        return z, None, fused
    z, stats = _scores(data, cfg)
    sv = impl.sorted_values(z, cfg.softness, cfg.mode, descending=descending, options=cfg.options)
    return z, stats, sv


def _to_x(v: torch.Tensor, stats: Stats | None) -> torch.Tensor:
    return v if stats is None else unstandardize(v, stats)


def _one_hot(idx: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(*idx.shape, n, dtype=dtype, device=idx.device)
    return out.scatter(-1, idx.unsqueeze(-1), 1.0)  # not in place: vmap-safe


def _hard_index(idx: torch.Tensor, n: int, dtype: torch.dtype, cfg: _Cfg) -> torch.Tensor:
    """One-hot SoftIndex of integer indices, or its log (``0`` / ``-inf``) with ``cfg.log``."""
    if not cfg.log:
        return _one_hot(idx, n, dtype)
    out = torch.full((*idx.shape, n), -math.inf, dtype=dtype, device=idx.device)
    return out.scatter_(-1, idx.unsqueeze(-1), 0.0)


def _finish(idx: torch.Tensor, cfg: _Cfg) -> torch.Tensor:
    """Apply ``log_prob_eps`` (clamp at eps and renormalise the trailing axis) if given."""
    if cfg.eps is None or idx.shape[-1] == 0:
        return idx
    return clamp_log_probs(idx, cfg.eps) if cfg.log else clamp_probs(idx, cfg.eps)


def _probs(idx: torch.Tensor, cfg: _Cfg) -> torch.Tensor:
    """Probabilities of a SoftIndex (``exp`` of it with ``cfg.log``), for expected values."""
    return idx.exp() if cfg.log else idx


def _expect(p: torch.Tensor, x: torch.Tensor, gated_grad: bool) -> torch.Tensor:
    """Expected value of ``x`` (..., n) under soft indices ``p`` (..., m, n) -> (..., m)."""
    w = p if gated_grad else p.detach()
    return (w @ x.unsqueeze(-1)).squeeze(-1)


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or isinstance(k, float):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    try:
        kk = operator.index(k)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"k must be an int, got {type(k).__name__}") from None
    if not 0 <= kk <= n:
        raise ValueError(f"k must be in [0, n] = [0, {n}] for a dimension of size {n}, got {kk}")
    return kk


def _readable(t: torch.Tensor) -> bool:
    """Whether ``t``'s values can be read in Python (not compiling, no torch.func wrapper)."""
    from ..simplex import is_concrete

    return is_concrete(t)


def _check_q(q: object, data: _Data) -> tuple[torch.Tensor, bool]:
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
    if qt.numel() and _readable(qt) and not bool(((qt >= 0) & (qt <= 1)).all()):
        raise ValueError(f"q values must be in [0, 1] (and not NaN), got {qt.tolist()}")
    return qt, scalar


# ----------------------------------------------------------------------------------------------
# argmax / argmin / max / min
# ----------------------------------------------------------------------------------------------


def _plain(cfg: _Cfg) -> _Cfg:
    """``cfg`` without the log-probability options (for results without a SoftIndex)."""
    return _Cfg(cfg.mode, cfg.softness, cfg.method, cfg.standardize, cfg.options)


def _soft_arg_extreme(
    impl: OrderingMethod, z: torch.Tensor, cfg: _Cfg, largest: bool
) -> torch.Tensor:
    if cfg.log:
        fn = impl.log_argmax if largest else impl.log_argmin
    else:
        fn = impl.argmax if largest else impl.argmin
    return fn(z, cfg.softness, cfg.mode, options=cfg.options)


def _arg_extreme(x: object, dim: int | None, keepdim: bool, cfg: _Cfg, largest: bool) -> SoftIndex:
    data = _prepare(x, dim, flatten=True, cfg=cfg)
    n = data.n
    if cfg.mode == "hard" or n == 0:
        hard = torch.argmax if largest else torch.argmin
        idx = hard(data.x, dim=-1) if n else hard(as_float(x), dim=dim)  # type: ignore[arg-type]
        out = _hard_index(idx, n, data.x.dtype, cfg)
    else:
        z, _ = _scores(data, cfg)
        out = _soft_arg_extreme(_impl(cfg), z, cfg, largest)
    return _reduced(_finish(out, cfg), data, keepdim, trailing=1)


def _extreme(
    x: object, dim: int | None, keepdim: bool, cfg: _Cfg, gated_grad: bool, largest: bool
) -> Any:
    data = _prepare(x, dim, flatten=True, cfg=cfg)
    n = data.n
    want_index = dim is not None
    if not want_index:
        cfg = _plain(cfg)
    kind = torch.return_types.max if largest else torch.return_types.min
    idx: torch.Tensor | None
    if n == 0:
        hard = torch.max if largest else torch.min
        return hard(as_float(x)) if dim is None else hard(as_float(x), dim, keepdim)  # type: ignore[arg-type]
    if cfg.mode == "hard":
        values, hard_idx = _take.extreme(data.x, largest)
        idx = _hard_index(hard_idx, n, data.x.dtype, cfg)
    else:
        impl = _impl(cfg)
        z, stats, sv = _scores_values(impl, data, cfg, descending=False)
        if sv is None:
            idx = _soft_arg_extreme(impl, z, cfg, largest)
            values = _expect(_probs(idx, cfg).unsqueeze(-2), data.x, gated_grad).squeeze(-1)
        else:
            pick = slice(-1, None) if largest else slice(0, 1)
            values = _to_x(sv[..., pick], stats)[..., 0]
            idx = None
            if want_index and impl.has_permutation:
                idx = _soft_arg_extreme(impl, z, cfg, largest)
    values = _reduced(values, data, keepdim, trailing=0)
    if not want_index:
        return values
    out_i = None if idx is None else _reduced(_finish(idx, cfg), data, keepdim, trailing=1)
    return kind((values, out_i))


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
) -> SoftIndex:
    r"""Soft ``torch.argmax``: a distribution over the positions of ``dim`` (SoftIndex).

    Shape: torch's result shape plus a trailing axis of size ``n`` (``(n,)`` for a vector).
    ``return_log_probs=True`` returns the log-probabilities instead (computed stably; ``-inf``
    exactly at the zeros of ``hard`` / ``c0``), ``log_prob_eps`` clamps the probabilities at
    ``eps`` in ``(0, 1/n)`` and renormalises; see *Log-probabilities* in
    :mod:`softtorch.ordering.ops`.

    Example:
        >>> argmax(torch.tensor([-0.2, -1.0, 0.3, 1.0]))
        tensor([0.0215, 0.0022, 0.1176, 0.8586])
        >>> argmax(torch.tensor([1000.0, 0.0, -1000.0]), standardize=False, return_log_probs=True)
        tensor([     0., -10000., -20000.])
    """
    cfg = _config(
        "argmax",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    return _arg_extreme(x, dim, keepdim, cfg, largest=True)


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
) -> SoftIndex:
    """Soft ``torch.argmin`` (SoftIndex); see :func:`argmax` (also for ``return_log_probs`` and
    ``log_prob_eps``)."""
    cfg = _config(
        "argmin",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    return _arg_extreme(x, dim, keepdim, cfg, largest=False)


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
) -> Any:
    r"""Soft ``torch.max``: the expected value of ``x`` under :func:`argmax` (or, for
    ``fast_soft_sort`` / ``sorting_network``, the largest soft sorted value).

    Without ``dim``: a 0-d value. With ``dim``: ``torch.return_types.max(values, indices)`` with
    SoftIndex ``indices`` (None for ``fast_soft_sort``), log-probabilities with
    ``return_log_probs=True`` (values unchanged); ``log_prob_eps`` as in :func:`argmax`.
    """
    cfg = _config(
        "max",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    return _extreme(x, dim, keepdim, cfg, gated_grad, largest=True)


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
) -> Any:
    """Soft ``torch.min``; see :func:`max`."""
    cfg = _config(
        "min",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    return _extreme(x, dim, keepdim, cfg, gated_grad, largest=False)


# ----------------------------------------------------------------------------------------------
# sort / argsort / topk / rank
# ----------------------------------------------------------------------------------------------


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
) -> torch.return_types.sort:
    r"""Soft ``torch.sort``: ``torch.return_types.sort(values, indices)``.

    ``values = P @ x`` for the soft permutation ``P`` (``indices``, SoftIndex of shape
    ``x.shape + (n,)`` with the sorted axis at ``dim``), or the method's soft sorted values for
    ``fast_soft_sort`` / ``sorting_network`` (``indices`` None). ``return_indices=False`` gives
    ``indices=None`` and, for softsort / neuralsort, never builds an ``n x n`` matrix.
    ``return_log_probs=True`` makes ``indices`` the log-probabilities (values unchanged up to
    rounding); ``log_prob_eps`` as in :func:`argmax`.

    Example:
        >>> sort(torch.tensor([-0.2, -1.0, 0.3, 1.0])).values
        tensor([-0.8792, -0.1641,  0.2767,  0.8738])
    """
    cfg = _config(
        "sort",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    if not return_indices:
        cfg = _plain(cfg)
    data = _prepare(x, dim, flatten=False, cfg=cfg)
    n = data.n
    idx: torch.Tensor | None = None
    if cfg.mode == "hard" or n == 0:
        values, order = _take.sort(data.x, descending=bool(descending))
        if return_indices:
            idx = _hard_index(order, n, data.x.dtype, cfg)
    else:
        impl = _impl(cfg)
        z, stats, sv = _scores_values(impl, data, cfg, descending=bool(descending))
        if sv is not None:
            values = _to_x(sv, stats)
        elif return_indices and cfg.log:
            idx = impl.log_permutation(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
            values = _expect(idx.exp(), data.x, gated_grad)
        elif return_indices and gated_grad:
            idx, values = impl.permutation_with_values(
                z, data.x, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
        elif return_indices:
            idx = impl.permutation(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
            values = _expect(idx, data.x, gated_grad)
        else:
            zz = z if gated_grad else z.detach()
            values = impl.permute_values(
                zz, data.x, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
    out_idx = None if idx is None else _along(_finish(idx, cfg), data, index=True)
    return torch.return_types.sort((_along(values, data, index=False), out_idx))


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
) -> SoftIndex:
    r"""Soft ``torch.argsort``: the soft permutation, SoftIndex of shape ``x.shape + (n,)``.

    Along the last axis, row ``i`` of the trailing ``(n, n)`` block is the distribution over
    inputs of the ``i``-th sorted element (rows sum to 1; with ``return_log_probs=True`` their
    logs, each row's ``logsumexp`` 0). ``log_prob_eps`` as in :func:`argmax`.
    """
    cfg = _config(
        "argsort",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    data = _prepare(x, dim, flatten=False, cfg=cfg)
    n = data.n
    if cfg.mode == "hard" or n == 0:
        order = torch.argsort(data.x, dim=-1, descending=bool(descending))
        out = _hard_index(order, n, data.x.dtype, cfg)
    else:
        z, _ = _scores(data, cfg)
        impl = _impl(cfg)
        fn = impl.log_permutation if cfg.log else impl.permutation
        out = fn(z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options)
    return _along(_finish(out, cfg), data, index=True)


@autocast_off
def topk(
    x: torch.Tensor,
    k: int,
    dim: int | None = None,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    largest: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
) -> torch.return_types.topk:
    r"""Soft ``torch.topk`` (sorted): ``torch.return_types.topk(values, indices)``.

    ``indices`` (SoftIndex, ``(..., k, n)`` with the k axis at ``dim``) are the first ``k`` rows of
    the descending soft permutation (the method's ``topk_permutation``); ``values = indices @ x``,
    or the method's soft sorted values for ``fast_soft_sort`` / ``sorting_network``
    (``indices`` None for ``fast_soft_sort``). ``largest=False`` gives the ``k`` smallest.
    ``return_log_probs`` / ``log_prob_eps`` apply to ``indices`` as in :func:`argmax`.
    """
    cfg = _config(
        "topk",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    data = _prepare(x, dim, flatten=False, cfg=cfg)
    n = data.n
    kk = _check_k(k, n)
    idx: torch.Tensor | None = None
    if cfg.mode == "hard" or n == 0 or kk == 0:
        values, top = _take.topk(data.x, kk, largest=bool(largest))
        idx = _hard_index(top, n, data.x.dtype, cfg)
    else:
        impl = _impl(cfg)
        z, stats, sv = _scores_values(impl, data, cfg, descending=bool(largest))
        zk = z if largest else 1.0 - z
        if impl.has_permutation:
            fn = impl.log_topk_permutation if cfg.log else impl.topk_permutation
            idx = fn(zk, kk, cfg.softness, cfg.mode, options=cfg.options)
        if sv is not None:
            values = _to_x(sv[..., :kk], stats)
        else:
            assert idx is not None
            values = _expect(_probs(idx, cfg), data.x, gated_grad)
    out_idx = None if idx is None else _along(_finish(idx, cfg), data, index=True)
    return torch.return_types.topk((_along(values, data, index=False), out_idx))


def _hard_rank(x: torch.Tensor, descending: bool) -> torch.Tensor:
    order = torch.argsort(x, dim=-1, descending=descending, stable=True)
    return (torch.argsort(order, dim=-1, stable=True) + 1).to(x.dtype)


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
) -> torch.Tensor:
    r"""Soft ranks in ``[1, n]`` along ``dim`` (flattened input when None).

    With ``descending=True`` (default) the largest entry gets rank 1; hard mode (ties broken by
    a stable sort) gives ``argsort(argsort(x, stable=True), stable=True) + 1``.

    Example:
        >>> rank(torch.tensor([-0.2, -1.0, 0.3, 1.0]), descending=False)
        tensor([1.9950, 1.0548, 3.0239, 3.9228])
    """
    cfg = _config("rank", mode, softness, method, standardize, ot_kwargs, need_index=False)
    data = _prepare(x, dim, flatten=True)
    if cfg.mode == "hard" or data.n == 0:
        out = _hard_rank(data.x, bool(descending))
    else:
        impl = _impl(cfg)
        out = impl.fused_rank(
            data.x,
            cfg.softness,
            cfg.mode,
            descending=bool(descending),
            standardize=cfg.standardize,
            options=cfg.options,
        )
        if out is None:
            z, _ = _scores(data, cfg)
            out = impl.rank(
                z, cfg.softness, cfg.mode, descending=bool(descending), options=cfg.options
            )
    return _along(out, data, index=False)


# ----------------------------------------------------------------------------------------------
# quantile / median and their arg-ops
# ----------------------------------------------------------------------------------------------


def _quantile_positions(
    q: torch.Tensor, n: int, interpolation: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted positions ``lo``, ``hi`` and the weight of ``hi``, following ``torch.quantile``."""
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
    data: _Data,
    cfg: _Cfg,
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
    impl = _impl(cfg)
    if want_values:
        z, stats, sv = _scores_values(impl, data, cfg, descending=False)
    else:
        (z, stats), sv = _scores(data, cfg), None
    if sv is not None:
        xs = _to_x(sv, stats)
        values = (1.0 - w) * _take.index_select_last(xs, lo) + w * _take.index_select_last(xs, hi)
    if want_index and cfg.log:
        rows = impl.log_permutation_rows(
            z, torch.cat((lo, hi)), cfg.softness, cfg.mode, descending=False, options=cfg.options
        )
        idx = log_mix(rows[..., :m, :], rows[..., m:, :], w)
        if values is None and want_values:
            values = _expect(idx.exp(), data.x, gated_grad)
    elif want_index or (want_values and sv is None):
        rows = impl.permutation_rows(
            z, torch.cat((lo, hi)), cfg.softness, cfg.mode, descending=False, options=cfg.options
        )
        wc = w.unsqueeze(-1)
        idx = (1.0 - wc) * rows[..., :m, :] + wc * rows[..., m:, :]
        if values is None and want_values:
            values = _expect(idx, data.x, gated_grad)
    return values, idx


def _hard_quantile_index(
    data: _Data, lo: torch.Tensor, hi: torch.Tensor, w: torch.Tensor, cfg: _Cfg
) -> torch.Tensor:
    order = torch.sort(data.x, dim=-1, stable=True).indices
    n = data.n
    oh_lo = _one_hot(order.index_select(-1, lo), n, data.x.dtype)
    oh_hi = _one_hot(order.index_select(-1, hi), n, data.x.dtype)
    wc = w.unsqueeze(-1)
    out = (1.0 - wc) * oh_lo + wc * oh_hi
    return safe_log(out) if cfg.log else out


def _quantile(
    x: object,
    q: object,
    dim: int | None,
    keepdim: bool,
    cfg: _Cfg,
    interpolation: object,
    *,
    want_values: bool,
    want_index: bool,
    gated_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    interp = check_choice(interpolation, INTERPOLATIONS, "interpolation")
    if not want_index:
        cfg = _plain(cfg)
    data = _prepare(x, dim, flatten=True, cfg=cfg)
    qt, scalar = _check_q(q, data)
    n = data.n
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    if data.x.numel() == 0:
        torch.quantile(data.x, qt, dim=-1)  # raises like torch (empty input)
    lo, hi, w = _quantile_positions(qt, n, interp)
    if cfg.mode == "hard":
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
        t = _reduced(t, data, keepdim, trailing=trailing, lead=1)
        return t.squeeze(0) if scalar else t

    return layout(values, 0), layout(None if idx is None else _finish(idx, cfg), 1)


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
) -> Any:
    r"""Soft ``torch.quantile``: ``interpolation`` applied to the soft sorted rows.

    With sorted position ``q (n - 1)`` between rows ``lo`` and ``hi`` (``linear``: weights
    ``1 - w``, ``w``; ``lower`` / ``higher`` / ``nearest`` (half to even) / ``midpoint`` as in
    torch), the soft index is ``(1 - w) P[lo] + w P[hi]`` and the value its expectation (or the
    same combination of the soft sorted values for ``fast_soft_sort`` / ``sorting_network``).
    A 1-D ``q`` of length ``m`` prepends an axis of size ``m``. ``return_argquantile=True``
    returns ``(values, soft_index)``; ``return_log_probs`` / ``log_prob_eps`` apply to that soft
    index as in :func:`argmax`.

    Example:
        >>> quantile(torch.tensor([-0.2, -1.0, 0.3, 1.0]), 0.2)
        tensor(-0.4501)
    """
    cfg = _config(
        "quantile",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=bool(return_argquantile),
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
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
    )
    return (values, idx) if return_argquantile else values


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
) -> SoftIndex:
    r"""SoftIndex of :func:`quantile`; hard mode is the one- or two-hot index of
    ``torch.quantile``'s interpolation (``[0.6, 0.4, 0, 0]`` for ``q = 0.2`` on
    ``[-0.2, -1.0, 0.3, 1.0]``). ``return_log_probs=True`` gives
    :math:`\log((1 - w) P_{lo} + w P_{hi})` computed from the log rows; ``log_prob_eps`` as in
    :func:`argmax`."""
    cfg = _config(
        "argquantile",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
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
    )
    assert idx is not None
    return idx


def _median(
    x: object, dim: int | None, keepdim: bool, cfg: _Cfg, gated_grad: bool, *, want_values: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None, _Data]:
    want_index = dim is not None or not want_values
    if not want_index:
        cfg = _plain(cfg)
    data = _prepare(x, dim, flatten=True, cfg=cfg)
    n = data.n
    values: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    if cfg.mode == "hard" or n == 0:
        if n == 0 and dim is None and want_values:
            values = torch.median(data.x)
        else:
            values, mid_idx = _take.median(data.x)
            if want_index:
                idx = _hard_index(mid_idx, n, data.x.dtype, cfg)
    else:
        mid = torch.tensor([(n - 1) // 2], device=data.x.device)
        w = torch.zeros(1, dtype=data.x.dtype, device=data.x.device)
        impl_has_index = _impl(cfg).has_permutation
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
    out_v = None if values is None else _reduced(values, data, keepdim, trailing=0)
    out_i = None if idx is None else _reduced(_finish(idx, cfg), data, keepdim, trailing=1)
    return out_v, out_i, data


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
) -> Any:
    r"""Soft ``torch.median`` (the lower middle, row ``floor((n - 1) / 2)`` of the ascending soft
    sort). Without ``dim``: a 0-d value; with ``dim``: ``torch.return_types.median(values,
    indices)`` with SoftIndex ``indices`` (None for ``fast_soft_sort``; log-probabilities with
    ``return_log_probs=True``, ``log_prob_eps`` as in :func:`argmax`)."""
    cfg = _config(
        "median",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    values, idx, _ = _median(x, dim, keepdim, cfg, gated_grad, want_values=True)
    if dim is None:
        return values
    return torch.return_types.median((values, idx))


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
) -> SoftIndex:
    """SoftIndex of :func:`median` (hard mode: one-hot of ``torch.median``'s index);
    ``return_log_probs`` / ``log_prob_eps`` as in :func:`argmax`."""
    cfg = _config(
        "argmedian",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=True,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
    )
    _, idx, _ = _median(x, dim, keepdim, cfg, True, want_values=False)
    assert idx is not None
    return idx
