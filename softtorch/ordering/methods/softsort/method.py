r"""SoftSort (Prillo & Eisenschlos, 2020): a soft permutation from distances to the sorted scores.

With :math:`\hat z = \mathrm{sort}(z)` (hard sort, values keep their gradient) and the simplex
projection :math:`\Pi` of the mode (:func:`softtorch.simplex.project_simplex`),

.. math:: P_{i,:} = \Pi\!\left(-\,|\hat z_i - z_{:}| \,/\, s\right),

row ``i`` being the distribution over inputs of the ``i``-th sorted element. Soft ranks project
*columns* instead: :math:`Q_{:,k} = \Pi(-|\hat z_{:} - z_k| / s)` over sorted positions ``i`` and
:math:`r_k = \sum_i i\,Q_{ik}` (``i = 1..n`` in the requested direction), so every rank is a convex
combination of ``1..n``.

Large inputs are evaluated in row blocks (:func:`softtorch.simplex.chunked_rows`): ``P @ x`` and
ranks never hold an ``n x n`` matrix for autograd, a returned ``P`` is the only ``n x n`` tensor.
In ``smooth`` mode, large ``P @ x`` and ranks skip ``P`` altogether: the anchors are the sorted
scores, so both are Laplace-kernel smoothings on sorted points, ``O(n)`` memory
(:mod:`._smooth`; when it applies: :mod:`.._stream`). In the sparse modes the rows'
supports are windows of sorted points, so large ``P @ x`` and ranks are window sums and a
requested ``P`` (or its rows) is written from the windows (:mod:`._sparse`), ``O(n)``
autograd memory as well.
"""

from __future__ import annotations

from typing import Any

import torch

from ....simplex import chunked_rows, project_simplex
from ... import _take
from ..._base import OrderingMethod, Softness, register
from ..._logspace import log_project_simplex
from .._stream import ALL_MODES, stream_softness, use_stream
from . import _smooth as _stream_ss
from . import _sparse as _cstream_ss


def _distance_scores(rows: torch.Tensor, cols: torch.Tensor, softness: Softness) -> torch.Tensor:
    """``-|rows_i - cols_k| / softness`` of shape ``(..., r, n)``."""
    return (rows.unsqueeze(-1) - cols.unsqueeze(-2)).abs() * (-1.0 / softness)


def _split(softness: Softness) -> tuple[tuple[torch.Tensor, ...], bool]:
    """Softness as an extra differentiable input when it is a tensor."""
    return ((softness,), True) if isinstance(softness, torch.Tensor) else ((), False)


