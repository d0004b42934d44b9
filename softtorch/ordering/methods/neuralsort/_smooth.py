r"""NeuralSort (``smooth``) values and ranks without ``n x n`` tensors.

Scores of row ``i`` (coefficient :math:`c_i = \pm(n - 1 - 2i)`, see :mod:`.neuralsort`) over the
inputs ``j``: :math:`S_{ij} = (c_i z_j - B_j)/s`, :math:`P_{i,:} = \mathrm{softmax}(S_{i,:})`.

**Sums.** :math:`B_j = \sum_k |z_j - z_k|_s` costs ``n^2 / 2`` soft absolute values on the
sorted scores (each pair once, :mod:`._numba` on CPU, row blocks of torch ops
elsewhere), with prefix sums for the pairs beyond the float64 cutoff (where the soft absolute value
is exactly :math:`|d|`), ``O(n)`` memory; one more pass in backward for
:math:`\sum_k (h_m + h_k)\varphi'(z_m - z_k)`, on the sorted scores the plan keeps.

**Bands.** On the inputs sorted ascending (:math:`\hat z`, :math:`\hat B`), row ``i`` changes by
:math:`S_{i,j+1} - S_{i,j} = (\hat z_{j+1} - \hat z_j)(c_i - g_j)/s` with the secant slopes
:math:`g_j = (\hat B_{j+1} - \hat B_j)/(\hat z_{j+1} - \hat z_j)`. When ``g`` is non-decreasing
(``B`` convex on the points; checked, up to a total score wiggle of ``WIGGLE``) every row is
unimodal: its maximum is at the first ``j`` with :math:`g_j \ge c_i` and the entries within
``T`` of it form one contiguous band, found by bisection. Outside the band
:math:`e^{S_{ij} - \max_j S_{ij}} < e^{-T}` underflows to exactly ``0`` in the dense softmax of
the input dtype (``T`` = 110 for float32, 750 for float64), so evaluating the softmax on the bands
only gives the dense result. The bands are ``O(\sqrt{T s n / \rho})`` wide for density ``\rho``
of the scores (a few hundred at ``n = 10^4``, ``s = 0.1``); rows are processed in blocks of a few
MB and recomputed in backward. When the check fails the caller keeps the dense path.

Gradients (first order; ``dS = P \odot (G - \langle P, G\rangle_{row})`` for the loss gradient
``G`` w.r.t. ``P``): :math:`\nabla z_j \mathrel{+}= \sum_i dS_{ij} c_i / s`,
:math:`\nabla B_j = -\sum_i dS_{ij}/s`, then :math:`\nabla z` of ``B`` by the second pass.
Requested rows of ``P`` are written as zeros plus the bands (exactly the dense rows; on CPU one
kernel zeroes and fills each row while it is in cache), ``G`` is the incoming gradient read on the
bands only (an expanded gradient is never materialised). Values ``y = P x``:
:math:`G_{ij} = g_i x_j`; ranks ``r = num / den`` with the column sums
:math:`num_k = \sum_i (i + 1) P_{ik}`, :math:`den_k = \sum_i P_{ik}`:
:math:`G_{ik} = ((i + 1) - r_k)\, g_k / den_k`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ....kernels import _kernel_guard
from .._stream import run_kernel

#: Elements per row block of the banded softmax and of the torch sums.
BLOCK_ELEMENTS: int = 1 << 18
#: Largest total score rise allowed where the secant slopes decrease (see the module docstring).
WIGGLE: float = 1e-3
#: Scores from which the sums kernels run on several threads (when torch has several).
PARALLEL_MIN: int = 1 << 11
#: Elements of written rows of ``P`` from which their kernels run on several threads.
ROWS_PARALLEL_MIN: int = 1 << 16
_HAS_NUMBA = importlib.util.find_spec("numba") is not None
_FAMILY = "neuralsort sums"
_backend = "auto"


def set_backend(backend: str) -> None:
    """``"auto"`` (numba on CPU when installed) or ``"torch"`` (row blocks of torch ops)."""
    global _backend
    if backend not in ("auto", "torch"):
        raise ValueError(f"unknown backend {backend!r}; valid backends are: ('auto', 'torch')")
    _backend = backend


def _cutoff(dtype: torch.dtype) -> float:
    """Score gap beyond which the dense softmax of ``dtype`` gives exactly 0 (plus margin)."""
    return 110.0 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 750.0


def _phi_parts(d: torch.Tensor, inv_s: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = d.abs()
    e = (a * -inv_s).exp()
    return a, e


def _torch_sums(z: torch.Tensor, inv_s: float) -> torch.Tensor:
    n = z.shape[-1]
    rows = max(1, BLOCK_ELEMENTS // max(n, 1))
    out = torch.empty_like(z)
    for a in range(0, n, rows):
        d = z[..., a : a + rows, None] - z[..., None, :]
        ad, e = _phi_parts(d, inv_s)
        out[..., a : a + rows] = (ad * (1.0 - e) / (1.0 + e)).sum(-1)
    return out


def _torch_sums_vjp(z: torch.Tensor, h: torch.Tensor, inv_s: float) -> torch.Tensor:
    n = z.shape[-1]
    rows = max(1, BLOCK_ELEMENTS // max(n, 1))
    out = torch.empty_like(z)
    for a in range(0, n, rows):
        d = z[..., a : a + rows, None] - z[..., None, :]
        ad, e = _phi_parts(d, inv_s)
        q = 1.0 / (1.0 + e)
        der = ((1.0 - e) * q + 2.0 * inv_s * ad * e * q * q) * d.sign()
        out[..., a : a + rows] = ((h[..., a : a + rows, None] + h[..., None, :]) * der).sum(-1)
    return out


def _numba() -> Any:
    return importlib.import_module("softtorch.ordering.methods.neuralsort._numba")


def _use_numba(z: torch.Tensor) -> bool:
    return _backend == "auto" and _HAS_NUMBA and z.device.type == "cpu"


def _run_sums(name: str, *args: Any) -> Any:
    """Run sums kernel ``name``, on torch's intra-op threads when there are several."""
    return run_kernel(_numba(), name, *args, work=args[0].size, min_work=PARALLEL_MIN)


