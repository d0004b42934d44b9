r"""NeuralSort (Grover et al., 2019) with the library's soft absolute value.

With the soft absolute value :math:`|d|_s = d\,(2\sigma_s(d) - 1)` of the same mode and softness
(:func:`softtorch.abs`) and :math:`B_k = \sum_j |z_k - z_j|_s`, row ``i = 1..n`` of the descending
soft permutation is

.. math:: P_{i,:} = \Pi\!\left(\frac{(n + 1 - 2i)\, z - B}{s}\right),

with :math:`\Pi` the simplex projection of the mode (:func:`softtorch.simplex.project_simplex`).
The ascending permutation is the descending one with its rows reversed (coefficient
:math:`-(n + 1 - 2i)`). Soft ranks renormalise the columns of the row-wise ``P``:
:math:`r_k = \sum_i i\,P_{ik} / \sum_i P_{ik}`.

``B`` costs ``O(n^2)`` work (the soft abs has a sort + cumsum shortcut only for the pairs beyond
the float cutoff, which the streamed path uses) but only ``O(n)`` memory:
it and every ``n x n`` score matrix are evaluated in row blocks
(:func:`softtorch.simplex.chunked_rows`) that backward recomputes.

Large ``smooth`` inputs take streamed paths (:mod:`.._stream` says when): ``B`` in one fused pass
over the pairs of the sorted scores, each pair once (and one in backward), and ``P @ x``, the
ranks and requested rows of ``P`` on the band of each row outside which the dense softmax is
exactly zero, without any ``n x n`` autograd tensor (:mod:`._smooth`).
Large sparse-mode (``c0`` / ``c1`` / ``c2``) sorted values and ranks take the row windows of
:mod:`._sparse` (``O(n * window)`` memory).
"""

from __future__ import annotations

from typing import Any

import torch

from ...._sigmoidal_math import step
from ....simplex import chunked_rows, project_simplex
from ..._base import RowsOrderingMethod, Softness, register
from ..._logspace import log_project_simplex
from ..._mask import counts, sentinel
from .._stream import ALL_MODES, stream_softness, use_stream
from . import _smooth as _stream_ns
from . import _sparse as _cstream_ns


def _split(softness: Softness) -> tuple[tuple[torch.Tensor, ...], bool]:
    return ((softness,), True) if isinstance(softness, torch.Tensor) else ((), False)


