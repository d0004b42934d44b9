r"""Shared steps of the ranking losses: argument checks, soft ranks of (padded) lists, the soft
rank cutoff, masked standardization and the reduction over queries.

**Layout.** Every loss takes lists along the last axis, ``(..., n)``: each leading index is one
query (one list). ``mask`` (bool, broadcastable to the scores, ``True`` = a real entry) marks the
real entries of padded lists; a padded entry never moves the rank of a real one, adds nothing to
any sum and receives zero gradient.

**Soft cutoff.** The indicator :math:`\mathbb{1}[r \le k]` of an integer rank is
:math:`H(k + \tfrac12 - r)` for any step :math:`H` that jumps between :math:`-\tfrac12` and
:math:`\tfrac12`; on soft ranks it becomes :math:`c_k(r) = \mathrm{sigmoidal}(k + \tfrac12 - r,
\tau, \mathrm{mode})` (:func:`softtorch.sigmoidal`, the relaxation of the same ``mode`` as the
ranks), with width :math:`\tau` in rank units. The default :math:`\tau = \mathrm{softness}\cdot k`
makes the cutoff's width relative to ``k`` and sends it to the exact indicator as softness -> 0
(``c0`` / ``c1`` / ``c2`` are exactly 0 / 1 at integer ranks once :math:`5\tau \le \tfrac12`).

**Queries whose metric is undefined** (no relevant entry for NDCG / AP / top-k recall, fewer than
two real entries or a constant target for the correlations) follow ``empty_target_action``, named
after torchmetrics' retrieval metrics: ``"skip"`` (default; loss 0 in ``reduction="none"``,
left out of the mean), ``"neg"`` (metric 0, loss 1) or ``"pos"`` (metric 1, loss 0); with
``"neg"`` / ``"pos"`` they count in the mean. The mean over no defined query is 0. A NaN in a
list's scores makes that list's loss NaN (and the mean NaN), like torch.
"""

from __future__ import annotations

import operator

import torch

from .._checks import (
    HALF_DTYPES,
    MODES,
    _is_compiling,
    as_float,
    check_choice,
    check_mode,
    check_softness,
    upcast_half,
)
from .._sigmoidal import SoftnessLike, step
from ..ordering import _mask as ordering_mask
from ..ordering.ops import rank

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
EMPTY_ACTIONS: tuple[str, ...] = ("skip", "neg", "pos")

__all__ = [
    "EMPTY_ACTIONS",
    "REDUCTIONS",
    "check_cutoff_k",
    "check_lists",
    "check_mask",
    "check_options",
    "check_values",
    "cutoff",
    "cutoff_width",
    "longer_than",
    "masked_standardize",
    "out_dtype",
    "reduce_queries",
    "safe_div",
    "soft_ranks",
]


def check_lists(
    x: object, y: object, mask: object, names: tuple[str, str], y_float: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, mask)`` as floating tensors of one shape ``(..., n)`` and a bool mask of that
    shape (all ``True`` when ``mask`` is None).

    Args:
        x: the scores (predictions), a real tensor with at least one dimension.
        y: the targets, same shape as ``x``.
        mask: None or a bool tensor broadcastable to ``x``.
        names: the argument names of ``x`` and ``y`` for error messages.
        y_float: promote ``y`` to ``x``'s floating dtype (else only reject complex ``y``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{names[0]} must be a tensor, got {type(x).__name__}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{names[1]} must be a tensor, got {type(y).__name__}")
    xf = as_float(x, names[0])
    yf = as_float(y, names[1])
    if xf.ndim == 0:
        raise ValueError(f"{names[0]} must have at least one dimension (..., n), got a 0-d tensor")
    if yf.shape != xf.shape:
        raise ValueError(
            f"{names[1]} must have the shape of {names[0]}: got {tuple(yf.shape)} and "
            f"{tuple(xf.shape)}"
        )
    xf = upcast_half(xf)[0]  # half inputs compute in float32 (see ``out_dtype``)
    if y_float:
        yf = yf.to(xf.dtype)
    return xf, yf, check_mask(mask, xf)


