r"""Per-row OT problems of masked ops (``mask=``): slices of different lengths in one solve.

A slice with ``c`` real entries (of ``n``) must give the plan of the unmasked problem on its real
entries alone (:mod:`.method`): ``c`` unit-mass inputs and the anchors of size ``c``. The batched
solvers (:mod:`._solver`) take per-row anchors ``y`` ``(B, m)`` but one number of inputs ``n``,
one number of anchors ``m`` and one capacity vector ``b``, so each row is completed to an
``n``-input problem with the capacities of size ``n`` in which the padded part *decouples*:

* **padded inputs** get one common scaled score (a sentinel) beyond every real one, on the side
  of the anchors they fill (the scaled cost is ``a_i y_j``: a very negative ``a`` goes to the
  highest anchors, a very positive one to the lowest);
* **sort** (``n`` anchors, ``b = 1``): anchors ``j < c`` are the slice's grid ``j / (c - 1)``
  (centred by its mean ``1/2``, as the unmasked op centres them); the ``n - c`` padded anchors
  sit together at distance ``D`` above the highest; the padded inputs fill them;
* **top-k** (``k < n - 1``; ``k + 1`` anchors, ``b = (1, ..., 1, n - k)``): a slice with
  ``c >= k + 1`` keeps its own ``k`` top anchors ``(c - 1 - t) / (c - 1)`` and its rest anchor
  ``(c - k - 1) / (2 (c - 1))`` (the slice's capacity ``c - k``); the padded inputs fill the
  rest anchor's other ``n - c`` units. A slice with ``c <= k`` is the descending sort problem
  on anchors ``t < c`` (as the unmasked op does for ``k >= c - 1``); anchors ``c..k`` are padded,
  together at distance ``D`` below the lowest real one.

**Exactness.** Let ``g`` be the distance in ``y`` between the real anchors and the anchors the
padded inputs fill (``D``, or for rows sharing the rest anchor its distance to the nearest top
anchor, ``(c - k + 1) / (2 (c - 1))``), and let the sentinel lie ``G = S / g`` beyond the real
scores (``S`` = :data:`SEPARATION`). For a real input ``i``, a padded input ``p``, a real anchor
``j`` and a padded anchor ``P`` the optimal entropic plan has the cross ratio
``Q_iP Q_pj / (Q_ij Q_pP) = exp(-(a_i - a_p)(y_P - y_j)) <= exp(-S)``, so the entries between
the two parts underflow to exactly ``0``; the p-norm plans vanish there exactly (their slacks are
negative). With zero cross entries the real block satisfies the optimality conditions of the
slice's own problem, whose plan is unique: the real block *is* the slice's plan (to the solver
tolerance, which every row meets: the solvers stop on the largest error over the batch).
Padded anchors and inputs never enter with zero mass, so no ``log 0`` or ``0 * inf`` arises.

**Compacted problems** (:class:`Compact`; the values ops on CPU, :mod:`._compact`): each
slice's real entries are moved to the front (a stable gather) and row ``b`` is the problem of
its first ``c`` inputs and anchors alone: its own centred grid ``(j - (c - 1) / 2) / (c - 1)``
with capacities ``1`` for ``j < c`` and ``0`` after (per-row capacities ``(B, n)`` mark the
problem as compacted for the kernels, :func:`._dual.per_row`). Nothing of the padded part is
solved, so a slice costs its own length.

**Scale.** The cost range ``max |a y|`` sets the rounding floor of the solvers' tolerance. With
real scores up to ``A = max |a_i|`` the sentinel is about ``A + S / D`` and the padded anchors
about ``1/2 + D``; ``D = sqrt(S / (2 A))`` minimises their product, so the padded problem's cost
range stays within about ``2 S + A`` (``A / 2`` unmasked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: ``S``: the log of the largest cross ratio between the real and padded parts (``exp(-S)`` and
#: its square root underflow to 0 in float64).
SEPARATION = 2000.0


@dataclass(frozen=True)
class Layout:
    """The per-row problem of a masked op on rows of ``n`` scores.

    Attributes:
        mask: ``(B, n)`` bool, ``True`` at real entries.
        k: ``None`` for the sort problem (``n`` anchors), else the top-``k`` problem
            (``1 <= k < n - 1``, ``k + 1`` anchors).
    """

    mask: torch.Tensor
    k: int | None = None

    def capacities(self, n: int) -> torch.Tensor:
        """``b`` ``(m,)`` float64: ``1`` per anchor (sort), ``(1, ..., 1, n - k)`` (top-k)."""
        if self.k is None:
            return torch.ones(n, dtype=torch.float64)
        b = torch.ones(self.k + 1, dtype=torch.float64)
        b[-1] = float(n - self.k)
        return b

    def build(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, yc)``: the scaled scores ``a`` ``(B, n)`` (real entries used, padded ones
        replaced by the sentinel) and the centred per-row anchors ``(B, m)``, in ``a``'s dtype."""
        m = self.mask
        c = m.sum(-1, keepdim=True)
        cf = c.to(torch.float64)
        dist = _pad_distance(a, m)
        if self.k is None:
            j = torch.arange(a.shape[-1], dtype=torch.float64, device=a.device)
            y, real = j / (cf - 1).clamp_min(1.0), j < c
            high, gap = True, dist
        else:
            t = torch.arange(self.k + 1, dtype=torch.float64, device=a.device)
            y = (cf - 1 - t) / (cf - 1).clamp_min(1.0)  # top anchors (descending grid)
            share = c >= self.k + 1  # the slice has a rest anchor (capacity c - k >= 1)
            rest = (cf - self.k - 1) / (2 * (cf - 1)).clamp_min(1.0)
            y = torch.where(share & (t == self.k), rest, y)
            real = share | (t < c)
            high = False
            gap = torch.where(share, (cf - self.k + 1) / (2 * (cf - 1)).clamp_min(1.0), dist)
        yc = _centre(y, real)
        edge = (
            torch.where(real, yc, -math.inf).amax(-1, keepdim=True) + dist
            if high
            else torch.where(real, yc, math.inf).amin(-1, keepdim=True) - dist
        )
        yc = torch.where(real, yc, edge)
        yc = torch.where(c > 0, yc, 0.0)  # no real entry: every cost 0 (all fills)
        a_full = _sentinel(a, m, gap, high=high)
        return a_full, yc.to(a.dtype)


