r"""Shared plumbing of the op layer (:mod:`softtorch.ordering.ops`): argument validation, layout
and the small steps every op family repeats.

An op validates its arguments once into a :class:`Cfg` (:func:`config`), moves the reduced
dimension last and promotes the dtype (:func:`prepare` -> :class:`Data`), asks the method for
scores / soft sorted values (:func:`scores`, :func:`scores_values`; standardization
:math:`z = \sigma((x - \mu)/\sqrt{\mathrm{Var}(x) + 10^{-6}})` when ``standardize=True``), and
lays the result out like torch (:func:`reduced` for reductions, :func:`along` for sort-like
results). Hard results become one-hot SoftIndex tensors (:func:`hard_index`, ``0`` / ``-inf`` in
log space); :func:`finish` applies ``log_prob_eps``; :func:`expect` is the expected value
``P @ x`` of a SoftIndex.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import (
    INDEX_METHODS,
    METHODS,
    MODES,
    as_float,
    canonical_dim,
    check_method,
    check_mode,
    check_softness,
)
from . import _mask
from ._base import OrderingMethod, Softness, get_method
from ._hard import HARD_LIMIT, HardLimit
from ._logspace import clamp_log_probs, clamp_probs
from ._masked import Masked
from ._standardize import Stats, unstandardize
from ._standardize import standardize as _standardize

SoftIndex = torch.Tensor
_HALF = (torch.float16, torch.bfloat16)
_VALUE_ONLY = tuple(m for m in METHODS if m not in INDEX_METHODS)
#: Modes of the ordering ops: the public ones plus softtorch 0.1.1's ``"_hard"`` (:mod:`._hard`).
ORDERING_MODES: tuple[str, ...] = MODES + (HARD_LIMIT,)


# ----------------------------------------------------------------------------------------------
# validation and layout
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cfg:
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
        raise ValueError(f"log_prob_eps must be in (0, 1/n) (a finite float), got {eps!r}")
    return e


def config(
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
    perturbed_kwargs: object = None,
) -> Cfg:
    mode_ = check_mode(mode, ORDERING_MODES)
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
    if perturbed_kwargs is not None and not isinstance(perturbed_kwargs, dict):
        raise TypeError(
            f"perturbed_kwargs must be a dict or None, got {type(perturbed_kwargs).__name__}"
        )
    options = {"ot": ot_kwargs, "perturbed": perturbed_kwargs}.get(method_)  # type: ignore[arg-type]
    eps = _check_log_prob_eps(log_prob_eps)
    return Cfg(
        mode_,  # type: ignore[arg-type]
        softness_,
        method_,  # type: ignore[arg-type]
        bool(standardize) and mode_ != HARD_LIMIT,  # monotone: no effect on the hard limit
        options,  # type: ignore[arg-type]
        bool(return_log_probs),
        eps,
    )


def method_impl(cfg: Cfg, data: Data | None = None) -> OrderingMethod:
    """The method of ``cfg`` (its hard limit :class:`~._hard.HardLimit` for ``"_hard"``), on the
    real entries of ``data.mask`` (:class:`~._masked.Masked`) when the op has a mask."""
    try:
        impl = get_method(cfg.method)
    except KeyError:
        raise ValueError(
            f"method {cfg.method!r} is not available in this installation "
            f"(module softtorch.ordering.{cfg.method} is missing)"
        ) from None
    impl = HardLimit(impl) if cfg.mode == HARD_LIMIT else impl
    if data is not None and data.mask is not None:
        return Masked(impl, data.mask)
    return impl


@dataclass(frozen=True)
class Data:
    x: torch.Tensor  # compute dtype, reduced axis last
    dtype: torch.dtype  # result dtype
    dim: int | None  # canonical dim in the input, None when flattened
    ndim: int  # input ndim
    mask: torch.Tensor | None = None  # bool, laid out like x (True = real entry)

    @property
    def n(self) -> int:
        return self.x.shape[-1]

    @property
    def count(self) -> torch.Tensor:
        """Real entries per slice ``(..., 1)`` (``n`` without a mask)."""
        if self.mask is None:
            return torch.full((*self.x.shape[:-1], 1), self.n, device=self.x.device)
        return _mask.counts(self.mask)


def prepare(
    x: object, dim: int | None, *, flatten: bool, cfg: Cfg | None = None, mask: object = None
) -> Data:
    """Validated input with the reduced axis last; with a ``mask`` (:func:`._mask.check_mask`)
    padded entries of ``x`` become ``0`` (a constant: no gradient, no ``0 * inf``)."""
    xt = as_float(x)  # type: ignore[arg-type]
    mt = None if mask is None else _mask.check_mask(mask, xt)
    dtype = xt.dtype
    if dtype in _HALF:
        xt = xt.float()
    if dim is None and flatten:
        data = Data(xt.reshape(-1), dtype, None, xt.ndim)
        ml = None if mt is None else mt.reshape(-1)
    else:
        d = canonical_dim(-1 if dim is None else dim, xt.ndim)
        xl = xt.reshape(1) if xt.ndim == 0 else xt.movedim(d, -1)
        data = Data(xl, dtype, d, xt.ndim)
        ml = None if mt is None else (mt.reshape(1) if mt.ndim == 0 else mt.movedim(d, -1))
    if ml is not None:
        data = Data(torch.where(ml, data.x, 0.0), data.dtype, data.dim, data.ndim, ml)
    if cfg is not None and cfg.eps is not None and data.n > 0 and not cfg.eps < 1.0 / data.n:
        raise ValueError(
            f"log_prob_eps must be in (0, 1/n) = (0, {1.0 / data.n:.6g}) for n = {data.n} "
            f"candidates along the reduced dimension, got {cfg.eps!r}"
        )
    return data


def reduced(
    t: torch.Tensor, data: Data, keepdim: bool, *, trailing: int, lead: int = 0
) -> torch.Tensor:
    """Lay out a reduced result ``lead + batch + trailing`` like torch (keepdim, 0-d input)."""
    if keepdim:
        if data.dim is None:
            shape = list(t.shape[:lead]) + [1] * data.ndim + list(t.shape[t.ndim - trailing :])
            t = t.reshape(shape)
        elif data.ndim > 0:
            t = t.unsqueeze(lead + data.dim)
    return t.to(data.dtype)


def along(t: torch.Tensor, data: Data, *, index: bool) -> torch.Tensor:
    """Move the sorted axis (last for values, second-to-last for soft indices) back to ``dim``."""
    if data.dim is None:
        return t.to(data.dtype)
    if data.ndim == 0:
        if t.shape[-2 if index else -1] == 1:
            t = t.reshape(t.shape[-1:] if index else ())
        return t.to(data.dtype)
    return t.movedim(-2 if index else -1, data.dim).to(data.dtype)


def scores(data: Data, cfg: Cfg) -> tuple[torch.Tensor, Stats | None]:
    if cfg.standardize and data.mask is not None:
        return _mask.standardize(data.x, data.mask)
    if cfg.standardize:
        return _standardize(data.x)
    return data.x, None


def scores_values(
    impl: OrderingMethod, data: Data, cfg: Cfg, *, descending: bool
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
        z = scores(data, cfg)[0] if impl.has_permutation else data.x
        return z, None, fused
    z, stats = scores(data, cfg)
    sv = impl.sorted_values(z, cfg.softness, cfg.mode, descending=descending, options=cfg.options)
    return z, stats, sv


def to_x(
    v: torch.Tensor, stats: Stats | None, x: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Soft sorted values ``v`` (..., m) in the units of ``x`` (..., n), inside each slice's
    ``[min x, max x]`` (NaN and padded entries ignored; with a ``mask`` the values at output
    positions ``>= c`` become the fill ``0``).

    Soft sorted values are convex combinations of the inputs; the clamp only undoes rounding
    (``logit(sigmoid(.))`` round trips, p-norm roots) and is straight-through (no gradient of
    its own).
    """
    out = v if stats is None else unstandardize(v, stats)
    xd = x.detach()
    nan = torch.isnan(xd)
    skip_lo = nan if mask is None else nan | ~mask
    lo = torch.where(skip_lo, math.inf, xd).amin(dim=-1, keepdim=True)
    hi = torch.where(skip_lo, -math.inf, xd).amax(dim=-1, keepdim=True)
    inside = torch.minimum(torch.maximum(out, lo.to(out.dtype)), hi.to(out.dtype))
    res = inside.detach() + (out - out.detach())  # exactly ``inside`` in value
    if mask is None:
        return res
    return _mask.fill_positions(res, _mask.counts(mask))


