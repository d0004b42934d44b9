r"""Fused elementwise relaxations: one ``torch.autograd.Function`` per family.

Each Function's ``forward`` computes the result in one pass of a CPU kernel
(:mod:`._numba_kernels`) and saves only its inputs; ``backward`` recomputes what it needs from
them in one more pass. So a relaxation costs two passes over memory and one saved tensor per
input, like the hard torch op, instead of a chain of temporaries. (``smooth`` round, whose steps
are costly to recompute, also keeps the derivative its forward computed from the same
exponentials; the first backward scales it in place.)

Dispatch (:func:`use_kernel`): the kernels run for CPU float32 / float64 tensors (half precision
is computed in float32 and cast back, non-contiguous inputs are copied) with a float softness.
Everything else takes the composite torch formulas of :mod:`.composite`, which give the same
values: other devices, a tensor softness (its gradient), ``torch.compile`` tracing, ``torch.func``
transforms and forward-mode AD, tensor subclasses, and :func:`set_backend` ``("torch")``. The
double backward (``create_graph=True``) differentiates the composite formula.

``smooth`` ungated ``relu`` falls back to ``F.softplus(x, beta=1/s)`` (one fused torch op each
way, :func:`ramp`); on CPU the kernel is faster still (its backward needs only the sigmoid).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import _is_compiling, forward_ad_active
from .._sigmoidal_math import BAND
from .._sigmoidal_math import SoftnessLike as Softness
from . import _kernel_guard, composite
from .composite import ABS, CMP, EQ, GATED, NE, RAMP, SIGN, STEP

BACKENDS: tuple[str, ...] = ("auto", "torch")
#: Whether numba is installed (checked without importing it).
HAS_NUMBA: bool = importlib.util.find_spec("numba") is not None
_HALF = (torch.float16, torch.bfloat16)
_KERNEL_DTYPES = (torch.float32, torch.float64)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_backend = "auto"

__all__ = [
    "ABS", "CMP", "EQ", "GATED", "NE", "RAMP", "SIGN", "STEP", "BACKENDS", "binary", "clamp",
    "pair_max", "ramp", "round", "set_backend", "unary", "use_kernel",
]


def set_backend(backend: str) -> None:
    """Choose the implementation: ``"auto"`` (CPU kernels where they apply) or ``"torch"`` (the
    composite formulas everywhere, e.g. to compare the two).

    Args:
        backend: ``"auto"`` or ``"torch"``.
    """
    global _backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are: {BACKENDS}")
    _backend = backend


def _np_dtype(dtype: torch.dtype) -> type:
    import numpy as np

    return np.float32 if dtype == torch.float32 else np.float64


_MODULES: dict[str, Any] = {}


def _module(name: str) -> Any:
    """The kernel module ``softtorch.kernels.<name>``, imported on first use (numba loads then),
    then from a cache (``import_module`` costs microseconds per call, several per op)."""
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(f"softtorch.kernels.{name}")
    return mod


def _kernels() -> Any:
    return _module("_numba_kernels")


def use_kernel(softness: Softness, *tensors: Tensor | None) -> bool:
    """True when the CPU kernels apply to these inputs (see the module docstring).

    Args:
        softness: the softness (a tensor softness always takes the composite path).
        *tensors: the tensor inputs (``None`` entries are ignored).
    """
    if _backend != "auto" or not HAS_NUMBA or isinstance(softness, Tensor):
        return False
    if _is_compiling() or forward_ad_active():
        return False
    for t in tensors:
        if t is None:
            continue
        if type(t) not in _PLAIN or t.device.type != "cpu" or t.layout != torch.strided:
            return False
        if t.dtype not in _KERNEL_DTYPES and t.dtype not in _HALF:
            return False
        if torch._C._functorch.is_functorch_wrapped_tensor(t):
            return False
    return True


def _flat(t: Tensor) -> Any:
    """``t`` as a flat numpy array (a view of a contiguous tensor, reshaped by numpy: a torch
    ``reshape`` costs microseconds per call, several per op)."""
    a = t.detach().numpy()
    return a.reshape(-1) if a.flags.c_contiguous else t.detach().reshape(-1).numpy()


def _params(softness: float, dtype: torch.dtype) -> tuple[Any, Any, type]:
    nd = _np_dtype(dtype)
    return nd(softness), nd(2.0 * BAND * softness), nd


def _run(name: str, like: Tensor, *args: Any) -> None:
    _kernels().run(name, like.numel(), args, torch.get_num_threads())


def _run_close(name: str, like: Tensor, *args: Any) -> None:
    """:func:`_run` for the kernels of :mod:`._numba_close` (eq / isclose, geometric and)."""
    mod = importlib.import_module("softtorch.kernels._numba_close")
    mod.run(name, like.numel(), args, torch.get_num_threads())


def _mt(mode: str) -> Any:
    k = _kernels()
    return k.tag(k.MODE_CODES[mode])


def _tag(code: int) -> Any:
    return _kernels().tag(code)


def _grad(g: Tensor) -> tuple[Any, Any]:
    """The incoming gradient as a flat array and its tag: one element when ``g`` is one value
    expanded (the gradient of ``y.sum()``: no copy to a full tensor), else contiguous."""
    if g.numel() > 1 and all(st == 0 for st in g.stride()):
        return g.detach().as_strided((1,), (1,)).numpy(), _tag(1)
    return _flat(g.contiguous()), _tag(0)


def _composite_grads(
    fn: Callable[..., Tensor], inputs: tuple[Tensor | None, ...], grad: Tensor
) -> list[Tensor | None]:
    """Gradients of ``fn(*inputs)`` through the composite graph (for double backward)."""
    need = [t for t in inputs if t is not None and t.requires_grad]
    with torch.enable_grad():
        out = fn(*inputs)
        got = torch.autograd.grad(out, need, grad, create_graph=True, allow_unused=True)
    it = iter(got)
    res: list[Tensor | None] = []
    for t in inputs:
        if t is not None and t.requires_grad:
            g = next(it)
            res.append(torch.zeros_like(t) if g is None else g)
        else:
            res.append(None)
    return res


# ---------------------------------------------------------------------------------- Functions


class _Unary(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, s: float, mode: str, op: int) -> Tensor:  # type: ignore[override]
        out = torch.empty_like(x)
        ps, pw, nd = _params(s, x.dtype)
        _run("unary_fwd", x, _flat(x), _flat(out), ps, pw, _mt(mode), _tag(op))
        ctx.save_for_backward(x)
        ctx.args = (s, mode, op)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        s, mode, op = ctx.args
        if torch.is_grad_enabled():
            (gx,) = _composite_grads(lambda t: composite.unary(t, s, mode, op), (x,), g)
            return gx, None, None, None
        ga, gt = _grad(g)
        gx = torch.empty_like(x)
        ps, pw, _ = _params(s, x.dtype)
        _run("unary_bwd", x, _flat(x), ga, _flat(gx), ps, pw, _mt(mode), _tag(op), gt)
        return gx, None, None, None


class _Binary(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, y: Tensor, s: float, mode: str, op: int, shift: float, tol: float
    ) -> Tensor:
        out = torch.empty_like(x)
        ps, pw, nd = _params(s, x.dtype)
        _run("binary_fwd", x, _flat(x), _flat(y), _flat(out), nd(shift), nd(tol), ps, pw,
             _mt(mode), _tag(op))
        ctx.save_for_backward(x, y)
        ctx.args = (s, mode, op, shift, tol)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, y = ctx.saved_tensors
        s, mode, op, shift, tol = ctx.args
        none5 = (None,) * 5
        if torch.is_grad_enabled():
            gx, gy = _composite_grads(
                lambda a, b: composite.binary(a, b, s, mode, op, shift, tol), (x, y), g)
            return (gx, gy, *none5)
        ga, gt = _grad(g)
        gx = torch.empty_like(x)
        ps, pw, nd = _params(s, x.dtype)
        _run("binary_bwd", x, _flat(x), _flat(y), ga, _flat(gx), nd(shift), nd(tol),
             ps, pw, _mt(mode), _tag(op), gt)
        gy = None
        if ctx.needs_input_grad[1]:
            gy = -gx if y.shape == x.shape else (-gx.sum()).reshape(y.shape)
        return (gx if ctx.needs_input_grad[0] else None, gy, *none5)


def _btag(b: Tensor | None, x: Tensor) -> Any:
    """Bound tag: code 0 absent, 1 one value, 2 one value per element of ``x``."""
    return _tag(0 if b is None else (1 if b.numel() == 1 and x.numel() != 1 else 2))


class _Clamp(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, lo: Tensor | None, hi: Tensor | None, s: float, mode: str,
        gated: bool,
    ) -> Tensor:
        out = torch.empty_like(x)
        ps, pw, _ = _params(s, x.dtype)
        dummy = x.new_zeros(1)
        _run("clamp_fwd", x, _flat(x), _flat(dummy if lo is None else lo),
             _flat(dummy if hi is None else hi), _flat(out), ps, pw, _mt(mode),
             _tag(int(gated)), _btag(lo, x), _btag(hi, x))
        ctx.save_for_backward(x, lo, hi)
        ctx.args = (s, mode, gated)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, lo, hi = ctx.saved_tensors
        s, mode, gated = ctx.args
        if torch.is_grad_enabled():
            gx, glo, ghi = _composite_grads(
                lambda a, b, c: composite.clamp(a, b, c, s, mode, gated), (x, lo, hi), g)
            return gx, glo, ghi, None, None, None
        ga, gt = _grad(g)
        gx = torch.empty_like(x)
        want_lo = lo is not None and ctx.needs_input_grad[1]
        want_hi = hi is not None and ctx.needs_input_grad[2]
        glo_full = torch.empty_like(x) if want_lo else x.new_empty(0)
        ghi_full = torch.empty_like(x) if want_hi else x.new_empty(0)
        dummy = x.new_zeros(1)
        ps, pw, _ = _params(s, x.dtype)
        _run("clamp_bwd", x, _flat(x), _flat(dummy if lo is None else lo),
             _flat(dummy if hi is None else hi), ga, _flat(gx), _flat(glo_full),
             _flat(ghi_full), ps, pw, _mt(mode), _tag(int(gated)), _btag(lo, x), _btag(hi, x), gt)

        def reduce(full: Tensor, b: Tensor) -> Tensor:
            return full if b.shape == x.shape else full.sum().reshape(b.shape)

        glo = reduce(glo_full, lo) if want_lo else None
        ghi = reduce(ghi_full, hi) if want_hi else None
        return gx if ctx.needs_input_grad[0] else None, glo, ghi, None, None, None


class _Round(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, s: float, mode: str, r: int, want_grad: bool
    ) -> Tensor:
        out = torch.empty_like(x)
        ps, pw, nd = _params(s, x.dtype)
        k, cut = _round_window(s, mode, r, nd)
        ctx.der = None
        if mode == "smooth":
            ctx.der = _round_smooth_fwd(x, out, s, r, want_grad)
        else:
            _run("round_fwd", x, _flat(x), _flat(out), ps, pw, _mt(mode), r, k, nd(cut))
        ctx.save_for_backward(x)
        ctx.args = (s, mode, r)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        s, mode, r = ctx.args
        none4 = (None,) * 4
        if torch.is_grad_enabled():
            (gx,) = _composite_grads(lambda t: composite.round(t, s, mode, r), (x,), g)
            return gx, *none4
        # the forward's derivative, scaled in place by the first backward; a later backward
        # (retain_graph) recomputes it with the same kernel (bitwise the same gradient)
        der, ctx.der = ctx.der, None
        if der is None and mode == "smooth" and not _kernel_guard.broken("smooth round"):
            der = _round_smooth_fwd(x, torch.empty_like(x), s, r, True)
        if der is not None:
            return der.mul_(g), *none4
        ga, gt = _grad(g)
        gx = torch.empty_like(x)
        ps, pw, nd = _params(s, x.dtype)
        k, cut = _round_window(s, mode, r, nd)
        if mode == "smooth":
            _run("round_smooth_bwd", x, _flat(x), ga, _flat(gx), nd(1.0 / s), _round_big(nd), r,
                 k, nd(cut), gt)
        else:
            _run("round_bwd", x, _flat(x), ga, _flat(gx), ps, pw, _mt(mode), r, k, nd(cut), gt)
        return gx, *none4


class _PairMax(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x3: Tensor, s: float, mode: str, gated: bool, shift: float
    ) -> Tensor:
        out = x3.new_empty(x3.shape[0], x3.shape[2])
        ps, pw, nd = _params(s, x3.dtype)
        _run("pair_fwd", out, x3.detach().numpy(), out.numpy(), nd(shift), ps, pw, _mt(mode),
             _tag(int(gated)))
        ctx.save_for_backward(x3)
        ctx.args = (s, mode, gated, shift)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (x3,) = ctx.saved_tensors
        s, mode, gated, shift = ctx.args
        if torch.is_grad_enabled():
            (gx,) = _composite_grads(lambda t: _pair_composite(t, s, mode, gated, shift), (x3,), g)
            return gx, None, None, None, None
        g = g.contiguous()
        gx = torch.empty_like(x3)
        ps, pw, nd = _params(s, x3.dtype)
        _run("pair_bwd", g, x3.detach().numpy(), g.numpy(), gx.numpy(), nd(shift), ps, pw,
             _mt(mode), _tag(int(gated)))
        return gx, None, None, None, None


def _pair_composite(x3: Tensor, s: Softness, mode: str, gated: bool, shift: float) -> Tensor:
    a, b = x3[:, 0], x3[:, 1]
    return composite.clamp(b, a, None, s, mode, gated) + shift


def pair_max(
    x: Tensor, dim: int, softness: Softness, mode: str, gated: bool = False, shift: float = 0.0
) -> Tensor:
    """Soft maximum of the pairs ``(x[2i], x[2i+1])`` along ``dim`` (even length):
    :math:`a + R_s(b - a) + \text{shift}`, the one-sided soft clamp of ``b`` at ``a`` (a pooling
    window of 2, see :mod:`softtorch.kernels.pool`), reading the pairs in place.

    Args:
        x: floating input with an even size along ``dim``.
        dim: the paired dim (non-negative).
        softness: s > 0.
        mode: a sigmoidal mode.
        gated: the gated ramp :math:`x\\sigma_s(x)`.
        shift: a constant added (``-s log 2`` for the log-mean-exp).
    """
    shape = list(x.shape)
    half = shape[dim] // 2
    outer = math.prod(shape[:dim]) * half
    inner = math.prod(shape[dim + 1:])
    out_shape = shape[:dim] + [half] + shape[dim + 1:]
    if x.numel() == 0 or not use_kernel(softness, x):
        xc = x.float() if x.dtype in _HALF else x
        res = _pair_composite(xc.reshape(outer, 2, inner), softness, mode, gated, shift)
        return res.reshape(out_shape).to(x.dtype)
    x3 = _prep(x).reshape(outer, 2, inner)
    out = _PairMax.apply(x3, float(softness), mode, gated, float(shift))
    return out.reshape(out_shape).to(x.dtype)


def _round_big(nd: type) -> Any:
    return nd(_kernels().ROUND_BIG[nd])


def _run_round(name: str, like: Tensor, *args: Any) -> None:
    """:func:`_run` for the kernels of :mod:`._numba_round`."""
    mod = importlib.import_module("softtorch.kernels._numba_round")
    mod.run(name, like.numel(), args, torch.get_num_threads())


def _round_smooth_fwd(x: Tensor, out: Tensor, s: float, r: int, want_grad: bool) -> Tensor | None:
    """``smooth`` soft round of ``x`` into ``out``; with ``want_grad`` also its derivative, from
    the same exponentials (:mod:`._numba_round`), returned for the backward (else None).

    The steps go in groups of four with one division (the same values with and without the
    derivative); the fallback, if that kernel fails to compile, is the paired-step kernel
    (:func:`._numba_kernels._round_smooth_fwd`; the backward then recomputes the derivative)."""
    nd = _np_dtype(x.dtype)
    k, cut = _round_window(s, "smooth", r, nd)
    args = (nd(1.0 / s), _round_big(nd), r, k, nd(cut))

    def paired() -> None:
        _run("round_smooth_fwd", x, _flat(x), _flat(out), *args)

    def grouped() -> Tensor | None:
        if not want_grad:
            _run_round("round_smooth_fwd", x, _flat(x), _flat(out), *args)
            return None
        der = torch.empty_like(x)
        _run_round("round_smooth_fwd_grad", x, _flat(x), _flat(out), _flat(der), *args)
        return der

    return _kernel_guard.guarded("smooth round", grouped, paired, "the paired-step kernel")


def _round_window(s: float, mode: str, r: int, nd: type) -> tuple[int, float]:
    """Steps evaluated per element and the saturation distance (in x units) of ``round``.

    ``smooth`` float32 drops the steps whose value, and derivative, lies within 1e-7 of 0 / 1:
    :math:`e^{-c} \\max(1, 1/s) \\le 10^{-7}` (at most the float32 cutoff 20)."""
    if mode == "smooth":
        c = _kernels().SMOOTH_CUTOFF[nd]
        if nd(0).itemsize == 4:  # float32
            c = min(c, 16.2 + max(0.0, math.log(1.0 / s)))
    elif mode.startswith("_"):
        c = 1.0
    else:
        c = BAND
    cut = c * s
    # steps with |z| >= cut are saturated: at most floor(2 cut) + 1 steps lie inside
    k = 2 * r if cut >= r else min(2 * r, math.floor(2.0 * cut) + 1)
    return k, cut


# ------------------------------------------------------------------------------- entry points


def _broadcast(*tensors: Tensor | None) -> torch.Size | None:
    """The broadcast shape, or None when the shapes do not broadcast (the composite then raises
    torch's own error)."""
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors if t is not None))
    except RuntimeError:
        return None


