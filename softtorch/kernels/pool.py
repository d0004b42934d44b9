r"""Faster soft max pooling with the values of :mod:`softtorch.interception.ops_pool`.

The interception layer reduces each pooling window :math:`W` once per spatial dim:

* ``smooth``: the log-mean-exp :math:`s\log\frac1{|W|}\sum_{j\in W} e^{x_j/s}`;
* ``c0`` / ``c1`` / ``c2``: :math:`\sum_j p_j x_j` with :math:`p` the mode's sparse projection of
  :math:`x_W/s` onto the simplex.

Two faster routes to the same values:

* **pairs** (windows of 2 with stride 2, no padding or dilation: ``MaxPool2d(2)``): for two
  points :math:`a, b` with :math:`d = b - a`, the log-mean-exp is
  :math:`a + R_s(d) - s\log 2` with :math:`R_s` the smooth soft relu (softplus), and the sparse
  projections' weight of :math:`b` is a sigmoidal of :math:`d`: ``c0`` (sparsemax)
  :math:`\mathrm{clip}(\tfrac12 + d/2s, 0, 1)` = the ``c0`` sigmoidal at softness :math:`s/5`,
  ``c1`` / ``c2`` the ``_c1_pnorm`` / ``_c2_pnorm`` sigmoidals at :math:`s`, so the expectation is
  :math:`a + d\,\sigma(d)` (the gated soft relu). Both are a one-sided soft clamp
  :math:`a + R(b - a)`, one fused kernel pass each way (:func:`softtorch.kernels.fused.clamp`).
  Pairs on the last two dims with even lengths (``MaxPool2d(2)``) are one 2x2 pass each way
  (:func:`quad_pool`, :mod:`._numba_pool2`: the rows' pairs, then the columns', without the
  intermediate tensor); :func:`pair_pool` runs these without window tensors.
* **strided windows** (any other evenly strided window, e.g. the 3x3 stride-2 ResNet stem):
  :func:`strided`, a numba kernel per pooled dim (:mod:`._numba_pool`, windows of three in
  registers in :mod:`._numba_pool3`) for CPU float32 / float64 windows of up to
  :data:`MAX_WINDOW` positions: one pass forward, one backward recomputing each window from the
  saved input (reverse mode through the projection's closed form on its support, exactly what
  autograd computes on the composite). Elsewhere (other devices, a tensor softness, tracing,
  ``torch.func``, longer windows) and for the double backward it is
  :func:`strided_composite`: ``Tensor.unfold`` views of the padded input, so the backward is one
  ``unfold_backward`` instead of an index-put.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._sigmoidal_math import BAND
from ..simplex import project_simplex
from . import _kernel_guard, fused

#: Pair mode (sigmoidal mode, softness factor) of each pooling mode's 2-point projection.
PAIR_MODES: dict[str, tuple[str, float]] = {
    "c0": ("c0", 1.0 / BAND), "c1": ("_c1_pnorm", 1.0), "c2": ("_c2_pnorm", 1.0),
}
#: Exponent code of each mode in the window kernels (0: log-mean-exp; e: p = (u - lam)_+^e).
EXPONENTS: dict[str, int] = {"smooth": 0, "c0": 1, "c1": 2, "c2": 3}
#: Longest window (positions along one dim) the kernels take (an insertion sort per window).
MAX_WINDOW = 32
_QUAD = "soft max-pool 2x2"


def _geometry(pos: Tensor, valid: Tensor, length: int) -> tuple[int, int, int] | None:
    """(stride, dilation, left padding) of torch-style windows ``pos`` (m, k), or None when the
    windows are not evenly strided (adaptive pooling)."""
    m, k = pos.shape
    first = int(valid[0].nonzero()[0])
    dil = int(pos[0, first + 1] - pos[0, first]) if k > 1 and first + 1 < k and bool(
        valid[0, first + 1]) else 1
    pad = first * dil - int(pos[0, first])
    stride = 1
    if m > 1:
        j = int(valid[1].nonzero()[0])
        stride = int(pos[1, j]) - (j * dil - pad)
    starts = torch.arange(m, device=pos.device) * stride - pad
    want = starts.unsqueeze(1) + torch.arange(k, device=pos.device) * dil
    ok = (want >= 0) & (want < length)
    if not torch.equal(ok, valid) or not torch.equal(want.clamp(0, length - 1), pos):
        return None
    return stride, dil, pad


def _pair_args(softness: float | Tensor, mode: str) -> tuple[Any, str, bool, Any]:
    """(softness, sigmoidal mode, gated, shift) of the pair maximum of a pooling mode."""
    if mode == "smooth":
        return softness, "smooth", False, -softness * math.log(2.0)
    smode, factor = PAIR_MODES[mode]
    return softness * factor, smode, True, 0.0


def _pair(x: Tensor, dim: int, softness: float | Tensor, mode: str) -> Tensor:
    if x.shape[dim] % 2:
        x = x.narrow(dim, 0, x.shape[dim] - 1)  # floor mode drops the last position
    s, smode, gated, shift = _pair_args(softness, mode)
    return fused.pair_max(x, dim, s, smode, gated, shift)


def strided_composite(x: Tensor, dim: int, m: int, k: int, geo: tuple[int, int, int],
                      softness: float | Tensor, mode: str) -> Tensor:
    """Torch formula of :func:`strided` (the fallback, the double backward of the kernel and
    its reference): ``Tensor.unfold`` views of the padded input, one ``unfold_backward`` back.

    Args:
        x: floating input.
        dim: the pooled dim (non-negative).
        m, k: number of windows and positions per window.
        geo: ``(stride, dilation, left padding)``.
        softness: s > 0.
        mode: ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    stride, dil, pad = geo
    xm = x.movedim(dim, -1)
    length = xm.shape[-1]
    span = dil * (k - 1) + 1
    right = max(0, (m - 1) * stride + span - pad - length)
    if mode == "smooth":
        xp = F.pad(xm, (pad, right), value=float("-inf")) if pad or right else xm
        g = xp.unfold(-1, span, stride)[..., :m, ::dil]
        top = g.amax(-1, keepdim=True).detach()
        start = torch.arange(m, device=x.device).unsqueeze(1) * stride - pad
        at = start + torch.arange(k, device=x.device) * dil
        count = ((at >= 0) & (at < length)).sum(-1).to(g.dtype)
        out = top.squeeze(-1) + softness * (torch.logsumexp((g - top) / softness, -1)
                                            - torch.log(count))
    else:
        xs = F.pad(xm, (pad, right), value=float("-inf")) if pad or right else xm
        xv = F.pad(xm, (pad, right), value=0.0) if pad or right else xm
        gs = xs.unfold(-1, span, stride)[..., :m, ::dil]
        gv = xv.unfold(-1, span, stride)[..., :m, ::dil]
        p = project_simplex(gs / softness, mode)
        out = (p * gv).sum(-1)
    return out.movedim(-1, dim)


