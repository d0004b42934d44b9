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

from ....kernels import _kernel_guard
from ._dual import ascending, kernel_rows, numba_ok, per_row

_F64 = torch.float64


def _np(t: torch.Tensor) -> Any:
    return t.detach().to(_F64).contiguous().numpy()


class RunsCurvature:
    """``D = phi'(s)`` ``(B, n, m)`` of the potentials ``alpha`` ``(B, n)``, ``beta`` ``(B, m)``
    for the cost ``a y^T`` (``kind`` ``1, 2, 3``; CPU float64), applied through prefix sums
    (``O(n + m)``) or, where their estimated relative rounding
    ``eps (M / s)^(k - 1)`` (``M``: size of the potentials, ``s``: mean slack on the support;
    :mod:`._runs_numba`) exceeds ``max_err``, entry by entry on the support.

    Args:
        a: scaled scores ``(B, n)``.
        y: anchors ``(m,)``, or per row ``(B, m)`` with per-row capacities ``b``.
        alpha: row potentials ``(B, n)``.
        beta: anchor potentials ``(B, m)``.
        kind: ``k`` of ``phi(s) = max(s, 0)^k``.
        max_err: the largest acceptable relative rounding of the prefix-sum mat-vecs.
        b: per-row capacities ``(B, m)`` of a compacted problem (:func:`._dual.per_row`: row
            ``b`` only has its first inputs and anchors), or ``None``.

    Attributes:
        r: row sums ``D 1`` ``(B, n)``.
        c: column sums ``D^T 1`` ``(B, m)``.
        exact: whether the mat-vecs form ``D`` entry by entry.
    """

    def __init__(
        self,
        a: torch.Tensor,
        y: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        kind: int,
        max_err: float = 1e-10,
        b: torch.Tensor | None = None,
    ):
        from . import _runs_numba  # numba imported on first use

        self._k = _runs_numba
        y2, nrow, mcol = kernel_rows(a, y, b)
        self._a, self._y, self._alpha, self._beta = _np(a), y2, _np(alpha), _np(beta)
        *runs, ssum, count = _runs_numba.curvature_runs(
            self._a, self._y, self._alpha, self._beta, ascending(y, b), nrow, mcol
        )
        self._runs = tuple(runs)
        mu = beta.detach().to(_F64).mean(-1, keepdim=True)
        u = alpha.detach().to(_F64) + mu
        w = beta.detach().to(_F64) - mu
        self._u, self._w = _np(u), _np(w)
        self.kind = kind
        big = float(u.abs().amax()) + float(w.abs().amax())
        big += float(a.detach().abs().amax()) * float(y.detach().abs().amax())
        slack = ssum / max(count, 1)
        est = torch.finfo(_F64).eps * (big / slack) ** (kind - 1) if slack > 0 else 0.0
        self.exact = kind > 1 and not est <= max_err
        self.r = self.mv(torch.ones(beta.shape, dtype=_F64))
        self.c = self.rmv(torch.ones(alpha.shape, dtype=_F64))

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``D v`` ``(B, n)`` for ``v`` ``(B, m)`` or ``(B, m, r)`` (float64)."""
        if v.dim() == 3:
            return torch.stack([self.mv(v[..., k]) for k in range(v.shape[-1])], -1)
        if self.exact:
            out = self._k.runs_mv_exact(
                *self._runs, self._a, self._y, self._alpha, self._beta, self.kind, _np(v)
            )
        else:
            out = self._k.runs_mv(
                *self._runs, self._a, self._y, self._u, self._w, self.kind, _np(v)
            )
        return torch.from_numpy(out)

    def rmv(self, x: torch.Tensor) -> torch.Tensor:
        """``D^T x`` ``(B, m)`` for ``x`` ``(B, n)`` or ``(B, n, r)`` (float64)."""
        if x.dim() == 3:
            return torch.stack([self.rmv(x[..., k]) for k in range(x.shape[-1])], -1)
        if self.exact:
            out = self._k.runs_rmv_exact(
                *self._runs, self._a, self._y, self._alpha, self._beta, self.kind, _np(x)
            )
        else:
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
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    kind: int,
    max_err: float = 1e-10,
    b: torch.Tensor | None = None,
) -> RunsCurvature | None:
    """:class:`RunsCurvature` (``max_err`` and ``b`` passed on), or ``None`` where its kernels
    do not apply (``kind = 0``, not CPU float64 potentials, per-row anchors without per-row
    capacities) or failed to compile (the caller then uses dense or banded ``D``)."""
    if kind == 0 or not numba_ok(alpha, beta) or a.dim() != 2:
        return None
    if y.dim() != 1 and not per_row(b):
        return None
    if a.device.type != "cpu" or y.device.type != "cpu":
        return None

    def kernel() -> RunsCurvature:
        op = RunsCurvature(a, y, alpha, beta, kind, max_err, b)
        op.normal(op.c, op.r)  # compile the mat-vecs inside the guard
        return op

    return _kernel_guard.guarded("OT runs", kernel, lambda: None, "torch")  # type: ignore[return-value]
