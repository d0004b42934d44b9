r"""Selection with soft indices: the expected value of torch's integer-index selection.

A *SoftIndex* has torch's integer-index shape plus one trailing axis of length ``n`` (the size of
the indexed dimension) holding weights over the ``n`` positions (a distribution for the soft
arg-ops). Each function returns :math:`\sum_j w_j\, x[\dots, j, \dots]`, so a one-hot soft index
reproduces torch's integer-index result exactly, and e.g.
``take_along_dim(x, argmax(x, dim, keepdim=True), dim)`` is the soft ``max`` along ``dim``.

* ``take_along_dim(x, s, dim)``: like ``torch.take_along_dim(x, i, dim)`` for ``i`` of shape
  ``s.shape[:-1]`` (broadcast with ``x`` except along ``dim``); ``dim=None`` flattens ``x`` and
  the index (result 1-D).
* ``take(x, s, dim=None)``: ``dim=None`` is ``torch.take`` (``x`` flattened, result shape
  ``s.shape[:-1]``); with ``dim`` it is ``numpy.take(x, i, axis=dim)``: the index shape replaces
  ``dim``.
* ``index_select(x, s, dim, keepdim=True)``: ``torch.index_select`` with ``s`` of shape
  ``(m, n)``; a single soft index of shape ``(n,)`` selects one slice, kept as a singleton at
  ``dim`` when ``keepdim`` (else ``dim`` is removed, like ``x.select(dim, i)``).
* ``narrow(x, s, length, dim=0)``: ``torch.narrow(x, dim, start, length)`` with a soft ``start``
  of shape ``(..., n)`` (or ``(..., n - length + 1)``) over start positions; weight on starts past
  ``n - length`` (which torch would reject) is assigned to the last valid start.

A weight of exactly 0 never touches a non-finite entry (``0 * nan`` is dropped), so a one-hot
soft index gives torch's integer-index result even when unselected entries are NaN or +-inf.
Empty and 0-d inputs follow torch's rules and messages (no index may point into an empty axis).

Like their torch counterparts, the results keep the input dtype under ``torch.autocast`` (the
weighted sums run with autocast disabled, in the promoted dtype of ``x`` and the soft index).
"""

from __future__ import annotations

import math

import torch

from ._checks import as_float, autocast_off, canonical_dim
from .simplex import is_concrete

SoftIndex = torch.Tensor


def _operands(x: object, soft_index: object) -> tuple[torch.Tensor, torch.Tensor]:
    xt = as_float(x, "x")  # type: ignore[arg-type]
    if not isinstance(soft_index, torch.Tensor):
        raise TypeError(f"soft_index must be a tensor, got {type(soft_index).__name__}")
    s = as_float(soft_index, "soft_index")
    dtype = torch.promote_types(xt.dtype, s.dtype)
    return xt.to(dtype), s.to(dtype)


def _check_size(s: torch.Tensor, n: int, what: str) -> None:
    if s.ndim == 0 or s.shape[-1] != n:
        got = "a 0-d tensor" if s.ndim == 0 else f"trailing size {s.shape[-1]}"
        raise ValueError(
            f"soft_index must have a trailing axis of size {n} ({what}), got {got}; a SoftIndex "
            "is the integer-index shape plus one axis over the positions"
        )


def _count(s: torch.Tensor) -> int:
    """The number of (soft) indices in ``s``: the product of its shape without the last axis."""
    return math.prod(s.shape[:-1])


def _all_finite(v: torch.Tensor) -> bool:
    """True if ``v`` is known to be all finite (eager mode, values readable)."""
    return is_concrete(v) and bool(torch.isfinite(v).all())