def _window_kernels() -> Any:
    return fused._module("_numba_pool")


class _WindowPool(torch.autograd.Function):
    """Soft max pooling of ``x3`` ``(outer, L, inner)`` along dim 1 by the CPU kernels: one pass
    forward, one backward recomputing each window from the saved input."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x3: Tensor, m: int, k: int, geo: tuple[int, int, int], s: float, mode: str
    ) -> Tensor:
        out = x3.new_empty(x3.shape[0], m, x3.shape[2])
        _window_kernels().run("fwd", EXPONENTS[mode], (x3.detach().numpy(), out.numpy()),
                              (k, *geo), s, torch.get_num_threads())
        ctx.save_for_backward(x3)
        ctx.args = (m, k, geo, s, mode)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:  # type: ignore[override]
        (x3,) = ctx.saved_tensors
        m, k, geo, s, mode = ctx.args
        if torch.is_grad_enabled():
            (gx,) = fused._composite_grads(
                lambda t: strided_composite(t, 1, m, k, geo, s, mode), (x3,), g)
            return gx, None, None, None, None, None
        gx = torch.zeros_like(x3)
        _window_kernels().run("bwd", EXPONENTS[mode], (
            x3.detach().numpy(), g.detach().contiguous().numpy(), gx.numpy()), (k, *geo), s,
            torch.get_num_threads())
        return gx, None, None, None, None, None


def strided(x: Tensor, dim: int, m: int, k: int, geo: tuple[int, int, int],
            softness: float | Tensor, mode: str) -> Tensor:
    """Soft max pooling of ``x`` along ``dim`` over ``m`` evenly strided windows of ``k``
    positions (``geo``: stride, dilation, left padding; positions outside the input are
    padding): the CPU kernel of :mod:`._numba_pool` for windows up to :data:`MAX_WINDOW` where
    :func:`softtorch.kernels.fused.use_kernel` allows, else :func:`strided_composite` (the same
    values).

    Args:
        x: floating input (float32 / float64 for the kernel).
        dim: the pooled dim (non-negative).
        m, k: number of windows and positions per window.
        geo: ``(stride, dilation, left padding)``.
        softness: s > 0.
        mode: ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    if (k > MAX_WINDOW or x.numel() == 0 or x.dtype not in (torch.float32, torch.float64)
            or not fused.use_kernel(softness, x)):
        return strided_composite(x, dim, m, k, geo, softness, mode)
    shape = list(x.shape)
    x3 = x.contiguous().reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:]))
    out = _WindowPool.apply(x3, m, k, geo, float(softness), mode)
    return out.reshape(shape[:dim] + [m] + shape[dim + 1:])


