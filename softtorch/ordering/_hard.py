r"""``mode="_hard"``: each method's hard limit through the op layer's soft code path.

The compatibility mode of softtorch 0.1.1. Where ``mode="hard"`` calls torch directly, ``"_hard"``
runs an op exactly as a soft mode does (scores, the method's hooks, ``P @ x``, quantile
interpolation of permutation rows, log-probabilities, ``log_prob_eps``) but with every method hook
replaced by its limit as ``softness -> 0``: the method's :meth:`~OrderingMethod.hard_permutation`
(default: the one-hot rows of the exact stable argsort, the limit of ``softsort`` /
``neuralsort``, of the exact ``ot`` assignment and of ``sorting_network``'s hard swaps),
the sorted scores (``fast_soft_sort``: the hard sort) and the ranks ``P^T (1..n)``. So values and
indices equal ``mode="hard"`` up to float rounding and soft indices are one-hot rows.

Standardization is skipped in this mode (it is strictly monotone, so the hard limit does not
depend on it, and skipping it keeps near-ties of ``x`` apart), and the reversed order is ``-z``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._base import OrderingMethod, Softness

#: The compatibility mode name (accepted by every ordering op, never passed to a method).
HARD_LIMIT = "_hard"


class HardLimit(OrderingMethod):
    """The hard limit of ``method``: every probability hook from its hard permutation."""

    name = HARD_LIMIT

    def __init__(self, method: OrderingMethod) -> None:
        self.method = method
        self.has_permutation = method.has_permutation  # type: ignore[misc]

    def reflect(self, z: torch.Tensor) -> torch.Tensor:
        """``-z`` (exact: unstandardized scores of any range)."""
        return -z

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """The method's hard permutation (one-hot rows)."""
        if not self.method.has_permutation:
            super().permutation(z, softness, mode)  # raises: no soft indices
        return self.method.hard_permutation(z, descending=descending)

    def sorted_values(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:
        """Value-only methods: the hard sort; others: None (values are ``P @ x``)."""
        if self.method.has_permutation:
            return None
        return torch.sort(z, dim=-1, descending=descending, stable=True).values

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Ranks ``P^T (1..n)`` of the hard permutation (the exact argsort for value-only
        methods): ``argsort(argsort(z, stable=True), stable=True) + 1``."""
        n = z.shape[-1]
        if self.method.has_permutation:
            perm = self.method.hard_permutation(z, descending=descending)
            pos = torch.arange(1, n + 1, dtype=z.dtype, device=z.device)
            return (perm.transpose(-1, -2) @ pos.unsqueeze(-1)).squeeze(-1)
        order = torch.argsort(z, dim=-1, descending=descending, stable=True)
        return (torch.argsort(order, dim=-1, stable=True) + 1).to(z.dtype)
