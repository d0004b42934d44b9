r"""The sorting network on rows with different numbers of real entries, in one batched pass.

Masked ops (:mod:`softtorch.ordering._masked`) hand the method compacted scores ``z``
``(R, n)``: row ``b`` holds its ``c_b`` real entries first. The result for row ``b`` must be the
network for ``c_b`` entries on them (padded to :math:`m_b = 2^{\lceil \log_2 c_b \rceil}` with
the pad score of those entries). The bitonic network for ``M = 2^{\lceil \log_2 n \rceil}``
contains the one for every :math:`m_b \le M`: its first :math:`T_b = L_b (L_b + 1) / 2` layers
(:math:`L_b = \log_2 m_b`, the stages merging blocks of at most :math:`m_b`) restricted to
positions :math:`< m_b` are exactly that network (same distances, same signs), and they never
mix positions :math:`< m_b` with the rest. So every row runs the ``M`` network on
``(z_1 .. z_{c_b}, pad_b, ..., pad_b)`` with its layers :math:`t \ge T_b` switched off
(``torch.where`` keeps the previous values exactly, and the weights of those layers get no
gradient): one pass for the whole batch, no per-count loop and no host read of the counts
(no graph break under ``torch.compile``). Soft permutation rows run the transposed layers the
same way (row ``i`` of row ``b``'s permutation starts from :math:`e_{a_b(i)}`, the ascending
position in its own ordering), under autograd in blocks of rows
(:func:`softtorch.simplex.chunked_rows`); many rows (more than :data:`ROWS_BUDGET` elements of
activations, eager mode) take the in-place kernels of :mod:`._transposed` instead (numba on CPU,
each row's depth passed to the kernel, first-order gradients).

Entries at positions :math:`\ge c_b` (sorted values, permutation rows and columns) are the pads'
and are filled by the caller.
"""

from __future__ import annotations

from typing import Any

import torch

from ...._sigmoidal_math import step
from ....simplex import chunked_rows, is_concrete
from ..._base import RowsOrderingMethod, Softness
from ..._logspace import log_add, safe_log
from ._schedule import layers_on, pad_value, padded_size
from ._transposed import network_rows

#: Elements per block of rows of the permutation (activations kept by autograd).
ROWS_BUDGET: int = 1 << 24


