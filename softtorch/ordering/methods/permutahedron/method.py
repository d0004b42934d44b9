"""The ``fast_soft_sort`` ordering method (alias ``smooth_sort``): values and ranks only.

Sorted values and ranks come from :func:`.fast_soft_sort.soft_sort` /
:func:`.fast_soft_sort.soft_rank` (the permutahedron projection); on eager CPU inputs the op
layer first tries the fused kernels of :mod:`._fused` (standardization, argsort, PAV and
un-standardization in one numba pass).
"""

from __future__ import annotations

from typing import Any

import torch

from ..._base import OrderingMethod, Softness, register
from . import _fused
from .fast_soft_sort import soft_rank, soft_sort
from .masked import masked_soft_rank, masked_soft_sort


@register
class FastSoftSort(OrderingMethod):
    """Permutahedron projection (values only: no soft permutation matrix exists)."""

    name = "fast_soft_sort"
    has_permutation = False

    def sorted_values(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft sorted scores ``(..., n)``; see :func:`soft_sort`."""
        return soft_sort(z, softness, mode, descending=descending, options=options)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft ranks in ``[1, n]``; see :func:`soft_rank`."""
        return soft_rank(z, softness, mode, descending=descending, options=options)

    def masked_sorted_values(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Per-row anchors in one batched projection; see :mod:`.masked`."""
        return masked_soft_sort(z, mask, softness, mode, descending=descending, options=options)

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
        """Per-row anchors in one batched projection; see :mod:`.masked`."""
        return masked_soft_rank(z, mask, softness, mode, descending=descending, options=options)

    def fused_sorted_values(
        self,
        x: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        standardize: bool = True,
        options: dict[str, Any] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Eager CPU fast path (:mod:`._fused`): one numba kernel per direction (with ``mask``:
        per-row counts and anchors in the kernel)."""
        return _fused.sorted_values(
            x, softness, mode, descending=descending, standardize=standardize, options=options,
            mask=mask,
        )  # fmt: skip

    def fused_rank(
        self,
        x: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        standardize: bool = True,
        options: dict[str, Any] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Eager CPU fast path (:mod:`._fused`) of :meth:`rank` (optionally masked)."""
        return _fused.rank(
            x, softness, mode, descending=descending, standardize=standardize, options=options,
            mask=mask,
        )  # fmt: skip