def _centre(y: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``y`` minus the mean of its real anchors (per row), as the unmasked op centres them."""
    cnt = real.sum(-1, keepdim=True).clamp_min(1)
    return y - torch.where(real, y, 0.0).sum(-1, keepdim=True) / cnt


def _pad_distance(a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``D = sqrt(S / (2 A))`` ``(B, 1)`` float64 with ``A = max(max |a_real|, 1)`` (module
    docstring)."""
    amax = torch.where(m, a.detach().abs().double(), 0.0).amax(-1, keepdim=True)
    return torch.sqrt(SEPARATION / (2.0 * amax.clamp_min(1.0)))


def _sentinel(a: torch.Tensor, m: torch.Tensor, gap: torch.Tensor, *, high: bool) -> torch.Tensor:
    """``a`` with padded entries at ``S / gap`` below the smallest real score (``high``: they
    fill the highest anchors) or above the largest; a constant (no gradient)."""
    ad = a.detach().double()
    real = m.any(-1, keepdim=True)
    lo = torch.where(real, torch.where(m, ad, math.inf).amin(-1, keepdim=True), 0.0)
    hi = torch.where(real, torch.where(m, ad, -math.inf).amax(-1, keepdim=True), 0.0)
    sep = SEPARATION / gap
    fill = lo - sep if high else hi + sep
    return torch.where(m, a, fill.to(a.dtype))


def scaled_scores(
    flat: torch.Tensor, m: torch.Tensor, softness: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, bad)``: ``a = -2 (z - mean) / softness`` over each row's real entries (``0`` at
    padded ones) and the rows whose real entries hold NaN or inf (``(B, 1)``), for ``flat``
    ``(B, n)``."""
    bad = ~torch.isfinite(torch.where(m, flat, 0.0)).all(-1, keepdim=True)
    clean = torch.where(bad | ~m, 0.0, flat)
    cnt = m.sum(-1, keepdim=True).clamp_min(1).to(flat.dtype)
    zc = torch.where(m, clean - clean.sum(-1, keepdim=True) / cnt, 0.0)
    return zc * (-2.0 / softness), bad


def hard_beta(zc: torch.Tensor, yc: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Anchor potentials of the unregularised problem with cost ``-2 z y`` for per-row anchors
    ``yc`` ``(B, m)`` (capacities ``b`` ``(m,)``): the batched form of
    :func:`.method._hard_beta` (the warm start; boundaries half-way between the sorted inputs
    on either side of each capacity boundary)."""
    order = torch.argsort(yc, dim=-1, stable=True)
    ys = yc.gather(-1, order)
    caps = b.expand_as(yc).gather(-1, order)
    zs = torch.sort(zc, dim=-1).values
    n = zc.shape[-1]
    bounds = torch.cumsum(caps, -1)[..., :-1].round().long().clamp(1, n - 1)
    mid = zs.gather(-1, bounds - 1) + zs.gather(-1, bounds)
    steps = -mid * (ys[..., 1:] - ys[..., :-1])
    beta_sorted = torch.cat([torch.zeros_like(ys[..., :1]), torch.cumsum(steps, -1)], -1)
    return torch.zeros_like(beta_sorted).scatter(-1, order, beta_sorted)


