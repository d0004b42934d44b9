r"""Settings from user arguments: :func:`make_config` (``soft_mode`` / ``soft`` arguments,
validated once, with the registry's dispatch tables) and :func:`soft` (data that carries them).

It sits above the registry: the op and group names that ``ops=`` / ``exclude=`` accept are the
registry's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .._checks import METHODS, as_float, check_choice, check_method, check_mode, check_softness
from ..surrogate import METHODS as SURROGATE_METHODS
from .config import SCOPES, SoftConfig
from .registry import names, tables
from .tensor import SoftTensor, make, plain


def _name_set(value: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else tuple(value)
    valid = names()
    for item in items:
        if not isinstance(item, str) or item not in valid:
            raise ValueError(
                f"unknown op or group {item!r} in {what}=; valid names are: "
                + ", ".join(repr(v) for v in sorted(valid))
            )
    return frozenset(items)


def make_config(
    mode: str = "smooth",
    softness: float | torch.Tensor = 0.1,
    *,
    method: str | None = None,
    straight_through: bool = False,
    ops: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    scope: str = "grad",
    surrogate: str | None = None,
) -> SoftConfig:
    """Validate the arguments of ``soft_mode`` / ``soft`` into a :class:`SoftConfig`."""
    mode = check_mode(mode)
    softness = check_softness(softness)
    if method is not None:
        method = check_method(method, METHODS)
    if not isinstance(straight_through, bool):
        raise TypeError(f"straight_through must be a bool, got {type(straight_through).__name__}")
    scope = check_choice(scope, SCOPES, "scope")
    if surrogate is not None:
        surrogate = check_choice(surrogate, SURROGATE_METHODS, "surrogate")
        if not straight_through and mode != "hard":
            raise ValueError(
                "surrogate= gives hard spikes forward with surrogate gradients backward; "
                "pass straight_through=True with it"
            )
    selected = _name_set(ops, "ops")
    excluded = _name_set(exclude, "exclude") or frozenset()
    return SoftConfig(
        mode=mode,
        softness=softness,
        method=method,
        straight_through=straight_through,
        ops=selected,
        exclude=excluded,
        scope=scope,
        surrogate=surrogate,
        tables=tables(selected, excluded),
    )


def soft(
    x: Tensor | float,
    mode: str = "smooth",
    softness: float | Tensor = 0.1,
    *,
    method: str | None = None,
    straight_through: bool = False,
    ops: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    surrogate: str | None = None,
) -> SoftTensor:
    """``x`` as a :class:`SoftTensor`: torch ops on it are relaxed with these settings, without a
    context manager, and their tensor results stay SoftTensors.

    Arguments are those of :func:`softtorch.soft_mode` (``scope`` does not apply: the data itself
    asks for relaxation). Integer data is promoted to the default float dtype; the result shares
    ``x``'s data and autograd history. An active ``soft_mode`` takes precedence.

    Example:
        >>> s = soft(torch.tensor([0.3, -1.0, 2.0]), softness=0.5)
        >>> (s > 0).hard()
        tensor([ True, False,  True])
    """
    cfg = make_config(
        mode, softness, method=method, straight_through=straight_through, ops=ops,
        exclude=exclude, surrogate=surrogate,
    )
    xt = as_float(plain(x) if isinstance(x, Tensor) else x)
    return make(xt, cfg)  # type: ignore[return-value]