def sorted_sums(zs: torch.Tensor, inv_s: float) -> torch.Tensor:
    r""":math:`B_j = \sum_k \varphi(z_j - z_k)` of float64 ``zs`` ``(..., n)`` sorted ascending
    along the last axis (no gradient)."""
    if not _use_numba(zs):
        return _torch_sums(zs, inv_s)
    flat = zs.reshape(-1, zs.shape[-1]).contiguous()

    def kernel() -> torch.Tensor:
        return torch.from_numpy(_run_sums("abs_sums", flat.numpy(), inv_s)).reshape(zs.shape)

    return _kernel_guard.guarded(_FAMILY, kernel, lambda: _torch_sums(zs, inv_s), "the torch sums")


def sorted_sums_vjp(zs: torch.Tensor, h: torch.Tensor, inv_s: float) -> torch.Tensor:
    r""":math:`\sum_k (h_m + h_k)\varphi'(z_m - z_k)` (gradient of :math:`\langle h, B\rangle`)
    for float64 ``zs`` sorted ascending along the last axis."""
    if not _use_numba(zs):
        return _torch_sums_vjp(zs, h, inv_s)
    flat = zs.reshape(-1, zs.shape[-1]).contiguous()
    hf = h.reshape(-1, h.shape[-1]).contiguous()

    def kernel() -> torch.Tensor:
        out = _run_sums("abs_sums_vjp", flat.numpy(), hf.numpy(), inv_s)
        return torch.from_numpy(out).reshape(zs.shape)

    return _kernel_guard.guarded(
        _FAMILY, kernel, lambda: _torch_sums_vjp(zs, h, inv_s), "the torch sums"
    )


