r"""Fused CPU fast path of ``fast_soft_sort`` for eager calls: sort values and ranks in one kernel.

:func:`sorted_values` and :func:`rank` return ``None`` unless the call qualifies: eager mode
(not compiling, no ``torch.func`` transform, no forward-mode AD), plain CPU float32/float64
tensors, numba installed, ``backend`` "auto"/"numba", and a softness that is a float or a tensor
without gradient. Otherwise the caller takes the composite path (standardize, :mod:`.fast_soft_sort`
projection, inverse map), which gives identical values up to float rounding and supports every
transform. The kernels (:mod:`._fused_numba_sort`, :mod:`._fused_numba_rank`) compute in float64
and take the permutation from a zero-copy view (radix sort of :mod:`._radix_numba` for rows of
1024 or more, numpy's ``argsort`` below); the backward is closed-form (O(n) per row). A
``create_graph=True`` backward re-runs the composite path to get a differentiable gradient.

Masked ops (``mask=``, True = a real entry) run the same kernels: each row's ascending order is
compacted to its ``c`` real entries inside the kernel, standardized over them and projected with
the row's own anchors ``linspace(1, 0, c)``; sorted values at positions ``>= c`` and ranks of
padded entries are 0, and padded entries get zero gradient. The composite path of a masked call
(the fallback, and the ``create_graph`` backward) is the batched projection of :mod:`.masked`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...._checks import check_softness
from ....kernels import _kernel_guard
from ... import _mask
from ..._base import Softness
from ..._standardize import standardize as _standardize
from ..._standardize import unstandardize as _unstandardize
from . import fast_soft_sort as fss
from .masked import masked_soft_rank, masked_soft_sort

_FLOATS = (torch.float32, torch.float64)


def _kernels() -> Any:
    """The sort kernels (numba imported on first use)."""
    from . import _fused_numba_sort

    return _fused_numba_sort


def _rank_kernels() -> Any:
    """The rank kernels (numba imported on first use)."""
    from . import _fused_numba_rank

    return _fused_numba_rank


def _guard() -> Any:
    """The lock context of :func:`._pav_numba.parallel_guard` (numba imported lazily)."""
    from ._pav_numba import parallel_guard

    return parallel_guard()


def _eligible(x: torch.Tensor, softness: Softness, options: dict[str, Any] | None) -> float | None:
    """The softness as a float when the fused kernel applies to ``x``, else None."""
    if (
        type(x) is not torch.Tensor
        or x.device.type != "cpu"
        or x.dtype not in _FLOATS
        or not fss.HAS_NUMBA
        or x.dim() != 2
        or x.shape[-1] < 2
        or x.shape[0] == 0
        or torch.compiler.is_compiling()
        # torch internal, checked on torch 2.13.0 (peek_interpreter_stack, _current_level)
        or torch._C._functorch.peek_interpreter_stack() is not None
        or torch.autograd.forward_ad._current_level >= 0
    ):
        return None
    if options and options.get("backend", fss.BACKEND) not in ("auto", "numba"):
        return None
    if not options and fss.BACKEND not in ("auto", "numba"):
        return None
    if isinstance(softness, torch.Tensor):
        if softness.requires_grad or type(softness) is not torch.Tensor:
            return None
        softness = check_softness(softness)
        return float(softness)
    return float(check_softness(softness))


def _threads(rows: int, n: int) -> int:
    """Chunks of rows: 0 means one thread (small problems: waking the pool costs more)."""
    from . import _pav_numba

    if rows > 1 and rows * n >= _pav_numba.PARALLEL_MIN_ELEMENTS:
        import numba

        t = numba.get_num_threads()
        return min(rows, t if n >= 4096 else 4 * t)
    return 0


def _argsort_rows(xn: np.ndarray) -> np.ndarray:
    """Ascending ``argsort`` of every row: the radix kernel of :mod:`._radix_numba` for long rows
    (on all numba threads once the problem is large), numpy's ``argsort`` for short ones."""
    from . import _radix_numba

    rows, n = xn.shape
    if n < _radix_numba.MIN_N:
        return np.argsort(xn, axis=-1, kind="quicksort")

    def kernel() -> np.ndarray:
        from . import _pav_numba

        threads = 1
        if rows * n >= _pav_numba.PARALLEL_MIN_ELEMENTS:
            import numba

            threads = numba.get_num_threads()
        return _radix_numba.argsort(xn, threads)

    def fallback() -> np.ndarray:
        return np.argsort(xn, axis=-1, kind="stable")

    return _kernel_guard.guarded("radix argsort", kernel, fallback, "numpy's argsort")