def _prep(t: Tensor) -> Tensor:
    t = t.float() if t.dtype in _HALF else t
    return t.contiguous()


def unary(x: Tensor, softness: Softness, mode: str, op: int) -> Tensor:
    """Fused :math:`\\sigma_s(x)` (STEP), sign (SIGN), abs (ABS), relu (RAMP) or gated relu (GATED).

    Arguments are not validated (the public functions do that once).

    Args:
        x: floating input.
        softness: s > 0.
        mode: a sigmoidal mode (``smooth``, ``c0``, ``c1``, ``c2``, ``_c1_pnorm``, ``_c2_pnorm``).
        op: one of the op codes STEP, SIGN, ABS, RAMP, GATED.
    """
    if op in (RAMP, GATED):
        return ramp(x, softness, mode, gated=op == GATED)
    if x.numel() == 0 or not use_kernel(softness, x):
        xc = x.float() if x.dtype in _HALF else x
        return composite.unary(xc, softness, mode, op).to(x.dtype)
    return _Unary.apply(_prep(x), float(softness), mode, op).to(x.dtype)


def ramp(x: Tensor, softness: Softness, mode: str, gated: bool = False) -> Tensor:
    """Fused soft relu: the integral of :math:`\\sigma_s` or, with ``gated``, :math:`x\\sigma_s(x)`.

    Where the kernels do not apply, ``smooth`` ungated with a float softness is
    ``F.softplus(x, beta=1/s)`` (torch's own one-pass op, threshold 20 on ``x/s`` as in the
    composite).

    Args:
        x: floating input.
        softness: s > 0.
        mode: a sigmoidal mode.
        gated: the gated form.
    """
    op = GATED if gated else RAMP
    if x.numel() == 0 or not use_kernel(softness, x):
        xc = x.float() if x.dtype in _HALF else x
        if not gated and mode == "smooth" and not isinstance(softness, Tensor):
            return F.softplus(xc, beta=1.0 / softness, threshold=20.0).to(x.dtype)
        return composite.unary(xc, softness, mode, op).to(x.dtype)
    return _Unary.apply(_prep(x), float(softness), mode, op).to(x.dtype)


