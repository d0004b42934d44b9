r"""Soft ``topk``: the first ``k`` rows of the descending soft permutation.

Conventions (standardization, SoftIndex layout, log-probabilities) are those of
:mod:`softtorch.ordering.ops`.
"""

from __future__ import annotations

import torch

from .._checks import autocast_off, check_k
from . import _mask, _take
from ._base import Softness
from ._common import (
    along,
    cols,
    config,
    expect,
    finish,
    hard_index,
    hard_masked_index,
    method_impl,
    prepare,
    probs,
    scores_values,
    to_x,
)
from ._docs import document

__all__ = ["topk"]


@document
@autocast_off
def topk(
    x: torch.Tensor,
    k: int,
    dim: int | None = None,
    softness: Softness = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    ot_kwargs: dict | None = None,
    gated_grad: bool = True,
    largest: bool = True,
    *,
    return_log_probs: bool = False,
    log_prob_eps: float | None = None,
    perturbed_kwargs: dict | None = None,
    mask: torch.Tensor | None = None,
) -> torch.return_types.topk:
    r"""Soft ``torch.topk`` (sorted): ``torch.return_types.topk(values, indices)``.

    ``indices`` are the first ``k`` rows of the descending soft permutation (the method's
    ``topk_permutation``; ``ot`` solves a transport problem with ``k + 1`` anchors), a SoftIndex of
    shape ``(..., k, n)`` with the k axis at ``dim``; ``values = indices @ x``, or the first ``k``
    soft sorted values for ``fast_soft_sort`` / ``sorting_network`` (``indices`` None for
    ``fast_soft_sort``).

    ``k`` must be in ``[1, n]``; ``k = 0`` only in ``mode="hard"`` or on an empty dimension
    (torch's semantics: empty results, and for a 0-d input the value itself), otherwise
    "k must be positive". With a ``mask``, ``k`` may exceed a slice's real count ``c``: output
    positions ``>= c`` are filled (value ``0``, zero soft-index row).

    Returns:
        ``torch.return_types.topk(values, indices)``.
    """
    cfg = config(
        "topk",
        mode,
        softness,
        method,
        standardize,
        ot_kwargs,
        need_index=False,
        return_log_probs=return_log_probs,
        log_prob_eps=log_prob_eps,
        perturbed_kwargs=perturbed_kwargs,
    )
    data = prepare(x, dim, flatten=False, cfg=cfg, mask=mask)
    n = data.n
    kk = check_k(k, n, "hard" if n == 0 else cfg.mode)  # nothing to relax on an empty dim
    if data.ndim == 0 and kk == 0:
        kk = 1  # torch.topk of a 0-d tensor returns the value whatever k is allowed (0 or 1)
    idx: torch.Tensor | None = None
    if (cfg.mode == "hard" or n == 0 or kk == 0) and data.mask is not None:
        top = _mask.real_first(data.x, data.mask, descending=bool(largest))[..., :kk]
        values = _mask.fill_positions(data.x.gather(-1, top), data.count)
        idx = hard_masked_index(top, data, cfg)
    elif cfg.mode == "hard" or n == 0 or kk == 0:
        values, top = _take.topk(data.x, kk, largest=bool(largest))
        idx = hard_index(top, n, data.x.dtype, cfg)
    else:
        impl = method_impl(cfg, data)
        z, stats, sv = scores_values(impl, data, cfg, descending=bool(largest))
        zk = z if largest else impl.reflect(z)
        if sv is None and gated_grad and not cfg.log:
            # values beside the rows: no k x n gradient of the rows for the values' part
            idx, values = impl.topk_permutation_with_values(
                zk, data.x, kk, cfg.softness, cfg.mode, options=cfg.options
            )
        else:
            if impl.has_permutation:
                fn = impl.log_topk_permutation if cfg.log else impl.topk_permutation
                idx = fn(zk, kk, cfg.softness, cfg.mode, options=cfg.options)
            if sv is not None:
                values = to_x(sv[..., :kk], stats, data.x, data.mask)
            else:
                assert idx is not None
                values = expect(probs(idx, cfg), data.x, gated_grad)
    out_idx = None if idx is None else along(finish(idx, cfg, cols(data)), data, index=True)
    return torch.return_types.topk((along(values, data, index=False), out_idx))
