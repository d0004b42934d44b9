r"""``method="ot"``: soft sorting as regularised optimal transport to sorted anchors.

The scores ``z_i`` (mass ``1/n`` each) are transported to anchors ``y_j`` with capacities
``b_j / n`` under the squared cost ``C_ij = (z_i - y_j)^2`` and a regulariser of strength
``eps = softness`` (Cuturi et al. 2019, "Differentiable Ranks and Sorting using Optimal
Transport"; Blondel et al. 2018, "Smooth and Sparse Optimal Transport"; Xie et al. 2020,
"Differentiable Top-k with Optimal Transport"):

* ``smooth``: entropic OT, ``min <Plan, C> + eps sum Plan log Plan`` (stabilised kernel-domain
  Sinkhorn, handing over to Newton steps when its linear rate is slow);
* ``c0`` / ``c1`` / ``c2``: p-norm OT with ``p = 2, 3/2, 4/3``, regulariser
  ``eps sum_ij omega(n Plan_ij) / n`` with ``omega(t) = t^p / p`` - the regulariser of the
  ``c0`` / ``c1`` / ``c2`` simplex projections applied to the permutation-scaled plan
  ``Q = n Plan`` (so each row of a column-unconstrained problem is exactly that projection);
  ``c0`` gives sparse plans with exact zeros. Solved through the smooth semi-dual with a batched
  semi-smooth Newton method (see :mod:`._solver`).

In permutation units both are ``min <Q, C / eps> + sum_ij omega(Q_ij)`` with ``Q 1 = 1`` and
``Q^T 1 = b`` (``omega(t) = t log t`` for ``smooth``), so the plan only depends on ``C / eps``.
The squared cost is replaced by ``-2 (z_i - mean z)(y_j - mean y)``, which differs from it by
terms that depend on ``i`` or ``j`` alone and so leaves the plan unchanged while keeping the
numbers small.

Anchors and outputs:

* sort / argsort / rank: ``n`` anchors ``y = linspace(0, 1, n)``, ``b_j = 1``; the soft
  permutation is ``Q^T`` (row ``j`` = distribution over inputs of the ``j``-th smallest), flipped
  for ``descending``; ranks are ``rank_i = sum_j Q_ij j`` (``n + 1 -`` that when descending).
* top-k: ``k + 1`` anchors: ``y_j = (n - 1 - j) / (n - 1)`` (the ``k`` largest grid positions, in
  descending order) with ``b_j = 1`` for ``j < k``, and one anchor for the other ``n - k`` inputs
  at the mean of the remaining grid positions, ``(n - k - 1) / (2 (n - 1))``, with
  ``b_k = n - k``; rows ``j < k`` of ``Q^T`` are returned. For ``k >= n - 1`` the rest anchor
  is a grid point, so the sort problem is used.

Outputs are renormalised by the plan's own marginals (columns for permutations, rows for ranks),
so every row lies on the simplex exactly even before full convergence; at convergence this is
the identity and gradients are unaffected. Gradients come from implicit differentiation of the
optimality conditions (:mod:`._autograd`), not from unrolling the solver, including the
softness (the plan depends on ``z`` and ``softness`` only through ``C / eps``). Double backward
(``create_graph=True``), forward mode and ``torch.func`` transforms differentiate a dense
Newton-step form of the same implicit function (exact to third order; :mod:`._autograd`).
While tracing (``torch.compile``, fake tensors) the solver and the Schur solve of the backward
pass run as ``torch.library`` custom ops (:mod:`._ops`): the same values and gradients, and no
graph breaks from the solvers' data-dependent stopping rules.

``ot_kwargs`` (``options``): ``sinkhorn_tol`` / ``sinkhorn_max_iter`` control ``smooth``,
``lbfgs_tol`` / ``lbfgs_max_iter`` control the p-norm modes (the names follow the published
API; the p-norm solver here is Newton's method, whose iterations they count). Tolerances are the
largest allowed marginal error of ``Q`` (a row of the soft permutation sums to 1 within it before
renormalisation); defaults ``1e-4`` (float32 and lower precisions) / ``1e-9`` (float64), floored
at the rounding level of ``C / eps``. Defaults for the caps: 1000 Sinkhorn (+ Newton)
iterations, 200 Newton iterations. Hitting a cap emits :class:`OTConvergenceWarning`.

Sort values and ranks (``sort`` without soft indices, ``rank``, and for ``smooth`` the values
next to the soft indices of ``sort``) contract the plan without forming it where that pays off
(:mod:`._contract`): the entropic plan through the blockwise sums of :mod:`._lowrank` (when the
cost range needs few blocks), the p-norm plans on their row spans (numba). The entropic solver
then runs as blockwise log-domain Sinkhorn (the same iterates as the dense one, float64). The
p-norm values next to soft indices are ``P x`` of the plan itself, so one implicit solve
differentiates both outputs.

Soft indices of ``smooth`` problems the blockwise Sinkhorn takes (CPU, numba) are written once
from its potentials into the output, and their backward pass streams the incoming gradient once
with the plan recomputed (:mod:`._fusedplan`): no ``n x m`` buffer besides the output and its
gradient.

On CPU with more than ``DENSE_MAX`` (128) anchors the p-norm solver, its Newton systems and the
implicit backward pass only visit the plans' supports (short intervals of anchors): see
:mod:`._span_numba` and :mod:`._runs`.

Precision: float32 (and lower-precision, computed in float32) inputs are solved in float32 when
``max |C / eps|`` is small enough for float32 to reach the tolerance, otherwise in float64; the
p-norm solver and the entropic Newton fallback always run in float64. Outputs have the input
dtype.

Rows of ``z`` containing NaN or inf give NaN outputs (their gradients are zero); other rows are
unaffected.

Masked ops (``mask=``): :class:`MaskedOT` (from :meth:`OT.with_mask`) solves every slice's problem
on its real entries in one batched solve with per-row anchors (:mod:`._layout`); its sorted
values and ranks run on the compacted per-row problems of :mod:`._compact` where the unmasked
values ops would contract the plan (same kernels, per-row counts, no ``n x n`` plan).
"""

