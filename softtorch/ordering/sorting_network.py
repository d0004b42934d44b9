r"""Differentiable bitonic sorting network (Petersen et al., 2021).

The scores are padded to the next power of two ``m`` with detached values that sort last
(``max + margin``, margin ``>= 1 + 100 s`` so pads never mix with real entries) and passed through
the :math:`\log_2 m (\log_2 m + 1)/2` layers of a bitonic network. Each comparator on a pair
:math:`(a, b)` (``a`` at the position that receives the minimum) is a soft swap with
:math:`\alpha = \sigma_s(b - a)` (the mode's :func:`~softtorch.sigmoidal.sigmoidal`, the probability
that ``a`` is the smaller):

.. math:: \min{}' = \alpha a + (1 - \alpha) b, \qquad \max{}' = \alpha b + (1 - \alpha) a.

Sorted values need only the per-layer swap weights (``O(m log^2 m)`` memory). Each layer acts on
positions by a symmetric doubly stochastic matrix :math:`L_t`, so the soft permutation is
:math:`P = L_T \cdots L_1` and :math:`P^\top = L_1 \cdots L_T`: ranks
(:math:`r = P^\top (1..n)`) and single rows (:math:`e_i^\top P = (P^\top e_i)^\top`) come from running
the layers backwards over a few vectors, without forming ``P``; the full permutation runs them over
the identity (``n x m`` per layer). Descending order is the ascending result reversed.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from ..sigmoidal import sigmoidal
from ._base import OrderingMethod, Softness, register

Layer = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@functools.lru_cache(maxsize=64)
def _layers_cpu(m: int) -> tuple[Layer, ...]:
    """Per layer: positions receiving the minimum, the maximum, and the inverse interleaving."""
    layers = []
    k = 2
    while k <= m:
        j = k // 2
        while j > 0:
            lo, hi = [], []
            for i in range(m):
                partner = i ^ j
                if partner > i:
                    if i & k == 0:
                        lo.append(i)
                        hi.append(partner)
                    else:
                        lo.append(partner)
                        hi.append(i)
            lo_t = torch.tensor(lo, dtype=torch.long)
            hi_t = torch.tensor(hi, dtype=torch.long)
            inv = torch.argsort(torch.cat((lo_t, hi_t)))
            layers.append((lo_t, hi_t, inv))
            j //= 2
        k *= 2
    return tuple(layers)


_DEVICE_CACHE: dict[tuple[int, str], tuple[Layer, ...]] = {}


def _layers(m: int, device: torch.device) -> tuple[Layer, ...]:
    key = (m, str(device))
    if key not in _DEVICE_CACHE:
        _DEVICE_CACHE[key] = tuple(
            tuple(t.to(device) for t in layer) for layer in _layers_cpu(m)  # type: ignore[misc]
        )
    return _DEVICE_CACHE[key]


def _padded_size(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _pad(z: torch.Tensor, m: int, softness: Softness) -> torch.Tensor:
    n = z.shape[-1]
    if m == n:
        return z
    with torch.no_grad():
        top = z.amax(dim=-1, keepdim=True)
        spread = top - z.amin(dim=-1, keepdim=True)
        s = softness.detach() if isinstance(softness, torch.Tensor) else softness
        margin = 1.0 + 100.0 * s + spread + 1e-2 * top.abs()
        pad = (top + margin).expand(*z.shape[:-1], m - n)
    return torch.cat((z, pad), dim=-1)


def network_forward(
    z: torch.Tensor, softness: Softness, mode: str
) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Ascending soft sorted (padded) scores ``(..., m)``, the per-layer weights, and ``m``."""
    m = _padded_size(z.shape[-1])
    v = _pad(z, m, softness)
    alphas = []
    for lo, hi, inv in _layers(m, z.device):
        a = v.index_select(-1, lo)
        b = v.index_select(-1, hi)
        alpha = sigmoidal(b - a, softness, mode)
        new_lo = alpha * a + (1.0 - alpha) * b
        new_hi = alpha * b + (1.0 - alpha) * a
        v = torch.cat((new_lo, new_hi), dim=-1).index_select(-1, inv)
        alphas.append(alpha)
    return v, alphas, m


def network_transpose(alphas: list[torch.Tensor], vecs: torch.Tensor, m: int) -> torch.Tensor:
    """``P^T @ vecs`` for position-space vectors ``vecs`` of shape ``(..., m, c)``."""
    out = vecs
    for (lo, hi, inv), alpha in zip(reversed(_layers(m, vecs.device)), reversed(alphas)):
        al = alpha.unsqueeze(-1)
        a = out.index_select(-2, lo)
        b = out.index_select(-2, hi)
        new_lo = al * a + (1.0 - al) * b
        new_hi = al * b + (1.0 - al) * a
        out = torch.cat((new_lo, new_hi), dim=-2).index_select(-2, inv)
    return out


def _rows(
    z: torch.Tensor, positions: torch.Tensor, softness: Softness, mode: str, descending: bool
) -> torch.Tensor:
    """Rows ``positions`` of the soft permutation: ``(..., len(positions), n)``."""
    n = z.shape[-1]
    asc = (n - 1 - positions) if descending else positions
    _, alphas, m = network_forward(z, softness, mode)
    eye = torch.zeros(m, asc.shape[0], device=z.device, dtype=z.dtype)
    eye[asc, torch.arange(asc.shape[0], device=z.device)] = 1.0
    vecs = eye.expand(*z.shape[:-1], m, asc.shape[0])
    cols = network_transpose(alphas, vecs, m)  # (..., m, r): column j is P^T e_j
    return cols.transpose(-1, -2)[..., :n]


@register
class SortingNetwork(OrderingMethod):
    """Soft bitonic sorting network; see the module docstring."""

    name = "sorting_network"

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

    def permutation(
        self,
        z: torch.Tensor,
        softness: Softness,
        mode: str,
        *,
        descending: bool = False,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(z.shape[-1], device=z.device)
        return _rows(z, pos, softness, mode, descending)

    def topk_permutation(
        self,
        z: torch.Tensor,
        k: int,
        softness: Softness,
        mode: str,
        *,
        options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        pos = torch.arange(k, device=z.device)
        return _rows(z, pos, softness, mode, True)

    def argmax(
        self, z: torch.Tensor, softness: Softness, mode: str, *, options: dict[str, Any] | None = None
    ) -> torch.Tensor:
        return self.topk_permutation(z, 1, softness, mode)[..., 0, :]

    def argmin(
        self, z: torch.Tensor, softness: Softness, mode: str, *, options: dict[str, Any] | None = None
    ) -> torch.Tensor:
        pos = torch.zeros(1, dtype=torch.long, device=z.device)
        return _rows(z, pos, softness, mode, False)[..., 0, :]

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
