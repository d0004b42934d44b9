r"""Scale-free scores for the ordering methods, and the map back to the data's scale.

With ``standardize=True`` the ordering ops work on

.. math:: z = \sigma\!\left(\frac{x - \mu}{\sqrt{\mathrm{Var}(x) + 10^{-6}}}\right) \in (0, 1)

along the last axis (population variance), so that a given softness means the same for data of
any scale. Methods that compute sorted values directly in ``z`` space are mapped back with
:math:`\mathrm{logit}(v)\sqrt{\mathrm{Var}(x) + 10^{-6}} + \mu`.
"""

from __future__ import annotations

import torch

#: Added to the variance before the square root (keeps constant rows and n = 1 finite).
VAR_EPS: float = 1e-6

Stats = tuple[torch.Tensor, torch.Tensor]


def standardize(x: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """``(z, (mean, std))`` along the last axis; ``mean`` and ``std`` keep a singleton axis."""
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).square().mean(dim=-1, keepdim=True)
    std = torch.sqrt(var + VAR_EPS)
    return torch.sigmoid((x - mean) / std), (mean, std)


def unstandardize(v: torch.Tensor, stats: Stats) -> torch.Tensor:
    """Inverse of :func:`standardize` for values ``v`` in ``(0, 1)`` (clamped to stay finite)."""
    mean, std = stats
    info = torch.finfo(v.dtype)
    vc = v.clamp(info.tiny, 1.0 - info.eps)
    return torch.logit(vc) * std + mean


def reflect(z: torch.Tensor, standardized: bool) -> torch.Tensor:
    """Scores of the reversed order: ``1 - z`` in standardized ``(0, 1)`` space, else ``-z``."""
    return 1.0 - z if standardized else -z
