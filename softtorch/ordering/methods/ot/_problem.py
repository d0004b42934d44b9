"""The OT sorting problem of one call: option parsing, scaled scores and anchors, and the
dispatch to the solvers (the dense / low-rank plan, the fused plan writer, the contraction of
sorted values and ranks, the traced custom ops).

:func:`ot_plan` returns the soft permutation (or its log) for scores ``z`` and anchors; the
:class:`.method.OT` ordering method and its masked form call these entry points. The formulation
is stated in :mod:`.method`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch._subclasses.fake_tensor import is_fake  # torch internal, checked on 2.13.0

from ...._checks import as_float, check_mode, check_softness
from ....simplex import is_concrete
from ..._base import Softness
from . import _lowrank as lowrank
from ._autograd import OTPlan, Potentials, transform_plan
from ._contract import OTContract
from ._dual import numba_ok
from ._fusedplan import fused_plan
from ._layout import Layout, hard_beta, scaled_scores
from ._logplan import OTLogPlan
from ._ops import traced_plan
from ._solver import SolverOptions

__all__ = [
    "KIND",
    "OPTION_KEYS",
    "anchor_grid",
    "is_traced",
    "ot_contract",
    "ot_plan",
    "parse_options",
    "problem_inputs",
    "soft_plan",
]

#: Valid keys of ``ot_kwargs``.
OPTION_KEYS: tuple[str, ...] = ("sinkhorn_tol", "sinkhorn_max_iter", "lbfgs_tol", "lbfgs_max_iter")
KIND = {"smooth": 0, "c0": 1, "c1": 2, "c2": 3}
_DEFAULT_MAX_ITER = {"sinkhorn": 1000, "lbfgs": 200}


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-4


def parse_options(options: dict[str, Any] | None, mode: str, dtype: torch.dtype) -> SolverOptions:
    """Validate ``ot_kwargs`` and return the solver settings for ``mode``."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"ot_kwargs must be a dict or None, got {type(options).__name__}")
    unknown = sorted(set(options) - set(OPTION_KEYS), key=str)
    if unknown:
        raise ValueError(
            f"unknown ot_kwargs key(s) {', '.join(repr(k) for k in unknown)}; valid keys are: "
            + ", ".join(repr(k) for k in OPTION_KEYS)
        )
    for key, value in options.items():
        if key.endswith("_tol"):
            ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
            if not (ok and math.isfinite(value) and value > 0):
                raise ValueError(f"ot_kwargs[{key!r}] must be a finite number > 0, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"ot_kwargs[{key!r}] must be an int >= 1, got {value!r}")
    what = "sinkhorn" if mode == "smooth" else "lbfgs"
    tol = float(options.get(f"{what}_tol", _default_tol(dtype)))
    max_iter = int(options.get(f"{what}_max_iter", _DEFAULT_MAX_ITER[what]))
    return SolverOptions(tol=tol, max_iter=max_iter, what=what)


def _hard_beta(zc: torch.Tensor, yc: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Anchor potentials of the unregularised problem with cost ``-2 z y`` (``(B, m)``).

    Sorted inputs fill the anchors in ascending order of ``y`` by capacity. An input prefers
    anchor ``j`` over ``j - 1`` iff ``-2 z dy - beta_j <= -beta_{j-1}`` (``dy = y_j - y_{j-1}``),
    so ``beta_j - beta_{j-1} = -(z_lo + z_hi) dy``, with ``z_lo, z_hi`` the sorted inputs on either
    side of the capacity boundary, puts that boundary half-way between them. With ``z = -a / 2``
    these are the potentials of ``Chat = a y^T`` in the ``softness -> 0`` limit: the warm start.
    """
    order = torch.argsort(yc)
    ys, caps = yc[order], b[order]
    zs = torch.sort(zc, dim=-1).values
    n = zc.shape[-1]
    bounds = torch.cumsum(caps, 0)[:-1].round().long().clamp(1, n - 1)
    mid = zs[..., bounds - 1] + zs[..., bounds]
    steps = -mid * (ys[1:] - ys[:-1])
    first = zs.new_zeros(*zs.shape[:-1], 1)
    beta_sorted = torch.cat([first, torch.cumsum(steps, -1)], -1)
    beta = torch.empty_like(beta_sorted)
    beta[..., order] = beta_sorted
    return beta


@dataclass
class _Setup:
    """The solver inputs of :func:`ot_plan` for a batch of rows (``(B, n)``, ``B >= 1``)."""

    a: torch.Tensor  # (B, n) scaled centred scores -2 (z - mean z) / softness (work dtype)
    yc: torch.Tensor  # (m,) centred anchors, or (B, m) per row (masked ops, ._layout)
    bw: torch.Tensor  # (m,) capacities
    kind: int
    opts: SolverOptions
    beta0: torch.Tensor  # (B, m) warm start (float64)
    bad: torch.Tensor  # (B, 1) rows with NaN / inf


def problem_inputs(
    z: torch.Tensor, softness: Softness, mode: str, options: dict[str, Any] | None, log: bool
) -> tuple[torch.Tensor, Softness, SolverOptions, int] | None:
    """Validate the arguments: ``(rows, softness, opts, kind)`` with the rows ``(B, n)`` of
    ``z`` in the work dtype and a tensor ``softness`` on their device, or ``None`` for the
    trivial sizes (no rows, ``n = 0`` or ``n = 1``)."""
    mode = check_mode(mode, tuple(KIND))
    softness = check_softness(softness)
    z = as_float(z, "z")
    work = z if z.dtype in (torch.float32, torch.float64) else z.float()
    opts = parse_options(options, mode, work.dtype)
    n = z.shape[-1]
    flat = work.reshape(-1, n) if n else work
    if flat.shape[0] == 0 or n <= 1:
        return None
    if isinstance(softness, torch.Tensor):
        if is_concrete(softness):  # check_softness skips tensors that require grad
            value = float(softness.detach())
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"softness must be a finite number > 0, got {value}")
        softness = softness.to(device=z.device, dtype=work.dtype)
    if log and mode != "smooth":
        raise ValueError("ot_plan(log=True) needs mode='smooth'")
    return flat, softness, opts, KIND[mode]


def _setup(
    z: torch.Tensor,
    anchors: torch.Tensor | Layout,
    b: torch.Tensor,
    softness: Softness,
    mode: str,
    options: dict[str, Any] | None,
    log: bool,
) -> _Setup | None:
    """Validate the arguments and build the solver inputs; ``None`` for the trivial sizes
    (no rows, ``n = 0`` or ``n = 1``) that :func:`ot_plan` answers directly. A
    :class:`._layout.Layout` as ``anchors`` builds the per-row problems of a masked op."""
    inp = problem_inputs(z, softness, mode, options, log)
    if inp is None:
        return None
    flat, softness, opts, kind = inp
    n = z.shape[-1]
    bw = b.to(device=z.device, dtype=flat.dtype)
    if isinstance(anchors, Layout):  # masked: per-row anchors, padded part decoupled
        mask = anchors.mask.to(z.device).expand(z.shape).reshape(-1, n)
        a, bad = scaled_scores(flat, mask, softness)
        a, yc = Layout(mask, anchors.k).build(a)
        with torch.no_grad():
            beta0 = hard_beta(-0.5 * a.detach().double(), yc.double(), bw.double())
        return _Setup(a, yc, bw, kind, opts, beta0, bad)
    bad = ~torch.isfinite(flat).all(-1, keepdim=True)
    clean = torch.where(bad, torch.zeros_like(flat), flat)
    zc = clean - clean.mean(-1, keepdim=True)
    y = anchors.to(device=z.device, dtype=flat.dtype)
    yc = y - y.mean()
    a = zc * (-2.0 / softness)  # Chat_ij = a_i * yc_j
    with torch.no_grad():  # warm start from the same (rounded) costs, in float64
        beta0 = _hard_beta(-0.5 * a.detach().double(), yc.double(), bw.double())
    return _Setup(a, yc, bw, kind, opts, beta0, bad)


def ot_plan(
    z: torch.Tensor,
    anchors: torch.Tensor | Layout,
    b: torch.Tensor,
    softness: Softness,
    mode: str,
    options: dict[str, Any] | None,
    normalise: str = "col",
    log: bool = False,
) -> torch.Tensor:
    """Regularised plan ``Q`` (permutation units, ``(..., n, m)``) from ``z`` to the anchors.

    ``normalise`` picks which marginal is made exact by rescaling: ``"col"`` (anchors; used for
    soft permutations) or ``"row"`` (inputs; used for ranks). ``log=True`` (``smooth`` only)
    returns ``log Q`` computed from the dual slacks (:mod:`._logplan`). ``anchors`` ``(m,)``, or
    a :class:`._layout.Layout` for the per-row problems of a masked op (``b`` its capacities).
    """
    return soft_plan(z, anchors, b, softness, mode, options, normalise, log)[0]


def soft_plan(
    z: torch.Tensor,
    anchors: torch.Tensor | Layout,
    b: torch.Tensor,
    softness: Softness,
    mode: str,
    options: dict[str, Any] | None,
    normalise: str = "col",
    log: bool = False,
) -> tuple[torch.Tensor, tuple[_Setup, torch.Tensor, torch.Tensor] | None]:
    """:func:`ot_plan` and, on the eager non-log path, the setup and the solver's potentials."""
    z = as_float(z, "z")
    st = _setup(z, anchors, b, softness, mode, options, log)
    n, m = z.shape[-1], b.numel()
    batch = z.shape[:-1]
    if st is None:
        if n == 1 and not z.shape.numel() == 0:
            # a single input fills the single anchor; keep the graph (zero gradient, NaN kept)
            return (z * 0 + (0 if log else 1)).unsqueeze(-1).expand(*batch, 1, m), None
        return z.new_zeros(*batch, n, m), None
    a, yc, bw, kind, opts, beta0, bad = (st.a, st.yc, st.bw, st.kind, st.opts, st.beta0, st.bad)
    extra = None
    if is_traced(a):  # torch.compile / fake tensors: the solver as opaque custom ops (._ops)
        Q = traced_plan(a, yc, bw, kind, opts, beta0, normalise, log=log)
    elif not is_concrete(a):  # torch.func transforms: differentiable Newton form (._autograd)
        Q = transform_plan(a, yc, bw, kind, opts, beta0, normalise, log=log)
    else:
        if log:
            Q = OTLogPlan.apply(a, yc, bw, opts, beta0, normalise)
        else:
            fused = fused_plan(a, yc, bw, kind, opts, beta0, normalise)  # ._fusedplan
            if fused is None:
                fused = OTPlan.apply(a, yc, bw, kind, opts, beta0, normalise)
            Q, alpha, beta = fused
            extra = (st, alpha, beta)
        if not bool(bad.any()):
            return Q.reshape(*batch, n, m).to(z.dtype), extra
    Q = torch.where(bad.unsqueeze(-1), torch.full_like(Q, math.nan), Q)
    return Q.reshape(*batch, n, m).to(z.dtype), extra


def ot_contract(
    z: torch.Tensor,
    x: torch.Tensor,
    anchors: torch.Tensor,
    b: torch.Tensor,
    softness: Softness,
    mode: str,
    options: dict[str, Any] | None,
    normalise: str,
    potentials: tuple[_Setup, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor | None:
    """``Qn^T x`` (``normalise="col"``, ``x`` like ``z``: soft sorted values) or ``Qn x``
    (``"row"``, ``x`` ``(m,)``: soft ranks) of the plan without the ``n x m`` plan
    (:mod:`._contract`), or ``None`` where that path does not apply (traced or
    ``torch.func``-wrapped inputs, trivial or small sizes, entropic problems too sharp for
    :mod:`._lowrank`, p-norm problems without the numba kernels): the caller then contracts the
    plan of :func:`ot_plan`. ``potentials`` reuses a solve of :func:`_plan` for the same
    problem."""
    if is_traced(z) or not is_concrete(z) or not is_concrete(x):
        return None
    if potentials is None:
        st = _setup(z, anchors, b, softness, mode, options, False)
        if st is None or is_traced(st.a) or not is_concrete(st.a) or not _contractible(st):
            return None
        alpha, beta = Potentials.apply(
            st.a.detach(), st.yc, st.bw, st.kind, st.opts, st.beta0, normalise
        )
    else:
        st, alpha, beta = potentials
        if not _contractible(st):
            return None
    n = z.shape[-1]
    batch = z.shape[:-1]
    good = ~st.bad
    if normalise == "col":
        xs = x.reshape(-1, n)
        xs = torch.where(good, xs, torch.zeros_like(xs))
    else:
        xs = x.to(device=z.device)
    out = OTContract.apply(st.a, xs, st.yc, st.bw, alpha, beta, normalise, st.kind)
    if bool(st.bad.any()):
        out = torch.where(good, out, torch.full_like(out, math.nan))
    return out.reshape(*batch, out.shape[-1])


def _contractible(st: _Setup) -> bool:
    """Whether :func:`ot_contract` handles the problem (see there)."""
    a = st.a.detach()
    if st.kind == 0:
        return lowrank.eligible(a, st.yc)
    return a.shape[-1] * st.yc.shape[-1] >= lowrank.MIN_SIZE and numba_ok(a.double())


def is_traced(t: torch.Tensor) -> bool:
    """Whether ``t`` is being traced (Dynamo, or a fake tensor) outside ``torch.func`` transforms
    (custom ops have no functorch rules; Dynamo folds the transform check to a constant)."""
    # torch internal, checked on torch 2.13.0
    if torch._C._are_functorch_transforms_active():
        return False
    return torch.compiler.is_compiling() or is_fake(t)


def anchor_grid(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=like.device)