def binary(
    x: Tensor, y: Tensor, softness: Softness, mode: str, op: int = CMP, shift: float = 0.0,
    tol: float = 0.0,
) -> Tensor:
    """Fused comparison on ``d = x - y + shift``: :math:`\\sigma_s(d)` (CMP), soft eq with
    tolerance ``tol`` (EQ) or soft not_equal (NE).

    ``x`` and ``y`` broadcast (a one-element operand is read as a scalar, others are expanded);
    the gradient of each is reduced to its shape.

    Args:
        x, y: floating operands of one dtype.
        softness: s > 0.
        mode: a sigmoidal mode.
        op: CMP, EQ or NE.
        shift: ``-eps`` (``greater``) or ``+eps`` (``greater_equal``).
        tol: tolerance of EQ / NE (the ``epsilon`` of ``eq``).
    """
    shape = _broadcast(x, y)
    if shape is None or math.prod(shape) == 0 or not use_kernel(softness, x, y) or (
        x.dtype != y.dtype
    ):
        half = x.dtype in _HALF
        xc, yc = (x.float(), y.float()) if half else (x, y)
        return composite.binary(xc, yc, softness, mode, op, shift, tol).to(x.dtype)
    dtype = x.dtype
    xe = _prep(x if x.shape == shape else x.expand(shape))
    yc = _prep(y)
    if yc.numel() != 1 and yc.shape != shape:
        yc = _prep(yc.expand(shape))
    elif yc.numel() == 1:
        yc = yc.reshape(1)
    return _Binary.apply(xe, yc, float(softness), mode, op, float(shift), float(tol)).to(dtype)