def _soft_rows(
    anchors: torch.Tensor,
    z: torch.Tensor,
    softness: Softness,
    mode: str,
    weights: torch.Tensor | None = None,
    *,
    keep_rows: bool = True,
) -> Any:
    r"""Rows :math:`\Pi(-|a_i - z| / s)` for each anchor ``a_i`` (``(..., r, n)``) and/or, with
    ``weights`` of shape ``(..., n)``, their contractions ``rows @ weights`` (``(..., r)``):
    returns the rows, the contractions (``keep_rows=False``) or both as a tuple."""
    extra, has_s = _split(softness)
    has_w = weights is not None

    def fn(a: int, b: int, anc: torch.Tensor, zz: torch.Tensor, *rest: torch.Tensor) -> Any:
        s = rest[-1] if has_s else softness
        p = project_simplex(_distance_scores(anc[..., a:b], zz, s), mode)
        if not has_w:
            return p
        v = (p @ rest[0].unsqueeze(-1)).squeeze(-1)
        return (p, v) if keep_rows else v

    inputs = (anchors, z) + ((weights,) if has_w else ()) + extra
    batch = max(z.numel() // max(z.shape[-1], 1), 1)
    cat_dim: Any = -2 if not has_w else ((-2, -1) if keep_rows else -1)
    return chunked_rows(
        fn, anchors.shape[-1], inputs, row_numel=batch * z.shape[-1], cat_dim=cat_dim
    )


def _sorted(z: torch.Tensor, descending: bool) -> torch.Tensor:
    """The hard sorted scores (the anchors; they keep their gradient)."""
    return _take.sort(z, descending=descending)[0]


def _same_order(z: torch.Tensor, k: int) -> bool:
    """Whether ``topk`` and the descending ``sort`` pick the same first ``k`` inputs (they may
    order ties differently; the anchors then route their gradients to different inputs)."""
    zd = z.detach()
    return torch.equal(_take.topk(zd, k)[1], _take.sort(zd, descending=True)[1][..., :k])


def _positions(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(1, n + 1, device=like.device, dtype=like.dtype)


@register
class SoftSort(OrderingMethod):
    """SoftSort; see the module docstring."""

    name = "softsort"

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, modes=ALL_MODES):  # large: written block by block
            s = stream_softness(softness)
            if mode == "smooth":
                return _stream_ss.softsort_permutation(z, s, descending)
            return _cstream_ss.softsort_permutation(z, s, mode, descending)
        zs = _sorted(z, descending)
        return _soft_rows(zs, z, softness, mode)

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
        if use_stream(mode, softness, z, rows=positions.shape[0], modes=ALL_MODES):
            s = stream_softness(softness)
            if mode == "smooth":
                return _stream_ss.softsort_permutation(z, s, descending, positions)
            return _cstream_ss.softsort_permutation(z, s, mode, descending, positions)
        zs = _take.index_select_last(_sorted(z, descending), positions)
        return _soft_rows(zs, z, softness, mode)

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, rows=k, modes=ALL_MODES):
            s = stream_softness(softness)
            if mode == "smooth":
                return _stream_ss.softsort_topk_permutation(z, k, s)
            return _cstream_ss.softsort_topk_permutation(z, k, s, mode)
        return _soft_rows(_take.topk(z, k)[0], z, softness, mode)

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
        perm = self.topk_permutation(z, k, softness, mode, options=options)
        if use_stream(mode, softness, z, x, rows=k, modes=ALL_MODES) and _same_order(z, k):
            # large: the first k of the streamed values (O(n) memory, no k x n gradient)
            y = self.permute_values(z, x, softness, mode, descending=True, options=options)
            return perm, y[..., :k]
        return perm, (perm @ x.unsqueeze(-1)).squeeze(-1)

    def argmax(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _soft_rows(z.amax(dim=-1, keepdim=True), z, softness, mode)[..., 0, :]

    def argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _soft_rows(z.amin(dim=-1, keepdim=True), z, softness, mode)[..., 0, :]

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
        if use_stream(mode, softness, z, x, modes=ALL_MODES):  # large: O(n) memory (.._stream)
            s = stream_softness(softness)
            if mode == "smooth":
                return _stream_ss.softsort_values(z, x, s, descending)
            return _cstream_ss.softsort_values(z, x, s, mode, descending)
        zs = _sorted(z, descending)
        return _soft_rows(zs, z, softness, mode, weights=x, keep_rows=False)

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
        if use_stream(mode, softness, z, x, modes=ALL_MODES):  # large: P in blocks, P @ x in O(n)
            s = stream_softness(softness)
            if mode == "smooth":
                perm = _stream_ss.softsort_permutation(z, s, descending)
                return perm, _stream_ss.softsort_values(z, x, s, descending)
            perm = _cstream_ss.softsort_permutation(z, s, mode, descending)
            return perm, _cstream_ss.softsort_values(z, x, s, mode, descending)
        zs = _sorted(z, descending)
        return _soft_rows(zs, z, softness, mode, weights=x, keep_rows=True)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if use_stream(mode, softness, z, modes=ALL_MODES):  # large: O(n) memory (.._stream)
            s = stream_softness(softness)
            if mode == "smooth":
                return _stream_ss.softsort_rank(z, s, descending)
            return _cstream_ss.softsort_rank(z, s, mode, descending)
        zs = _sorted(z, descending)
        idx = _positions(z.shape[-1], z).expand_as(z)
        return _soft_rows(z, zs, softness, mode, weights=idx, keep_rows=False)

    # log-space hooks (``return_log_probs=True``): ``log_project_simplex`` of the same scores,
    # i.e. ``log_softmax`` for ``smooth`` (no underflow), ``-inf`` at the zeros of sparse modes

    def log_permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        zs = _sorted(z, descending)
        return _log_soft_rows(zs, z, softness, mode)

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
        zs = _take.index_select_last(_sorted(z, descending), positions)
        return _log_soft_rows(zs, z, softness, mode)

    def log_topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _log_soft_rows(_take.topk(z, k)[0], z, softness, mode)

    def log_argmax(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _log_soft_rows(z.amax(dim=-1, keepdim=True), z, softness, mode)[..., 0, :]

    def log_argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _log_soft_rows(z.amin(dim=-1, keepdim=True), z, softness, mode)[..., 0, :]


def _log_soft_rows(
    anchors: torch.Tensor, z: torch.Tensor, softness: Softness, mode: str
) -> torch.Tensor:
    r"""Log-rows :math:`\log \Pi(-|a_i - z| / s)` (``(..., r, n)``), in row blocks."""
    extra, has_s = _split(softness)

    def fn(a: int, b: int, anc: torch.Tensor, zz: torch.Tensor, *rest: torch.Tensor) -> Any:
        s = rest[-1] if has_s else softness
        return log_project_simplex(_distance_scores(anc[..., a:b], zz, s), mode)

    batch = max(z.numel() // max(z.shape[-1], 1), 1)
    return chunked_rows(
        fn, anchors.shape[-1], (anchors, z, *extra), row_numel=batch * z.shape[-1], cat_dim=-2
    )
