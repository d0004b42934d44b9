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

Like their torch counterparts, the results keep the input dtype under ``torch.autocast`` (the
weighted sums run with autocast disabled, in the promoted dtype of ``x`` and the soft index).
"""

from __future__ import annotations

import torch

from ._checks import as_float, autocast_off, canonical_dim

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


@autocast_off
def take_along_dim(x: torch.Tensor, soft_index: SoftIndex, dim: int | None = None) -> torch.Tensor:
    r"""Soft ``torch.take_along_dim``: ``out[.., i, ..] = sum_j s[.., i, .., j] x[.., j, ..]``.

    Example:
        >>> x = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
        >>> take_along_dim(x, torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]]), dim=1)
        tensor([[5.],
                [3.]])
    """
    xt, s = _operands(x, soft_index)
    if dim is None:
        flat = xt.reshape(-1)
        _check_size(s, flat.shape[0], "the number of elements of x, as dim=None flattens")
        return s.reshape(-1, flat.shape[0]) @ flat
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        xt = xt.reshape(1)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    if s.ndim - 1 != xt.ndim:
        raise ValueError(
            f"soft_index must have x.ndim + 1 = {xt.ndim + 1} dimensions for take_along_dim, "
            f"got {s.ndim}"
        )
    sm = s.movedim(d, -2)  # (..., m, n)
    xm = xt.movedim(d, -1).unsqueeze(-1)  # (..., n, 1)
    return (sm @ xm).squeeze(-1).movedim(-1, d)


@autocast_off
def take(x: torch.Tensor, soft_index: SoftIndex, dim: int | None = None) -> torch.Tensor:
    """Soft ``torch.take`` (``dim=None``) or ``numpy.take(x, i, axis=dim)``: see the module doc."""
    xt, s = _operands(x, soft_index)
    if dim is None:
        flat = xt.reshape(-1)
        _check_size(s, flat.shape[0], "the number of elements of x, as dim=None flattens")
        return s @ flat
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        xt = xt.reshape(1)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    idx_shape = s.shape[:-1]
    xm = xt.movedim(d, -1)  # (pre..., post..., n)
    out = xm @ s.reshape(-1, n).transpose(0, 1)  # (pre..., post..., K)
    out = out.reshape(*xm.shape[:-1], *idx_shape)
    # move the index dims to position d (after the pre dims)
    k = len(idx_shape)
    post = xt.ndim - 1 - d
    order = list(range(d)) + list(range(d + post, d + post + k)) + list(range(d, d + post))
    return out.permute(order)


@autocast_off
def index_select(
    x: torch.Tensor, soft_index: SoftIndex, dim: int, keepdim: bool = True
) -> torch.Tensor:
    """Soft ``torch.index_select`` with ``soft_index`` of shape ``(m, n)`` or ``(n,)``."""
    xt, s = _operands(x, soft_index)
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        xt = xt.reshape(1)
    n = xt.shape[d]
    _check_size(s, n, f"the size of x along dim {dim}")
    if s.ndim > 2:
        raise ValueError(
            f"index_select takes a soft index of shape (m, n) or (n,), got {tuple(s.shape)}"
        )
    single = s.ndim == 1
    out = (s.reshape(-1, n) @ xt.movedim(d, -1).unsqueeze(-1)).squeeze(-1).movedim(-1, d)
    return out.squeeze(d) if single and not keepdim else out


@autocast_off
def narrow(x: torch.Tensor, soft_start: SoftIndex, length: int, dim: int = 0) -> torch.Tensor:
    """Soft ``torch.narrow(x, dim, start, length)`` with a soft ``start``; see the module doc."""
    xt, s = _operands(x, soft_start)
    d = canonical_dim(dim, xt.ndim)
    if xt.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    n = xt.shape[d]
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"length must be an int, got {type(length).__name__}")
    if not 0 <= length <= n:
        raise ValueError(f"length must be in [0, {n}] for a dimension of size {n}, got {length}")
    starts = n - length + 1
    if s.ndim == 0 or s.shape[-1] not in (n, starts):
        raise ValueError(
            f"soft_start must have a trailing axis of size {n} (positions) or {starts} "
            f"(valid starts), got shape {tuple(s.shape)}"
        )
    if s.shape[-1] != starts:
        s = torch.cat((s[..., : starts - 1], s[..., starts - 1 :].sum(-1, keepdim=True)), dim=-1)
    windows = xt.movedim(d, -1).unfold(-1, length, 1)  # (..., starts, length)
    out = (s.unsqueeze(-2) @ windows).squeeze(-2)  # (..., length)
    return out.movedim(-1, d)