def log_weight_pair(
    x: torch.Tensor, alpha: torch.Tensor, softness: Softness, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\log \alpha` and :math:`\log(1 - \alpha)` of a soft swap with
    :math:`\alpha = \sigma_s(x)`: ``smooth`` takes :math:`\log \sigma(\pm x / s) =
    -\mathrm{softplus}(\mp x / s)` (finite where :math:`\alpha` rounds to 0 or 1), the
    piecewise modes the log of their steps.

    Args:
        x: the signed differences ``sign * (b - a)``.
        alpha: ``step(x, softness, mode)``.
        softness: the softness.
        mode: the mode.
    """
    if mode == "smooth":
        xs = x / softness
        softplus = torch.nn.functional.softplus
        return -softplus(-xs), -softplus(xs)
    return safe_log(alpha), safe_log(step(-x, softness, mode))


def _layer_counts(c: torch.Tensor, m: int) -> torch.Tensor:
    """Layers of the network for ``c`` entries: ``L (L + 1) / 2``, ``L = ceil(log2 c)``."""
    levels = torch.zeros_like(c)
    k = 1
    while k < m:
        levels = levels + (c > k).to(c.dtype)
        k *= 2
    return levels * (levels + 1) // 2


def network_forward_counts(
    z: torch.Tensor, c: torch.Tensor, softness: Softness, mode: str, *, log: bool = False
) -> tuple[torch.Tensor, list[Any], list[torch.Tensor], int]:
    """Per-row networks (module doc) on compacted scores ``z`` ``(R, n)`` with counts ``c``.

    Returns the soft sorted (padded) scores ``(R, M)``, per layer the weights ``alpha``
    ``(R, M / 2j, j)`` (or with ``log`` the pairs of log-weights), per layer whether each row
    runs it ``(R, 1, 1)``, and ``M``.
    """
    rows, n = z.shape
    m = padded_size(n)
    valid = torch.arange(n, device=z.device) < c.unsqueeze(-1)
    with torch.no_grad():
        top = torch.where(valid, z, -torch.inf).amax(dim=-1, keepdim=True)
        bottom = torch.where(valid, z, torch.inf).amin(dim=-1, keepdim=True)
        some = (c > 0).unsqueeze(-1)
        pad = pad_value(torch.where(some, top, 0.0), torch.where(some, bottom, 0.0), softness)
    v = torch.cat((torch.where(valid, z, pad), pad.expand(rows, m - n)), dim=-1)
    depth = _layer_counts(c, m)
    weights: list[Any] = []
    actives = []
    for t, (j, sign) in enumerate(layers_on(m, v)):
        act = (depth > t).view(rows, 1, 1)
        pairs = v.reshape(rows, m // (2 * j), 2, j)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        d = b - a
        x = sign * d
        alpha = step(x, softness, mode)
        ad = alpha * d
        new = torch.stack((b - ad, a + ad), dim=-2).reshape(rows, m)
        v = torch.where(act.view(rows, 1), new, v)
        weights.append(log_weight_pair(x, alpha, softness, mode) if log else alpha)
        actives.append(act)
    return v, weights, actives, m


def transpose_counts(
    alphas: list[torch.Tensor], actives: list[torch.Tensor], vecs: torch.Tensor, m: int
) -> torch.Tensor:
    """``P_b^T @ vecs_b`` per row for vectors ``vecs`` ``(R, M, C)`` (layers switched off per
    row keep the vectors)."""
    out = vecs
    rows, _, cols = vecs.shape
    layers = reversed(layers_on(m, vecs))
    for (j, _), alpha, act in zip(layers, reversed(alphas), reversed(actives)):
        pairs = out.reshape(rows, m // (2 * j), 2, j, cols)
        a, b = pairs[..., 0, :, :], pairs[..., 1, :, :]
        ad = alpha.unsqueeze(-1) * (b - a)
        new = torch.stack((b - ad, a + ad), dim=-3).reshape(rows, m, cols)
        out = torch.where(act, new, out)
    return out


def _log_transpose_counts(
    logw: list[tuple[torch.Tensor, torch.Tensor]], actives: list[torch.Tensor],
    out: torch.Tensor, m: int,
) -> torch.Tensor:  # fmt: skip
    """:func:`transpose_counts` in the log-sum-exp semiring."""
    rows, _, cols = out.shape
    layers = reversed(layers_on(m, out))
    for (j, _), (la, lb), act in zip(layers, reversed(logw), reversed(actives)):
        blocks = out.reshape(rows, m // (2 * j), 2, j, cols)
        lo, hi = blocks[..., 0, :, :], blocks[..., 1, :, :]
        la, lb = la.unsqueeze(-1), lb.unsqueeze(-1)
        new = torch.stack((log_add(lb + hi, la + lo), log_add(lb + lo, la + hi)), dim=-3)
        out = torch.where(act, new.reshape(rows, m, cols), out)
    return out


def _kernel_rows(
    asc: torch.Tensor, n: int, alphas: list[torch.Tensor], counts: torch.Tensor, m: int
) -> torch.Tensor:
    r"""Rows by the in-place transposed network (:func:`._transposed.network_rows`: numba layer
    groups on CPU, torch ops elsewhere, first-order gradients), each row's layers
    :math:`t \ge T_b` switched off: in run order (reversed) row ``b`` starts at layer
    :math:`T - T_b`.

    Args:
        asc: per row the start positions ``(R, r)``.
        n: the (compacted) row length.
        alphas: the per-layer weights ``(R, M / 2j, j)`` of :func:`network_forward_counts`.
        counts: real entries per row ``(R,)``.
        m: the network size ``M``.
    """
    first_on = len(alphas) - _layer_counts(counts, m)
    return network_rows(asc, n, alphas, ROWS_BUDGET, first_on)


class PerRowCounts(RowsOrderingMethod):
    """``sorting_network`` on compacted rows with ``counts`` real entries each (module doc).

    Args:
        counts: real entries per row, a long tensor ``(R,)``.
    """

    name = "sorting_network"

    def __init__(self, counts: torch.Tensor) -> None:
        self.counts = counts

    def _asc(self, positions: torch.Tensor, descending: bool) -> torch.Tensor:
        c = self.counts.unsqueeze(-1)
        pos = positions.unsqueeze(0).expand(c.shape[0], -1)
        return (c - 1 - pos).clamp(min=0) if descending else pos

    def sorted_values(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        v, _, _, _ = network_forward_counts(z, self.counts, softness, mode)
        v = v[:, : z.shape[-1]]
        if descending:
            v = v.gather(-1, self._asc(torch.arange(z.shape[-1], device=z.device), True))
        return v

    def rank(
        self, z: torch.Tensor, softness: Softness, mode: str, *, descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        rows, n = z.shape
        _, alphas, actives, m = network_forward_counts(z, self.counts, softness, mode)
        pos = torch.arange(1, m + 1, device=z.device, dtype=z.dtype).expand(rows, m)
        if descending:
            pos = self.counts.unsqueeze(-1).to(z.dtype) + 1 - pos
        return transpose_counts(alphas, actives, pos.unsqueeze(-1), m)[:, :n, 0]

    def _rows(
        self, z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str,
        descending: bool, log: bool,
    ) -> torch.Tensor:  # fmt: skip
        rows, n = z.shape
        asc = self._asc(positions, descending)
        _, weights, actives, m = network_forward_counts(z, self.counts, softness, mode, log=log)
        flat = [w for pair in weights for w in pair] if log else weights
        off, on = (-torch.inf, 0.0) if log else (0.0, 1.0)

        def fn(a: int, b: int, *ws: torch.Tensor) -> torch.Tensor:
            start = torch.full((rows, m, b - a), off, device=z.device, dtype=z.dtype)
            start = start.scatter(1, asc[:, a:b].unsqueeze(1), on)
            if log:
                pairs = list(zip(ws[0::2], ws[1::2]))
                out = _log_transpose_counts(pairs, actives, start, m)
            else:
                out = transpose_counts(list(ws), actives, start, m)
            return out.transpose(-1, -2)[..., :n]

        per_row = rows * m * max(len(flat), 1)
        big = asc.shape[1] * per_row > ROWS_BUDGET and m > 1 and z.numel() > 0
        if big and not log and all(is_concrete(w) for w in flat):
            return _kernel_rows(asc, n, flat, self.counts, m)
        return chunked_rows(  # type: ignore[return-value]
            fn, asc.shape[1], flat, row_numel=per_row, cat_dim=-2, budget=ROWS_BUDGET,
            plain_budget=ROWS_BUDGET,
        )  # fmt: skip

    def permutation_rows(
        self, z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._rows(z, positions, softness, mode, descending, log=False)

    def log_permutation_rows(
        self, z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, *,
        descending: bool = False, options: dict[str, Any] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        return self._rows(z, positions, softness, mode, descending, log=True)