def _batch(z: torch.Tensor) -> int:
    return max(z.numel() // max(z.shape[-1], 1), 1)


def soft_abs_sums(z: torch.Tensor, softness: Softness, mode: str) -> torch.Tensor:
    r""":math:`B_k = \sum_j |z_k - z_j|_s` along the last axis (``O(n)`` memory)."""
    if use_stream(mode, softness, z):  # smooth, large: fused passes (see .._stream)
        return _stream_ns.soft_abs_sums(z, stream_softness(softness))
    extra, has_s = _split(softness)

    def fn(a: int, b: int, zz: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        s = rest[0] if has_s else softness
        d = zz[..., a:b].unsqueeze(-1) - zz.unsqueeze(-2)
        return (d * (2.0 * step(d, s, mode) - 1.0)).sum(-1)

    n = z.shape[-1]
    return chunked_rows(fn, n, (z, *extra), row_numel=_batch(z) * n, cat_dim=-1)


def _coefficients(
    positions: torch.Tensor, n: int, descending: bool, like: torch.Tensor
) -> torch.Tensor:
    """``n - 1 - 2i`` for 0-based descending positions ``i`` (negated for ascending)."""
    c = (n - 1 - 2 * positions).to(like.dtype)
    return c if descending else -c


def _rows(
    z: torch.Tensor,
    abs_sums: torch.Tensor,
    positions: torch.Tensor,
    softness: Softness,
    mode: str,
    descending: bool,
    *,
    weights: torch.Tensor | None = None,
    keep_rows: bool = True,
    rank: bool = False,
) -> Any:
    """Rows ``positions`` of ``P`` (``(..., m, n)``) and/or ``rows @ weights`` (``(..., m)``; both
    as a tuple when ``keep_rows``); or, with ``rank``, the column sums
    ``[sum_i (i + 1) P_ik, sum_i P_ik]`` over the rows (``(..., 2, n)``)."""
    n = z.shape[-1]
    coef = _coefficients(positions, n, descending, z)
    extra, has_s = _split(softness)
    has_w = weights is not None
    w_in = (weights,) if has_w else ()

    def fn(a: int, b: int, zz: torch.Tensor, bb: torch.Tensor, *rest: torch.Tensor) -> Any:
        s = rest[-1] if has_s else softness
        scores = (coef[a:b].unsqueeze(-1) * zz.unsqueeze(-2) - bb.unsqueeze(-2)) * (1.0 / s)
        p = project_simplex(scores, mode)
        if rank:
            pos = (positions[a:b] + 1).to(p.dtype).unsqueeze(-1)
            return torch.stack(((p * pos).sum(-2), p.sum(-2)), dim=-2)
        if not has_w:
            return p
        v = (p @ rest[0].unsqueeze(-1)).squeeze(-1)
        return (p, v) if keep_rows else v

    cat_dim: Any
    if rank:
        cat_dim = None
    elif not has_w:
        cat_dim = -2
    else:
        cat_dim = (-2, -1) if keep_rows else -1
    return chunked_rows(
        fn,
        positions.shape[0],
        (z, abs_sums, *w_in, *extra),
        row_numel=_batch(z) * n,
        cat_dim=cat_dim,
    )


def _arange(n: int, z: torch.Tensor) -> torch.Tensor:
    return torch.arange(n, device=z.device)


@register
class NeuralSort(RowsOrderingMethod):
    """NeuralSort with soft pairwise absolute values; see the module docstring."""

    name = "neuralsort"

    def permutation_rows(
        self,
        z: torch.Tensor,
        positions: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, rows=positions.shape[0]):  # banded rows (.._stream)
            p = _stream_ns.permutation_rows(z, positions, stream_softness(softness), descending)
            if p is not None:
                return p
        b = soft_abs_sums(z, softness, mode)
        return _rows(z, b, positions, softness, mode, descending)

    def permute_values(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, x, modes=ALL_MODES):  # large: banded rows (.._stream)
            s = stream_softness(softness)
            if mode == "smooth":
                y = _stream_ns.values(z, x, s, descending)
            else:  # sparse modes: row windows (._sparse)
                y = _cstream_ns.values(z, x, s, mode, descending)
            if y is not None:
                return y
        b = soft_abs_sums(z, softness, mode)
        pos = _arange(z.shape[-1], z)
        return _rows(z, b, pos, softness, mode, descending, weights=x, keep_rows=False)

    def permutation_with_values(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if use_stream(mode, softness, z, x):  # smooth, large: banded rows (see .._stream)
            pv = _stream_ns.permutation_with_values(z, x, stream_softness(softness), descending)
            if pv is not None:
                return pv
        b = soft_abs_sums(z, softness, mode)
        pos = _arange(z.shape[-1], z)
        return _rows(z, b, pos, softness, mode, descending, weights=x, keep_rows=True)

    def topk_permutation_with_values(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pos = _arange(k, z)
        if use_stream(mode, softness, z, x, rows=k):  # smooth, large: banded rows (.._stream)
            s = stream_softness(softness)
            pv = _stream_ns.permutation_with_values(z, x, s, True, pos)
            if pv is not None:
                return pv
        b = soft_abs_sums(z, softness, mode)
        return _rows(z, b, pos, softness, mode, True, weights=x, keep_rows=True)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, modes=ALL_MODES):  # large: banded rows (.._stream)
            s = stream_softness(softness)
            if mode == "smooth":
                r = _stream_ns.rank(z, s, descending)
            else:  # sparse modes: row windows (._sparse)
                r = _cstream_ns.rank(z, s, mode, descending)
            if r is not None:
                return r
        n = z.shape[-1]
        b = soft_abs_sums(z, softness, mode)
        sums = _rows(z, b, _arange(n, z), softness, mode, descending, rank=True)
        num, den = sums[..., 0, :], sums[..., 1, :]
        # a column with no mass (possible only in degenerate sparse cases) gets the middle rank;
        # NaN columns stay NaN
        ok = ~(den <= torch.finfo(z.dtype).tiny)
        return torch.where(ok, num / torch.where(ok, den, 1.0), (n + 1) / 2.0)

    def masked_rank(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """:meth:`rank` of the real entries: the generic sentinel of :mod:`..._masked` (padded
        scores after the real ones in the row order shift the real row scores by a per-row
        constant), with the middle rank of a massless column taken on the real count ``c``."""
        n = z.shape[-1]
        zp = sentinel(z, mask, softness, high=not descending)
        b = soft_abs_sums(zp, softness, mode)
        sums = _rows(zp, b, _arange(n, zp), softness, mode, descending, rank=True)
        num, den = sums[..., 0, :], sums[..., 1, :]
        ok = ~(den <= torch.finfo(z.dtype).tiny)
        middle = (counts(mask).to(num.dtype) + 1.0) / 2.0
        return torch.where(ok, num / torch.where(ok, den, 1.0), middle)

    # log-space hooks (``return_log_probs=True``): ``log_project_simplex`` of the same row scores,
    # i.e. ``log_softmax`` for ``smooth`` (no underflow), ``-inf`` at the zeros of sparse modes

    def log_permutation_rows(
        self,
        z: torch.Tensor,
        positions: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        b = soft_abs_sums(z, softness, mode)
        return _log_rows(z, b, positions, softness, mode, descending)


def _log_rows(
    z: torch.Tensor,
    abs_sums: torch.Tensor,
    positions: torch.Tensor,
    softness: Softness,
    mode: str,
    descending: bool,
) -> torch.Tensor:
    """Log of rows ``positions`` of ``P`` (``(..., m, n)``), in row blocks (see :func:`_rows`)."""
    n = z.shape[-1]
    coef = _coefficients(positions, n, descending, z)
    extra, has_s = _split(softness)

    def fn(a: int, b: int, zz: torch.Tensor, bb: torch.Tensor, *rest: torch.Tensor) -> Any:
        s = rest[-1] if has_s else softness
        scores = (coef[a:b].unsqueeze(-1) * zz.unsqueeze(-2) - bb.unsqueeze(-2)) * (1.0 / s)
        return log_project_simplex(scores, mode)

    return chunked_rows(
        fn, positions.shape[0], (z, abs_sums, *extra), row_numel=_batch(z) * n, cat_dim=-2
    )
