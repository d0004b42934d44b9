r"""The p-norm curvature ``D = phi'(s)`` as ``O(n + m)`` mat-vecs (numba kernels of
:mod:`._runs_numba`).

``s_ij = alpha_i + beta_j - a_i y_j`` are the dual slacks of the potentials; ``D`` vanishes off
each row's runs of positive slacks and is a low-degree polynomial in ``(alpha_i, a_i)`` and
``(beta_j, y_j)`` on them, so ``D v`` and ``D^T x`` are combinations of prefix sums. This is the
operator of the Schur systems of the p-norm Newton directions (:mod:`._solver`) and of the
implicit backward passes (:mod:`._autograd`, :mod:`._contract`): each CG iteration then costs
``O(n + m)`` per batch element instead of the plan's support.
"""

from __future__ import annotations

from typing import Any

import torch

from ..permutahedron import _kernel_guard
from ._dual import ascending, numba_ok

_F64 = torch.float64


def _np(t: torch.Tensor) -> Any:
    return t.detach().to(_F64).contiguous().numpy()


class RunsCurvature:
    """``D = phi'(s)`` ``(B, n, m)`` of the potentials ``alpha`` ``(B, n)``, ``beta`` ``(B, m)``
    for the cost ``a y^T`` (``kind`` ``1, 2, 3``; CPU float64), applied through prefix sums.

    Attributes:
        r: row sums ``D 1`` ``(B, n)``.
        c: column sums ``D^T 1`` ``(B, m)``.
    """

    def __init__(
        self,
        a: torch.Tensor,
        y: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        kind: int,
    ):
        from . import _runs_numba  # numba imported on first use

        self._k = _runs_numba
        self._a, self._y, self._alpha, self._beta = _np(a), _np(y), _np(alpha), _np(beta)
        self._runs = _runs_numba.curvature_runs(
            self._a, self._y, self._alpha, self._beta, ascending(y)
        )
        mu = beta.detach().to(_F64).mean(-1, keepdim=True)
        self._u = _np(alpha.detach().to(_F64) + mu)
        self._w = _np(beta.detach().to(_F64) - mu)
        self.kind = kind
        self.r = self.mv(torch.ones(beta.shape, dtype=_F64))
        self.c = self.rmv(torch.ones(alpha.shape, dtype=_F64))

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``D v`` ``(B, n)`` for ``v`` ``(B, m)`` or ``(B, m, r)`` (float64)."""
        if v.dim() == 3:
            return torch.stack([self.mv(v[..., k]) for k in range(v.shape[-1])], -1)
        out = self._k.runs_mv(
            *self._runs, self._a, self._y, self._u, self._w, self.kind, _np(v)
        )
        return torch.from_numpy(out)

    def rmv(self, x: torch.Tensor) -> torch.Tensor:
        """``D^T x`` ``(B, m)`` for ``x`` ``(B, n)`` or ``(B, n, r)`` (float64)."""
        if x.dim() == 3:
            return torch.stack([self.rmv(x[..., k]) for k in range(x.shape[-1])], -1)
        out = self._k.runs_rmv(
            *self._runs, self._a, self._y, self._u, self._w, self.kind, _np(x)
        )
        return torch.from_numpy(out)

    def normal(self, v: torch.Tensor, rinv: torch.Tensor) -> torch.Tensor:
        """``D^T diag(rinv) D v`` ``(B, m)`` (float64)."""
        return self.rmv(self.mv(v).mul_(rinv))

    def gd_sums(
        self, G: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """With ``GD = G * D`` for a dense ``G`` ``(B, n, m)`` (only the runs are read; ``D``
        formed entry by entry): ``(GD 1, GD^T 1, GD y)`` (float64)."""
        Gn = G.detach()
        if Gn.dtype not in (torch.float32, _F64):
            Gn = Gn.float()
        out = self._k.runs_gd(
            *self._runs, self._a, self._y, self._alpha, self._beta, self.kind, Gn.numpy()
        )
        return tuple(torch.from_numpy(t) for t in out)  # type: ignore[return-value]


def runs_curvature(
    a: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, kind: int
) -> RunsCurvature | None:
    """:class:`RunsCurvature`, or ``None`` where its kernels do not apply (``kind = 0``, not CPU
    float64 potentials, per-row anchors) or failed to compile (the caller then uses dense or
    banded ``D``)."""
    if kind == 0 or not numba_ok(alpha, beta) or a.dim() != 2 or y.dim() != 1:
        return None
    if a.device.type != "cpu" or y.device.type != "cpu":
        return None

    def kernel() -> RunsCurvature:
        op = RunsCurvature(a, y, alpha, beta, kind)
        op.normal(op.c, op.r)  # compile the mat-vecs inside the guard
        return op

    return _kernel_guard.guarded("OT runs", kernel, lambda: None, "torch")  # type: ignore[return-value]
