r"""The entropic OT plan in log space (``method="ot"``, ``mode="smooth"``, ``return_log_probs``).

The entropic plan is :math:`Q_{ij} = \exp(s_{ij})` with dual slacks
:math:`s_{ij} = \alpha_i + \beta_j - \hat C_{ij}`, so its log is available without forming ``Q``:
after rescaling the columns (``normalise="col"``) to their targets ``b``,

.. math:: \log Q_{ij} = s_{ij} - \operatorname{logsumexp}_k s_{kj} + \log b_j

(rows: :math:`s_{ij} - \operatorname{logsumexp}_k s_{ik}`), finite wherever the slacks are, even
when ``exp(s)`` underflows.

Backward: the implicit differentiation of :class:`._autograd.OTPlan` needs the upstream
gradient only through ``G * D`` with ``D = phi'(s) = Q`` (entropic). For ``log Q`` the upstream
gradient w.r.t. ``Q`` is ``G_log / Q``, so ``G * D = G_log`` exactly: the same formulas run with
``GD = G_log`` and never divide by a (possibly underflowed) plan entry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ._autograd import implicit_vjp, work_dtype
from ._dual import outer
from ._solver import SolverOptions, solve


def solve_log_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    opts: SolverOptions,
    beta0: torch.Tensor | None,
    normalise: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the entropic solver on plain (detached) tensors: ``(log Q, alpha, beta)``, all in the
    work dtype of the potentials."""
    cmax = float(a.abs().amax()) * float(y.abs().amax())
    dtype = work_dtype(a.dtype, cmax, opts.tol, 0)
    floor = 16 * torch.finfo(torch.float64).eps * cmax  # rounding level of the slacks
    if floor > opts.tol:
        opts = SolverOptions(tol=floor, max_iter=opts.max_iter, what=opts.what)
    aw, yw, bw = a.to(dtype), y.to(dtype), b.to(dtype)
    start = None if beta0 is None else beta0.to(dtype)
    sol = solve(aw, yw, bw, 0, opts, start, normalise)
    wd = sol.alpha.dtype
    s = outer(aw.to(wd).neg(), yw.to(wd)).add_(sol.alpha.unsqueeze(-1))
    s.add_(sol.beta.unsqueeze(-2))
    if normalise == "col":
        logq = s - torch.logsumexp(s, -2, keepdim=True) + bw.to(wd).log()
    else:
        logq = s - torch.logsumexp(s, -1, keepdim=True)
    # beta may be the warm start itself (an input): return a fresh tensor
    return logq, sol.alpha, sol.beta.clone()


class OTLogPlan(torch.autograd.Function):
    """``OTLogPlan.apply(a, y, b, opts, beta0, normalise)``: the entropic log-plan ``(B, n, m)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        opts: SolverOptions,
        beta0: torch.Tensor | None,
        normalise: str,
    ) -> torch.Tensor:
        logq, _, _ = solve_log_plan(a.detach(), y, b, opts, beta0, normalise)
        ctx.save_for_backward(logq.exp().to(a.dtype), y)  # seen by saved-tensor hooks
        ctx.in_dtype = a.dtype
        return logq.to(a.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, G: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        Q, y = ctx.saved_tensors
        dtype = torch.float64 if G.dtype == torch.float64 else torch.float32
        # (G_log / Q) * D with D = Q
        grad = implicit_vjp(Q.to(dtype), G.to(dtype), y.to(dtype))
        return grad.to(ctx.in_dtype), None, None, None, None, None
