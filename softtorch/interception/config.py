"""The settings one ``soft_mode`` block or one ``SoftTensor`` carries, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

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
    #: Dispatch tables of the selected ops (filled by
    #: :func:`softtorch.interception.settings.make_config`).
    tables: Any = field(default=None, repr=False, compare=False)

    @property
    def relaxing(self) -> bool:
        """False for ``mode="hard"``: every op keeps torch's exact semantics."""
        return self.mode != "hard"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # the dispatch tables are not stored: the dispatcher rebuilds them from ``ops`` /
        # ``exclude`` (cached) when ``tables`` is None
        return SoftConfig, (self.mode, self.softness, self.method, self.straight_through,
                            self.ops, self.exclude, self.scope, self.surrogate)  # fmt: skip

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
