r"""SoftSort (``smooth``) without ``n x n`` autograd tensors: values, ranks and soft permutations.

With the anchors the sorted scores themselves, ``P @ x`` and the ranks are Laplace-kernel
smoothings on the sorted points (:mod:`._laplace`, ``O(n)`` memory). A requested soft permutation
``P`` (``argsort``, ``sort`` with indices) is written row by row (CPU: one fused numba pass per
row, :mod:`._numba`, rows split over torch's intra-op threads; elsewhere blocks of torch
ops),
:math:`P_{ij} = \exp(-|a_i - z_j| / s - \log D_i)` with the row normalisers
:math:`D_i = \sum_j e^{-|a_i - z_j|/s}` from the same scans, and backward recomputes each block:
with the incoming gradients ``G`` (of ``P``) and ``g`` (of ``y = P x``),
:math:`dS_{ij} = P_{ij}(G_{ij} + g_i x_j - r_i)`, :math:`r_i = \sum_j P_{ij}(G_{ij} + g_i x_j)`,

.. math:: \nabla a_i = -\frac1s \sum_j dS_{ij}\,\mathrm{sign}(a_i - z_j), \qquad
   \nabla z_j = \frac1s \sum_i dS_{ij}\,\mathrm{sign}(a_i - z_j), \qquad
   \nabla x_j = \sum_i P_{ij} g_i.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ....kernels import _kernel_guard
from ... import _take
from .._stream import run_kernel
from ._laplace import BLOCK, kernel_sums, laplace_smooth

_HAS_NUMBA = importlib.util.find_spec("numba") is not None
_FAMILY = "softsort rows"
_KERNEL_DTYPES = (torch.float32, torch.float64)
_backend = "auto"


def set_backend(backend: str) -> None:
    """``"auto"`` (numba kernels for written permutations on CPU when installed) or ``"torch"``
    (blocks of torch ops)."""
    global _backend
    if backend not in ("auto", "torch"):
        raise ValueError(f"unknown backend {backend!r}; valid backends are: ('auto', 'torch')")
    _backend = backend


def _use_numba(t: torch.Tensor) -> bool:
    return (
        _backend == "auto" and _HAS_NUMBA and t.device.type == "cpu" and t.dtype in _KERNEL_DTYPES
    )


def _numba() -> Any:
    return importlib.import_module("softtorch.ordering.methods.softsort._numba")


def _flat(t: torch.Tensor) -> Any:
    return t.reshape(-1, t.shape[-1]).contiguous().numpy()


def _ascending(t: torch.Tensor, descending: bool) -> torch.Tensor:
    return t.flip(-1) if descending else t


def softsort_values(
    z: torch.Tensor, x: torch.Tensor, softness: float, descending: bool, block: int = BLOCK
) -> torch.Tensor:
    r"""SoftSort's ``P @ x`` (rows: the sorted scores as anchors) without ``P``.

    Args:
        z: finite scores ``(..., n)``.
        x: finite values of ``z``'s shape.
        softness: ``s > 0``.
        descending: anchors in descending order.
        block: points per dense block of the scans.
    """
    zs, idx = _take.sort(z, descending=descending)
    xs = x.gather(-1, idx)
    y = laplace_smooth(_ascending(zs, descending), _ascending(xs, descending), softness, block)
    return _ascending(y, descending)


def softsort_rank(
    z: torch.Tensor, softness: float, descending: bool, block: int = BLOCK
) -> torch.Tensor:
    r"""SoftSort's ranks :math:`r_k = \sum_i i\,\mathrm{softmax}_i(-|\hat z_i - z_k| / s)`: the
    same smoothing with the positions ``1..n`` as weights, read back at each input's position.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        descending: position 1 is the largest score.
        block: points per dense block of the scans.
    """
    zs, idx = _take.sort(z, descending=descending)
    pos = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    y = laplace_smooth(_ascending(zs, descending), _ascending(pos, descending), softness, block)
    y = _ascending(y, descending)
    return torch.zeros_like(y).scatter(-1, idx, y)


#: Elements per row block of a written soft permutation (a cache-sized block).
PERM_BLOCK: int = 1 << 16
#: Elements of a written permutation from which its kernels run on several threads.
PARALLEL_MIN: int = 1 << 16


def _log_norms(z: torch.Tensor, softness: float, descending: bool, block: int) -> torch.Tensor:
    r""":math:`\log D_i` (float64) for the anchors ``sort(z)`` in the requested order."""
    zs = _take.sort(z.detach().to(torch.float64), descending=descending)[0]
    u = _ascending(zs, descending)
    k1, _ = kernel_sums(u, torch.ones_like(u).unsqueeze(-2), 1.0 / softness, block)
    return _ascending(k1[..., 0, :], descending).log()


def _perm_block(
    a: torch.Tensor, z: torch.Tensor, logd: torch.Tensor, inv_s: float, out: torch.Tensor
) -> torch.Tensor:
    """``out = exp(-|a_i - z_j| / s - log D_i)`` for a block of anchors ``a`` (..., r)."""
    torch.sub(a.unsqueeze(-1), z.unsqueeze(-2), out=out)
    return out.abs_().mul_(-inv_s).sub_(logd.unsqueeze(-1)).exp_()


def _row_blocks(m: int, z: torch.Tensor) -> list[tuple[int, int]]:
    rows = max(1, PERM_BLOCK // max(z.numel(), 1))
    return [(r0, min(r0 + rows, m)) for r0 in range(0, m, rows)]


def _fill(
    a: torch.Tensor, z: torch.Tensor, ld: torch.Tensor, inv_s: float, out: torch.Tensor
) -> None:
    """Write ``P`` ``(..., m, n)`` into ``out`` (numba kernel, or row blocks of torch ops)."""

    def torch_path() -> None:
        for r0, r1 in _row_blocks(a.shape[-1], z):
            _perm_block(a[..., r0:r1], z, ld[..., r0:r1], inv_s, out[..., r0:r1, :])

    def kernel() -> None:
        rows = out.view(-1, *out.shape[-2:]).numpy()
        args = (_flat(a), _flat(z), _flat(ld), _scalar(inv_s, z), rows)
        run_kernel(_numba(), "perm_rows", *args, work=out.numel(), min_work=PARALLEL_MIN)

    if not _use_numba(z):
        return torch_path()
    return _kernel_guard.guarded(_FAMILY, kernel, torch_path, "the torch rows")


def _scalar(v: float, like: torch.Tensor) -> Any:
    return like.new_tensor(v).numpy()[()]  # a numpy scalar of ``like``'s dtype


def _perm_vjp(
    a: torch.Tensor, z: torch.Tensor, ld: torch.Tensor, inv_s: float, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad a, grad z)`` of ``<g, P>`` (recomputing ``P`` block by block)."""

    def torch_path() -> tuple[torch.Tensor, torch.Tensor]:
        ga = torch.zeros_like(a)
        gz = torch.zeros_like(z)
        m, n = a.shape[-1], z.shape[-1]
        buf = z.new_empty(*z.shape[:-1], min(m, _row_blocks(m, z)[0][1]), n)
        for r0, r1 in _row_blocks(m, z):
            blk = buf[..., : r1 - r0, :]
            sg = (a[..., r0:r1].unsqueeze(-1) - z.unsqueeze(-2)).sign_()
            p = _perm_block(a[..., r0:r1], z, ld[..., r0:r1], inv_s, blk)
            gb = g[..., r0:r1, :]
            ds = p.mul_(gb - (p * gb).sum(-1, keepdim=True)).mul_(sg)
            ga[..., r0:r1] = ds.sum(-1) * -inv_s
            gz += ds.sum(-2) * inv_s
        return ga, gz

    def kernel() -> tuple[torch.Tensor, torch.Tensor]:
        gg = g.to(z.dtype).reshape(-1, *g.shape[-2:]).numpy()  # any strides: no copy
        args = (_flat(a), _flat(z), _flat(ld), _scalar(inv_s, z), gg)
        work = a.numel() * z.shape[-1]
        ga, gz = run_kernel(_numba(), "perm_rows_vjp", *args, work=work, min_work=PARALLEL_MIN)
        return (
            torch.from_numpy(ga).reshape(a.shape).to(a.dtype),
            torch.from_numpy(gz).reshape(z.shape).to(z.dtype),
        )

    if not _use_numba(z):
        return torch_path()
    return _kernel_guard.guarded(_FAMILY, kernel, torch_path, "the torch rows")