def _bounds(dtype: torch.dtype) -> tuple[float, float]:
    info = torch.finfo(dtype)
    return float(info.tiny), 1.0 - float(info.eps)


def _rho(mask: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Anchors ``rho = linspace(1, 0, c)`` per row: one shared row (1, n) without a mask, else
    (rows, n) with ``(c - 1 - i) / max(c - 1, 1)`` for ``i < c`` and 0 after (as
    :func:`.masked._rho`), and the counts ``c`` (rows,)."""
    if mask is None:
        return np.linspace(1.0, 0.0, n).reshape(1, n), None
    c = mask.sum(axis=1, dtype=np.int64)[:, None]
    i = np.arange(n)
    rho = np.where(i < c, np.maximum((c - 1.0 - i) / np.maximum(c - 1.0, 1.0), 0.0), 0.0)
    return rho, c


def _mask_arrays(mask: torch.Tensor | None) -> tuple[np.ndarray, bool]:
    """The mask as a C-contiguous bool array (a dummy (1, 1) without one) and the flag."""
    if mask is None:
        return np.zeros((1, 1), np.bool_), False
    return mask.detach().contiguous().numpy(), True


def _composite_sort(
    x: torch.Tensor,
    eps: float,
    mode: str,
    descending: bool,
    standardize: bool,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    if mask is not None:
        return _composite_sort_masked(x, eps, mode, descending, standardize, mask)
    if not standardize:
        return fss.soft_sort(x, eps, mode, descending=descending)
    z, stats = _standardize(x)
    return _unstandardize(fss.soft_sort(z, eps, mode, descending=descending), stats)


def _composite_sort_masked(
    x: torch.Tensor, eps: float, mode: str, descending: bool, standardize: bool, mask: torch.Tensor
) -> torch.Tensor:
    """The batched masked path (:mod:`.masked`) in x units, positions ``>= c`` filled with 0."""
    if standardize:
        z, stats = _mask.standardize(x, mask)
        v = _unstandardize(masked_soft_sort(z, mask, eps, mode, descending=descending), stats)
    else:
        v = masked_soft_sort(x, mask, eps, mode, descending=descending)
    return _mask.fill_positions(v, _mask.counts(mask))


def _composite_rank(
    x: torch.Tensor,
    eps: float,
    mode: str,
    descending: bool,
    standardize: bool,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    if mask is not None:
        z = _mask.standardize(x, mask)[0] if standardize else x
        return masked_soft_rank(z, mask, eps, mode, descending=descending)
    z = _standardize(x)[0] if standardize else x
    return fss.soft_rank(z, eps, mode, descending=descending)


def _composite_grad(
    fn: Any, x: torch.Tensor, gy: torch.Tensor, cfg: tuple[Any, ...]
) -> torch.Tensor:
    """The gradient of the composite path ``fn(x, *cfg)`` (fallback of a broken kernel)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_()
        (gx,) = torch.autograd.grad(fn(xg, *cfg), xg, gy)
    return gx


def _guarded_grad(family: str, kernel: Any, fallback: Any) -> torch.Tensor:
    """A backward kernel under :func:`._kernel_guard.guarded` (the family has run forward)."""
    return _kernel_guard.guarded(family + " backward", kernel, fallback, "the composite gradient")


def _save(
    ctx: Any, x: torch.Tensor, mask: torch.Tensor | None, masked: bool, arrays: tuple[Any, ...]
) -> None:
    """Keep ``x``, ``mask`` and the kernel's numpy arrays for the backward pass as saved tensors
    (zero-copy ``torch.from_numpy``): autograd frees them once the backward pass has run, and
    saved-tensor hooks (``torch.utils.checkpoint``, offloading) see them."""
    ctx.save_for_backward(x, mask, *(torch.from_numpy(a) for a in arrays))
    ctx.masked = masked


def _saved(ctx: Any) -> tuple[torch.Tensor, torch.Tensor | None, tuple[Any, ...]]:
    """``(x, mask, arrays)`` as kept by :func:`_save` (the arrays as numpy views)."""
    x, mask, *kept = ctx.saved_tensors
    return x, mask, tuple(t.numpy() for t in kept)


class FusedSort(torch.autograd.Function):
    """Soft sorted values of the rows of ``x`` (R, n), standardization and inverse map fused;
    with ``mask`` (R, n) bool, of each row's real entries (positions ``>= c`` are 0)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        eps: float,
        mode: str,
        descending: bool,
        standardize: bool,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        k = _kernels()
        from ._pav_numba import _scratch

        xn = x.detach().contiguous().numpy()
        rows, n = xn.shape
        perm = _argsort_rows(xn)
        mn, masked = _mask_arrays(mask)
        s = _rho(mn if masked else None, n)[0] / eps
        reg = fss.REGS[mode]
        lo, hi = _bounds(x.dtype)
        out = np.empty_like(xn)
        w = np.empty((rows, n))
        o = np.empty((rows, n))
        pi = np.empty((rows, n))
        aux = np.empty((rows, n))
        blk = np.empty((rows, n), np.int64)
        ds = np.empty((rows, n)) if standardize else np.empty((1, 1))
        stats = np.empty((rows, 3))
        cnt = np.empty(rows, np.int64)
        chunks = _threads(rows, n)
        args = (
            xn,
            perm,
            s,
            reg,
            standardize,
            descending,
            lo,
            hi,
            out,
            w,
            o,
            pi,
            aux,
            blk,
            ds,
            stats,
            mn,
            masked,
            cnt,
        )
        if chunks:
            with _guard():
                k.sort_fwd_par(*args, *_scratch(chunks, n))
        else:
            k.sort_fwd_serial(*args, *_scratch(1, n))
        _save(ctx, x, mask, masked, (perm, o, pi, aux, blk, w, ds, stats, cnt))
        ctx.cfg = (eps, mode, descending, standardize, reg, lo, hi)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, mask, arrays = _saved(ctx)
        eps, mode, descending, standardize, reg, lo, hi = ctx.cfg
        if torch.is_grad_enabled():  # create_graph=True: differentiable composite gradient
            with torch.enable_grad():
                y = _composite_sort(x, eps, mode, descending, standardize, mask)
                (gx,) = torch.autograd.grad(y, x, gy, create_graph=True)
            return gx, None, None, None, None, None
        perm, o, pi, aux, blk, w, ds, stats, cnt = arrays
        masked = ctx.masked
        k = _kernels()
        xn = x.detach().contiguous().numpy()
        rows, n = xn.shape
        gyn = gy.detach().contiguous().numpy()
        gx = np.empty_like(xn)
        chunks = _threads(rows, n)
        tmp = np.empty((max(chunks, 1), 3, n))
        args = (gyn, xn, perm, reg, standardize, descending, lo, hi, o, pi, aux, blk, w, ds, stats)
        args = (*args, gx, masked, cnt)

        def kernel() -> torch.Tensor:
            if chunks:
                with _guard():
                    k.sort_bwd_par(*args, tmp)
            else:
                k.sort_bwd_serial(*args, tmp)
            return torch.from_numpy(gx)

        def fallback() -> torch.Tensor:
            return _composite_grad(_composite_sort, x, gy, (*ctx.cfg[:4], mask))

        return _guarded_grad("fused sort", kernel, fallback), None, None, None, None, None


class FusedRank(torch.autograd.Function):
    """Soft ranks of the rows of ``x`` (R, n) in ``[1, n]``, standardization fused; with ``mask``
    (R, n) bool, ranks in ``[1, c]`` of each row's real entries (0 at padded entries)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        eps: float,
        mode: str,
        descending: bool,
        standardize: bool,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        k = _rank_kernels()
        from ._pav_numba import _scratch

        xn = x.detach().contiguous().numpy()
        rows, n = xn.shape
        perm = _argsort_rows(xn)
        mn, masked = _mask_arrays(mask)
        rho = _rho(mn if masked else None, n)[0]
        reg = fss.REGS[mode]
        out = np.empty_like(xn)
        s = np.empty((rows, n))
        o = np.empty((rows, n))
        pi = np.empty((rows, n))
        aux = np.empty((rows, n))
        blk = np.empty((rows, n), np.int64)
        stats = np.empty((rows, 2))
        cnt = np.empty(rows, np.int64)
        chunks = _threads(rows, n)
        args = (xn, perm, rho, reg, standardize, descending, 1.0 / eps, out, s, o, pi, aux, blk)
        args = (*args, stats, mn, masked, cnt)
        if chunks:
            with _guard():
                k.rank_fwd_par(*args, *_scratch(chunks, n))
        else:
            k.rank_fwd_serial(*args, *_scratch(1, n))
        _save(ctx, x, mask, masked, (perm, pi, aux, blk, stats, s, cnt))
        ctx.cfg = (eps, mode, descending, standardize, reg)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, mask, arrays = _saved(ctx)
        eps, mode, descending, standardize, reg = ctx.cfg
        if torch.is_grad_enabled():
            with torch.enable_grad():
                y = _composite_rank(x, eps, mode, descending, standardize, mask)
                (gx,) = torch.autograd.grad(y, x, gy, create_graph=True)
            return gx, None, None, None, None, None
        perm, pi, aux, blk, stats, s, cnt = arrays
        masked = ctx.masked
        k = _rank_kernels()
        xn = x.detach().contiguous().numpy()
        rows, n = xn.shape
        gyn = gy.detach().contiguous().numpy()
        gx = np.empty_like(xn)
        chunks = _threads(rows, n)
        tmp = np.empty((max(chunks, 1), 3, n))
        args = (gyn, xn, perm, reg, standardize, descending, 1.0 / eps, pi, aux, blk, stats, s, gx)
        args = (*args, masked, cnt)

        def kernel() -> torch.Tensor:
            if chunks:
                with _guard():
                    k.rank_bwd_par(*args, tmp)
            else:
                k.rank_bwd_serial(*args, tmp)
            return torch.from_numpy(gx)

        def fallback() -> torch.Tensor:
            return _composite_grad(_composite_rank, x, gy, (*ctx.cfg[:4], mask))

        return _guarded_grad("fused rank", kernel, fallback), None, None, None, None, None


def sorted_values(
    x: torch.Tensor,
    softness: Softness,
    mode: str,
    *,
    descending: bool,
    standardize: bool,
    options: dict[str, Any] | None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Soft sorted values of ``x`` along the last axis (x-space), or None if not eligible.

    With ``mask`` (bool, ``x``'s shape): values of each slice's ``c`` real entries at positions
    ``< c``, 0 after."""
    if mode not in fss.REGS:
        return None
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    m2 = None if mask is None else mask.reshape(x2.shape)
    eps = _eligible(x2, softness, options)
    if eps is None:
        return None
    if _kernel_guard.broken("fused sort"):
        return None  # the composite path
    out = _kernel_guard.guarded(
        "fused sort",
        lambda: FusedSort.apply(x2, eps, mode, bool(descending), bool(standardize), m2),
        lambda: None,
        "the composite path",
    )
    return None if out is None else out.reshape(*lead, x.shape[-1])


def rank(
    x: torch.Tensor,
    softness: Softness,
    mode: str,
    *,
    descending: bool,
    standardize: bool,
    options: dict[str, Any] | None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Soft ranks of ``x`` along the last axis, or None if not eligible.

    With ``mask`` (bool, ``x``'s shape): ranks in ``[1, c]`` of each slice's real entries, 0 at
    padded entries."""
    if mode not in fss.REGS:
        return None
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    m2 = None if mask is None else mask.reshape(x2.shape)
    eps = _eligible(x2, softness, options)
    if eps is None:
        return None
    if _kernel_guard.broken("fused rank"):
        return None  # the composite path
    out = _kernel_guard.guarded(
        "fused rank",
        lambda: FusedRank.apply(x2, eps, mode, bool(descending), bool(standardize), m2),
        lambda: None,
        "the composite path",
    )
    return None if out is None else out.reshape(*lead, x.shape[-1])