from __future__ import annotations

from typing import Any

import torch

from ...._checks import as_float, check_mode, check_softness
from ....simplex import is_concrete
from ..._base import OrderingMethod, Softness, register
from ._compact import masked_contract
from ._layout import Layout, scaled_scores
from ._problem import (
    KIND,
    OPTION_KEYS,
    anchor_grid,
    is_traced,
    ot_contract,
    ot_plan,
    parse_options,
    problem_inputs,
    soft_plan,
)
from ._solver import OTConvergenceWarning

__all__ = ["OT", "OTConvergenceWarning", "OPTION_KEYS"]


@register
class OT(OrderingMethod):
    """Optimal-transport soft sorting; see the module docstring for the math and options."""

    name = "ot"

    def with_mask(self, m: torch.Tensor) -> OrderingMethod:
        return MaskedOT(m)

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        n = z.shape[-1]
        Q = ot_plan(
            z, anchor_grid(n, z), torch.ones(n, dtype=torch.float64), softness, mode, options
        )
        P = Q.transpose(-1, -2)
        return P.flip(-2) if descending else P

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
        n = z.shape[-1]
        ones = torch.ones(n, dtype=torch.float64)
        out = ot_contract(z, x, anchor_grid(n, z), ones, softness, mode, options, "col")
        if out is None:
            return super().permute_values(
                z, x, softness, mode, descending=descending, options=options
            )
        return out.flip(-1) if descending else out

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
        n = z.shape[-1]
        grid, ones = anchor_grid(n, z), torch.ones(n, dtype=torch.float64)
        Q, pot = soft_plan(z, grid, ones, softness, mode, options)
        P = Q.transpose(-1, -2)
        P = P.flip(-2) if descending else P
        out = None
        if pot is not None and pot[0].kind == 0:
            # p-norm plans: the values from the plan itself, so that the backward pass solves
            # one Schur system for both outputs (:func:`._autograd.band_plan_vjp`)
            out = ot_contract(z, x, grid, ones, softness, mode, options, "col", pot)
        if out is None:
            return P, (P @ x.unsqueeze(-1).to(P.dtype)).squeeze(-1)
        return P, out.flip(-1) if descending else out

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        n = z.shape[-1]
        if not 0 <= k <= n:
            raise ValueError(f"k must be in [0, {n}] for an input of size {n}, got {k}")
        if k == 0:
            check_mode(mode, tuple(KIND))
            check_softness(softness)
            parse_options(options, mode, torch.float32)
            return as_float(z, "z").new_zeros(*z.shape[:-1], 0, n)
        if k >= n - 1:  # n - k <= 1: the rest-anchor is a grid point, i.e. the sort problem
            return self.permutation(z, softness, mode, descending=True, options=options)[..., :k, :]
        top = (n - 1 - torch.arange(k, dtype=torch.float64)) / (n - 1)
        rest = torch.tensor([(n - k - 1) / (2 * (n - 1))], dtype=torch.float64)
        b = torch.cat([torch.ones(k, dtype=torch.float64), torch.tensor([float(n - k)])])
        Q = ot_plan(z, torch.cat([top, rest]), b, softness, mode, options)
        return Q[..., :k].transpose(-1, -2)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        n = z.shape[-1]
        ones = torch.ones(n, dtype=torch.float64)
        j = torch.arange(1, n + 1, dtype=as_float(z, "z").dtype, device=z.device)
        ranks = ot_contract(z, j, anchor_grid(n, z), ones, softness, mode, options, "row")
        if ranks is None:
            Q = ot_plan(z, anchor_grid(n, z), ones, softness, mode, options, normalise="row")
            ranks = Q @ j.to(Q.dtype)
        return (n + 1) - ranks if descending else ranks

    # log-space hooks (``return_log_probs=True``): ``smooth`` uses the log-plan of the dual slacks
    # (no underflow); the sparse modes keep the default (safe log of the plan, ``-inf`` at zeros)

    def log_permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if mode != "smooth":
            return super().log_permutation(
                z, softness, mode, descending=descending, options=options
            )
        n = z.shape[-1]
        ones = torch.ones(n, dtype=torch.float64)
        logq = ot_plan(z, anchor_grid(n, z), ones, softness, mode, options, log=True)
        P = logq.transpose(-1, -2)
        return P.flip(-2) if descending else P

    def log_topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        n = z.shape[-1]
        if mode != "smooth" or k == 0 or not 0 <= k <= n:
            return super().log_topk_permutation(z, k, softness, mode, options=options)
        if k >= n - 1:
            lp = self.log_permutation(z, softness, mode, descending=True, options=options)
            return lp[..., :k, :]
        top = (n - 1 - torch.arange(k, dtype=torch.float64)) / (n - 1)
        rest = torch.tensor([(n - k - 1) / (2 * (n - 1))], dtype=torch.float64)
        b = torch.cat([torch.ones(k, dtype=torch.float64), torch.tensor([float(n - k)])])
        logq = ot_plan(z, torch.cat([top, rest]), b, softness, mode, options, log=True)
        return logq[..., :k].transpose(-1, -2)


