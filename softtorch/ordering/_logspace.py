r"""Log-space helpers for soft indices (``return_log_probs=True``).

* :func:`safe_log`: :math:`\log p` with exact zeros mapped to ``-inf`` and a zero (not NaN)
  gradient there.
* :func:`log_project_simplex`: :math:`\log \Pi(s)` for the simplex projections of
  :func:`softtorch.simplex.project_simplex`: ``log_softmax`` for ``smooth`` (no underflow),
  ``0`` / ``-inf`` for ``hard`` and the log of the sparse projection for ``c0`` / ``c1`` / ``c2``
  (``-inf`` exactly outside the support).
* :func:`log_add` / :func:`log_mix`: :math:`\log(e^a + e^b)` and
  :math:`\log((1 - w) e^a + w e^b)` (the interpolated rows of ``argquantile``), NaN-free
  gradients where every term is ``-inf``.
* :func:`clamp_probs` / :func:`clamp_log_probs`: ``log_prob_eps`` -- clamp at ``eps`` and
  renormalise, :math:`p' = \max(p, \epsilon) / \sum_j \max(p_j, \epsilon)`.
"""

from __future__ import annotations

import math

import torch

from ..simplex import project_simplex


def safe_log(p: torch.Tensor) -> torch.Tensor:
    """``log(p)`` with ``-inf`` (and zero gradient) where ``p <= 0``; NaN stays NaN."""
    dead = p <= 0
    return torch.where(dead, -math.inf, torch.log(torch.where(dead, 1.0, p)))


def log_project_simplex(scores: torch.Tensor, mode: str) -> torch.Tensor:
    r"""``log(project_simplex(scores, mode))`` along the last axis, computed stably.

    ``smooth`` is ``log_softmax`` (finite for any finite scores); ``hard`` is ``0`` at the first
    argmax and ``-inf`` elsewhere; the sparse modes are :func:`safe_log` of the projection.
    """
    if mode == "smooth":
        return torch.log_softmax(scores, dim=-1)
    if mode == "hard":
        if scores.shape[-1] == 0:
            return scores.clone()
        idx = scores.argmax(dim=-1, keepdim=True)
        return torch.full_like(scores, -math.inf).scatter_(-1, idx, 0.0)
    return safe_log(project_simplex(scores, mode))


def log_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(e^a + e^b)`, ``-inf`` with a zero (not NaN) gradient where both are ``-inf``."""
    top = torch.maximum(a, b)
    shift = torch.where(torch.isfinite(top), top, 0.0).detach()
    s = torch.exp(a - shift) + torch.exp(b - shift)
    pos = s > 0
    return torch.where(pos, shift + torch.log(torch.where(pos, s, 1.0)), top)


def log_mix(la: torch.Tensor, lb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`\log((1 - w) e^{a} + w e^{b})` for log-rows ``a``, ``b`` ``(..., m, n)`` and
    constant weights ``w`` ``(m,)`` in ``[0, 1]``; ``-inf`` where both terms vanish."""
    wc = w.unsqueeze(-1).to(la.dtype)
    return log_add(la + torch.log1p(-wc), lb + torch.log(wc))


def clamp_probs(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Clamp the distributions on the last axis at ``eps`` and renormalise them."""
    c = p.clamp_min(eps)
    return c / c.sum(dim=-1, keepdim=True)


def clamp_log_probs(lp: torch.Tensor, eps: float) -> torch.Tensor:
    """:func:`clamp_probs` in log space: ``max(lp, log eps)`` minus its ``logsumexp``."""
    c = lp.clamp_min(math.log(eps))
    return c - torch.logsumexp(c, dim=-1, keepdim=True)