def one_hot(idx: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(*idx.shape, n, dtype=dtype, device=idx.device)
    return out.scatter(-1, idx.unsqueeze(-1), 1.0)  # not in place: vmap-safe


def hard_index(idx: torch.Tensor, n: int, dtype: torch.dtype, cfg: Cfg) -> torch.Tensor:
    """One-hot SoftIndex of integer indices, or its log (``0`` / ``-inf``) with ``cfg.log``."""
    if not cfg.log:
        return one_hot(idx, n, dtype)
    out = torch.full((*idx.shape, n), -math.inf, dtype=dtype, device=idx.device)
    return out.scatter_(-1, idx.unsqueeze(-1), 0.0)


def finish(idx: torch.Tensor, cfg: Cfg, cols: torch.Tensor | None = None) -> torch.Tensor:
    """Apply ``log_prob_eps`` (clamp at eps and renormalise the trailing axis) if given.

    With ``cols`` (bool, broadcastable to ``idx``: the real entries of a masked op) only real
    columns are clamped and renormalised; padded columns and all-zero rows (output positions
    beyond a slice's real count) stay zero (``-inf``).
    """
    if cfg.eps is None or idx.shape[-1] == 0:
        return idx
    if cols is None:
        return clamp_log_probs(idx, cfg.eps) if cfg.log else clamp_probs(idx, cfg.eps)
    if cfg.log:
        alive = (idx > -math.inf).any(-1, keepdim=True)
        c = torch.where(cols, idx.clamp_min(math.log(cfg.eps)), -math.inf)
        out = c - torch.logsumexp(c, dim=-1, keepdim=True)
        return torch.where(alive & cols, out, -math.inf)
    alive = (idx > 0).any(-1, keepdim=True)
    c = torch.where(cols, idx.clamp_min(cfg.eps), 0.0)
    out = c / c.sum(dim=-1, keepdim=True).clamp_min(cfg.eps)
    return torch.where(alive & cols, out, 0.0)


def cols(data: Data, *, rows: bool = True) -> torch.Tensor | None:
    """The real columns of a masked op's SoftIndex (``(..., 1, n)`` with ``rows``), or None."""
    if data.mask is None:
        return None
    return data.mask.unsqueeze(-2) if rows else data.mask


def hard_masked_index(order: torch.Tensor, data: Data, cfg: Cfg) -> torch.Tensor:
    """One-hot rows of ``order`` (..., r) for a masked op: rows at positions ``>= c`` are the
    fill (zero rows, ``-inf`` in log space)."""
    idx = hard_index(order, data.n, data.x.dtype, cfg)
    if data.mask is None:
        return idx
    return _mask.fill_positions(idx, data.count, axis=-2, fill=-math.inf if cfg.log else 0.0)


def probs(idx: torch.Tensor, cfg: Cfg) -> torch.Tensor:
    """Probabilities of a SoftIndex (``exp`` of it with ``cfg.log``), for expected values."""
    return idx.exp() if cfg.log else idx


def expect(p: torch.Tensor, x: torch.Tensor, gated_grad: bool) -> torch.Tensor:
    """Expected value of ``x`` (..., n) under soft indices ``p`` (..., m, n) -> (..., m)."""
    w = p if gated_grad else p.detach()
    return (w @ x.unsqueeze(-1)).squeeze(-1)


def plain(cfg: Cfg) -> Cfg:
    """``cfg`` without the log-probability options (for results without a SoftIndex)."""
    return Cfg(cfg.mode, cfg.softness, cfg.method, cfg.standardize, cfg.options)