def out_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype a loss returns for the scores ``x``: ``x``'s for float16 / bfloat16 (computed
    in float32, as the relaxations do), else None (the computed dtype)."""
    return x.dtype if isinstance(x, torch.Tensor) and x.dtype in HALF_DTYPES else None


def check_mask(mask: object, x: torch.Tensor) -> torch.Tensor:
    """A bool tensor of ``x``'s shape: all ``True`` for None, else ``mask`` broadcast to ``x``
    (the ordering ops' mask check: a bool tensor that broadcasts to ``x``)."""
    if mask is None:
        return torch.ones(x.shape, dtype=torch.bool, device=x.device)
    return ordering_mask.check_mask(mask, x)


def check_options(
    mode: object, softness: SoftnessLike, reduction: object, empty_target_action: object
) -> tuple[str, SoftnessLike]:
    """Validate the options every loss shares; ``(mode, softness)``."""
    mode_ = check_mode(mode, MODES)
    softness_ = check_softness(softness)
    check_choice(reduction, REDUCTIONS, "reduction")
    check_choice(empty_target_action, EMPTY_ACTIONS, "empty_target_action")
    return mode_, softness_


def check_cutoff_k(k: object, n: int | None = None, allow_none: bool = True) -> int | None:
    """``k`` of a rank cutoff: None (when allowed) or an int ``>= 1`` (``<= n`` if given)."""
    if k is None and allow_none:
        return None
    if isinstance(k, (bool, float)) or k is None:
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    try:
        kk = operator.index(k)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"k must be an int, got {type(k).__name__}") from None
    if kk < 1:
        raise ValueError(f"k must be >= 1, got {kk}")
    if n is not None and kk > n:
        raise ValueError(f"k must be in [1, n] = [1, {n}] for lists of length {n}, got {kk}")
    return kk


def soft_ranks(
    x: torch.Tensor,
    mask: torch.Tensor,
    softness: SoftnessLike,
    mode: str,
    method: str,
    standardize: bool,
    descending: bool = True,
) -> torch.Tensor:
    """Soft ranks in ``[1, n_q]`` along the last axis, each list ranked among its real entries
    only (:func:`softtorch.rank` with ``mask``); padded entries hold rank 1 (a finite placeholder
    with zero gradient, to be masked out by the caller)."""
    kwargs = {"dim": -1, "softness": softness, "mode": mode, "method": method,
              "descending": descending, "standardize": standardize}  # fmt: skip
    # (no graph break under torch.compile; no data-dependent branch under torch.func / vmap)
    if not (_is_compiling() or torch._C._are_functorch_transforms_active()) and bool(mask.all()):
        return rank(x, **kwargs)
    r = rank(x, mask=mask, **kwargs)
    return torch.where(mask, r, torch.ones((), dtype=r.dtype, device=r.device))


def check_values(bad: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` if any entry of the bool tensor ``bad`` is set; while
    ``torch.compile`` traces, a ``torch._assert_async`` guard in the graph instead (no graph
    break; it raises ``RuntimeError`` with the message when the graph runs), as
    ``check_softness`` (:mod:`.._checks`) does."""
    if _is_compiling():
        torch._assert_async(~bad.any(), message)  # torch internal, checked on torch 2.13.0
        return
    if bool(bad.any()):
        raise ValueError(message)


def cutoff_width(
    cutoff_softness: SoftnessLike | None, softness: SoftnessLike, k: int
) -> SoftnessLike:
    """The cutoff width :math:`\\tau` in rank units (default ``softness * k``)."""
    if cutoff_softness is None:
        return softness * k
    return check_softness(cutoff_softness)


def cutoff(
    x: torch.Tensor, width: SoftnessLike, mode: str, active: torch.Tensor | None = None
) -> torch.Tensor:
    """Soft step of ``x = k + 1/2 - rank``: ``1[x > 0]`` in hard mode, else ``sigmoidal``;
    exactly 1 in the lists where ``active`` (broadcastable) is False (lists of at most ``k``
    real entries, which the cutoff keeps whole, as it does an unpadded list of that length)."""
    c = (x > 0).to(x.dtype) if mode == "hard" else step(x, width, mode)
    if active is None:
        return c
    return torch.where(active, c, 1.0)


def longer_than(mask: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., 1)``: whether each list has more than ``k`` real entries."""
    return mask.sum(-1, keepdim=True) > k


def masked_standardize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r""":math:`\sigma((x - \mu)/\sqrt{\mathrm{Var}(x) + 10^{-6}})` with the mean and population
    variance of each list's real entries (the masked ordering ops' standardization); padded
    entries hold 0.5."""
    return ordering_mask.standardize(x, mask)[0]


def safe_div(num: torch.Tensor, den: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``ok``, else 0 (no NaN, also not in the gradient)."""
    one = torch.ones((), dtype=den.dtype, device=den.device)
    return torch.where(ok, num / torch.where(ok, den, one), 0.0)


def reduce_queries(
    loss: torch.Tensor,
    defined: torch.Tensor,
    reduction: str,
    empty_target_action: str,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Per-query ``loss`` (shape ``(...)``) with ``empty_target_action`` applied to the queries
    that are not ``defined``, reduced over queries by ``reduction``, cast to ``dtype`` (if not
    None) at the end."""
    fill = 1.0 if empty_target_action == "neg" else 0.0
    out = torch.where(defined, loss, fill)
    if reduction == "sum":
        out = out.sum()
    elif reduction == "mean" and empty_target_action == "skip":
        out = out.sum() / defined.sum().to(out.dtype).clamp_min(1.0)
    elif reduction == "mean":
        out = out.sum() / max(out.numel(), 1)
    return out if dtype is None else out.to(dtype)
