r"""The entropic plan as an ``n x m`` output written once, with a streaming implicit backward.

For ``mode="smooth"`` problems that the blockwise Sinkhorn of :mod:`._lowrank` solves (CPU,
shared anchors, numba installed), :func:`fused_plan` replaces :class:`._autograd.OTPlan`:

* forward: the potentials ``alpha``, ``beta`` from :func:`._lowrank.sinkhorn` (exact columns for
  ``normalise="col"``, exact rows for ``"row"``, so no rescaling pass), then each entry
  ``Q_ij = exp(alpha_i + beta_j - a_i y_j)`` written once into the output in ``a``'s dtype
  (:func:`._plan_numba.write_plan`; the slack in float32 where :class:`._autograd.OTPlan` forms
  it in float32, else in float64). No other ``n x m`` buffer.
* backward: the implicit differentiation of :class:`._autograd.OTPlan` with ``D = Q``: the three
  sums of ``GD = G * Q`` it needs, ``h_a = GD 1``, ``h_b = GD^T 1`` and ``(GD) y``, in one pass
  over the incoming gradient ``G`` with ``Q`` recomputed entry by entry
  (:func:`._plan_numba.plan_sums`, the same arithmetic as the forward; rows of ``G`` or of
  ``G^T``, whichever is contiguous; a gradient expanded from fewer values is read compactly),
  then, with the mat-vecs of ``D`` from :class:`._lowrank.PlanOperator` (``O(n + m)`` each):

  .. math::
      r = D 1, \quad S w_b = h_b - D^T (h_a / r) \ \text{(CG, :mod:`._linalg`)}, \quad
      w_a = (h_a - D w_b) / r, \quad
      \frac{\partial L}{\partial a} = w_a (D y) + D (w_b y) - (GD) y,

  all float64 (CG relative residual ``1e-10`` for a float64 ``G``, ``1e-5`` otherwise, as
  :func:`._autograd.implicit_vjp`). ``create_graph=True`` backward passes and forward mode use
  the dense Newton form of :mod:`._autograd`, as :class:`._autograd.OTPlan` does.

The kernels run on torch's intra-op threads (row blocks, ``prange``) and fall back to torch row
blocks of the same formulas (``_kernel_guard`` families ``"OT plan write"`` / ``"OT plan
sums"``). Where the fused path does not apply (other devices, tracing, ``torch.func``
transforms, p-norm modes, sharp problems or a Sinkhorn that stalls) :func:`fused_plan` returns
``None`` and the caller keeps :class:`._autograd.OTPlan`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from ....kernels import _kernel_guard
from . import _dual
from . import _lowrank as lowrank
from ._autograd import floored, newton_plan, plan_jvp, work_dtype
from ._linalg import cg
from ._solver import SolverOptions

#: Switch for tests (``False``: the caller keeps :class:`._autograd.OTPlan`).
USE_FUSED = True
#: Plans with fewer entries than this run the serial kernels.
PARALLEL_MIN = 1 << 16
#: Entries per block of the torch fallbacks.
_BLOCK = 1 << 21
_F64 = torch.float64


def _kernels() -> Any:
    return importlib.import_module("softtorch.ordering.methods.ot._plan_numba")


def _blocks(rows: int, batch: int, threads: int) -> int:
    """Row blocks per batch row: about four per thread over the batch."""
    return max(1, min(rows, -(-4 * threads // batch)))


def _threads(entries: int) -> int:
    """numba threads for a kernel over ``entries`` plan entries (torch's intra-op count)."""
    threads = torch.get_num_threads()
    if threads <= 1 or entries < PARALLEL_MIN:
        return 1
    nb = importlib.import_module("numba")
    return min(threads, nb.config.NUMBA_NUM_THREADS)


def _parallel(t: int, fn: Callable[[], Any]) -> Any:
    nb = importlib.import_module("numba")
    guard = importlib.import_module("softtorch.kernels._numba_kernels").parallel_guard
    with guard():
        nb.set_num_threads(t)
        return fn()


def write(
    p: torch.Tensor, u: torch.Tensor, q: torch.Tensor, v: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``exp(p_r + q_c - u_r v_c)`` ``(B, R, C)`` in ``dtype`` from contiguous ``p``, ``u``
    ``(B, R)`` and ``q``, ``v`` ``(B, C)`` (the slack in their dtype, the exponential in
    ``dtype``)."""
    B, R = p.shape
    out = torch.empty(B, R, q.shape[-1], dtype=dtype)

    def kernel() -> torch.Tensor:
        k = _kernels()
        args = (p.numpy(), u.numpy(), q.numpy(), v.numpy(), out.numpy())
        t = _threads(out.numel())
        if t > 1:
            _parallel(t, lambda: k.write_plan_parallel(*args, _blocks(R, B, t)))
        else:
            k.write_plan(*args)
        return out

    def fallback() -> torch.Tensor:
        step = max(1, _BLOCK // max(1, q.shape[-1]))
        for b in range(B):
            for i in range(0, R, step):
                s = (p[b, i : i + step, None] + q[b]) - u[b, i : i + step, None] * v[b]
                out[b, i : i + step] = s.to(dtype).exp_()
        return out

    return _kernel_guard.guarded("OT plan write", kernel, fallback, "torch row blocks")


def _compact(G: torch.Tensor) -> torch.Tensor:
    """``G`` ``(B, R, C)`` without its broadcast (stride-0) dimensions (kept as size 1)."""
    idx = tuple(
        slice(0, 1) if G.stride(d) == 0 and G.shape[d] > 1 else slice(None) for d in range(3)
    )
    return G[idx]


def sums(
    G: torch.Tensor,
    p: torch.Tensor,
    u: torch.Tensor,
    q: torch.Tensor,
    v: torch.Tensor,
    wrow: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``GD = G * exp(p_r + q_c - u_r v_c)`` (``G`` ``(Bg, Rg, Cg)`` broadcastable to
    ``(B, R, C)``, C-contiguous, the plan's dtype; the slack as in :func:`write`):
    ``(GD 1, (GD) v, GD^T 1)`` (``wrow``) or ``(GD 1, GD^T u, GD^T 1)``, float64."""
    B, R = p.shape
    C = q.shape[-1]
    rs = torch.zeros(B, R, dtype=_F64)
    rw = torch.zeros(B, R if wrow else 0, dtype=_F64)

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = _kernels()
        args = (p.numpy(), u.numpy(), q.numpy(), v.numpy(), G.numpy())
        t = _threads(B * R * C)
        nblk = _blocks(R, B, t) if t > 1 else 1
        cs = torch.zeros(B * nblk, C, dtype=_F64)
        cw = torch.zeros(B * nblk, 0 if wrow else C, dtype=_F64)
        outs = (rs.numpy(), rw.numpy(), cs.numpy(), cw.numpy())
        if t > 1:
            _parallel(t, lambda: k.plan_sums_parallel(*args, nblk, wrow, *outs))
        else:
            k.plan_sums(*args, wrow, *outs)
        cs = cs.view(B, nblk, C).sum(1)
        cw = cw.view(B, nblk, -1).sum(1)
        return rs, (rw if wrow else cw), cs

    def fallback() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step = max(1, _BLOCK // max(1, C))
        cs = torch.zeros(B, C, dtype=_F64)
        cw = torch.zeros(B, C, dtype=_F64)
        for b in range(B):
            gb = G[b if G.shape[0] > 1 else 0]
            for i in range(0, R, step):
                s = (p[b, i : i + step, None] + q[b]) - u[b, i : i + step, None] * v[b]
                gi = gb[i : i + step] if gb.shape[0] > 1 else gb
                gd = (gi * s.to(G.dtype).exp_()).to(_F64)
                rs[b, i : i + step] = gd.sum(-1)
                cs[b] += gd.sum(0)
                if wrow:
                    rw[b, i : i + step] = gd @ v[b].to(_F64)
                else:
                    cw[b] += u[b, i : i + step].to(_F64) @ gd
        return rs, (rw if wrow else cw), cs

    return _kernel_guard.guarded("OT plan sums", kernel, fallback, "torch row blocks")


def _scalars(
    a: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, sd: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(alpha, a, beta, y)`` as contiguous ``(B, n)`` / ``(B, m)`` tensors of dtype ``sd``."""
    B = a.shape[0]
    return (
        alpha.to(sd).contiguous(),
        a.detach().to(sd).contiguous(),
        beta.to(sd).expand(B, -1).contiguous(),
        y.to(sd).expand(B, -1).contiguous(),
    )


def plan_vjp(
    G: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    sd: torch.dtype,
) -> torch.Tensor:
    """``dL/da`` for the upstream gradient ``G`` ``(B, n, m)`` of the entropic plan of the
    potentials written with slacks of dtype ``sd`` (module docstring), in ``a``'s dtype."""
    al, a_, be, y_ = _scalars(a, y, alpha, beta, sd)
    g = _compact(G.detach()).to(a.dtype)  # the plan's dtype: Q recomputed as the forward wrote it
    if g.is_contiguous():
        ha, gdy, hb = sums(g, al, a_, be, y_, True)
    elif g.transpose(1, 2).is_contiguous():  # laid out like Q^T: stream its rows
        hb, gdy, ha = sums(g.transpose(1, 2), be, y_, al, a_, False)
    else:
        ha, gdy, hb = sums(g.contiguous(), al, a_, be, y_, True)
    a64, y64 = a.detach().to(_F64), y.to(_F64)
    op = lowrank.PlanOperator(a64, y64, alpha.to(_F64), beta.to(_F64))
    yb = y64.expand_as(hb)
    Dv = op.mv(torch.stack([torch.ones_like(yb), yb], -1))
    r = Dv[..., 0].clamp_min(torch.finfo(_F64).tiny)
    c = op.rmv(torch.ones_like(a64))
    rhs = hb - op.rmv(ha / r)
    rtol = 1e-10 if G.dtype == _F64 else 1e-5
    wb, _ = cg(op.mv, op.rmv, c, r, rhs, torch.zeros_like(rhs[..., 0]), rtol, 1000)
    D2 = op.mv(torch.stack([wb * yb, wb], -1))
    wa = (ha - D2[..., 1]) / r
    return (wa * Dv[..., 1] + D2[..., 0] - gdy).to(a.dtype)


class FusedPlan(torch.autograd.Function):
    """``Q = FusedPlan.apply(a, y, b, alpha, beta, normalise, sd)``: the entropic plan
    ``exp(alpha + beta - a y^T)`` ``(B, n, m)`` of the (constant) potentials in ``a``'s dtype,
    its slacks formed in ``sd``; differentiable in ``a`` as the implicit function of
    :class:`._autograd.OTPlan`."""

    @staticmethod
    def forward(  # type: ignore[override]
        a: torch.Tensor,
        y: torch.Tensor,
        b: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        normalise: str,
        sd: torch.dtype,
    ) -> torch.Tensor:
        return write(*_scalars(a, y, alpha, beta, sd), a.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        a, y, b, alpha, beta, normalise, sd = inputs
        ctx.save_for_backward(a, y, b, alpha, beta)  # saved tensors, seen by saved-tensor hooks
        ctx.save_for_forward(a, y, b, alpha, beta)
        ctx.normalise, ctx.sd = normalise, sd

    @staticmethod
    def backward(ctx: Any, G: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        none = (None,) * 6
        if G is None or not ctx.needs_input_grad[0]:
            return (None, *none)
        a, y, b, alpha, beta = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable vector-Jacobian product
            with torch.enable_grad():
                Qn = newton_plan(a, y, b, 0, alpha, beta, ctx.normalise)
                (grad,) = torch.autograd.grad(Qn, a, G.to(Qn.dtype), create_graph=True)
            return (grad, *none)
        return (plan_vjp(G, a, y, alpha, beta, ctx.sd), *none)

    @staticmethod
    def jvp(ctx: Any, da: torch.Tensor | None, *_: Any) -> torch.Tensor | None:
        a, y, b, alpha, beta = ctx.saved_tensors
        if da is None:
            return None
        return plan_jvp(a, da, y, b, 0, alpha, beta, ctx.normalise)


def applies(a: torch.Tensor, y: torch.Tensor, kind: int) -> bool:
    """Whether :func:`fused_plan` may take the problem (before running the solver)."""
    return (
        USE_FUSED
        and _dual.USE_NUMBA
        and _dual.HAS_NUMBA
        and kind == 0
        and a.device.type == "cpu"
        and a.dim() == 2
        and y.dim() == 1
        and a.dtype in (torch.float32, _F64)
        and lowrank.eligible(a.detach(), y)
    )


def fused_plan(
    a: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    kind: int,
    opts: SolverOptions,
    beta0: torch.Tensor | None,
    normalise: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(Q, alpha, beta)`` as :class:`._autograd.OTPlan` returns them (``Q`` ``(B, n, m)`` in
    ``a``'s dtype, differentiable in ``a``; float64 potentials), or ``None`` where the fused path
    does not apply (module docstring)."""
    if not applies(a, y, kind):
        return None
    ad = a.detach()
    opts, cmax = floored(ad, y, opts)
    pot = lowrank.sinkhorn(ad, y, b, beta0, opts.tol, opts.max_iter, normalise)
    if pot is None:
        return None
    alpha, beta = pot
    sd = work_dtype(a.dtype, cmax, opts.tol, 0)  # float32 slacks where OTPlan forms them too
    return FusedPlan.apply(a, y, b, alpha, beta, normalise, sd), alpha, beta
