r"""``torch.library`` custom ops behind ``method="ot"`` while tracing (``torch.compile``).

The OT solvers iterate with data-dependent stopping rules (``float(err) <= tol`` once per
iteration; the problem scale ``max |Chat|`` is read once to pick the working precision), and the
Schur solve of the implicit backward pass (:mod:`._linalg`) has data-dependent CG / Cholesky
fallbacks. Dynamo would break the graph at every such read. While tracing, both passes run as
custom ops, opaque to Dynamo / AOTAutograd / Inductor and called eagerly on the real tensors at
run time:

* ``softtorch::ot_plan(a, y, b, kind, tol, max_iter, what, beta0, normalise, log)
  -> (P, alpha, beta)``: the forward solve for the rank-one cost ``Chat = a y^T``. ``P`` is the
  rescaled plan ``Q`` (``log=False``, :func:`._autograd.solve_plan`) or the entropic
  log-plan ``log Q`` (``log=True``, :func:`._logplan.solve_log_plan`), ``(B, n, m)`` in
  ``a``'s dtype; the dual potentials ``alpha`` ``(B, n)`` and ``beta`` ``(B, m)`` are float64
  and not differentiable.
* ``softtorch::ot_plan_vjp(G, a, y, alpha, beta, P, kind, log) -> dL/da``: its derivative
  (registered with ``register_autograd``), the implicit backward pass of
  :class:`._autograd.OTPlan` / :class:`._logplan.OTLogPlan`
  (:func:`._autograd.plan_vjp`): with ``D = phi'(s)`` (``D = Q`` for the entropic plan) and
  ``GD = G * D`` (``GD = G`` for ``log Q``), ``w = H^{-1} (GD 1, GD^T 1)`` by one Schur solve and
  ``dL/da = w_a (D y) + D (w_b y) - (GD) y``.

The fake (meta) implementations give the output shapes and dtypes, so the rest (scores, cost,
warm start, outputs) is traced and compiled as usual, gradients w.r.t. a tensor ``softness``
included (they flow through ``a = -2 (z - mean z) / softness``). ``OTConvergenceWarning`` is
emitted by the forward op at run time. Eager calls use :class:`._autograd.OTPlan` directly
(no dispatcher overhead) and ``torch.func`` transforms keep :func:`._autograd.transform_plan`
(custom ops have no functorch rules).
"""

from __future__ import annotations

from typing import Any

import torch

from ._autograd import plan_vjp, solve_plan
from ._logplan import solve_log_plan
from ._solver import SolverOptions

__all__ = ["traced_plan"]


@torch.library.custom_op("softtorch::ot_plan", mutates_args=())
def _plan_op(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    tol: float,
    max_iter: int,
    what: str,
    beta0: torch.Tensor | None,
    normalise: str,
    log: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    opts = SolverOptions(tol=tol, max_iter=max_iter, what=what)
    start = None if beta0 is None else beta0.clone()  # the solver may update its start in place
    if log:
        P, alpha, beta = solve_log_plan(a, y, b, opts, start, normalise)
        P = P.to(a.dtype)
    else:
        P, alpha, beta = solve_plan(a, y, b, kind, opts, start, normalise)
    f64 = torch.float64
    return P.contiguous(), alpha.to(f64).contiguous(), beta.to(f64).contiguous()


@_plan_op.register_fake
def _plan_fake(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    tol: float,
    max_iter: int,
    what: str,
    beta0: torch.Tensor | None,
    normalise: str,
    log: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    (B, n), m = a.shape, y.shape[-1]
    f64 = torch.float64
    return a.new_empty(B, n, m), a.new_empty(B, n, dtype=f64), a.new_empty(B, m, dtype=f64)


@torch.library.custom_op("softtorch::ot_plan_vjp", mutates_args=())
def _vjp_op(
    G: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    P: torch.Tensor | None,
    kind: int,
    log: bool,
) -> torch.Tensor:
    Q = P.exp() if log and P is not None else P
    return plan_vjp(G, a, y, kind, alpha, beta, Q, log=log).contiguous()


@_vjp_op.register_fake
def _vjp_fake(
    G: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    P: torch.Tensor | None,
    kind: int,
    log: bool,
) -> torch.Tensor:
    return torch.empty_like(a, memory_format=torch.contiguous_format)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
    a, y, _, kind, _, _, _, _, _, log = inputs
    P, alpha, beta = output
    ctx.mark_non_differentiable(alpha, beta)
    # the entropic curvature is the plan itself; the p-norm slacks are recomputed
    ctx.save_for_backward(a, y, alpha, beta, P if kind == 0 or log else None)
    ctx.kind, ctx.log = kind, log


def _backward(ctx: Any, G: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
    none = (None,) * 9
    if not ctx.needs_input_grad[0]:
        return (None, *none)
    a, y, alpha, beta, P = ctx.saved_tensors
    return (_vjp_op(G, a, y, alpha, beta, P, ctx.kind, ctx.log), *none)


_plan_op.register_autograd(_backward, setup_context=_setup_context)


def traced_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    opts: SolverOptions,
    beta0: torch.Tensor | None,
    normalise: str,
    log: bool = False,
) -> torch.Tensor:
    """The plan (or entropic log-plan) of :class:`._autograd.OTPlan` through the custom ops:
    the same values and first derivatives, traceable by ``torch.compile`` without graph breaks."""
    args = (kind, opts.tol, opts.max_iter, opts.what, beta0, normalise, log)
    return _plan_op(a, y, b, *args)[0]
