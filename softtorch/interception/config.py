"""The settings one ``soft_mode`` block or one ``SoftTensor`` carries, validated once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import METHODS, check_choice, check_method, check_mode, check_softness

#: Valid ``scope`` values: relax ops on the gradient path only, or every floating op.
SCOPES: tuple[str, ...] = ("grad", "all")


@dataclass(frozen=True, eq=False)
class SoftConfig:
    """What is in force: the relaxation ``mode`` and ``softness`` and which ops they apply to.

    ``ops`` (None = all) and ``exclude`` hold op names or group names of the registry
    (:func:`softtorch.interception.registry.names`); ``mode == "hard"`` relaxes nothing.
    """

    mode: str = "smooth"
    softness: float | torch.Tensor = 0.1
    method: str | None = None
    straight_through: bool = False
    ops: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    scope: str = "grad"
    surrogate: str | None = None
    #: Dispatch tables of the selected ops (filled by :func:`make_config`).
    tables: Any = field(default=None, repr=False, compare=False)

    @property
    def relaxing(self) -> bool:
        """False for ``mode="hard"``: every op keeps torch's exact semantics."""
        return self.mode != "hard"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild, (self.mode, self.softness, self.method, self.straight_through, self.ops,
                          self.exclude, self.scope, self.surrogate)  # fmt: skip

    def __repr__(self) -> str:
        parts = [f"mode={self.mode!r}", f"softness={self.softness!r}"]
        for name in ("method", "ops", "surrogate"):
            value = getattr(self, name)
            if value is not None:
                shown = sorted(value) if isinstance(value, frozenset) else value
                parts.append(f"{name}={shown!r}")
        if self.straight_through:
            parts.append("straight_through=True")
        if self.exclude:
            parts.append(f"exclude={sorted(self.exclude)!r}")
        if self.scope != "grad":
            parts.append(f"scope={self.scope!r}")
        return f"SoftConfig({', '.join(parts)})"


def _name_set(value: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    from .registry import names

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
        from ..surrogate import METHODS as SURROGATE_METHODS

        surrogate = check_choice(surrogate, SURROGATE_METHODS, "surrogate")
        if not straight_through and mode != "hard":
            raise ValueError(
                "surrogate= gives hard spikes forward with surrogate gradients backward; "
                "pass straight_through=True with it"
            )
    from .registry import tables

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


def _rebuild(
    mode: str, softness: float | torch.Tensor, method: str | None, straight_through: bool,
    ops: frozenset[str] | None, exclude: frozenset[str], scope: str, surrogate: str | None,
) -> SoftConfig:
    """Unpickle a :class:`SoftConfig` (its dispatch tables are rebuilt, not stored)."""
    return make_config(
        mode, softness, method=method, straight_through=straight_through, ops=ops,
        exclude=exclude, scope=scope, surrogate=surrogate,
    )
