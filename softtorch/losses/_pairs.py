r"""The pair sums of ``kendall_loss``: the signed sum :math:`N` and the tie-free pair weight.

For lists ``(..., n)`` with predictions ``z``, targets ``t`` and item weights ``w`` (0 at padded
entries), and the soft sign :math:`\varphi = 2\,\mathrm{sigmoidal}(\cdot, s, \mathrm{mode}) - 1`
(``sign`` in ``hard`` mode):

.. math::

    N = \sum_{i \ne j} w_i w_j\, \mathrm{sign}(t_i - t_j)\, \varphi(z_i - z_j), \qquad
    T = \sum_{i \ne j} w_i w_j\, [t_i \ne t_j] = (\textstyle\sum_i w_i)^2 - \sum_i w_i G_i,

with :math:`G_i` the weight of the items whose target equals :math:`t_i` (``i`` included).

Cost of :math:`N` per list. Every soft sign here is exactly :math:`\pm 1` outside a band
:math:`|z_i - z_j| < h`: ``c0`` / ``c1`` / ``c2`` are polynomials of :math:`v = d / (5 s)` for
:math:`|v| < 1` (:math:`v`, :math:`(3v - v^3)/2`, :math:`(15v - 10v^3 + 3v^5)/8`), so
:math:`h = 5 s`; ``smooth`` (:math:`\tanh(d / 2s)`) rounds to exactly :math:`\pm 1` in float64
from :math:`|d| = 40 s` on (``SMOOTH_CUTOFF``), so :math:`h = 40 s`; ``hard`` has the empty band.
The numba kernels (:mod:`._pairs_numba`; CPU float tensors, a float softness, eager mode, numba
installed) split the pairs there:

* the pairs outside the band count :math:`\pm w_i w_j` by a sweep in target order over Fenwick
  trees indexed by the prediction ranks, :math:`O(n \log n)`;
* the pairs inside the band (a window of the sorted predictions) are evaluated one by one, each
  unordered pair once, values and closed-form gradients (outside pairs have zero gradient):
  :math:`O(P)` for :math:`P` band pairs, exact to rounding at any softness.

So ``smooth``, ``c1``, ``c2`` cost :math:`O(n \log n + P)` time and :math:`O(n)` memory, forward
and gradient; :math:`P` is at most :math:`n(n-1)/2` (a band wider than the spread of the scores,
e.g. ``smooth`` at softness 0.1 on standardized scores) and about
:math:`n^2 h / \mathrm{spread}` for scores spread evenly over a range much wider than the band.
``hard`` takes the sweep (:math:`O(n \log n)`); ``c0`` the band kernel too, unless its
band holds more than ``C0_BAND_PAIRS_PER_ITEM`` pairs per item and is no narrower than
1/1024 of the spread of the row, where the sweep sums the band's linear part by moments in the
Fenwick trees (:math:`O(n \log n)`, rounding error about eps * spread / h). Elsewhere (other
devices, ``torch.compile`` / ``torch.func``, a tensor softness, no numba) :math:`N` is the
:math:`O(n^2)` pair formula in row blocks of ``block`` items, :math:`O(n \cdot \mathrm{block})`
memory (each block recomputed in the backward pass: ``torch.utils.checkpoint``).

:math:`T` costs :math:`O(n \log n)` (a sort of the targets) in every mode.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from .._sigmoidal import SoftnessLike, step
from .._sigmoidal_math import BAND
from ..kernels.fused import use_kernel

#: Elements ``rows x block x n`` of one block of the :math:`O(n^2)` path (about 32 MB in
#: float64 per temporary).
BLOCK_ELEMENTS: int = 1 << 22
#: Below this many ``rows x n`` elements the kernel runs on one thread.
PARALLEL_MIN_ELEMENTS: int = 1 << 15
#: A single row at least this long splits its band pairs over the numba threads.
PARALLEL_MIN_ROW: int = 1 << 12
#: The modes the Fenwick sweep with band moments serves (``hard``; ``c0`` with a wide band).
SWEEP_MODES: tuple[str, ...] = ("c0", "hard")
#: The modes of the band kernel: the soft sign is exactly :math:`\pm 1` outside a band.
BAND_MODES: tuple[str, ...] = ("smooth", "c0", "c1", "c2")
#: ``smooth``: :math:`2\sigma(x) - 1` rounds to exactly :math:`\pm 1` in float64 for
#: :math:`|x| \ge 40` (:math:`2 e^{-40} \approx 8.5 \cdot 10^{-18}`, below half an ulp of 1);
#: the band of the kernel is :math:`|z_i - z_j| < 40\,s`.
SMOOTH_CUTOFF: float = 40.0
#: ``c0`` takes the band kernel (instead of the sweep's band moments) when its band holds at
#: most this many pairs per item.
C0_BAND_PAIRS_PER_ITEM: int = 128


def _soft_sign(d: torch.Tensor, softness: SoftnessLike, mode: str) -> torch.Tensor:
    return torch.sign(d) if mode == "hard" else 2.0 * step(d, softness, mode) - 1.0


def _block_sum(
    z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, i0: int, i1: int, softness: Any, mode: str
) -> torch.Tensor:
    r""":math:`\sum_{i_0 \le i < i_1, j} w_i w_j \mathrm{sign}(t_i - t_j) \varphi(z_i - z_j)`."""
    dz = z[..., i0:i1, None] - z[..., None, :]
    st = torch.sign(t[..., i0:i1, None] - t[..., None, :])
    sp = _soft_sign(dz, softness, mode)
    return (w[..., i0:i1, None] * (st * sp) * w[..., None, :]).sum((-1, -2))


def pair_sum_dense(
    z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, softness: SoftnessLike, mode: str
) -> torch.Tensor:
    r""":math:`N` (shape ``z.shape[:-1]``) by the :math:`O(n^2)` pair formula in row blocks.

    Args:
        z: predictions ``(..., n)``.
        t: targets, same shape (no gradient).
        w: item weights, same shape (0 at padded entries).
        softness: the soft sign's softness.
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    n = z.shape[-1]
    rows = max(1, z.numel() // max(n, 1))
    block = max(1, BLOCK_ELEMENTS // max(rows * n, 1))
    t = t.detach()
    plain = not (torch.compiler.is_compiling() or _wrapped(z) or _wrapped(w))
    if block >= n or not plain or not torch.is_grad_enabled():
        parts = [_block_sum(z, t, w, i0, min(i0 + block, n), softness, mode)
                 for i0 in range(0, n, block)]  # fmt: skip
        return torch.stack(parts).sum(0) if parts else z.new_zeros(z.shape[:-1])
    total = z.new_zeros(z.shape[:-1])
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        total = total + checkpoint(
            _block_sum, z, t, w, i0, i1, softness, mode, use_reentrant=False
        )
    return total


def _wrapped(x: torch.Tensor) -> bool:
    # torch internal, checked on torch 2.13.0
    return bool(torch._C._functorch.is_functorch_wrapped_tensor(x))


def _kernels() -> Any:
    return importlib.import_module("softtorch.losses._pairs_numba")


class SweepPairSum(torch.autograd.Function):
    r""":math:`N` of the rows of ``z`` (R, n) by a numba kernel: the Fenwick sweep (``hard``,
    ``c0`` with a wide band) or band + count (``smooth``, ``c1``, ``c2``, ``c0`` with a narrow
    band); gradients in closed form."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, softness: float, mode: str
    ) -> torch.Tensor:
        k = _kernels()
        zn = z.detach().to(torch.float64).contiguous().numpy()
        tn = t.detach().to(torch.float64).contiguous().numpy()
        wn = w.detach().to(torch.float64).contiguous().numpy()
        rows, n = zn.shape
        num = np.empty(rows)
        d = np.empty((rows, n))
        e = np.empty((rows, n))
        par = rows > 1 and rows * n >= PARALLEL_MIN_ELEMENTS
        # a single long row: its band pairs in parallel parts (one per numba thread)
        chunks = _nb().get_num_threads() if rows == 1 and n >= PARALLEL_MIN_ROW else 1
        with _guard(par or chunks > 1):
            if mode == "hard":
                fn = k.pair_sum_par if par else k.pair_sum_serial
                fn(zn, tn, wn, 0.0, True, num, d, e)
            else:
                h, scale, code = _band(k, float(softness), mode)
                limit = C0_BAND_PAIRS_PER_ITEM
                if par:
                    k.band_sum_par(zn, tn, wn, h, scale, code, limit, num, d, e)
                else:
                    k.band_sum_serial(zn, tn, wn, h, scale, code, limit, chunks, num, d, e)
        ctx.save_for_backward(z, t, w)
        ctx.grads = (torch.from_numpy(d), torch.from_numpy(e))
        ctx.cfg = (softness, mode)
        return torch.from_numpy(num).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        z, t, w = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the differentiable dense formula
            with torch.enable_grad():
                num = pair_sum_dense(z, t, w, *ctx.cfg)
                gz, gw = torch.autograd.grad(num, (z, w), g, create_graph=True, allow_unused=True)
            return gz, None, gw, None, None
        d, e = ctx.grads
        gd = g.to(torch.float64).unsqueeze(-1)
        gz = (gd * e).to(z.dtype) if ctx.needs_input_grad[0] else None
        gw = (gd * d).to(w.dtype) if ctx.needs_input_grad[2] else None
        return gz, None, gw, None, None


def _nb() -> Any:
    return importlib.import_module("numba")


def _guard(par: bool) -> Any:
    if not par:
        return contextlib.nullcontext()
    return importlib.import_module("softtorch.kernels._numba_kernels").parallel_guard()


def _band(k: Any, softness: float, mode: str) -> tuple[float, float, int]:
    """``(h, scale, code)`` of the band kernel: band half-width, unit of the distance, formula."""
    if mode == "smooth":
        return SMOOTH_CUTOFF * softness, softness, k.SMOOTH
    code = {"c0": k.C0, "c1": k.C1, "c2": k.C2}[mode]
    return BAND * softness, BAND * softness, code


def pair_sum(
    z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, softness: SoftnessLike, mode: str
) -> torch.Tensor:
    r""":math:`N` of every list (shape ``z.shape[:-1]``): the numba kernels where they apply
    (:math:`O(n \log n + P)`, :math:`P` the pairs inside the soft sign's band; see the module
    docstring), else the blocked :math:`O(n^2)` pair formula.

    Args:
        z: predictions ``(..., n)`` (finite; NaN rows are the caller's business).
        t: targets, same shape (no gradient).
        w: item weights, same shape (0 at padded entries).
        softness: the soft sign's softness (> 0).
        mode: ``hard``, ``smooth``, ``c0``, ``c1`` or ``c2``.
    """
    n = z.shape[-1]
    kernel = mode in BAND_MODES + SWEEP_MODES
    if kernel and n > 1 and z.numel() > 0 and use_kernel(softness, z, t, w):
        lead = z.shape[:-1]
        out = SweepPairSum.apply(
            z.reshape(-1, n), t.reshape(-1, n), w.reshape(-1, n), float(softness), mode
        )
        return out.reshape(lead)
    return pair_sum_dense(z, t, w, softness, mode)


def tie_free_weight(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`T = (\sum_i w_i)^2 - \sum_i w_i G_i` per list in :math:`O(n \log n)`: the weight
    of the pairs with distinct targets (``t`` without gradient; NaN targets are the caller's
    business).

    Args:
        t: targets ``(..., n)``.
        w: item weights, same shape.
    """
    ts, order = torch.sort(t.detach(), dim=-1)
    cw = torch.cumsum(w.gather(-1, order), dim=-1)
    cw = torch.cat((torch.zeros_like(cw[..., :1]), cw), dim=-1)
    lo = torch.searchsorted(ts.contiguous(), ts.contiguous(), right=False)
    hi = torch.searchsorted(ts.contiguous(), ts.contiguous(), right=True)
    g_sorted = cw.gather(-1, hi) - cw.gather(-1, lo)  # G of the sorted items
    ws = w.gather(-1, order)
    sw = w.sum(-1)
    return sw * sw - (ws * g_sorted).sum(-1)


__all__ = ["BAND_MODES", "BLOCK_ELEMENTS", "SMOOTH_CUTOFF", "SWEEP_MODES", "pair_sum",
           "pair_sum_dense", "tie_free_weight"]  # fmt: skip
