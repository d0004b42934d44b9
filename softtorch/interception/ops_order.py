r"""Handlers for order statistics, built on :mod:`softtorch.ordering.ops`.

Values are soft; index results are torch's integers carrying the soft index (SoftIndex).
``kthvalue`` is row ``k - 1`` of the ascending soft sort; ``amax`` / ``amin`` over several dims
reduce the merged dims; ``nanmedian`` / ``nanquantile`` are the masked ops (``mask=``) with the
NaN entries as padding (an all-NaN slice keeps torch's NaN); inputs with infinite entries:
:mod:`.infinite`. ``cummax`` / ``cummin`` weight the prefix ``x[..j]`` with
the mode's simplex projection (:func:`softtorch.simplex.project_simplex`) of the standardized
scores divided by the softness, and return the expected value (an ``n x n`` weight matrix per row).
``topk(..., sorted=False)`` returns the sorted top k (torch leaves that order unspecified).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import canonical_dim
from ..ordering import ops
from ..ordering._standardize import standardize
from ..simplex import project_simplex
from .context import DECLINE, Ctx, finite_input
from .infinite import has_inf, reduction_mask, sort_rows
from .ops_logic import _flat


def _has_out(kw: dict[str, Any]) -> bool:
    return kw.get("out") is not None


def sort(
    c: Ctx, input: Tensor, dim: int = -1, descending: bool = False, stable: bool | None = None,
    **kw: Any,
) -> Any:
    if _has_out(kw):
        return DECLINE
    def soft() -> tuple[Tensor, Tensor | None]:
        if has_inf(input):
            return sort_rows(input, dim, bool(descending), c.kw())
        return tuple(ops.sort(input, dim, descending, **c.kw()))  # type: ignore[return-value]

    return c.pair(
        soft,
        lambda: torch.sort(input, dim=dim, descending=descending, stable=bool(stable)),
        finite=True,
    )


def argsort(
    c: Ctx, input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False
) -> Any:
    return c.index(
        lambda: ops.argsort(finite_input(input, dim), dim, descending, **c.kw(index=True)),
        lambda: torch.argsort(input, dim=dim, descending=descending, stable=stable),
    )


def msort(c: Ctx, input: Tensor) -> Any:
    def soft() -> Tensor:
        if has_inf(input):
            return sort_rows(input, 0, False, c.kw())[0]
        return ops.sort(input, 0, **c.kw(), return_indices=False).values

    return c.value(
        soft,
        lambda: torch.msort(input),
        finite=True,
    )


def topk(
    c: Ctx, input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True,
    **kw: Any,
) -> Any:
    if _has_out(kw):
        return DECLINE
    def soft() -> tuple[Tensor, Tensor | None]:
        if has_inf(input) and 0 < k:
            return sort_rows(input, dim, bool(largest), c.kw(), k=k)
        return tuple(ops.topk(input, k, dim, **c.kw(), largest=largest))  # type: ignore[return-value]

    return c.pair(
        soft,
        lambda: torch.topk(input, k, dim, largest=largest, sorted=True),
        finite=True,
    )


def kthvalue(c: Ctx, input: Tensor, k: int, dim: int = -1, keepdim: bool = False, **kw: Any) -> Any:
    if _has_out(kw) or input.ndim == 0:
        return DECLINE

    def soft() -> tuple[Tensor, Tensor | None]:
        d = canonical_dim(dim, input.ndim)
        if has_inf(input):
            vals, sidx = sort_rows(input, d, False, c.kw())
        else:
            vals, sidx = ops.sort(input, d, **c.kw())
        values = vals.select(d, k - 1)
        idx = None if sidx is None else sidx.select(d, k - 1)
        if keepdim:
            values = values.unsqueeze(d)
            idx = None if idx is None else idx.unsqueeze(d)
        return values, idx

    return c.pair(soft, lambda: torch.kthvalue(input, k, dim, keepdim), finite=True)


def _extreme(largest: bool) -> Any:
    soft_fn = ops.max if largest else ops.min
    exact = torch.max if largest else torch.min

    def handler(c: Ctx, input: Tensor, dim: Any = None, keepdim: bool = False, **kw: Any) -> Any:
        other = kw.pop("other", None)
        if isinstance(dim, Tensor) or other is not None:
            from .ops_elementwise import maximum, minimum

            y = dim if other is None else other
            return (maximum if largest else minimum)(c, input, y) if not kw else DECLINE
        if _has_out(kw):
            return DECLINE
        if dim is None:
            return c.value(
                lambda: soft_fn(finite_input(input, None), **c.kw(), **reduction_mask(
                    input, largest)), lambda: exact(input), True,
            )  # fmt: skip
        return c.pair(
            lambda: tuple(soft_fn(finite_input(input, dim), dim, keepdim, **c.kw(),
                                  **reduction_mask(input, largest))),  # fmt: skip
            lambda: exact(input, dim, keepdim),
            finite=True,
        )

    return handler


max_ = _extreme(True)
min_ = _extreme(False)


def _amax(largest: bool) -> Any:
    soft_fn = ops.max if largest else ops.min
    exact = torch.amax if largest else torch.amin

    def handler(c: Ctx, input: Tensor, dim: Any = (), keepdim: bool = False, **kw: Any) -> Any:
        if _has_out(kw):
            return DECLINE
        dims = (dim,) if isinstance(dim, int) else tuple(dim or ())

        def soft() -> Tensor:
            if not dims or input.ndim == 0:
                m = reduction_mask(input, largest)
                out = soft_fn(finite_input(input, None), **c.kw(), **m)
                return out.reshape([1] * input.ndim) if keepdim else out
            flat, keep = _flat(input, dims)
            m = reduction_mask(flat, largest)
            out = soft_fn(finite_input(flat, -1), -1, **c.kw(), **m).values
            return out.reshape(keep) if keepdim else out

        return c.value(soft, lambda: exact(input, dim, keepdim), finite=True)

    return handler


amax = _amax(True)
amin = _amax(False)


def _arg(largest: bool) -> Any:
    soft_fn = ops.argmax if largest else ops.argmin
    exact = torch.argmax if largest else torch.argmin

    def handler(c: Ctx, input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
        return c.index(
            lambda: soft_fn(finite_input(input, dim), dim, keepdim, **c.kw(index=True),
                            **reduction_mask(input, largest)),  # fmt: skip
            lambda: exact(input, dim, keepdim),
        )

    return handler


argmax = _arg(True)
argmin = _arg(False)


def median(c: Ctx, input: Tensor, dim: int | None = None, keepdim: bool = False, **kw: Any) -> Any:
    if _has_out(kw):
        return DECLINE
    if dim is None:
        return c.value(
            lambda: ops.median(finite_input(input, None), **c.kw()),
            lambda: torch.median(input),
            finite=True,
        )
    return c.pair(
        lambda: tuple(ops.median(finite_input(input, dim), dim, keepdim, **c.kw())),
        lambda: torch.median(input, dim, keepdim),
        finite=True,
    )


def _not_nan(input: Tensor) -> tuple[Tensor, Tensor]:
    """``(clean, mask)``: NaN entries as padding (``mask`` False, value 0) and infinities as
    :func:`finite_input` makes them, for the masked ordering ops."""
    mask = ~torch.isnan(input)
    return torch.where(mask, input, 0.0), mask


def nanmedian(
    c: Ctx, input: Tensor, dim: int | None = None, keepdim: bool = False, **kw: Any
) -> Any:
    if _has_out(kw):
        return DECLINE
    clean, mask = _not_nan(input)
    if dim is None:
        return c.value(
            lambda: ops.median(finite_input(clean, None), **c.kw(), mask=mask),
            lambda: torch.nanmedian(input),
            finite=True,
        )
    return c.pair(
        lambda: tuple(ops.median(finite_input(clean, dim), dim, keepdim, **c.kw(), mask=mask)),
        lambda: torch.nanmedian(input, dim, keepdim),
        finite=True,
    )


def quantile(
    c: Ctx, input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
    interpolation: str = "linear", **kw: Any,
) -> Any:
    if _has_out(kw):
        return DECLINE
    return c.value(
        lambda: ops.quantile(finite_input(input, dim), q, dim, keepdim, interpolation=interpolation,
                             **c.kw()),
        lambda: torch.quantile(input, q, dim, keepdim, interpolation=interpolation),
        finite=True,
    )


def nanquantile(
    c: Ctx, input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
    interpolation: str = "linear", **kw: Any,
) -> Any:
    if _has_out(kw):
        return DECLINE
    clean, mask = _not_nan(input)
    return c.value(
        lambda: ops.quantile(finite_input(clean, dim), q, dim, keepdim,
                             interpolation=interpolation, **c.kw(), mask=mask),
        lambda: torch.nanquantile(input, q, dim, keepdim, interpolation=interpolation),
        finite=True,
    )  # fmt: skip


def _cumulative(largest: bool) -> Any:
    exact_fn = torch.cummax if largest else torch.cummin

    def handler(c: Ctx, input: Tensor, dim: int, **kw: Any) -> Any:
        if _has_out(kw) or input.ndim == 0:
            return DECLINE

        def soft() -> tuple[Tensor, Tensor]:
            d = canonical_dim(dim, input.ndim)
            x = finite_input(input.movedim(d, -1), -1)
            xc = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
            n = xc.shape[-1]
            z, _ = standardize(xc)
            z = z if largest else 1.0 - z
            prefix = torch.ones(n, n, dtype=torch.bool, device=xc.device).tril()
            scores = (z.unsqueeze(-2) / c.softness).masked_fill(~prefix, float("-inf"))
            p = project_simplex(scores, c.mode)
            values = (p @ xc.unsqueeze(-1)).squeeze(-1)
            return values.to(input.dtype).movedim(-1, d), p.to(input.dtype).movedim(-2, d)

        return c.pair(soft, lambda: exact_fn(input, dim), finite=True)

    return handler


cummax = _cumulative(True)
cummin = _cumulative(False)
