r"""Fused soft ``eq`` / ``not_equal`` / ``isclose``: one CPU pass forward, one backward for
both operands' gradients.

:math:`v = \min(1, 2\sigma_s(\tau - |x - y|_s))`, :math:`\tau = tol + rtol|y|` (see
:func:`.composite.close`, the fallback, double backward and reference). The CPU kernel
(:func:`._numba_math._close`) computes the two sigmoids with one division each (``smooth``
scales by :math:`1/s`) and writes :math:`\partial_x v` and :math:`\partial_y v` in the same pass
(no separate negation of the gradient). Soft eq / not_equal (``rtol = 0``, so
:math:`\partial_y v = -\partial_x v`) writes :math:`\partial_x v` in the forward when a gradient
will be needed; its backward is then one pass that scales it in place and writes its negative.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._sigmoidal_math import SoftnessLike as Softness
from . import _kernel_guard, composite
from .composite import EQ, NE
from .fused import (
    _HALF,
    _broadcast,
    _composite_grads,
    _flat,
    _grad,
    _mt,
    _params,
    _prep,
    _run_close,
    _tag,
    use_kernel,
)

__all__ = ["close"]


def _eq_smooth_scale(s: float, mode: str, rtol: float, tol: float, nd: type) -> Any:
    """``e^{-tol/s}`` when the one-exponential ``smooth`` eq kernel applies (``rtol = 0`` and
    the scale far from the float range: ``|tol/s| <= 60`` in float32, 600 in float64), else
    None (the general kernel)."""
    limit = 60.0 if nd(0).itemsize == 4 else 600.0
    if mode != "smooth" or rtol != 0.0 or not abs(tol / s) <= limit:
        return None
    return nd(math.exp(-tol / s))


def _eq_fwd(
    x: Tensor, y: Tensor, out: Tensor, s: float, mode: str, tol: float, op: int, want_grad: bool
) -> Tensor | None:
    r"""Soft eq / not_equal (``rtol = 0``) of ``x`` and ``y`` into ``out``; with ``want_grad``
    also :math:`\partial v/\partial x` (:math:`\partial v/\partial y` is its negative),
    returned for the backward (else None, also if that kernel fails to compile: then the
    backward recomputes)."""
    ps, pw, nd = _params(s, x.dtype)
    tol_c = _eq_smooth_scale(s, mode, 0.0, tol, nd)
    ne = _tag(int(op == NE))

    def plain() -> None:
        if tol_c is not None:
            _run_close("eqs_fwd", x, _flat(x), _flat(y), _flat(out), tol_c, nd(1.0 / s), ne)
        else:
            _run_close("close_fwd", x, _flat(x), _flat(y), _flat(out), nd(0.0), nd(tol), ps,
                       nd(1.0 / s), pw, _mt(mode), ne)

    def with_grad() -> Tensor:
        der = torch.empty_like(x)
        if tol_c is not None:
            _run_close("eqs_fwd_grad", x, _flat(x), _flat(y), _flat(out), _flat(der), tol_c,
                       nd(1.0 / s), ne)
        else:
            _run_close("close_fwd_grad", x, _flat(x), _flat(y), _flat(out), _flat(der),
                       nd(tol), ps, nd(1.0 / s), pw, _mt(mode), ne)
        return der

    if not want_grad:
        return plain()
    return _kernel_guard.guarded("soft eq", with_grad, plain, "the recomputing backward")


class _Close(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, y: Tensor, s: float, mode: str, rtol: float, tol: float, op: int,
        want_grad: bool,
    ) -> Tensor:
        out = torch.empty_like(x)
        ctx.der = None
        if rtol == 0.0:
            ctx.der = _eq_fwd(x, y, out, s, mode, tol, op, want_grad)
        else:
            ps, pw, nd = _params(s, x.dtype)
            _run_close("close_fwd", x, _flat(x), _flat(y), _flat(out), nd(rtol), nd(tol), ps,
                       nd(1.0 / s), pw, _mt(mode), _tag(int(op == NE)))
        ctx.save_for_backward(x, y)
        ctx.args = (s, mode, rtol, tol, op)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, y = ctx.saved_tensors
        s, mode, rtol, tol, op = ctx.args
        none6 = (None,) * 6
        if torch.is_grad_enabled():
            gx, gy = _composite_grads(
                lambda a, b: composite.close(a, b, s, mode, rtol, tol, op), (x, y), g)
            return (gx, gy, *none6)
        ga, gt = _grad(g)
        want_y = ctx.needs_input_grad[1]
        # eq: the forward's derivative, scaled in place by the first backward; a later backward
        # (retain_graph) recomputes it with the same kernel (bitwise the same gradients)
        der, ctx.der = ctx.der, None
        if der is None and rtol == 0.0 and not _kernel_guard.broken("soft eq"):
            der = _eq_fwd(x, y, torch.empty_like(x), s, mode, tol, op, True)
        if der is not None:
            gy_full = torch.empty_like(x) if want_y and y.shape == x.shape else x.new_empty(0)
            _run_close("scale_neg", der, _flat(der), ga, _flat(gy_full), gt)
            gy = None
            if want_y:
                gy = gy_full if y.shape == x.shape else (-der.sum()).reshape(y.shape)
            return (der if ctx.needs_input_grad[0] else None, gy, *none6)
        gx = torch.empty_like(x)
        gy_full = torch.empty_like(x) if want_y else x.new_empty(0)
        ps, pw, nd = _params(s, x.dtype)
        tol_c = _eq_smooth_scale(s, mode, rtol, tol, nd)
        if tol_c is not None:
            _run_close("eqs_bwd", x, _flat(x), _flat(y), ga, _flat(gx), _flat(gy_full), tol_c,
                       nd(1.0 / s), _tag(int(op == NE)), gt)
        else:
            _run_close("close_bwd", x, _flat(x), _flat(y), ga, _flat(gx), _flat(gy_full),
                       nd(rtol), nd(tol), ps, nd(1.0 / s), pw, _mt(mode), _tag(int(op == NE)), gt)
        gy = None
        if want_y:
            gy = gy_full if y.shape == x.shape else gy_full.sum().reshape(y.shape)
        return (gx if ctx.needs_input_grad[0] else None, gy, *none6)


def close(
    x: Tensor, y: Tensor, softness: Softness, mode: str, rtol: float = 0.0, tol: float = 0.0,
    op: int = EQ,
) -> Tensor:
    """Fused soft isclose (``op = EQ``; ``rtol = 0``: soft eq) or its complement (``NE``).

    ``x`` and ``y`` broadcast (a one-element ``y`` is read as a scalar); arguments are not
    validated (the public functions do that once).

    Args:
        x, y: floating operands.
        softness: s > 0.
        mode: a sigmoidal mode.
        rtol: relative tolerance >= 0.
        tol: absolute tolerance (``atol + epsilon``).
        op: EQ or NE.
    """
    shape = _broadcast(x, y)
    if shape is None or math.prod(shape) == 0 or not use_kernel(softness, x, y) or (
        x.dtype != y.dtype
    ):
        half = x.dtype in _HALF
        xc, yc = (x.float(), y.float()) if half else (x, y)
        return composite.close(xc, yc, softness, mode, rtol, tol, op).to(x.dtype)
    dtype = x.dtype
    xe = _prep(x if x.shape == shape else x.expand(shape))
    yc = _prep(y)
    if yc.numel() != 1 and yc.shape != shape:
        yc = _prep(yc.expand(shape))
    elif yc.numel() == 1:
        yc = yc.reshape(1)
    want_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    out = _Close.apply(xe, yc, float(softness), mode, float(rtol), float(tol), op, want_grad)
    return out.to(dtype)