@dataclass(frozen=True)
class Compact:
    """Each slice's real entries moved to the front (module docstring): the sort problem of a
    masked op with per-row counts.

    Attributes:
        order: ``(B, n)`` int64, the input position of each compacted entry (real entries
            first, in input order).
        c: ``(B, 1)`` int64, real entries per row.
    """

    order: torch.Tensor
    c: torch.Tensor

    @staticmethod
    def of(m: torch.Tensor) -> Compact:
        """The compaction of the mask ``m`` ``(B, n)`` (``True`` at real entries)."""
        order = torch.sort((~m).to(torch.uint8), dim=-1, stable=True).indices
        return Compact(order, m.sum(-1, keepdim=True))

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` ``(B, n)`` in compacted order."""
        return t.gather(-1, self.order)

    def scatter(self, t: torch.Tensor) -> torch.Tensor:
        """A compacted ``t`` ``(B, n)`` back in input order (differentiable)."""
        return torch.zeros_like(t).scatter(-1, self.order, t)

    def anchors(self, dtype: torch.dtype) -> torch.Tensor:
        """Per-row centred anchors ``(B, n)``: ``(j - (c - 1) / 2) / (c - 1)`` for ``j < c``
        (the slice's own centred grid), ``0`` after (never read)."""
        n = self.order.shape[-1]
        j = torch.arange(n, dtype=torch.float64, device=self.order.device)
        cf = self.c.to(torch.float64)
        y = (j - (cf - 1) / 2) / (cf - 1).clamp_min(1.0)
        return torch.where(j < self.c, y, 0.0).to(dtype)

    def capacities(self) -> torch.Tensor:
        """Per-row capacities ``(B, n)`` float64: ``1`` for ``j < c``, ``0`` after."""
        n = self.order.shape[-1]
        j = torch.arange(n, device=self.order.device)
        return (j < self.c).to(torch.float64)

    def hard_beta(self, zc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        """The warm start of :func:`.method._hard_beta` for every row's own problem: with the
        real compacted ``zc`` sorted, ``beta_j - beta_{j-1} = -(z_(j-1) + z_(j)) (y_j -
        y_{j-1})`` for ``0 < j < c`` (``0`` after), ``beta_0 = 0``; ``(B, n)`` float64."""
        n = zc.shape[-1]
        j = torch.arange(n, device=zc.device)
        real = j < self.c
        zs = torch.sort(torch.where(real, zc.double(), math.inf), dim=-1).values
        step_ok = real[..., 1:]
        mid = torch.where(step_ok, zs[..., :-1] + zs[..., 1:], 0.0)
        dy = torch.where(step_ok, yc[..., 1:].double() - yc[..., :-1].double(), 0.0)
        steps = -mid * dy
        return torch.cat([torch.zeros_like(zs[..., :1]), torch.cumsum(steps, -1)], -1)
