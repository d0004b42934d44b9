r"""The bitonic schedule: which positions every layer compares, in forward and transposed order.

A bitonic network for ``m = 2^L`` positions has :math:`L (L + 1) / 2` layers. A layer with
distance ``j`` compares positions ``i`` and ``i + j`` (``i`` with bit ``j`` clear) inside blocks
of ``2j``; the sign of a block (``+1``: the minimum goes to the lower position, ``-1``: to the
upper) is ``+1`` when the block's start has bit ``k`` clear, ``k`` being the size of the bitonic
sequences the current stage merges.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def layers_cpu(m: int) -> tuple[tuple[int, tuple[float, ...]], ...]:
    """Bitonic layers for ``m`` (a power of two): ``(j, signs)`` in application order.

    Args:
        m: the number of positions (a power of two).
    """
    layers = []
    k = 2
    while k <= m:
        j = k // 2
        while j > 0:
            signs = tuple(
                1.0 if (block * 2 * j) & k == 0 else -1.0 for block in range(m // (2 * j))
            )
            layers.append((j, signs))
            j //= 2
        k *= 2
    return tuple(layers)


#: One layer on a device: comparator distance ``j`` and, per block of ``2j`` positions, the sign
#: ``+1`` (minimum to the lower position) or ``-1`` (to the upper one), shape ``(m / 2j, 1)``.
Layer = tuple[int, torch.Tensor]

_DEVICE_CACHE: dict[tuple[int, str, torch.dtype], tuple[Layer, ...]] = {}


def layers_on(m: int, like: torch.Tensor) -> tuple[Layer, ...]:
    """:func:`layers_cpu` with the signs as tensors of ``like``'s device and dtype (cached).

    Args:
        m: the number of positions (a power of two).
        like: a tensor of the wanted device and dtype.
    """
    key = (m, str(like.device), like.dtype)
    if key not in _DEVICE_CACHE:
        _DEVICE_CACHE[key] = tuple(
            (j, torch.tensor(signs, dtype=like.dtype, device=like.device).unsqueeze(-1))
            for j, signs in layers_cpu(m)
        )
    return _DEVICE_CACHE[key]


def padded_size(n: int) -> int:
    """The network size for ``n`` entries: the next power of two (``1`` for ``n <= 1``).

    Args:
        n: the number of entries.
    """
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def pad_value(
    top: torch.Tensor, bottom: torch.Tensor, softness: float | torch.Tensor
) -> torch.Tensor:
    """The (detached) score of the padding entries: ``top + margin`` with
    ``margin = 1 + 100 s + (top - bottom) + 0.01 |top|``, so pads never mix with real entries.

    Args:
        top: the largest real score (per row).
        bottom: the smallest real score (per row).
        softness: the softness ``s``.
    """
    with torch.no_grad():
        s = softness.detach() if isinstance(softness, torch.Tensor) else softness
        spread = top - bottom
        margin = 1.0 + 100.0 * s + spread + 1e-2 * top.abs()
        return top + margin


@functools.lru_cache(maxsize=128)
def slot_plan(
    m: int, transposed: bool = True
) -> tuple[tuple[tuple[int, int], ...], torch.Tensor, torch.Tensor]:
    r"""Schedule of the in-place network for ``m`` (CPU tensors, cached).

    The layers run in reverse order (``transposed``, for :math:`P^\top`) or in application
    order (for :math:`P`), each as an in-place soft swap that leaves the new value of the lower
    position in the upper slot and vice versa (no copy). Slot ``s`` then holds logical position
    ``s ^ M`` for a mask ``M``, the XOR of the distances run so far.

    Args:
        m: the number of positions (a power of two, at least 2).
        transposed: run the layers in reverse order.

    Returns:
        Per layer in run order ``(j, lo)``, ``lo`` the slot bit (0 / 1) of the lower logical
        position; the index ``(T, m / 2)`` that gathers a layer's weights (``(m / 2j, j)``,
        flattened) into slot order (an involution: it also maps slot order back); and
        ``arange(m) ^ M_final``, the slot of every logical position after the last layer.
    """
    steps, index = [], []
    mask = 0
    pairs = torch.arange(m // 2)
    layers = layers_cpu(m)
    for j, _ in reversed(layers) if transposed else layers:
        lb = j.bit_length() - 1
        steps.append((j, (mask >> lb) & 1))
        index.append(pairs ^ (((mask >> (lb + 1)) << lb) | (mask & (j - 1))))
        mask ^= j
    return tuple(steps), torch.stack(index), torch.arange(m) ^ mask
