r"""Fused soft AND as a geometric mean,
:math:`\mathrm{clip}(\sqrt{(a + \epsilon)(b + \epsilon)} - \epsilon, 0, 1)`: one CPU pass forward
and one backward for both gradients, saving only the two inputs (the composite
:func:`.composite.geometric_and`, its logs and exp, is the fallback, double backward and
reference).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import composite
from .fused import _HALF, _composite_grads, _flat, _grad, _np_dtype, _prep, use_kernel
from .fused import _run_close as _run

__all__ = ["geometric_and"]


class _GeometricAnd(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        out = torch.empty_like(a)
        _run("gmean_fwd", a, _flat(a), _flat(b), _flat(out), _np_dtype(a.dtype)(eps))
        ctx.save_for_backward(a, b)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        a, b = ctx.saved_tensors
        eps = ctx.eps
        if torch.is_grad_enabled():
            ga, gb = _composite_grads(
                lambda u, v: composite.geometric_and(u, v, eps), (a, b), g)
            return ga, gb, None
        gv, gt = _grad(g)
        ga, gb = torch.empty_like(a), torch.empty_like(b)
        _run("gmean_bwd", a, _flat(a), _flat(b), gv, _flat(ga), _flat(gb),
             _np_dtype(a.dtype)(eps), gt)
        return ga, gb, None


def geometric_and(a: Tensor, b: Tensor, epsilon: float = 1e-10) -> Tensor:
    """Fused soft AND as a geometric mean (half precision computed in float32).

    Args:
        a, b: SoftBools of one floating dtype (broadcastable).
        epsilon: added inside the logs of the geometric mean.
    """
    a, b = torch.broadcast_tensors(a, b)
    dtype = a.dtype
    # (no softness here: any float one lets use_kernel judge the tensors alone)
    if a.numel() == 0 or not use_kernel(0.1, a, b) or a.dtype != b.dtype:
        half = dtype in _HALF
        ac, bc = (a.float(), b.float()) if half else (a, b)
        return composite.geometric_and(ac, bc, epsilon).to(dtype)
    return _GeometricAnd.apply(_prep(a), _prep(b), float(epsilon)).to(dtype)
