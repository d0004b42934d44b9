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
* **Linear control variate** (``baseline="linear"``, opt-in). Where ``f`` is locally linear,
  :math:`a_i \approx a_0 + s\,\langle c, Z_i\rangle` and each sample contributes
  :math:`\psi_i Z_i^\top c`: noise with mean ``c`` but variance growing with the dimension.
  Stein's identity :math:`\mathbb{E}[\psi(Z) Z^\top] = I` makes
  :math:`(\psi_i Z_i^\top - I)\,\hat c_{-k}` a zero-mean control variate for any
  :math:`\hat c_{-k}` independent of unit ``k``; we use the leave-one-out gradient estimate of
  the other units and subtract it. Unbiased; it removes the linear part of ``f`` up to the error
  of :math:`\hat c_{-k}`, so it pays off when the number of units is large compared with the
  input dimension (measured in docs/branching.md) and hurts with very few samples.

The estimate is :math:`\frac{1}{Ns}\sum_i (a_i - \beta_{k(i)})\,\psi(Z_i)` (minus the
control variate). Batched solvers (the
ordering functions) keep a batch of independent rows: ``a`` then has the batch shape and each row
only sees its own samples, which keeps other rows' noise out of its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ._noise import score

#: ``baseline=`` values: no baseline, the leave-one-out mean, mean plus linear control variate.
BASELINES: tuple[str, ...] = ("none", "mean", "linear")


def baseline_name(baseline: bool | str) -> str:
    """``True`` -> ``"mean"``, ``False`` -> ``"none"``; strings are checked by the caller."""
    if baseline is True:
        return "mean"
    if baseline is False:
        return "none"
    return baseline


def _per_unit(t: torch.Tensor, pairs: bool) -> torch.Tensor:
    """``(N, ...)`` -> ``(P, ...)``: the mean over the members of each unit."""
    return t.reshape(2, t.shape[0] // 2, *t.shape[1:]).mean(0) if pairs else t


def _per_sample(t: torch.Tensor, pairs: bool) -> torch.Tensor:
    """``(P, ...)`` -> ``(N, ...)``: each unit's value repeated for its members."""
    return torch.cat([t, t]) if pairs else t


def _others(per_unit: torch.Tensor) -> torch.Tensor:
    """Leave-one-out mean over the leading (unit) axis."""
    return (per_unit.sum(0, keepdim=True) - per_unit) / (per_unit.shape[0] - 1)


def _trailing(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * (ndim - t.dim())))


def centered(a: torch.Tensor, pairs: bool, baseline: bool) -> torch.Tensor:
    """``a - beta``: per-sample weights minus the leave-one-out mean of the other units.

    Args:
        a: per-sample scalars, shape ``(N, *batch)``; with ``pairs`` rows ``i`` and ``i + N/2``
            form a unit.
        pairs: samples come in antithetic pairs.
        baseline: subtract the leave-one-out mean of the other units.
    """
    units = a.shape[0] // 2 if pairs else a.shape[0]
    if not baseline or units < 2:
        return a
    return a - _per_sample(_others(_per_unit(a, pairs)), pairs)


def score_vjps(
    a: torch.Tensor,
    zs: list[torch.Tensor],
    noise: str,
    softness: float,
    pairs: bool,
    baseline: str,
) -> list[torch.Tensor]:
    r"""The score-function vector-Jacobian products
    :math:`\frac{1}{Ns}\sum_i (a_i - \beta_i)\,\psi(Z_{j,i})` for each input ``j`` (minus the
    linear control variate with ``baseline="linear"``).

    Args:
        a: per-sample scalars :math:`\langle g, f_i\rangle`, shape ``(N, *batch)``.
        zs: the noise of each input, shape ``(N, *batch, *event_j)``.
        noise: ``"gaussian"`` or ``"gumbel"`` (fixes the score).
        softness: the noise scale ``s``.
        pairs: samples come in antithetic pairs (rows ``i`` and ``i + N/2``).
        baseline: ``"none"``, ``"mean"`` or ``"linear"``.
    """
    nb = a.dim()
    psis = [score(z, noise) for z in zs]
    w = centered(a, pairs, baseline != "none")
    parts = [_trailing(w, psi.dim()) * psi / softness for psi in psis]
    units = a.shape[0] // 2 if pairs else a.shape[0]
    if baseline == "linear" and units >= 2:
        chats = [_per_sample(_others(_per_unit(p, pairs)), pairs) for p in parts]
        inner = sum(
            (z * c).reshape(*z.shape[:nb], -1).sum(-1) for z, c in zip(zs, chats)
        )  # <Z_i, c_-k> over all inputs, (N, *batch)
        parts = [
            p - (psi * _trailing(inner, psi.dim()) - c) for p, psi, c in zip(parts, psis, chats)
        ]
    return [p.mean(0) for p in parts]


@dataclass(frozen=True)
class Spec:
    """Static settings of one :class:`ScoreFunction` node."""

    n_inputs: int
    softness: float
    noise: str
    pairs: bool
    baseline: str


class ScoreFunction(torch.autograd.Function):
    """``apply(spec, *xs, *zs, *fs)``: forward returns the sample means of the outputs ``fs``
    (each ``(N, *out_shape)``); backward gives each ``x_j`` the score-function VJP with its own
    noise ``z_j`` (``(N, *x_j.shape)``). ``fs`` were computed outside (under the caller's
    torch-function mode); the node only holds the estimator."""

    @staticmethod
    def forward(ctx: Any, spec: Spec, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        k = spec.n_inputs
        xs, zs, fs = tensors[:k], tensors[k : 2 * k], tensors[2 * k :]
        ctx.spec = spec
        ctx.x_dtypes = [x.dtype for x in xs]
        ctx.save_for_backward(*zs, *fs)
        return tuple(f.mean(0) for f in fs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        spec: Spec = ctx.spec
        k = spec.n_inputs
        saved = ctx.saved_tensors
        zs, fs = list(saved[:k]), saved[k:]
        n = fs[0].shape[0]
        dtype = torch.promote_types(fs[0].dtype, zs[0].dtype)
        a = torch.zeros(n, dtype=dtype, device=fs[0].device)
        for g, f in zip(grads, fs):
            if g is not None:
                a = a + (f * g.unsqueeze(0)).reshape(n, -1).sum(1).to(dtype)
        need = [j for j in range(k) if ctx.needs_input_grad[1 + j]]
        vjps = score_vjps(
            a, [zs[j].to(dtype) for j in need], spec.noise, spec.softness, spec.pairs,
            spec.baseline,
        )  # fmt: skip
        out: list[torch.Tensor | None] = [None] * k
        for j, v in zip(need, vjps):
            out[j] = v.to(ctx.x_dtypes[j])
        return (None, *out, *([None] * (len(zs) + len(fs))))
