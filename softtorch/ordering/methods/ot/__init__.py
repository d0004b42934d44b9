"""``method="ot"``: soft sorting as regularised optimal transport to sorted anchors.

The formulation (marginals, cost, regularisers, anchors for sort / rank / top-k) is stated in
:mod:`.method`. The files, from the bottom layer up:

* :mod:`._linalg`: the regularised Schur-complement systems of the Newton steps and of the
  implicit backward (dense Cholesky, matrix-free CG).
* :mod:`._dual`: the plan ``phi``, its derivative and the row potentials, shared by both solvers,
  with the numba kernels of :mod:`._dual_numba` (fused p-norm semi-dual evaluation, plans and
  curvatures stored on each row's span of nonzeros) and their torch fallbacks.
* :mod:`._lowrank`: entropic kernel sums for the rank-one cost by blockwise Taylor expansion
  (log-domain Sinkhorn and plan mat-vecs without the ``n x m`` kernel).
* :mod:`._pnorm_numba`: the p-norm plan entries and row-potential sums shared by the kernels.
* :mod:`._layout`: the per-row problems of masked ops (per-row anchors, decoupled padding, and
  the compacted problems: real entries first, per-row counts).
* :mod:`._band`: the banded pre-solver for p-norm problems with many anchors (a warm start).
* :mod:`._solver`: stabilised Sinkhorn (entropic) and the semi-dual Newton solver (all modes).
* :mod:`._autograd`: the plan as an ``autograd.Function`` with implicit differentiation.
* :mod:`._logplan`: the entropic log-plan (``return_log_probs=True``).
* :mod:`._contract`: soft sorted values and ranks as mat-vecs with the plan (no ``n x m``
  output), with the implicit backward specialised to their rank-one upstream gradients.
* :mod:`._compact`: sorted values and ranks of masked ops on the compacted per-row problems.
* :mod:`._ops`: the solver and the backward Schur solve as ``torch.library`` custom ops.
* :mod:`._problem`: option parsing, the problem of one call and :func:`ot_plan` (solver dispatch).
* :mod:`.method`: the formulation and the :class:`OT` ordering method (and its masked form).
"""

from __future__ import annotations

from ._solver import OTConvergenceWarning
from .method import OPTION_KEYS, OT, ot_plan

__all__ = ["OPTION_KEYS", "OT", "OTConvergenceWarning", "ot_plan"]