def _quad_kernels() -> Any:
    return fused._module("_numba_pool2")


def quad_composite(x3: Tensor, s: float | Tensor, mode: str, gated: bool, shift: Any) -> Tensor:
    """Torch formula of :class:`_QuadPool` (its fallback, double backward and reference): the
    pairs of ``x3`` ``(rows, 2, 2n)`` along dim 1, then along the columns, ``(rows, n)``.

    Args:
        x3: floating input, ``(rows, 2, 2n)``.
        s: the pair softness.
        mode: the sigmoidal mode of the pairs.
        gated: the gated ramp.
        shift: added to each pair maximum.
    """
    y = fused._pair_composite(x3, s, mode, gated, shift)
    rows, n = y.shape[0], y.shape[1] // 2
    return fused._pair_composite(y.reshape(rows * n, 2, 1), s, mode, gated, shift).reshape(
        rows, n)


class _QuadPool(torch.autograd.Function):
    """Soft 2x2 max pooling of ``x3`` ``(rows, 2, 2n)`` by the CPU kernels of
    :mod:`._numba_pool2`: one pass forward, one backward recomputing each window from the saved
    input (the composite when a kernel fails to compile, and for the double backward)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x3: Tensor, s: float, mode: str, gated: bool, shift: float
    ) -> Tensor:
        ctx.save_for_backward(x3)
        ctx.args = (s, mode, gated, shift)
        out = x3.new_empty(x3.shape[0], x3.shape[2] // 2)
        ps, pw, nd = fused._params(s, x3.dtype)
        scalars = (nd(shift), ps, pw, fused._mt(mode), fused._tag(int(gated)))

        def kernel() -> Tensor:
            _quad_kernels().run("fwd", (x3.detach().numpy(), out.numpy()), scalars,
                                torch.get_num_threads())
            return out

        return _kernel_guard.guarded(
            _QUAD, kernel, lambda: quad_composite(x3, s, mode, gated, shift), "two pair passes")

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # type: ignore[override]
        (x3,) = ctx.saved_tensors
        s, mode, gated, shift = ctx.args
        if torch.is_grad_enabled() or _kernel_guard.broken(_QUAD):
            (gx,) = fused._composite_grads(
                lambda t: quad_composite(t, s, mode, gated, shift), (x3,), g)
            return gx, None, None, None, None
        g = g.contiguous()
        ps, pw, nd = fused._params(s, x3.dtype)
        scalars = (nd(shift), ps, pw, fused._mt(mode), fused._tag(int(gated)))

        def kernel() -> Tensor:
            gx = torch.empty_like(x3)
            _quad_kernels().run("bwd", (x3.detach().numpy(), g.detach().numpy(), gx.numpy()),
                                scalars, torch.get_num_threads())
            return gx

        def composite() -> Tensor:
            with torch.enable_grad():
                t = x3.detach().requires_grad_()
                return torch.autograd.grad(quad_composite(t, s, mode, gated, shift), t, g)[0]

        gx = _kernel_guard.guarded(_QUAD, kernel, composite, "two pair passes")
        return gx, None, None, None, None


def quad_pool(x: Tensor, softness: float | Tensor, mode: str) -> Tensor:
    """Soft ``MaxPool2d(2)`` of the last two dims of ``x`` (even sizes): the pairs along the
    rows, then along the columns (the values of two :func:`_pair` passes), by :class:`_QuadPool`
    where :func:`softtorch.kernels.fused.use_kernel` allows, else :func:`quad_composite`.

    Args:
        x: floating input ``(..., 2h, 2w)``.
        softness: s > 0.
        mode: ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    *lead, h2, w2 = x.shape
    x3 = x.reshape(-1, 2, w2)
    s, smode, gated, shift = _pair_args(softness, mode)
    if x.numel() == 0 or x.dtype not in (torch.float32, torch.float64) or not fused.use_kernel(
        s, x
    ):
        out = quad_composite(x3, s, smode, gated, shift)
    else:
        out = _QuadPool.apply(x3.contiguous(), float(s), smode, gated, float(shift))
    return out.reshape(*lead, h2 // 2, w2 // 2)


def pair_pool(x: Tensor, nd: int, softness: float | Tensor, mode: str) -> Tensor:
    """Soft max pooling of the last ``nd`` dims of ``x`` over windows of 2 with stride 2 (no
    padding or dilation; floor mode drops an odd last position), without window tensors: the
    pairs per dim (:func:`_pair`), the last two dims in one 2x2 pass (:func:`quad_pool`) when
    their lengths are even. Half precision is computed in float32.

    Args:
        x: floating input (``N, C, *spatial`` or ``C, *spatial``).
        nd: number of pooled trailing dims (1, 2 or 3).
        softness: s > 0.
        mode: ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    quad = nd >= 2 and xc.shape[-2] % 2 == 0 and xc.shape[-1] % 2 == 0
    for i in range(nd - 2 if quad else nd):
        xc = _pair(xc, xc.ndim - nd + i, softness, mode)
    if quad:
        xc = quad_pool(xc, softness, mode)
    return xc.to(x.dtype)


def _is_pair(pos: Tensor, valid: Tensor) -> bool:
    """Whether the windows ``pos`` (m, k) are the pairs ``(2i, 2i + 1)``."""
    m, k = pos.shape
    return k == 2 and bool(valid.all()) and torch.equal(
        pos, torch.arange(2 * m, device=pos.device).reshape(m, 2))


def _reduce(x: Tensor, dim: int, pos: Tensor, valid: Tensor, softness: float | Tensor,
            mode: str) -> Tensor | None:
    m, k = pos.shape
    if _is_pair(pos, valid):
        return _pair(x, dim, softness, mode)
    geo = _geometry(pos, valid, x.shape[dim])
    if geo is None:
        return None
    return strided(x, dim, m, k, geo, softness, mode)


def _quad_ok(x: Tensor, windows: list[tuple[Tensor, Tensor]], softness: float | Tensor) -> bool:
    """Whether the last two pooled dims are pairs covering them exactly (even lengths) and the
    2x2 kernel applies (:func:`softtorch.kernels.fused.use_kernel`, float32 / float64)."""
    if len(windows) < 2 or x.numel() == 0 or x.dtype not in (torch.float32, torch.float64):
        return False
    if not all(2 * windows[i][0].shape[0] == x.shape[i] for i in (-2, -1)):
        return False
    return all(_is_pair(*w) for w in windows[-2:]) and fused.use_kernel(softness, x)


def pool(
    x: Tensor, windows: list[tuple[Tensor, Tensor]], c: Any,
    fallback: Callable[[Tensor, int, Tensor, Tensor, Any], Tensor],
) -> Tensor:
    """Drop-in for ``softtorch.interception.ops_pool._pool``: reduce ``x`` over ``windows``
    (per spatial dim: positions ``(m, k)`` and their validity) in the mode and softness of the
    context ``c``; the same values, faster.

    Args:
        x: the input (``N, C, *spatial`` or ``C, *spatial``).
        windows: per trailing spatial dim, ``(pos, valid)`` as built by ``ops_pool``.
        c: the interception context (``c.mode``, ``c.softness``).
        fallback: ``ops_pool._reduce(x, dim, pos, valid, c)``, for windows that are not evenly
            strided (adaptive pooling).
    """
    mode, softness = c.mode, c.softness
    xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    nd = len(windows)
    quad = _quad_ok(xc, windows, softness)
    for i, (pos, valid) in enumerate(windows[:nd - 2] if quad else windows):
        dim = xc.ndim - nd + i
        out = _reduce(xc, dim, pos, valid, softness, mode)
        xc = fallback(xc, dim, pos, valid, c) if out is None else out
    if quad:
        xc = quad_pool(xc, softness, mode)
    return xc.to(x.dtype)