class MaskedOT(OT):
    """:class:`OT` on the real entries of each slice of the mask ``m`` (``(..., n)`` bool, laid
    out like the scores), every hook one batched solve of the per-row problems of
    :mod:`._layout`. Output positions ``>= c`` and padded inputs hold arbitrary values (the
    caller, :class:`softtorch.ordering._masked.Masked`, fills them).

    Args:
        m: the mask, ``True`` at real entries.
    """

    def __init__(self, m: torch.Tensor) -> None:
        self.m = m
        self.c = m.sum(-1, keepdim=True)

    # soft indices go through the masked plans (no unmasked contraction shortcut)
    permutation_with_values = OrderingMethod.permutation_with_values

    def _compacted(
        self, z: torch.Tensor, x: torch.Tensor | None, softness: Softness, mode: str,
        options: dict[str, Any] | None,
    ) -> torch.Tensor | None:  # fmt: skip
        """Sorted values of ``x`` (ascending) or ranks (``x`` None) from the compacted per-row
        problems (:mod:`._compact`), or None where they do not apply."""
        if is_traced(z) or not is_concrete(z) or (x is not None and not is_concrete(x)):
            return None
        inp = problem_inputs(z, softness, mode, options, False)
        if inp is None:
            return None
        flat, soft, opts, kind = inp
        n = z.shape[-1]
        mask = self.m.to(z.device).expand(z.shape).reshape(-1, n)
        a, bad = scaled_scores(flat, mask, soft)
        xs = None if x is None else x.expand(z.shape).reshape(-1, n)
        out = masked_contract(a, bad, mask, xs, kind, opts)
        return None if out is None else out.reshape(z.shape)

    def permute_values(
        self, z: torch.Tensor, x: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        out = self._compacted(z, x, softness, mode, options)
        if out is None:
            return OrderingMethod.permute_values(
                self, z, x, softness, mode, descending=descending, options=options
            )
        if not descending:
            return out
        t = torch.arange(out.shape[-1], device=out.device)
        return out.gather(-1, torch.where(t < self.c, self.c - 1 - t, t).expand(out.shape))

    def _sort(
        self, z: torch.Tensor, softness: Softness, mode: str, options: dict[str, Any] | None,
        normalise: str = "col", log: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        ones = torch.ones(z.shape[-1], dtype=torch.float64)
        return ot_plan(z, Layout(self.m), ones, softness, mode, options, normalise, log)

    def _descending(self, P: torch.Tensor) -> torch.Tensor:
        """Rows ``t < c`` of the ascending soft permutation ``P`` reversed per slice."""
        t = torch.arange(P.shape[-2], device=P.device)
        idx = torch.where(t < self.c, self.c - 1 - t, t)
        return P.gather(-2, idx.unsqueeze(-1).expand(P.shape))

    def permutation(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        P = self._sort(z, softness, mode, options).transpose(-1, -2)
        return self._descending(P) if descending else P

    def log_permutation(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        if mode != "smooth":
            return super().log_permutation(
                z, softness, mode, descending=descending, options=options
            )
        P = self._sort(z, softness, mode, options, log=True).transpose(-1, -2)
        return self._descending(P) if descending else P

    def rank(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        ranks = self._compacted(z, None, softness, mode, options)
        if ranks is None:
            Q = self._sort(z, softness, mode, options, normalise="row")
            ranks = Q @ torch.arange(1, z.shape[-1] + 1, dtype=Q.dtype, device=Q.device)
        return (self.c + 1).to(ranks.dtype) - ranks if descending else ranks

    def topk_permutation(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        if not 1 <= k < z.shape[-1] - 1:  # validation, k = 0 and the sort problem (k >= n - 1)
            return super().topk_permutation(z, k, softness, mode, options=options)
        return self._topk(z, k, softness, mode, options, log=False)

    def log_topk_permutation(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str, *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        if mode != "smooth" or not 1 <= k < z.shape[-1] - 1:
            return super().log_topk_permutation(z, k, softness, mode, options=options)
        return self._topk(z, k, softness, mode, options, log=True)

    def _topk(
        self, z: torch.Tensor, k: int, softness: Softness, mode: str,
        options: dict[str, Any] | None, *, log: bool,
    ) -> torch.Tensor:  # fmt: skip
        lay = Layout(self.m, k)
        Q = ot_plan(z, lay, lay.capacities(z.shape[-1]), softness, mode, options, log=log)
        return Q[..., :k].transpose(-1, -2)
