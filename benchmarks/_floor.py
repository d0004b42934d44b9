"""The ``n x n`` write floor of the soft-index benchmark rows.

A method that returns a soft permutation ``(..., n, n)`` from ``n`` scores cannot be cheaper than
an autograd op that writes ``n x n`` values computed from ``n`` inputs and whose backward reads an
``n x n`` gradient. :func:`nxn_floor` is that op; a soft-index case (``argsort``, ``sort`` with
indices, ``topk``) is compared with it at the same shape, forward + backward of ``.sum()``.
"""

from __future__ import annotations

import torch


def nxn_floor(x: torch.Tensor) -> torch.Tensor:
    r"""``y[..., i, j] = x[..., j]``: the rows of ``x`` repeated ``n`` times, materialised.

    Forward writes ``n^2`` values (a fresh ``(..., n, n)`` tensor); backward reads the ``n x n``
    gradient once (:math:`\nabla x_j = \sum_i G_{ij}`). Used as the denominator of the soft-index
    rows of the benchmarks (target: soft permutations within 2x of it).

    Args:
        x: scores ``(..., n)``.

    Returns:
        The ``(..., n, n)`` tensor, contiguous, differentiable w.r.t. ``x``.
    """
    n = x.shape[-1]
    return x.unsqueeze(-2).expand(*x.shape[:-1], n, n).contiguous()
