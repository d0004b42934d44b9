r"""Differentiable bitonic sorting network (Petersen et al., 2021).

The scores are padded to the next power of two ``m`` with detached values that sort last
(``max + margin``, margin ``>= 1 + 100 s`` so pads never mix with real entries) and passed through
the :math:`\log_2 m (\log_2 m + 1)/2` layers of a bitonic network. Each comparator on a pair
:math:`(a, b)` (``a`` at the position that receives the minimum) is a soft swap with
:math:`\alpha = \sigma_s(b - a)` (the mode's :func:`~softtorch.sigmoidal.sigmoidal`, the probability
that ``a`` is the smaller):

.. math:: \min{}' = \alpha a + (1 - \alpha) b, \qquad \max{}' = \alpha b + (1 - \alpha) a.

Sorted values need only the per-layer swap weights (``O(m log^2 m)`` memory, no ``n x n``
matrix). Each layer acts on positions by a symmetric doubly stochastic matrix :math:`L_t`, so the
soft permutation is :math:`P = L_T \cdots L_1` and :math:`P^\top = L_1 \cdots L_T`: ranks
(:math:`r = P^\top (1..n)`) and single rows (:math:`e_i^\top P = (P^\top e_i)^\top`) come from
running the layers backwards over a few vectors without forming ``P``. Small requests run
these layers under ordinary autograd (:func:`network_transpose`, higher-order gradients work).
Many rows (more than :data:`ROWS_BUDGET` elements of activations) take an in-place path without
an autograd graph that recomputes in backward (first-order gradients), whichever is cheaper of

* :mod:`._transposed`: the transposed layers over blocks of the wanted unit vectors,
  ``T m / 2`` soft swaps per row (``topk`` with small ``k``, a few quantiles), and
* :mod:`._columns`: the columns of ``P`` of the ``n`` real entries from the input side, where
  the first stages are block diagonal (about ``13 m^2`` soft swaps for all rows at
  ``m = 2^{14}`` instead of ``52 m^2``: ``argsort``).

Both use numba kernels on CPU (:mod:`._numba`; the transposed rows in groups of layers that
stay in L1, :mod:`._grouped`) and torch ops elsewhere; the schedule of the
layers is in :mod:`._schedule`. Descending order is the ascending result reversed.
"""

from __future__ import annotations

from typing import Any

import torch

from ...._sigmoidal_math import step
from ....simplex import chunked_rows, is_concrete
from ..._base import RowsOrderingMethod, Softness, register
from ..._logspace import log_add
from ._columns import column_cost, network_columns
from ._counts import PerRowCounts, log_weight_pair
from ._schedule import layers_on, pad_value, padded_size
from ._transposed import network_rows

_layers = layers_on
_padded_size = padded_size


def _pad(z: torch.Tensor, m: int, softness: Softness) -> torch.Tensor:
    n = z.shape[-1]
    if m == n:
        return z
    with torch.no_grad():
        pad = pad_value(z.amax(dim=-1, keepdim=True), z.amin(dim=-1, keepdim=True), softness)
        pad = pad.expand(*z.shape[:-1], m - n)
    return torch.cat((z, pad), dim=-1)