def _wmm(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""``w @ v`` for weights ``w`` (..., m, n) and values ``v`` (..., n, k), where a weight of
    exactly 0 never touches a non-finite value (``0 * nan`` and ``0 * inf`` are dropped, so a
    one-hot ``w`` selects exactly, like an integer index).

    The finite part is one matmul; the non-finite entries with non-zero weight are counted by
    three indicator matmuls (+inf, -inf, NaN terms), giving NaN / +-inf where torch's integer
    selection would. Gradients flow through the finite part (the infinite terms are constant).
    """
    if _all_finite(v):
        return w @ v
    finite = torch.isfinite(v)
    out = w @ torch.where(finite, v, torch.zeros_like(v))
    pos, neg = (w > 0).to(w.dtype), (w < 0).to(w.dtype)
    pinf, ninf = torch.isposinf(v).to(w.dtype), torch.isneginf(v).to(w.dtype)
    n_pinf = pos @ pinf + neg @ ninf
    n_ninf = pos @ ninf + neg @ pinf
    n_nan = (w != 0).to(w.dtype) @ torch.isnan(v).to(w.dtype)
    nan = (n_nan > 0) | ((n_pinf > 0) & (n_ninf > 0))
    special = torch.where(n_pinf > 0, math.inf, -math.inf).to(out.dtype)
    special = torch.where(nan, torch.full_like(special, math.nan), special)
    return torch.where(nan | (n_pinf > 0) | (n_ninf > 0), special, out)


def _empty_axis(s: torch.Tensor, n: int, message: str, error: type[Exception]) -> None:
    """torch's rule for an empty indexed axis: no index may point into it."""
    if n == 0 and _count(s) > 0:
        raise error(message)


@autocast_off
def take_along_dim(x: torch.Tensor, soft_index: SoftIndex, dim: int | None = None) -> torch.Tensor:
    r"""Soft ``torch.take_along_dim``: ``out[.., i, ..] = sum_j s[.., i, .., j] x[.., j, ..]``.

    Args:
        x: the tensor to select from.
        soft_index: a SoftIndex: the integer index's shape (``x.ndim`` dimensions, broadcast
            with ``x`` except along ``dim``) plus a trailing axis of size ``x.shape[dim]``
            (``x.numel()`` for ``dim=None``).
        dim: the dimension to select along; ``None`` flattens ``x`` and the index (1-D result).

    Example:
        >>> x = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
        >>> take_along_dim(x, torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]]), dim=1)
        tensor([[5.],
                [3.]])
    """
    xt, s = _operands(x, soft_index)
    if dim is None:
        flat = xt.reshape(-1)
        n = flat.shape[0]
        _check_size(s, n, "the number of elements of x, as dim=None flattens")
        _empty_axis(s, n, "index 0 is out of bounds for dimension 0 with size 0", IndexError)
        return _wmm(s.reshape(_count(s), n), flat.unsqueeze(-1)).squeeze(-1)
    if xt.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = canonical_dim(dim, xt.ndim)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    if s.ndim - 1 != xt.ndim:
        raise ValueError(
            f"soft_index must have x.ndim + 1 = {xt.ndim + 1} dimensions for take_along_dim, "
            f"got {s.ndim}"
        )
    _empty_axis(s, n, f"index 0 is out of bounds for dimension {d} with size 0", IndexError)
    sm = s.movedim(d, -2)  # (..., m, n)
    xm = xt.movedim(d, -1).unsqueeze(-1)  # (..., n, 1)
    return _wmm(sm, xm).squeeze(-1).movedim(-1, d)


@autocast_off
def take(x: torch.Tensor, soft_index: SoftIndex, dim: int | None = None) -> torch.Tensor:
    """Soft ``torch.take`` (``dim=None``) or ``numpy.take(x, i, axis=dim)``: see the module doc.

    Args:
        x: the tensor to select from.
        soft_index: a SoftIndex: any integer-index shape plus a trailing axis of size
            ``x.numel()`` (``dim=None``) or ``x.shape[dim]``.
        dim: ``None`` (``torch.take``: ``x`` flattened, result shape ``soft_index.shape[:-1]``)
            or the axis whose size the index shape replaces (``numpy.take``); a 0-d ``x`` counts
            as one element along dim 0.
    """
    xt, s = _operands(x, soft_index)
    if dim is None:
        flat = xt.reshape(-1)
        n = flat.shape[0]
        _check_size(s, n, "the number of elements of x, as dim=None flattens")
        _empty_axis(s, n, "take(): tried to take from an empty tensor", IndexError)
        out = _wmm(s.reshape(_count(s), n), flat.unsqueeze(-1))
        return out.reshape(s.shape[:-1])
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        xt = xt.reshape(1)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    _empty_axis(s, n, "cannot do a non-empty take from an empty axes.", IndexError)
    idx_shape = s.shape[:-1]
    xm = xt.movedim(d, -1)  # (pre..., post..., n)
    # (K, n) @ (n, P) -> (K, P), transposed to (pre..., post..., K)
    cols = xm.reshape(math.prod(xm.shape[:-1]), n).transpose(0, 1)  # (n, P)
    out = _wmm(s.reshape(_count(s), n), cols).transpose(0, 1)
    out = out.reshape(tuple(xm.shape[:-1]) + tuple(idx_shape))
    # move the index dims to position d (after the pre dims)
    k = len(idx_shape)
    post = xt.ndim - 1 - d
    order = list(range(d)) + list(range(d + post, d + post + k)) + list(range(d, d + post))
    return out.permute(order)


@autocast_off
def index_select(
    x: torch.Tensor, soft_index: SoftIndex, dim: int, keepdim: bool = True
) -> torch.Tensor:
    """Soft ``torch.index_select`` with ``soft_index`` of shape ``(m, n)`` or ``(n,)``.

    Like torch, a 0-d ``x`` takes exactly one index (along dim 0 or -1) and gives a 0-d result.

    Args:
        x: the tensor to select from.
        soft_index: ``(m, n)`` (m soft indices) or ``(n,)`` (one), ``n = x.shape[dim]``.
        dim: the dimension to select along.
        keepdim: for a single ``(n,)`` index, keep ``dim`` as a singleton (else it is removed,
            like ``x.select(dim, i)``).
    """
    xt, s = _operands(x, soft_index)
    d = canonical_dim(dim, xt.ndim)
    scalar = xt.ndim == 0
    if scalar:
        xt = xt.reshape(1)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    if s.ndim > 2:
        raise ValueError(
            f"index_select takes a soft index of shape (m, n) or (n,), got {tuple(s.shape)}"
        )
    if scalar and _count(s) != 1:
        raise IndexError(
            f"index_select(): Index to scalar can have only 1 value, got {_count(s)} value(s)"
        )
    _empty_axis(s, n, "index out of range in self", IndexError)
    single = s.ndim == 1
    xm = xt.movedim(d, -1).unsqueeze(-1)  # (..., n, 1)
    out = _wmm(s.reshape(_count(s), n), xm).squeeze(-1).movedim(-1, d)
    if scalar:
        return out.reshape(())
    return out.squeeze(d) if single and not keepdim else out


@autocast_off
def narrow(x: torch.Tensor, soft_start: SoftIndex, length: int, dim: int = 0) -> torch.Tensor:
    """Soft ``torch.narrow(x, dim, start, length)`` with a soft ``start``; see the module doc.

    Args:
        x: the tensor to narrow (at least 1-D).
        soft_start: weights over the start positions, shape ``(..., n)`` or
            ``(..., n - length + 1)`` with ``n = x.shape[dim]``.
        length: the window length, an int in ``[0, n]`` (else ValueError).
        dim: the dimension to narrow.
    """
    xt, s = _operands(x, soft_start)
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    n = xt.shape[d]
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"length must be an int, got {type(length).__name__}")
    if not 0 <= length <= n:
        raise ValueError(
            f"length must be in [0, {n}] for a dimension of size {n}, got length={length}"
        )
    starts = n - length + 1
    if s.ndim == 0 or s.shape[-1] not in (n, starts):
        raise ValueError(
            f"soft_start must have a trailing axis of size {n} (positions) or {starts} "
            f"(valid starts), got shape {tuple(s.shape)}"
        )
    if s.shape[-1] != starts:
        s = torch.cat((s[..., : starts - 1], s[..., starts - 1 :].sum(-1, keepdim=True)), dim=-1)
    windows = xt.movedim(d, -1).unfold(-1, length, 1)  # (..., starts, length)
    out = _wmm(s.unsqueeze(-2), windows).squeeze(-2)  # (..., length)
    return out.movedim(-1, d)
