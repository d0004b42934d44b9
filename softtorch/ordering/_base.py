r"""The interface every ordering method implements, and the method registry.

A method works on scores ``z`` of shape ``(..., n)``: the op layer (:mod:`softtorch.ordering.ops`)
has already moved the reduced dimension last, promoted the dtype, validated arguments and (with
``standardize=True``) mapped the scores to ``(0, 1)``. A method never sees ``mode="hard"``.

Conventions (shared by every method):

* A *soft permutation* ``P`` has shape ``(..., n, n)``; row ``i`` is a distribution over the ``n``
  inputs for the ``i``-th element of the sorted order (ascending unless ``descending``), so the
  soft sorted values are ``P @ x`` and hard mode is the one-hot permutation matrix.
* ``rank`` returns values in ``[1, n]``; with ``descending=True`` the largest input gets rank 1.
* ``sorted_values`` returns the soft sorted scores directly (in score space) for methods that
  compute values without a permutation matrix (``fast_soft_sort``, ``sorting_network``); other
  methods return ``None`` and the op layer uses ``P @ x``.

Optional hooks with generic defaults (methods override them to save time or memory):
``argmin`` (default: ``argmax`` of the reflected scores ``reflect(z) = 1 - z``),
``permutation_rows`` (selected rows of the soft permutation; default: rows of ``permutation``),
``permute_values`` (``P @ x``; default: through ``permutation``), ``permutation_with_values``
(``(P, P @ x)``; default: through ``permutation``) and ``topk_permutation_with_values``
(``(P_k, P_k @ x)`` for the first ``k`` descending rows; default: through ``topk_permutation``;
a method overrides it to compute the values without a ``k x n`` gradient for ``P_k``).

Masked ops (``mask=``, :mod:`._masked`): :attr:`mask_strategy` picks the generic mechanism;
``masked_sorted_values`` / ``masked_rank`` / ``with_mask`` (default None: generic) let a method
supply its own batched masked kernels; ``fused_sorted_values`` / ``fused_rank`` take ``mask=`` for
the masked form of the fused fast path.

``hard_permutation`` is the method's hard limit (default: one-hot rows of the exact argsort),
used by the compatibility mode ``"_hard"`` (:mod:`softtorch.ordering._hard`).

Log-space hooks (``return_log_probs=True``): ``log_permutation``, ``log_topk_permutation``,
``log_argmax``, ``log_argmin`` and ``log_permutation_rows`` return the natural log of the matching
probability hook. Their defaults mirror the probability defaults where a method keeps those
(``log_argmax`` from ``log_topk_permutation``, ``log_argmin`` from ``log_argmax(1 - z)``,
``log_topk_permutation`` and ``log_permutation_rows`` from ``log_permutation``) and otherwise take
:func:`~softtorch.ordering._logspace.safe_log` of the method's probability hook (exact zeros become
``-inf`` with a zero gradient, but so does an underflowed probability); methods override them where
a stable log form exists (e.g. ``log_softmax`` of the scores).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch

from ._logspace import safe_log
from ._take import index_select_rows

Softness = float | torch.Tensor


class OrderingMethod(abc.ABC):
    """A soft ordering of the last axis of ``z``; one subclass per method, one file each."""

    #: The public ``method=`` name.
    name: ClassVar[str]
    #: Whether the method can produce soft permutations (soft indices).
    has_permutation: ClassVar[bool] = True
    #: How masked ops (``mask=``) run the method (:mod:`._masked`): ``"sentinel"`` (padded
    #: scores become a constant beyond the real ones; exact for methods whose result on the real
    #: entries depends on padded entries only through saturated pairwise terms) or ``"compact"``
    #: (one call per distinct real count on the gathered real entries).
    mask_strategy: ClassVar[str] = "sentinel"

    def reflect(self, z: torch.Tensor) -> torch.Tensor:
        """Scores of the reversed order: ``1 - z`` (maps the standardized range (0, 1) onto
        itself)."""
        return 1.0 - z

    def hard_permutation(self, z: torch.Tensor, *, descending: bool = False) -> torch.Tensor:
        """The method's limit as ``softness -> 0`` (used by ``mode="_hard"``): one-hot rows
        ``(..., n, n)``. Default: the exact stable argsort (ties keep input order, like torch)."""
        order = torch.argsort(z, dim=-1, descending=descending, stable=True)
        eye = torch.zeros(*order.shape, z.shape[-1], dtype=z.dtype, device=z.device)
        return eye.scatter(-1, order.unsqueeze(-1), 1.0)

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft permutation ``(..., n, n)`` (rows: sorted positions, columns: inputs)."""
        raise ValueError(
            f"method {self.name!r} computes sorted values without soft indices; use one of "
            "'softsort', 'neuralsort', 'ot', 'sorting_network' for index-valued results"
        )

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """The first ``k`` rows ``(..., k, n)`` of the descending soft permutation."""
        return self.permutation(z, softness, mode, descending=True, options=options)[..., :k, :]

    def argmax(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft one-hot of the largest entry, ``(..., n)``."""
        return self.topk_permutation(z, 1, softness, mode, options=options)[..., 0, :]

    def argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft one-hot of the smallest entry, ``(..., n)``; default: ``argmax(1 - z)``.

        The reflection ``z -> 1 - z`` reverses the order and maps the standardized range (0, 1)
        onto itself.
        """
        return self.argmax(self.reflect(z), softness, mode, options=options)

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
        """Rows ``positions`` (1-D int64) of the soft permutation, shape ``(..., m, n)``."""
        perm = self.permutation(z, softness, mode, descending=descending, options=options)
        return index_select_rows(perm, positions)

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
        """Soft sorted values ``P @ x`` of ``x`` (..., n) under the soft permutation of ``z``."""
        perm = self.permutation(z, softness, mode, descending=descending, options=options)
        return (perm @ x.unsqueeze(-1)).squeeze(-1)

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
        """``(P, P @ x)``: the soft permutation and the soft sorted values of ``x`` (..., n)."""
        perm = self.permutation(z, softness, mode, descending=descending, options=options)
        return perm, (perm @ x.unsqueeze(-1)).squeeze(-1)

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
        """``(P_k, P_k @ x)``: the first ``k`` rows ``(..., k, n)`` of the descending soft
        permutation and the soft top-``k`` values ``(..., k)`` of ``x`` (..., n)."""
        perm = self.topk_permutation(z, k, softness, mode, options=options)
        return perm, (perm @ x.unsqueeze(-1)).squeeze(-1)

    # ------------------------------------------------------------------------------------------
    # fused fast paths on the raw input ``x`` (standardization included); None = not available
    # ------------------------------------------------------------------------------------------

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
        """Soft sorted values of ``x`` in its own units in one fused kernel, or None (the
        caller then standardizes and calls :meth:`sorted_values`).

        With ``mask`` (bool, the shape of ``x``, True = a real entry): the soft sorted values of
        each slice's ``c`` real entries at positions ``< c`` (the tail filled with 0), or None
        (the masked path of :mod:`._masked`).
        """
        return None

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
        """Soft ranks of ``x`` in one fused kernel, or None (the caller then calls :meth:`rank`).

        With ``mask``: soft ranks in ``[1, c]`` of each slice's real entries (0 at padded
        entries), or None (the masked path of :mod:`._masked`).
        """
        return None

    # ------------------------------------------------------------------------------------------
    # log-space hooks (``return_log_probs=True``); defaults: safe log of the probability hooks
    # ------------------------------------------------------------------------------------------

    def log_permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """``log`` of :meth:`permutation` (``-inf`` at exact zeros)."""
        perm = self.permutation(z, softness, mode, descending=descending, options=options)
        return safe_log(perm)

    def log_topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """``log`` of :meth:`topk_permutation`."""
        if _keeps(self, "topk_permutation"):
            lp = self.log_permutation(z, softness, mode, descending=True, options=options)
            return lp[..., :k, :]
        return safe_log(self.topk_permutation(z, k, softness, mode, options=options))

    def log_argmax(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """``log`` of :meth:`argmax`."""
        if _keeps(self, "argmax"):
            return self.log_topk_permutation(z, 1, softness, mode, options=options)[..., 0, :]
        return safe_log(self.argmax(z, softness, mode, options=options))

    def log_argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """``log`` of :meth:`argmin`."""
        if _keeps(self, "argmin"):
            return self.log_argmax(self.reflect(z), softness, mode, options=options)
        return safe_log(self.argmin(z, softness, mode, options=options))

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
        """``log`` of :meth:`permutation_rows`."""
        if _keeps(self, "permutation_rows"):
            lp = self.log_permutation(z, softness, mode, descending=descending, options=options)
            return index_select_rows(lp, positions)
        rows = self.permutation_rows(
            z, positions, softness, mode, descending=descending, options=options
        )
        return safe_log(rows)

    def sorted_values(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:
        """Soft sorted scores ``(..., n)``, or ``None`` to use ``permutation(...) @ x``."""
        return None

    def masked_sorted_values(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:
        """Masked hook: soft sorted scores of each slice's real entries (``mask`` True) at
        output positions ``< c`` (``c`` the slice's real count; later positions are ignored), or
        None for the generic mechanism of :mod:`._masked`."""
        return None

    def masked_rank(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:
        """Masked hook: soft ranks in ``[1, c]`` of each slice's real entries (values at padded
        entries are ignored), or None for the generic mechanism of :mod:`._masked`."""
        return None

    def with_mask(self, mask: torch.Tensor) -> OrderingMethod | None:
        """Masked hook: the method bound to ``mask`` (``(..., n)`` bool, laid out like the
        scores), whose hooks take the padded scores and give each slice's result on its real
        entries alone (values at output positions ``>= c`` and at padded entries are ignored),
        or None for the generic mechanism of :mod:`._masked`."""
        return None

    @abc.abstractmethod
    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Soft ranks in ``[1, n]``, shape ``(..., n)``."""


class RowsOrderingMethod(OrderingMethod):
    """A method that computes selected rows of its soft permutation directly.

    Subclasses implement :meth:`permutation_rows` and :meth:`log_permutation_rows`; the full
    permutation (rows ``0..n-1``), ``topk`` (the first ``k`` descending rows) and ``argmin`` (the
    first ascending row) are derived from them, in probability and in log space.
    """

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(z.shape[-1], device=z.device)
        return self.permutation_rows(z, pos, softness, mode, descending=descending)

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(k, device=z.device)
        return self.permutation_rows(z, pos, softness, mode, descending=True)

    def argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.zeros(1, dtype=torch.long, device=z.device)
        return self.permutation_rows(z, pos, softness, mode, descending=False)[..., 0, :]

    def log_permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(z.shape[-1], device=z.device)
        return self.log_permutation_rows(z, pos, softness, mode, descending=descending)

    def log_topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(k, device=z.device)
        return self.log_permutation_rows(z, pos, softness, mode, descending=True)

    def log_argmin(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.zeros(1, dtype=torch.long, device=z.device)
        return self.log_permutation_rows(z, pos, softness, mode, descending=False)[..., 0, :]


def _keeps(method: OrderingMethod, hook: str) -> bool:
    """Whether ``method`` keeps the generic default of the probability hook ``hook``."""
    return getattr(type(method), hook) is getattr(OrderingMethod, hook)


_REGISTRY: dict[str, OrderingMethod] = {}


def register(cls: type[OrderingMethod]) -> type[OrderingMethod]:
    """Class decorator: make ``cls`` available as ``method=cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def get_method(name: str) -> OrderingMethod:
    """The registered method instance for a validated method name (KeyError if none).

    Every method module registers itself when :mod:`softtorch.ordering.methods` is imported,
    which :mod:`softtorch.ordering` does on import, before any op can run.
    """
    return _REGISTRY[name]
