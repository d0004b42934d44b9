r"""Smooth max pooling: ``max_pool{1,2,3}d`` and ``adaptive_max_pool{1,2,3}d``.

Each window :math:`W` (torch's windows: stride, padding, dilation, ceil_mode; adaptive windows
``[floor(i L / m), ceil((i + 1) L / m))``; padding never counts) is reduced with

* ``smooth``: the log-mean-exp :math:`s \log \frac{1}{|W|}\sum_{j \in W} e^{x_j / s}`, between
  the window's mean and its maximum, equal to both on constant windows;
* ``c0`` / ``c1`` / ``c2``: the expected value :math:`\sum_j p_j x_j` under the mode's sparse
  projection :math:`p` of :math:`x_W / s` onto the simplex (exactly the maximum when it leads the
  window by a margin of order ``s``).

Windows are products of intervals, so the reduction runs once per spatial dim (exact for the
log-mean-exp, a nested expectation for the sparse modes). ``return_indices`` gives torch's
integer indices. Hard mode is torch's pooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._checks import _is_compiling
from ..kernels.pool import pair_pool
from ..kernels.pool import pool as fast_pool
from ..simplex import project_simplex
from .context import DECLINE, Ctx
from .tensor import wrap

Size = int | Sequence[int]


def _tuple(v: Any, nd: int, name: str) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * nd
    t = tuple(int(e) for e in v)
    if len(t) == 1:
        return t * nd
    if len(t) != nd:
        raise ValueError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    return t


def _windows(
    length: int, k: int, stride: int, pad: int, dil: int, ceil_mode: bool, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Positions ``(m, k)`` into the unpadded input and their validity for torch's windows."""
    span = dil * (k - 1) + 1
    if pad > span // 2:
        raise RuntimeError(
            f"pad should be at most half of effective kernel size, but got pad={pad}, "
            f"kernel_size={k} and dilation={dil}"
        )
    num = length + 2 * pad - span
    m = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (m - 1) * stride >= length + pad:
        m -= 1
    if m < 1:
        raise RuntimeError(f"max_pool: output size is too small (input length {length})")
    starts = torch.arange(m, device=device) * stride - pad
    pos = starts.unsqueeze(1) + torch.arange(k, device=device) * dil
    valid = (pos >= 0) & (pos < length)
    return pos.clamp(0, length - 1), valid