def abs_sums(z: torch.Tensor, inv_s: float) -> torch.Tensor:
    r""":math:`B_j = \sum_k \varphi(z_j - z_k)` of float64 ``z`` ``(..., n)`` (no gradient)."""
    zs, perm = z.sort(dim=-1)
    return _unsort(sorted_sums(zs, inv_s), perm)


def abs_sums_vjp(z: torch.Tensor, h: torch.Tensor, inv_s: float) -> torch.Tensor:
    r""":math:`\sum_k (h_m + h_k)\varphi'(z_m - z_k)` (gradient of :math:`\langle h, B\rangle`)."""
    zs, perm = z.sort(dim=-1)
    return _unsort(sorted_sums_vjp(zs, h.gather(-1, perm), inv_s), perm)


def _bands(
    zs: torch.Tensor, bs: torch.Tensor, coef: torch.Tensor, inv_s: float, cut: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(lo, hi)`` ``(..., m)``: the band of each row on the sorted inputs, or None when the rows
    are not unimodal (see the module docstring)."""
    n = zs.shape[-1]
    dz = zs[..., 1:] - zs[..., :-1]
    dist = dz > 0
    g = torch.where(dist, (bs[..., 1:] - bs[..., :-1]) / torch.where(dist, dz, 1.0), -torch.inf)
    env = g.cummax(-1).values
    prev = torch.cat((torch.full_like(env[..., :1], -torch.inf), env[..., :-1]), dim=-1)
    wiggle = torch.where(dist & (g < prev), (prev - g) * dz * inv_s, 0.0).sum(-1)
    if not bool((wiggle <= WIGGLE).all()):
        return None
    c = coef.expand(*zs.shape[:-1], coef.shape[-1]).contiguous()
    top = torch.searchsorted(env.contiguous(), c).clamp_max(n - 1)  # (..., m)

    def score(j: torch.Tensor) -> torch.Tensor:
        return (c * zs.gather(-1, j) - bs.gather(-1, j)) * inv_s

    floor = score(top) - cut - 10.0 * WIGGLE
    steps = max(1, int(n).bit_length() + 1)
    # right edge: largest j >= top with score >= floor (lo_r true, hi_r false / sentinel n)
    lo_r, hi_r = top.clone(), torch.full_like(top, n)
    lo_l, hi_l = top.clone(), torch.full_like(top, -1)  # left edge: smallest j <= top
    for _ in range(steps):
        mid = (lo_r + hi_r) // 2
        ok = score(mid.clamp_max(n - 1)) >= floor
        move = hi_r - lo_r > 1
        lo_r = torch.where(move & ok, mid, lo_r)
        hi_r = torch.where(move & ~ok, mid, hi_r)
        mid = (lo_l + hi_l + 1) // 2
        ok = score(mid.clamp_min(0)) >= floor
        move = lo_l - hi_l > 1
        lo_l = torch.where(move & ok, mid, lo_l)
        hi_l = torch.where(move & ~ok, mid, hi_l)
    return lo_l, lo_r


class _AbsSums(torch.autograd.Function):
    """Differentiable :math:`B = \\sum_k \\varphi(z - z_k)` through the fused passes."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, inv_s: float) -> torch.Tensor:  # type: ignore[override]
        zd = z.detach().to(torch.float64)
        ctx.save_for_backward(z)
        ctx.inv_s = inv_s
        return abs_sums(zd, inv_s).to(z.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (z,) = ctx.saved_tensors
        zd = z.detach().to(torch.float64)
        return abs_sums_vjp(zd, g.to(torch.float64), ctx.inv_s).to(z.dtype), None


def soft_abs_sums(z: torch.Tensor, softness: float) -> torch.Tensor:
    r""":math:`B_j = \sum_k |z_j - z_k|_s` (``smooth``) with first-order gradients, ``O(n)`` memory.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
    """
    return _AbsSums.apply(z, 1.0 / softness)


class _Plan:
    """Detached float64 data of one streamed call: sorted scores, sums, bands (``width``: the
    widest band, measured when None)."""

    def __init__(
        self,
        zs: torch.Tensor,
        perm: torch.Tensor,
        bs: torch.Tensor,
        coef: torch.Tensor,
        lo: torch.Tensor,
        hi: torch.Tensor,
        inv_s: float,
        width: int | None = None,
    ) -> None:
        self.zs, self.perm, self.bs, self.coef = zs, perm, bs, coef
        self.lo, self.hi, self.inv_s = lo, hi, inv_s
        if width is None:
            width = int((hi - lo).amax()) + 1 if lo.numel() else 1
        self.width = width

    def blocks(self) -> list[tuple[int, int]]:
        m = self.coef.shape[-1]
        batch = max(1, self.zs.numel() // max(self.zs.shape[-1], 1))
        rows = max(1, BLOCK_ELEMENTS // (batch * self.width))
        return [(a, min(a + rows, m)) for a in range(0, m, rows)]

    def rows(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(P, idx, c)`` of rows ``a:b``: band probabilities ``(..., r, W)``, their sorted
        column indices (clamped) and the rows' coefficients ``(r,)``."""
        n = self.zs.shape[-1]
        lo = self.lo[..., a:b]
        idx = lo.unsqueeze(-1) + torch.arange(self.width, device=lo.device)
        valid = idx <= self.hi[..., a:b].unsqueeze(-1)
        idx = idx.clamp_max(n - 1)
        shape = (*idx.shape[:-1], n)
        zg = self.zs.unsqueeze(-2).expand(shape).gather(-1, idx)
        bg = self.bs.unsqueeze(-2).expand(shape).gather(-1, idx)
        c = self.coef[a:b]
        s = (c.unsqueeze(-1) * zg - bg) * self.inv_s
        p = torch.softmax(torch.where(valid, s, -torch.inf), dim=-1)
        return p, idx, c

    def gather(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``t`` (..., n) at the band indices ``idx`` (..., r, W)."""
        return t.unsqueeze(-2).expand(*idx.shape[:-1], t.shape[-1]).gather(-1, idx)


def plan(
    z: torch.Tensor, softness: float, descending: bool, positions: torch.Tensor | None = None
) -> _Plan | None:
    """Sums, sorted scores and the bands of the rows ``positions`` (all ``n`` rows when None);
    None when a row is not unimodal."""
    inv_s = 1.0 / softness
    zd = z.detach().to(torch.float64)
    n = z.shape[-1]
    zs, perm = zd.sort(dim=-1)
    bs = sorted_sums(zs, inv_s)
    c = (n - 1 - 2 * torch.arange(n, device=z.device)).to(torch.float64)
    coef = c if descending else -c
    if positions is not None:
        coef = coef.index_select(0, positions)
    bands = _bands(zs, bs, coef, inv_s, _cutoff(z.dtype))
    if bands is None:
        return None
    return _Plan(zs, perm, bs, coef, bands[0], bands[1], inv_s)


def _scatter(acc: torch.Tensor, idx: torch.Tensor, val: torch.Tensor) -> None:
    acc.scatter_add_(-1, idx.flatten(-2), val.flatten(-2))


def _unsort(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(t).scatter_(-1, perm, t)


def _finish_grads(pl: _Plan, z: torch.Tensor, gzs: torch.Tensor, gbs: torch.Tensor) -> torch.Tensor:
    """``grad z`` from the sorted direct part and the sorted gradient of the sums."""
    gz = _unsort(gzs + sorted_sums_vjp(pl.zs, gbs, pl.inv_s), pl.perm)
    return gz.to(z.dtype)


def _flat(t: torch.Tensor) -> Any:
    return t.reshape(-1, t.shape[-1]).contiguous().numpy()


def _kernel_call(pl: _Plan, name: str, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run the band kernel ``name`` on the flattened plan (+ ``args``), reshape its outputs."""
    fn = getattr(_numba(), name)
    out = fn(
        _flat(pl.zs), _flat(pl.bs), *[_flat(a) for a in args[:1]], pl.coef.numpy(),
        _flat(pl.lo), _flat(pl.hi), pl.inv_s, *[_flat(a) for a in args[1:]],
    )  # fmt: skip
    outs = out if isinstance(out, tuple) else (out,)
    lead = pl.zs.shape[:-1]
    return tuple(torch.from_numpy(o).reshape(*lead, o.shape[-1]) for o in outs)


def _guarded(pl: _Plan, kernel: Any, fallback: Any) -> Any:
    if not _use_numba(pl.zs):
        return fallback()
    return _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch bands")


def _band_values(pl: _Plan, xs: torch.Tensor) -> torch.Tensor:
    def torch_path() -> torch.Tensor:
        y = pl.zs.new_empty(*pl.zs.shape[:-1], pl.coef.shape[-1])
        for a, b in pl.blocks():
            p, idx, _ = pl.rows(a, b)
            y[..., a:b] = (p * pl.gather(xs, idx)).sum(-1)
        return y

    return _guarded(pl, lambda: _kernel_call(pl, "band_values", xs)[0], torch_path)


def _band_values_vjp(
    pl: _Plan, xs: torch.Tensor, y: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    def torch_path() -> tuple[torch.Tensor, ...]:
        gxs, gzs, gbs = torch.zeros_like(xs), torch.zeros_like(xs), torch.zeros_like(xs)
        for a, b in pl.blocks():
            p, idx, c = pl.rows(a, b)
            pg = p * g[..., a:b].unsqueeze(-1)
            _scatter(gxs, idx, pg)
            ds = pg * (pl.gather(xs, idx) - y[..., a:b].unsqueeze(-1))
            _scatter(gzs, idx, ds * (c.unsqueeze(-1) * pl.inv_s))
            _scatter(gbs, idx, ds * -pl.inv_s)
        return gxs, gzs, gbs

    return _guarded(pl, lambda: _kernel_call(pl, "band_values_vjp", xs, y, g), torch_path)


def _band_colsums(pl: _Plan) -> tuple[torch.Tensor, ...]:
    def torch_path() -> tuple[torch.Tensor, ...]:
        num, den = torch.zeros_like(pl.zs), torch.zeros_like(pl.zs)
        for a, b in pl.blocks():
            p, idx, _ = pl.rows(a, b)
            pos = torch.arange(a + 1, b + 1, device=p.device, dtype=p.dtype)
            _scatter(num, idx, p * pos.unsqueeze(-1))
            _scatter(den, idx, p)
        return num, den

    return _guarded(pl, lambda: _kernel_call(pl, "band_colsums"), torch_path)


def _band_colsums_vjp(
    pl: _Plan, dnum: torch.Tensor, dden: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    def torch_path() -> tuple[torch.Tensor, ...]:
        gzs, gbs = torch.zeros_like(pl.zs), torch.zeros_like(pl.zs)
        for a, b in pl.blocks():
            p, idx, c = pl.rows(a, b)
            pos = torch.arange(a + 1, b + 1, device=p.device, dtype=p.dtype)
            big_g = pos.unsqueeze(-1) * pl.gather(dnum, idx) + pl.gather(dden, idx)
            pg = p * big_g
            ds = pg - p * pg.sum(-1, keepdim=True)
            _scatter(gzs, idx, ds * (c.unsqueeze(-1) * pl.inv_s))
            _scatter(gbs, idx, ds * -pl.inv_s)
        return gzs, gbs

    def kernel() -> tuple[torch.Tensor, ...]:
        # the kernel takes (zs, bs, coef, lo, hi, inv_s, dnum, dden): no array before coef
        fn = _numba().band_colsums_vjp
        out = fn(
            _flat(pl.zs), _flat(pl.bs), pl.coef.numpy(), _flat(pl.lo), _flat(pl.hi),
            pl.inv_s, _flat(dnum), _flat(dden),
        )  # fmt: skip
        lead = pl.zs.shape[:-1]
        return tuple(torch.from_numpy(o).reshape(*lead, o.shape[-1]) for o in out)

    return _guarded(pl, kernel, torch_path)


def _save(ctx: Any, pl: _Plan, *tensors: torch.Tensor | None) -> None:
    """Keep ``tensors`` and the plan's tensors for the backward pass as saved tensors (freed
    once the backward pass has run; saved-tensor hooks such as ``torch.utils.checkpoint`` and
    offloading see them), only the plan's Python numbers on ``ctx``."""
    ctx.save_for_backward(*tensors, pl.zs, pl.perm, pl.bs, pl.coef, pl.lo, pl.hi)
    ctx.inv_s, ctx.width = pl.inv_s, pl.width


def _saved(ctx: Any) -> tuple[list[torch.Tensor], _Plan]:
    """``(tensors, plan)`` as kept by :func:`_save`."""
    *kept, zs, perm, bs, coef, lo, hi = ctx.saved_tensors
    return kept, _Plan(zs, perm, bs, coef, lo, hi, ctx.inv_s, ctx.width)


class _Values(torch.autograd.Function):
    """``y = P x`` on the bands (rows: sorted positions, ``y`` in sorted order)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, x: torch.Tensor, pl: _Plan) -> torch.Tensor:  # type: ignore[override]
        xs = x.detach().to(torch.float64).gather(-1, pl.perm)
        y = _band_values(pl, xs)
        _save(ctx, pl, z, x, xs, y)
        return y.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (z, x, xs, y), pl = _saved(ctx)
        gxs, gzs, gbs = _band_values_vjp(pl, xs, y, g.to(torch.float64).contiguous())
        gz = _finish_grads(pl, z, gzs, gbs) if ctx.needs_input_grad[0] else None
        gx = _unsort(gxs, pl.perm).to(x.dtype) if ctx.needs_input_grad[1] else None
        return gz, gx, None


class _Rank(torch.autograd.Function):
    """``r = num / den`` from the column sums of the bands (``r`` in sorted order)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, pl: _Plan) -> torch.Tensor:  # type: ignore[override]
        num, den = _band_colsums(pl)
        n = z.shape[-1]
        ok = ~(den <= torch.finfo(z.dtype).tiny)
        safe = torch.where(ok, den, 1.0)
        r = torch.where(ok, num / safe, (n + 1) / 2.0)
        _save(ctx, pl, z, r, ok, safe)
        return _unsort(r, pl.perm).to(z.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (z, r, ok, den), pl = _saved(ctx)
        gs = torch.where(ok, g.to(torch.float64).gather(-1, pl.perm), 0.0) / den
        gzs, gbs = _band_colsums_vjp(pl, gs, -gs * r)
        return _finish_grads(pl, z, gzs, gbs), None


def values(
    z: torch.Tensor, x: torch.Tensor, softness: float, descending: bool
) -> torch.Tensor | None:
    """NeuralSort's ``P @ x`` (``smooth``) on the bands, or None when the bands do not apply.

    Args:
        z: finite scores ``(..., n)``.
        x: finite values of ``z``'s shape.
        softness: ``s > 0``.
        descending: rows in descending order.
    """
    pl = plan(z, softness, descending)
    return None if pl is None else _Values.apply(z, x, pl)


def rank(z: torch.Tensor, softness: float, descending: bool) -> torch.Tensor | None:
    """NeuralSort's ranks (``smooth``) on the bands, or None when the bands do not apply.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        descending: rank 1 for the largest score.
    """
    pl = plan(z, softness, descending)
    return None if pl is None else _Rank.apply(z, pl)


_KERNEL_DTYPES = (torch.float32, torch.float64)


def _perm_rows_fill(pl: _Plan, out: torch.Tensor) -> None:
    """Write the rows of ``P`` (zeros plus bands) into ``out`` ``(..., m, n)``."""

    def torch_path() -> None:
        out.zero_()
        for a, b in pl.blocks():
            p, idx, _ = pl.rows(a, b)
            out[..., a:b, :].scatter_add_(-1, pl.gather(pl.perm, idx), p.to(out.dtype))

    def kernel() -> None:
        flat = out.view(-1, *out.shape[-2:]).numpy()
        args = (
            _flat(pl.zs), _flat(pl.bs), pl.coef.numpy(), _flat(pl.lo), _flat(pl.hi),
            pl.inv_s, _flat(pl.perm), flat,
        )  # fmt: skip
        run_kernel(_numba(), "band_rows", *args, work=out.numel(), min_work=ROWS_PARALLEL_MIN)

    if out.dtype not in _KERNEL_DTYPES or not out.is_contiguous():
        return torch_path()
    return _guarded(pl, kernel, torch_path)


def _perm_rows_vjp(pl: _Plan, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted ``(gz, gb)`` of ``<g, P_rows>`` (``g`` read on the bands only)."""

    def torch_path() -> tuple[torch.Tensor, torch.Tensor]:
        gzs, gbs = torch.zeros_like(pl.zs), torch.zeros_like(pl.zs)
        for a, b in pl.blocks():
            p, idx, c = pl.rows(a, b)
            gb = g[..., a:b, :].gather(-1, pl.gather(pl.perm, idx)).to(p.dtype)
            pg = p * gb
            ds = pg - p * pg.sum(-1, keepdim=True)
            _scatter(gzs, idx, ds * (c.unsqueeze(-1) * pl.inv_s))
            _scatter(gbs, idx, ds * -pl.inv_s)
        return gzs, gbs

    def kernel() -> tuple[torch.Tensor, torch.Tensor]:
        gg = g.reshape(-1, *g.shape[-2:]).numpy()  # any strides (an expanded g stays a view)
        args = (
            _flat(pl.zs), _flat(pl.bs), pl.coef.numpy(), _flat(pl.lo), _flat(pl.hi),
            pl.inv_s, _flat(pl.perm), gg,
        )  # fmt: skip
        work = pl.lo.numel() * pl.width
        gz, gb = run_kernel(
            _numba(), "band_rows_vjp", *args, work=work, min_work=ROWS_PARALLEL_MIN
        )
        lead = pl.zs.shape[:-1]
        return torch.from_numpy(gz).reshape(*lead, -1), torch.from_numpy(gb).reshape(*lead, -1)

    if g.dtype not in _KERNEL_DTYPES:
        return torch_path()
    return _guarded(pl, kernel, torch_path)


class _PermRows(torch.autograd.Function):
    """Rows of ``P`` written as zeros plus their bands (exactly the dense rows)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, pl: _Plan) -> torch.Tensor:  # type: ignore[override]
        m, n = pl.coef.shape[-1], z.shape[-1]
        out = z.new_empty(*z.shape[:-1], m, n)
        _perm_rows_fill(pl, out)
        _save(ctx, pl, z)
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (z,), pl = _saved(ctx)
        if g is None:
            return None, None
        gzs, gbs = _perm_rows_vjp(pl, g)
        return _finish_grads(pl, z, gzs, gbs), None


def permutation_rows(
    z: torch.Tensor, positions: torch.Tensor, softness: float, descending: bool
) -> torch.Tensor | None:
    """Rows ``positions`` of NeuralSort's soft permutation (``smooth``), zeros outside the
    bands; None when the bands do not apply.

    Args:
        z: finite scores ``(..., n)``.
        positions: 1-D int64 rows.
        softness: ``s > 0``.
        descending: rows in descending order.
    """
    pl = plan(z, softness, descending, positions)
    return None if pl is None else _PermRows.apply(z, pl)


def permutation_with_values(
    z: torch.Tensor,
    x: torch.Tensor,
    softness: float,
    descending: bool,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(P, P @ x)`` (rows ``positions``, all rows when None) sharing one plan; None when the
    bands do not apply. The values are their own banded op: the rows get no ``m x n`` gradient
    from them.

    Args:
        z: finite scores ``(..., n)``.
        x: finite values of ``z``'s shape.
        softness: ``s > 0``.
        descending: rows in descending order.
        positions: 1-D int64 rows (all ``n`` rows when None).
    """
    pl = plan(z, softness, descending, positions)
    if pl is None:
        return None
    return _PermRows.apply(z, pl), _Values.apply(z, x, pl)
