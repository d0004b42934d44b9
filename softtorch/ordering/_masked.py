r"""The method wrapper of masked ordering ops: every hook of an :class:`OrderingMethod` on the real
entries of each slice (rules and fills in :mod:`._mask`).

:class:`Masked` wraps a method and a mask ``m`` (``(..., n)`` bool, True = real entry) and
implements the probability / log-probability / value / rank hooks the op layer calls, so that the
ops run unchanged on it. Per method (:attr:`OrderingMethod.mask_strategy`):

* ``"sentinel"`` (softsort, neuralsort, perturbed, and every method's hard limit): padded scores
  become a per-slice constant beyond the real ones on the side that puts them last in the hook's
  order (:func:`._mask.sentinel`), and the method runs once on the whole batch. Pairwise methods
  are then exact (every real / padded interaction underflows to 0); NeuralSort's row scores of
  real entries change only by a per-row constant (the padded entries sit after the reals in the
  row order, so ``(n + 1 - 2i) z - B`` becomes ``(c + 1 - 2i) z - B_real`` + const); perturbed
  is exact in distribution (its noise never crosses the gap).
* ``"compact"`` (``sorting_network``: the network depends on the padded length): the real
  entries are moved to the front (a gather) and the method bound to every row's real count by
  its ``with_counts(counts)`` runs all rows in one batched call; results are scattered back (no
  host read, no per-count loop: no graph break under ``torch.compile``, works under
  ``torch.func.vmap`` over the mask).
* methods with their own masked kernels (``fast_soft_sort``: per-row anchors in one batched
  projection) override :meth:`OrderingMethod.masked_sorted_values` /
  :meth:`OrderingMethod.masked_rank` (and, for its fused eager CPU kernel,
  :meth:`OrderingMethod.fused_sorted_values` / :meth:`OrderingMethod.fused_rank` with ``mask=``);
* ``"batched"``: methods whose :meth:`OrderingMethod.with_mask` returns a bound method (``ot``:
  per-row anchors and a decoupled padded part in one solve) run it on the padded scores, with the
  fills below.

Every hook returns its result with the fills of :mod:`._mask` applied (zero rows at output
positions ``>= c``, zero columns at padded entries, rank 0 at padded entries; ``-inf`` in log
space); sorted values are returned unfilled in score space and filled by the op layer after
mapping them back to ``x`` units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import _mask
from ._base import OrderingMethod, Softness

_Fn = Callable[..., torch.Tensor]


class Masked(OrderingMethod):
    """``method`` on the real entries of each slice of the mask ``m`` (see the module doc)."""

    name = "masked"

    def __init__(self, method: OrderingMethod, m: torch.Tensor) -> None:
        self.method = method
        self.m = m
        self.c = _mask.counts(m)
        self.has_permutation = method.has_permutation  # type: ignore[misc]
        bound = method.with_mask(m)
        self.impl = method if bound is None else bound
        self.strategy = method.mask_strategy if bound is None else "batched"
        # a "compact" method that runs per-row counts in one batched call (sorting_network)
        with_counts = getattr(method, "with_counts", None)
        if bound is None and self.strategy == "compact":
            if with_counts is None:
                raise TypeError(
                    f"method {method.name!r} has mask_strategy 'compact' but no with_counts()"
                )
            self.method = self.impl = with_counts(self.c.reshape(-1))

    # ------------------------------------------------------------------ plumbing

    def reflect(self, z: torch.Tensor) -> torch.Tensor:
        return self.method.reflect(z)

    def _pz(self, z: torch.Tensor, softness: Softness, *, high: bool) -> torch.Tensor:
        if self.strategy == "batched":  # the bound method handles the padded entries itself
            return z
        return _mask.sentinel(z, self.m, softness, high=high)

    def _rows_cols(self, p: torch.Tensor, log: bool) -> torch.Tensor:
        """Fill rows at positions ``>= c`` and columns of padded entries."""
        fill = -math.inf if log else 0.0
        p = _mask.fill_positions(p, self.c, axis=-2, fill=fill)
        return _mask.fill_columns(p, self.m, log=log)

    def _cols(self, p: torch.Tensor, log: bool) -> torch.Tensor:
        fill = -math.inf if log else 0.0
        return torch.where(self.m, p, torch.as_tensor(fill, dtype=p.dtype, device=p.device))

    def _grouped(
        self, fn: _Fn, z: torch.Tensor, kind: str, *, x: torch.Tensor | None = None,
        log: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        """``fn(z_c[, x_c], n)`` on the compacted real entries (reals first) of every row at once.

        ``kind``: ``"input"`` (..., n) indexed by input, ``"pos"`` (..., n) by sorted position,
        ``"pos_input"`` (..., r, n) (``r`` rows of the result).
        """
        n = z.shape[-1]
        batch = z.shape[:-1]
        zf = z.reshape(-1, n)
        mf = self.m.reshape(-1, n)
        cf = self.c.reshape(-1)
        order = torch.sort((~mf).to(torch.uint8), dim=-1, stable=True).indices  # reals first
        zc = zf.gather(-1, order)
        xc = None if x is None else x.expand(z.shape).reshape(-1, n).gather(-1, order)
        fill = -math.inf if log else 0.0
        res = fn(zc, n) if xc is None else fn(zc, xc, n)  # the method knows every row's count
        return _fill_batched(res, kind, order, mf, cf, fill).reshape(*batch, *res.shape[1:])

    # ------------------------------------------------------------------ soft permutations

    def permutation(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._perm(z, softness, mode, descending, options, log=False)

    def log_permutation(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._perm(z, softness, mode, descending, options, log=True)

    def _perm(
        self, z: torch.Tensor, softness: Softness, mode: str, descending: bool,
        options: dict[str, Any] | None, *, log: bool,
    ) -> torch.Tensor:  # fmt: skip
        hook = self.impl.log_permutation if log else self.impl.permutation
        if self.strategy == "compact":
            return self._grouped(
                lambda zz, k: hook(zz, softness, mode, descending=descending, options=options),
                z, "pos_input", log=log,
            )  # fmt: skip
        p = hook(self._pz(z, softness, high=not descending), softness, mode,
                 descending=descending, options=options)  # fmt: skip
        return self._rows_cols(p, log)

    def permutation_rows(
        self, z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        p = self.permutation(z, softness, mode, descending=descending, options=options)
        return p.index_select(-2, positions)

    def log_permutation_rows(
        self, z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        p = self.log_permutation(z, softness, mode, descending=descending, options=options)
        return p.index_select(-2, positions)

    def topk_permutation(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._topk(z, k, softness, mode, options, log=False)

    def log_topk_permutation(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._topk(z, k, softness, mode, options, log=True)

    def _topk(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str,
        options: dict[str, Any] | None, *, log: bool,
    ) -> torch.Tensor:  # fmt: skip
        hook = self.impl.log_topk_permutation if log else self.impl.topk_permutation
        if self.strategy == "compact":
            return self._grouped(
                lambda zz, c: hook(zz, min(k, c), softness, mode, options=options),
                z, "pos_input", log=log,
            )  # fmt: skip
        p = hook(self._pz(z, softness, high=False), k, softness, mode, options=options)
        return self._rows_cols(p, log)

    def argmax(
        self, z: torch.Tensor, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._arg(self.impl.argmax, z, softness, mode, options, high=False, log=False)

    def argmin(
        self, z: torch.Tensor, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._arg(self.impl.argmin, z, softness, mode, options, high=True, log=False)

    def log_argmax(
        self, z: torch.Tensor, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._arg(self.impl.log_argmax, z, softness, mode, options, high=False, log=True)

    def log_argmin(
        self, z: torch.Tensor, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._arg(self.impl.log_argmin, z, softness, mode, options, high=True, log=True)

    def _arg(
        self, hook: _Fn, z: torch.Tensor, softness: Softness, mode: str,
        options: dict[str, Any] | None, *, high: bool, log: bool,
    ) -> torch.Tensor:  # fmt: skip
        if self.strategy == "compact":
            return self._grouped(
                lambda zz, k: hook(zz, softness, mode, options=options), z, "input", log=log
            )
        return self._cols(hook(self._pz(z, softness, high=high), softness, mode,
                               options=options), log)  # fmt: skip

    # ------------------------------------------------------------------ values and ranks

    def permute_values(
        self, z: torch.Tensor, x: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        if self.strategy == "compact":
            return self._grouped(
                lambda zz, xx, k: self.method.permute_values(
                    zz, xx, softness, mode, descending=descending, options=options
                ),
                z, "pos", x=x,
            )  # fmt: skip
        v = self.impl.permute_values(
            self._pz(z, softness, high=not descending), x, softness, mode,
            descending=descending, options=options,
        )  # fmt: skip
        return _mask.fill_positions(v, self.c)

    def permutation_with_values(
        self, z: torch.Tensor, x: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        if self.strategy == "compact":
            p = self.permutation(z, softness, mode, descending=descending, options=options)
            return p, (p @ x.unsqueeze(-1)).squeeze(-1)
        p, v = self.impl.permutation_with_values(
            self._pz(z, softness, high=not descending), x, softness, mode,
            descending=descending, options=options,
        )  # fmt: skip
        return self._rows_cols(p, False), _mask.fill_positions(v, self.c)

    def fused_sorted_values(
        self, x: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        standardize: bool = True, options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:  # fmt: skip
        """The method's masked fused kernel on ``x`` (x units), or None."""
        return self.method.fused_sorted_values(
            x, softness, mode, descending=descending, standardize=standardize, options=options,
            mask=self.m,
        )  # fmt: skip

    def fused_rank(
        self, x: torch.Tensor, softness: Softness, mode: str, *, descending: bool = True,
        standardize: bool = True, options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:  # fmt: skip
        """The method's masked fused kernel of the ranks, or None."""
        return self.method.fused_rank(
            x, softness, mode, descending=descending, standardize=standardize, options=options,
            mask=self.m,
        )  # fmt: skip

    def sorted_values(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor | None:  # fmt: skip
        """Soft sorted scores of the real entries at positions ``< c`` (unfilled tail)."""
        own = self.method.masked_sorted_values(
            z, self.m, softness, mode, descending=descending, options=options
        )
        if own is not None:
            return own
        if self.strategy == "compact":
            if not self.method.has_permutation or _sorts_values(self.method):
                return self._grouped(
                    lambda zz, k: _values_or_perm(self.method, zz, softness, mode, descending,
                                                  options),  # fmt: skip
                    z, "pos",
                )  # fmt: skip
            return None
        return self.impl.sorted_values(
            self._pz(z, softness, high=not descending), softness, mode,
            descending=descending, options=options,
        )  # fmt: skip

    def rank(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        own = self.method.masked_rank(
            z, self.m, softness, mode, descending=descending, options=options
        )
        if own is None and self.strategy == "compact":
            return self._grouped(
                lambda zz, k: self.method.rank(zz, softness, mode, descending=descending,
                                               options=options),  # fmt: skip
                z, "input",
            )  # fmt: skip
        if own is None:
            own = self.impl.rank(
                self._pz(z, softness, high=not descending), softness, mode,
                descending=descending, options=options,
            )  # fmt: skip
        return torch.where(self.m, own, 0.0)


def _fill_batched(
    res: torch.Tensor, kind: str, order: torch.Tensor, mf: torch.Tensor, cf: torch.Tensor,
    fill: float,
) -> torch.Tensor:  # fmt: skip
    """A batched compact result (columns / positions in compacted order) in input order with
    the fills: positions ``>= c`` and columns of padded entries."""
    n = mf.shape[-1]
    if kind == "pos":
        return torch.where(torch.arange(n, device=res.device) < cf.unsqueeze(-1), res, 0.0)
    idx = order if kind == "input" else order.unsqueeze(-2).expand(res.shape)
    out = torch.empty_like(res).scatter(-1, idx, res)
    keep = mf if kind == "input" else mf.unsqueeze(-2)
    if kind == "pos_input":
        pos = torch.arange(res.shape[-2], device=res.device).unsqueeze(-1)
        keep = keep & (pos < cf.view(-1, 1, 1))
    return torch.where(keep, out, fill)


def _sorts_values(method: OrderingMethod) -> bool:
    """Whether ``method`` overrides :meth:`OrderingMethod.sorted_values`."""
    return type(method).sorted_values is not OrderingMethod.sorted_values


def _values_or_perm(
    method: OrderingMethod, z: torch.Tensor, softness: Softness, mode: str, descending: bool,
    options: dict[str, Any] | None,
) -> torch.Tensor:  # fmt: skip
    v = method.sorted_values(z, softness, mode, descending=descending, options=options)
    assert v is not None
    return v