def clamp(
    x: Tensor, lo: Tensor | None, hi: Tensor | None, softness: Softness, mode: str,
    gated: bool = False,
) -> Tensor:
    """Fused soft clamp :math:`b - R_s(b - (a + R_s(x - a)))` (one-sided forms when a bound is
    ``None``; infinite bounds as in :func:`.composite.clamp`).

    Args:
        x: floating input.
        lo, hi: ``None`` or tensors of ``x``'s dtype broadcastable with it (one at least given).
        softness: s > 0.
        mode: a sigmoidal mode.
        gated: use the gated relu.
    """
    shape = _broadcast(x, lo, hi)
    if shape is None or math.prod(shape) == 0 or not use_kernel(softness, x, lo, hi) or any(
        b is not None and b.dtype != x.dtype for b in (lo, hi)
    ):
        half = x.dtype in _HALF
        up = (lambda t: None if t is None else t.float()) if half else (lambda t: t)
        return composite.clamp(up(x), up(lo), up(hi), softness, mode, gated).to(x.dtype)
    dtype = x.dtype
    xe = _prep(x if x.shape == shape else x.expand(shape))

    def bound(b: Tensor | None) -> Tensor | None:
        if b is None:
            return None
        if b.numel() == 1:
            return _prep(b).reshape(1)
        return _prep(b if b.shape == shape else b.expand(shape))

    return _Clamp.apply(xe, bound(lo), bound(hi), float(softness), mode, gated).to(dtype)


def round(x: Tensor, softness: Softness, mode: str, neighbor_radius: int = 5) -> Tensor:  # noqa: A001
    """Fused soft round (staircase of ``2 * neighbor_radius`` soft steps).

    Args:
        x: floating input.
        softness: s > 0.
        mode: a sigmoidal mode.
        neighbor_radius: steps on each side (>= 1).
    """
    if x.numel() == 0 or not use_kernel(softness, x):
        xc = x.float() if x.dtype in _HALF else x
        return composite.round(xc, softness, mode, neighbor_radius).to(x.dtype)
    want_grad = torch.is_grad_enabled() and x.requires_grad
    return _Round.apply(_prep(x), float(softness), mode, int(neighbor_radius), want_grad).to(
        x.dtype)