def _adaptive_windows(length: int, m: int, device: torch.device) -> tuple[Tensor, Tensor]:
    i = torch.arange(m, device=device)
    starts = (i * length) // m
    ends = -((-(i + 1) * length) // m)
    k = int((ends - starts).max()) if m else 1
    pos = starts.unsqueeze(1) + torch.arange(k, device=device)
    return pos.clamp(0, length - 1), pos < ends.unsqueeze(1)


def _reduce(x: Tensor, dim: int, pos: Tensor, valid: Tensor, c: Ctx) -> Tensor:
    """Pool ``x`` along ``dim`` over the windows ``pos`` (``(m, k)``, masked by ``valid``)."""
    xm = x.movedim(dim, -1)
    g = xm[..., pos]
    s = c.softness
    if c.mode == "smooth":
        top = g.masked_fill(~valid, float("-inf")).amax(-1, keepdim=True).detach()
        z = torch.where(valid, (g - top) / s, float("-inf"))
        count = valid.sum(-1).to(g.dtype)
        out = top.squeeze(-1) + s * (torch.logsumexp(z, -1) - torch.log(count))
    else:
        p = project_simplex(torch.where(valid, g / s, float("-inf")), c.mode)
        out = (p * torch.where(valid, g, 0.0)).sum(-1)
    return out.movedim(-1, dim)


def _pool(x: Tensor, windows: list[tuple[Tensor, Tensor]], c: Ctx) -> Tensor:
    """Pool ``x`` over ``windows`` (one ``(pos, valid)`` per trailing spatial dim): the fused
    pairs / strided windows of :func:`softtorch.kernels.pool.pool` (same values), or, while
    ``torch.compile`` traces (its window geometry reads tensor values), :func:`_reduce` per dim.
    """
    if not _is_compiling():
        return fast_pool(x, windows, c, _reduce)
    xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    nd = len(windows)
    for i, (pos, valid) in enumerate(windows):
        xc = _reduce(xc, xc.ndim - nd + i, pos, valid, c)
    return xc.to(x.dtype)


def _pairs(ks: tuple[int, ...], st: tuple[int, ...], pd: tuple[int, ...], dl: tuple[int, ...],
           ceil_mode: bool, spatial: Any) -> bool:
    """Windows of 2 with stride 2 on every dim (no padding or dilation, ``ceil_mode`` only with
    even lengths, every length at least 2) outside ``torch.compile`` tracing: the fast path of
    :func:`softtorch.kernels.pool.pair_pool`, which needs no window tensors."""
    return (all(k == 2 for k in ks) and all(v == 2 for v in st) and not any(pd)
            and all(d == 1 for d in dl) and all(int(n) >= 2 for n in spatial)
            and not (ceil_mode and any(int(n) % 2 for n in spatial)) and not _is_compiling())


def _check_input(x: Tensor, nd: int) -> bool:
    return isinstance(x, Tensor) and x.is_floating_point() and x.ndim in (nd + 1, nd + 2)


def _max_pool(nd: int, with_indices: bool) -> Any:
    exact_fn = getattr(torch.nn.functional, f"max_pool{nd}d_with_indices")

    def handler(
        c: Ctx, input: Tensor, kernel_size: Size, stride: Size | None = None, padding: Size = 0,
        dilation: Size = 1, ceil_mode: bool = False, return_indices: bool = False,
    ) -> Any:
        if not _check_input(input, nd):
            return DECLINE
        ks = _tuple(kernel_size, nd, "kernel_size")
        st = ks if stride is None or (not isinstance(stride, int) and len(stride) == 0) else (
            _tuple(stride, nd, "stride"))
        pd, dl = _tuple(padding, nd, "padding"), _tuple(dilation, nd, "dilation")
        spatial = input.shape[-nd:]

        def soft() -> Tensor:
            if _pairs(ks, st, pd, dl, ceil_mode, spatial):
                return pair_pool(input, nd, c.softness, c.mode)
            wins = [
                _windows(spatial[i], ks[i], st[i], pd[i], dl[i], ceil_mode, input.device)
                for i in range(nd)
            ]
            return _pool(input, wins, c)

        def exact() -> Any:
            return exact_fn(input, ks, st, pd, dl, ceil_mode, True)

        if with_indices or return_indices:
            res = exact()
            return c.value(soft, lambda: res[0]), wrap(res[1], c.carried)
        return c.value(soft, lambda: exact()[0])

    return handler


def _adaptive(nd: int, with_indices: bool) -> Any:
    exact_fn = getattr(torch.nn.functional, f"adaptive_max_pool{nd}d_with_indices")

    def handler(c: Ctx, input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
        if not _check_input(input, nd):
            return DECLINE
        spatial = input.shape[-nd:]
        sizes = (output_size,) * nd if isinstance(output_size, int) else tuple(output_size)
        if len(sizes) != nd:
            raise ValueError(f"output_size must have {nd} elements, got {output_size!r}")
        out = [spatial[i] if sizes[i] is None else int(sizes[i]) for i in range(nd)]

        def soft() -> Tensor:
            wins = [_adaptive_windows(spatial[i], out[i], input.device) for i in range(nd)]
            return _pool(input, wins, c)

        def exact() -> Any:
            return exact_fn(input, out, True)

        if with_indices or return_indices:
            res = exact()
            return c.value(soft, lambda: res[0]), wrap(res[1], c.carried)
        return c.value(soft, lambda: exact()[0])

    return handler


max_pool1d = _max_pool(1, False)
max_pool2d = _max_pool(2, False)
max_pool3d = _max_pool(3, False)
max_pool1d_with_indices = _max_pool(1, True)
max_pool2d_with_indices = _max_pool(2, True)
max_pool3d_with_indices = _max_pool(3, True)
adaptive_max_pool1d = _adaptive(1, False)
adaptive_max_pool2d = _adaptive(2, False)
adaptive_max_pool3d = _adaptive(3, False)
adaptive_max_pool1d_with_indices = _adaptive(1, True)
adaptive_max_pool2d_with_indices = _adaptive(2, True)
adaptive_max_pool3d_with_indices = _adaptive(3, True)