class _Perm(torch.autograd.Function):
    """Rows ``P_{i,:} = softmax(-|a_i - z| / s)`` written row by row (block by block without
    numba); saves ``a``, ``z`` and the ``O(n)`` log-normalisers, recomputes rows in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, a: torch.Tensor, z: torch.Tensor, logd: torch.Tensor, inv_s: float
    ) -> torch.Tensor:
        m, n = a.shape[-1], z.shape[-1]
        ld = logd.to(z.dtype)
        out = z.new_empty(*z.shape[:-1], m, n)
        _fill(a, z, ld, inv_s, out)
        ctx.save_for_backward(a, z, ld)
        ctx.inv_s = inv_s
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        a, z, ld = ctx.saved_tensors
        if g is None:
            return None, None, None, None
        ga, gz = _perm_vjp(a, z, ld, ctx.inv_s, g)
        return ga, gz, None, None


def softsort_permutation(
    z: torch.Tensor,
    softness: float,
    descending: bool,
    positions: torch.Tensor | None = None,
    block: int = BLOCK,
) -> torch.Tensor:
    """SoftSort's soft permutation ``(..., n, n)`` (or its rows ``positions``), written block by
    block with ``O(n)`` autograd memory besides the result.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        descending: rows in descending order.
        positions: 1-D int64 rows to return (all rows when None).
        block: points per dense block of the normaliser scans.
    """
    a = _take.sort(z, descending=descending)[0]
    logd = _log_norms(z, softness, descending, block)
    if positions is not None:
        a = _take.index_select_last(a, positions)
        logd = logd.index_select(-1, positions)
    return _Perm.apply(a, z, logd, 1.0 / softness)


def softsort_topk_permutation(
    z: torch.Tensor, k: int, softness: float, block: int = BLOCK
) -> torch.Tensor:
    """The first ``k`` rows of the descending soft permutation (anchors: ``topk(z, k)``).

    Args:
        z: finite scores ``(..., n)``.
        k: rows.
        softness: ``s > 0``.
        block: points per dense block of the normaliser scans.
    """
    a = _take.topk(z, k)[0]
    logd = _log_norms(z, softness, True, block)[..., :k]
    return _Perm.apply(a, z, logd, 1.0 / softness)