def network_forward(
    z: torch.Tensor, softness: Softness, mode: str
) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Ascending soft sorted (padded) scores ``(..., m)``, the per-layer weights, and ``m``.

    A layer with distance ``j`` pairs positions ``(i, i + j)`` inside blocks of ``2j``: with
    ``a``, ``b`` the lower / upper entries and ``d = b - a``, ``alpha = sigma(sign * d)`` and
    ``a' = b - alpha d``, ``b' = a + alpha d`` (the soft swap for either direction).
    """
    m = _padded_size(z.shape[-1])
    v = _pad(z, m, softness)
    batch = v.shape[:-1]
    alphas = []
    for j, sign in _layers(m, v):
        pairs = v.reshape(*batch, m // (2 * j), 2, j)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        d = b - a
        alpha = step(sign * d, softness, mode)
        ad = alpha * d
        v = torch.stack((b - ad, a + ad), dim=-2).reshape(*batch, m)
        alphas.append(alpha)
    return v, alphas, m


def network_transpose(alphas: list[torch.Tensor], vecs: torch.Tensor, m: int) -> torch.Tensor:
    """``P^T @ vecs`` for position-space vectors ``vecs`` of shape ``(..., m, c)``.

    Every layer's matrix is symmetric, so ``P^T`` applies the same soft swaps in reverse order.
    """
    out = vecs
    batch, c = vecs.shape[:-2], vecs.shape[-1]
    for (j, _), alpha in zip(reversed(_layers(m, vecs)), reversed(alphas)):
        pairs = out.reshape(*batch, m // (2 * j), 2, j, c)
        a, b = pairs[..., 0, :, :], pairs[..., 1, :, :]
        ad = alpha.unsqueeze(-1) * (b - a)
        out = torch.stack((b - ad, a + ad), dim=-3).reshape(*batch, m, c)
    return out


#: Elements per block of rows when many permutation rows are requested (see :func:`_rows`).
ROWS_BUDGET: int = 1 << 24


def _rows(
    z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, descending: bool
) -> torch.Tensor:
    """Rows ``positions`` of the soft permutation: ``(..., len(positions), n)``.

    Row ``i`` is ``(P^T e_i)^T``. The rows are computed in blocks (recomputed in backward, see
    :func:`softtorch.simplex.chunked_rows`) so that autograd keeps at most about
    ``ROWS_BUDGET`` elements of per-layer activations instead of ``layers x m x rows``.
    """
    n = z.shape[-1]
    asc = (n - 1 - positions) if descending else positions
    _, alphas, m = network_forward(z, softness, mode)
    batch = z.shape[:-1]

    def fn(a: int, b: int, *weights: torch.Tensor) -> torch.Tensor:
        r = b - a
        eye = torch.zeros(m, r, device=z.device, dtype=z.dtype)
        eye[asc[a:b], torch.arange(r, device=z.device)] = 1.0
        cols = network_transpose(list(weights), eye.expand(*batch, m, r), m)  # P^T e_i
        return cols.transpose(-1, -2)[..., :n]

    per_row = max(z.numel() // max(n, 1), 1) * m * max(len(alphas), 1)
    big = asc.shape[0] * per_row > ROWS_BUDGET and m > 1 and z.numel() > 0
    if big and all(is_concrete(a) for a in alphas):
        if column_cost(m, n) < len(alphas) * (m // 2) * asc.shape[0]:
            out = network_columns(asc, n, alphas)
        else:
            out = network_rows(asc, n, alphas, ROWS_BUDGET)
        return out.reshape(*batch, asc.shape[0], n)
    return chunked_rows(  # type: ignore[return-value]
        fn,
        asc.shape[0],
        alphas,
        row_numel=per_row,
        cat_dim=-2,
        budget=ROWS_BUDGET,
        plain_budget=ROWS_BUDGET,
    )


@register
class SortingNetwork(RowsOrderingMethod):
    """Soft bitonic sorting network; see the module docstring."""

    name = "sorting_network"
    mask_strategy = "compact"  # the network depends on the padded length

    def with_counts(self, counts: torch.Tensor) -> PerRowCounts:
        """The method on compacted rows with ``counts`` real entries each, all rows in one
        batched pass (:mod:`._counts`; used by masked ops instead of one call per count).

        Args:
            counts: real entries per row, a long tensor ``(R,)``.
        """
        return PerRowCounts(counts)

    def sorted_values(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        v, _, _ = network_forward(z, softness, mode)
        v = v[..., : z.shape[-1]]
        return v.flip(-1) if descending else v

    def permutation_rows(
        self,
        z: torch.Tensor,
        positions: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _rows(z, positions, softness, mode, descending)

    def rank(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = True,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        n = z.shape[-1]
        _, alphas, m = network_forward(z, softness, mode)
        pos = torch.arange(1, m + 1, device=z.device, dtype=z.dtype)
        if descending:
            pos = n + 1 - pos
        vec = pos.unsqueeze(-1).expand(*z.shape[:-1], m, 1)
        return network_transpose(alphas, vec, m)[..., :n, 0]

    # log-space hooks (``return_log_probs=True``): the same layers in the log-sum-exp semiring
    # (see :func:`_log_rows`), so soft swaps that saturate in float do not underflow to -inf

    def log_permutation_rows(
        self,
        z: torch.Tensor,
        positions: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        return _log_rows(z, positions, softness, mode, descending)

def _log_weights(z: torch.Tensor, softness: Softness, mode: str) -> tuple[list[torch.Tensor], int]:
    r"""Per layer :math:`\log \alpha` and :math:`\log(1 - \alpha)` (flat list) and ``m``.

    Runs :func:`network_forward`'s soft swaps; ``smooth`` takes
    :math:`\log \sigma(\pm x / s) = -\mathrm{softplus}(\mp x / s)` (finite when :math:`\alpha`
    rounds to 0 or 1),
    the piecewise modes the log of their (exactly 0 / 1 outside the band) steps.
    """
    m = _padded_size(z.shape[-1])
    v = _pad(z, m, softness)
    batch = v.shape[:-1]
    logw: list[torch.Tensor] = []
    for j, sign in _layers(m, v):
        pairs = v.reshape(*batch, m // (2 * j), 2, j)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        d = b - a
        x = sign * d
        alpha = step(x, softness, mode)
        logw += log_weight_pair(x, alpha, softness, mode)
        ad = alpha * d
        v = torch.stack((b - ad, a + ad), dim=-2).reshape(*batch, m)
    return logw, m


def _log_rows(
    z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, descending: bool
) -> torch.Tensor:
    r"""Log of rows ``positions`` of the soft permutation, ``(..., len(positions), n)``.

    :func:`network_transpose` in the log-sum-exp semiring: a soft swap maps log-entries
    ``(a, b)`` to ``(log(alpha e^a + (1 - alpha) e^b), log((1 - alpha) e^a + alpha e^b))``,
    starting from ``log e_i`` (``0`` / ``-inf``); row blocks as in :func:`_rows`.
    """
    n = z.shape[-1]
    asc = (n - 1 - positions) if descending else positions
    logw, m = _log_weights(z, softness, mode)
    batch = z.shape[:-1]

    def fn(a: int, b: int, *weights: torch.Tensor) -> torch.Tensor:
        r = b - a
        out = torch.full((m, r), float("-inf"), device=z.device, dtype=z.dtype)
        out[asc[a:b], torch.arange(r, device=z.device)] = 0.0
        out = out.expand(*batch, m, r)
        pairs = list(zip(weights[0::2], weights[1::2]))
        for (j, _), (la, lb) in zip(reversed(_layers(m, z)), reversed(pairs)):
            blocks = out.reshape(*batch, m // (2 * j), 2, j, r)
            lo, hi = blocks[..., 0, :, :], blocks[..., 1, :, :]
            la, lb = la.unsqueeze(-1), lb.unsqueeze(-1)
            new_lo, new_hi = log_add(lb + hi, la + lo), log_add(lb + lo, la + hi)
            out = torch.stack((new_lo, new_hi), dim=-3).reshape(*batch, m, r)
        return out.transpose(-1, -2)[..., :n]

    per_row = max(z.numel() // max(n, 1), 1) * m * max(len(logw), 1)
    return chunked_rows(  # type: ignore[return-value]
        fn,
        asc.shape[0],
        logw,
        row_numel=per_row,
        cat_dim=-2,
        budget=ROWS_BUDGET,
        plain_budget=ROWS_BUDGET,
    )
