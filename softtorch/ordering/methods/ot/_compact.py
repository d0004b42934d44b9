r"""Soft sorted values and ranks of masked ops on each slice's real entries alone (CPU kernels).

A masked op must give, for every slice, the op on its ``c`` real entries alone. The padded
layout of :mod:`._layout` solves an ``n``-input problem per row whose padded part decouples; it
is exact but runs the dense solvers on the whole padded batch. For the values ops (soft sorted
values ``Qn^T x`` and soft ranks ``Qn j`` of :mod:`._contract`) this module instead solves the
*compacted* problems (:class:`._layout.Compact`): each slice's real entries are gathered to the
front and row ``b`` is the sort problem of its first ``c_b`` inputs and its own ``c_b`` anchors
(``(j - (c - 1) / 2) / (c - 1)``, capacities ``1``), marked by per-row capacities ``(B, n)``
that are ``0`` after ``c_b`` (:func:`._dual.per_row`). The same kernels as the unmasked values
ops run on them with per-row counts: the entropic problems by the blockwise log-domain Sinkhorn
of :mod:`._lowrank` (potentials ``-inf`` outside a row's entries), the p-norm problems by the
support-only semi-dual Newton solver and implicit backward of :mod:`._span_numba` /
:mod:`._runs_numba`. Each row is then exactly the unmasked problem of its slice (same anchors,
capacities, warm start and stopping rule), no ``(B, n, n)`` array is formed and a slice costs
its own length.

:func:`masked_contract` returns ``None`` where this does not apply (the caller, :class:`.method.
MaskedOT`, then uses the padded layout): fewer than ``MIN_SIZE`` plan entries (as the unmasked
values ops), entropic problems too sharp for the blockwise sums or slow to converge there,
p-norm problems without the numba kernels (non-CPU, missing numba, or compile failure).
"""

from __future__ import annotations

import math

import torch

from . import _lowrank as lowrank
from ._autograd import Potentials
from ._contract import OTContract
from ._dual import PerRowUnsupported, numba_ok
from ._layout import Compact
from ._solver import SolverOptions

__all__ = ["masked_contract"]


def masked_contract(
    a: torch.Tensor,
    bad: torch.Tensor,
    mask: torch.Tensor,
    x: torch.Tensor | None,
    kind: int,
    opts: SolverOptions,
) -> torch.Tensor | None:
    """Soft sorted values (``x`` given) or soft ranks (``x`` ``None``) of each row's real entries.

    Args:
        a: ``(B, n)`` scaled scores ``-2 (z - mean z) / softness`` over each row's real entries
            (``0`` at padded ones; :func:`._layout.scaled_scores`), differentiable.
        bad: ``(B, 1)`` rows whose real entries hold NaN or inf (NaN results).
        mask: ``(B, n)`` bool, ``True`` at real entries.
        x: ``(B, n)`` values to sort (in input order), or ``None`` for the ranks.
        kind: ``0`` (entropic) or the p-norm ``k``.
        opts: the solver settings.

    Returns:
        ``(B, n)``: sorted values at positions ``< c`` (ascending; positions ``>= c`` hold 0),
        or ranks in ``[1, c]`` at the real entries (``0`` at padded ones), in ``x``'s dtype
        (``a``'s for ranks); ``None`` where the compacted path does not apply.
    """
    B, n = a.shape
    if n * n < lowrank.MIN_SIZE or a.device.type != "cpu":
        return None
    cp = Compact.of(mask)
    ac = cp.gather(a)
    y = cp.anchors(a.dtype)
    b = cp.capacities()
    ad = ac.detach()
    if kind == 0 and not lowrank.eligible(ad, y, rows=True):
        return None
    if kind > 0 and not numba_ok(ad.double()):
        return None
    with torch.no_grad():
        beta0 = cp.hard_beta(-0.5 * ad.double(), y)
    normalise = "row" if x is None else "col"
    try:
        alpha, beta = Potentials.apply(ad, y, b, kind, opts, beta0, normalise)
    except PerRowUnsupported:
        return None
    if x is None:
        xs = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    else:
        xs = torch.where(bad, 0.0, cp.gather(x))
    out = OTContract.apply(ac, xs, y, b, alpha, beta, normalise, kind)
    if x is None:
        out = cp.scatter(out)
    if bool(bad.any()):
        out = torch.where(bad, math.nan, out)
    return out
