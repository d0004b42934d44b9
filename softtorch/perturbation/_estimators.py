r"""The score-function (likelihood-ratio) estimator with antithetic pairs and a leave-one-out
baseline, as one autograd node.

Math. For noise ``Z`` with density :math:`p \propto e^{-\nu}` and score :math:`\psi = \nabla\nu`
(:mod:`._noise`), the smoothed function :math:`f_s(x) = \mathbb{E}[f(x + sZ)]` has (substitute
:math:`u = x + sz` and differentiate the density, not ``f``)

.. math::

    \nabla f_s(x) = \frac{1}{s}\,\mathbb{E}\big[f(x + sZ)\,\psi(Z)^\top\big],

valid for any bounded measurable ``f`` (steps, branches, black boxes). The backward pass of a node
``y = f_s(x)`` needs the vector-Jacobian product with an incoming gradient ``g``:

.. math::

    g^\top \nabla f_s(x) = \frac{1}{s}\,\mathbb{E}\big[\langle g, f(x + sZ)\rangle\, \psi(Z)\big],

so each sample contributes the scalar :math:`a_i = \langle g, f_i\rangle` times its score.

Variance reduction, both keeping the estimator unbiased:

* **Antithetic pairs.** Samples come in pairs :math:`(Z, Z')` with :math:`Z' = F^{-1}(1 - F(Z))`
  (:math:`-Z` for the Gaussian). Each member is a valid sample, so the pair mean is unbiased. For
  the Gaussian the pair estimate is
  :math:`\tfrac{1}{2s}\,(\langle g, f(x+sZ)\rangle - \langle g, f(x-sZ)\rangle)\, Z`: a central
  difference along ``Z`` whose even part (:math:`f(x)`, curvature) cancels exactly.
* **Leave-one-out baseline.** Group the ``N`` samples in ``P`` units (the pairs, or the single
  samples) and subtract from every member of unit ``k`` the mean of ``a`` over the *other*
  units, :math:`\beta_k = \frac{1}{m(P-1)} \sum_{l \ne k} \sum_{j \in l} a_j` (``m`` members per
  unit). :math:`\beta_k` is independent of unit ``k``'s noise and :math:`\mathbb{E}[\psi] = 0`,
  so :math:`\mathbb{E}[\beta_k \psi(Z_k)] = 0`: still unbiased. With Gaussian pairs the baseline
  cancels inside the pair (:math:`\psi(-Z) = -\psi(Z)`) and changes nothing; it matters for
  single samples and for Gumbel pairs. With one unit there is nothing to leave out and no
  baseline is used.

The estimate is :math:`\frac{1}{Ns}\sum_i (a_i - \beta_{k(i)})\,\psi(Z_i)`. Batched solvers (the
ordering functions) keep a batch of independent rows: ``a`` then has the batch shape and each row
only sees its own samples, which keeps other rows' noise out of its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable


def centered(a: torch.Tensor, pairs: bool, baseline: bool) -> torch.Tensor:
    """``a - beta``: per-sample weights minus the leave-one-out baseline of their unit.

    Args:
        a: per-sample scalars, shape ``(N, *batch)``; with ``pairs`` rows ``i`` and ``i + N/2``
            form a unit.
        pairs: samples come in antithetic pairs.
        baseline: subtract the leave-one-out mean of the other units.
    """
    n = a.shape[0]
    m = 2 if pairs else 1
    units = n // m
    if not baseline or units < 2:
        return a
    per_unit = a.reshape(m, units, *a.shape[1:]).sum(0) if pairs else a
    beta = (per_unit.sum(0, keepdim=True) - per_unit) / (m * (units - 1))
    if pairs:
        beta = torch.cat([beta, beta])
    return a - beta


def score_vjp(
    a: torch.Tensor, psi: torch.Tensor, softness: float, pairs: bool, baseline: bool
) -> torch.Tensor:
    r""":math:`\frac{1}{Ns}\sum_i (a_i - \beta_i)\,\psi_i`: the score-function vector-Jacobian
    product.

    Args:
        a: per-sample scalars :math:`\langle g, f_i\rangle`, shape ``(N, *batch)``.
        psi: scores :math:`\psi(Z_i)`, shape ``(N, *batch, *event)``.
        softness: the noise scale ``s``.
        pairs: samples come in antithetic pairs (rows ``i`` and ``i + N/2``).
        baseline: use the leave-one-out baseline.
    """
    w = centered(a, pairs, baseline)
    w = w.reshape(*w.shape, *([1] * (psi.dim() - w.dim())))
    return (w * psi).mean(0) / softness


@dataclass(frozen=True)
class Spec:
    """Static settings of one :class:`ScoreFunction` node."""

    n_inputs: int
    softness: float
    pairs: bool
    baseline: bool


class ScoreFunction(torch.autograd.Function):
    """``apply(spec, *xs, *psis, *fs)``: forward returns the sample means of the outputs ``fs``
    (each ``(N, *out_shape)``); backward gives each ``x_j`` the score-function VJP with its own
    scores ``psi_j`` (``(N, *x_j.shape)``). ``fs`` were computed outside (under the caller's
    torch-function mode); the node only holds the estimator."""

    @staticmethod
    def forward(ctx: Any, spec: Spec, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = spec.n_inputs
        xs, psis, fs = tensors[:k], tensors[k : 2 * k], tensors[2 * k :]
        ctx.spec = spec
        ctx.x_dtypes = [x.dtype for x in xs]
        ctx.save_for_backward(*psis, *fs)
        return tuple(f.mean(0) for f in fs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        spec: Spec = ctx.spec
        k = spec.n_inputs
        saved = ctx.saved_tensors
        psis, fs = saved[:k], saved[k:]
        n = fs[0].shape[0]
        a = torch.zeros(n, dtype=fs[0].dtype, device=fs[0].device)
        for g, f in zip(grads, fs):
            if g is not None:
                a = a + (f * g.unsqueeze(0)).reshape(n, -1).sum(1)
        out: list[torch.Tensor | None] = [None]
        for j, psi in enumerate(psis):
            if ctx.needs_input_grad[1 + j]:
                grad = score_vjp(a.to(psi.dtype), psi, spec.softness, spec.pairs, spec.baseline)
                out.append(grad.to(ctx.x_dtypes[j]))
            else:
                out.append(None)
        return (*out, *([None] * (len(psis) + len(fs))))
