r"""Perturbed optimisers for the ordering ops: argmax, max, top-k, sort and rank (Berthet et al.,
2020, "Learning with Differentiable Perturbed Optimizers").

Math. Each op is a linear program over a polytope ``C`` whose vertices are the hard results,
:math:`y^*(\theta) = \arg\max_{y \in C} \langle y, \theta\rangle`: one-hot vectors for argmax,
``k``-subset indicators for top-k, permutation matrices (the Birkhoff polytope; equivalently the
permutahedron for ranks) for sort. The perturbed optimiser is

.. math::

    y_s(\theta) = \mathbb{E}\big[y^*(\theta + sZ)\big], \qquad
    J y_s(\theta) = \frac{1}{s}\,\mathbb{E}\big[y^*(\theta + sZ)\,\psi(Z)^\top\big],

with :math:`\psi(z) = z` for Gaussian and :math:`1 - e^{-z}` for Gumbel noise. :math:`y_s` is
the gradient of the convex perturbed maximum :math:`F_s(\theta) = \mathbb{E}[\max_{y \in C}
\langle y, \theta + sZ\rangle]` (so :func:`perturbed_max`'s value has the pathwise gradient
:math:`y_s`); the Jacobian-vector products in the backward pass use the score-function estimator
of :mod:`._estimators` row by row (antithetic pairs, leave-one-out baseline). With Gumbel noise
the perturbed argmax is exactly :math:`\operatorname{softmax}(\theta / s)` in expectation and
:math:`F_s = s \log\sum_i e^{\theta_i / s} + \gamma s`.

Soft indices follow softtorch's convention: a trailing axis of length ``n`` holds a
distribution over positions (``P[..., i, j]`` = probability that sorted slot ``i`` holds element
``j``); values are ``P @ x``. The softness is in the units of ``x`` (no standardisation). The
hard solvers run on all samples at once; memory is ``samples x`` the input (plus the index
rows), never ``samples x n x n``.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _noise
from ._estimators import score_vjps
from ._validate import (
    check_baseline,
    check_float_softness,
    check_generator,
    check_noise,
    check_samples,
    plain,
)


class _Rows(torch.autograd.Function):
    """``apply(x, z, order, n, opts)``: mean over samples of the one-hot rows ``order``
    (``(N, *batch, r)`` positions in ``[0, n)``) -> ``(*batch, r, n)``; backward: the row-wise
    score-function VJP (``z``: the ``(N, *batch, n)`` noise; ``opts``: ``(noise, softness,
    pairs, baseline)``)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, z: torch.Tensor, order: torch.Tensor, n: int, opts: tuple
    ) -> torch.Tensor:
        samples = order.shape[0]
        idx = order.movedim(0, -1)  # (*batch, r, N)
        out = torch.zeros(*idx.shape[:-1], n, dtype=x.dtype, device=x.device)
        out.scatter_add_(-1, idx, torch.ones(idx.shape, dtype=x.dtype, device=x.device))
        ctx.save_for_backward(z, order)
        ctx.opts = opts
        return out / samples

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, order = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            expanded = g.unsqueeze(0).expand(order.shape[0], *g.shape)
            a = expanded.gather(-1, order.unsqueeze(-1)).squeeze(-1).sum(-1)  # (N, *batch)
            (grad,) = score_vjps(a, [z], *ctx.opts)
        return grad, None, None, None, None


class _Vectors(torch.autograd.Function):
    """``apply(x, z, v, opts)``: mean over samples of per-sample vectors ``v``
    (``(N, *batch, n)``); backward: the row-wise score-function VJP (as :class:`_Rows`)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, z: torch.Tensor, v: torch.Tensor, opts: tuple
    ) -> torch.Tensor:
        ctx.save_for_backward(z, v)
        ctx.opts = opts
        return v.mean(0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, v = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            a = (v * g.unsqueeze(0)).sum(-1)
            (grad,) = score_vjps(a, [z], *ctx.opts)
        return grad, None, None, None


class _Setup:
    """Validated arguments, ``x`` moved to ``(*batch, n)``, and the noise of one call."""

    def __init__(
        self, x: object, dim: int | None, softness: object, samples: object, noise: object,
        generator: object, antithetic: bool, baseline: bool | str,
    ) -> None:  # fmt: skip
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a real floating-point tensor, got {x.dtype}")
        self.softness = check_float_softness(softness)
        self.samples = check_samples(samples, bool(antithetic))
        self.noise = check_noise(noise)
        check_generator(generator)
        self.opts = (self.noise, self.softness, bool(antithetic), check_baseline(baseline))
        self.flat = dim is None
        if self.flat:
            x, self.dim = x.reshape(-1), 0
        else:
            if isinstance(dim, bool) or not isinstance(dim, int):
                raise TypeError(f"dim must be an int or None, got {type(dim).__name__}")
            if x.dim() == 0:
                x, self.dim = x.reshape(1), 0
            elif not -x.dim() <= dim < x.dim():
                raise IndexError(f"dim {dim} is out of range for a {x.dim()}-d tensor")
            else:
                self.dim = dim % x.dim()
        self.x = x.movedim(self.dim, -1)
        self.n = self.x.shape[-1]
        z = _noise.draw(
            self.noise, self.samples, self.x.shape, antithetic=bool(antithetic),
            generator=generator, device=self.x.device, dtype=self.x.dtype,
        )  # type: ignore[arg-type]  # fmt: skip
        self.z = z
        self.y = self.x.detach().unsqueeze(0) + self.softness * z  # perturbed scores

    def rows(self, order: torch.Tensor) -> torch.Tensor:
        return _Rows.apply(self.x, self.z, order, self.n, self.opts)

    def vectors(self, v: torch.Tensor) -> torch.Tensor:
        return _Vectors.apply(self.x, self.z, v, self.opts)

    def place(self, t: torch.Tensor, index: bool) -> torch.Tensor:
        """Move the op axis of a result back to ``dim`` (index results keep a trailing n)."""
        return t.movedim(-2 if index else -1, self.dim)


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    return k


def perturbed_argmax(
    x: torch.Tensor,
    dim: int | None = -1,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.Tensor:
    r"""Perturbed argmax: :math:`\mathbb{E}[\operatorname{onehot}(\arg\max(x + sZ))]`, a
    SoftIndex of shape ``x.shape`` without ``dim`` plus a trailing ``n`` axis (rows sum to 1).

    Gradient: :math:`\frac{1}{s}\mathbb{E}[y^*(x + sZ)\,\psi(Z)^\top]` (Berthet et al., 2020),
    estimated from the forward's samples with antithetic pairs and a leave-one-out baseline.
    Gumbel noise gives :math:`\operatorname{softmax}(x / s)` in expectation; Gaussian noise with
    two entries gives :math:`\Phi((x_1 - x_2) / (\sqrt{2}\,s))`.

    Args:
        x: real floating tensor.
        dim: the reduced axis (None: the flattened input).
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator` (reproducible values and gradients).
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the gradient (``"linear"``: plus the linear
            control variate, see :func:`softtorch.perturbed`).
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        order = st.y.argmax(-1, keepdim=True)
        return st.rows(order).squeeze(-2)


def perturbed_max(
    x: torch.Tensor,
    dim: int | None = -1,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.return_types.max:
    r"""Perturbed maximum ``(values, indices)``: values
    :math:`F_s(x) = \mathbb{E}[\max_i (x_i + sZ_i)] - s\,\mathbb{E}[Z]` (convex, smooth, within
    :math:`O(s)` of ``max``; :math:`s\log\sum_i e^{x_i/s}` for Gumbel noise), indices the
    perturbed argmax (same samples), which is also the exact expected gradient of the values.

    The values' gradient is pathwise (the mean one-hot of the sampled argmaxes, no score
    function: low variance); the indices' is that of :func:`perturbed_argmax`.

    Args:
        x: real floating tensor.
        dim: the reduced axis (None: the flattened input).
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator`.
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the indices' gradient.
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        order = st.y.argmax(-1, keepdim=True)
        shifted = st.x.unsqueeze(0) + st.softness * (st.z - _noise.noise_mean(st.noise))
        values = shifted.gather(-1, order).squeeze(-1).mean(0)
        return torch.return_types.max((values, st.rows(order).squeeze(-2)))


def perturbed_topk(
    x: torch.Tensor,
    k: int,
    dim: int = -1,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    largest: bool = True,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.return_types.topk:
    r"""Perturbed top-k ``(values, indices)``: ``indices[..., j, :]`` (SoftIndex ``(..., k, n)``
    with the ``k`` axis at ``dim``) is the probability of each element being the ``j``-th
    largest of ``x + sZ``; ``values = indices @ x``. ``indices.sum(-2)`` is the soft top-k
    indicator (see :func:`perturbed_topk_mask`).

    Args:
        x: real floating tensor.
        k: number of entries, ``0 <= k <= n``.
        dim: the axis.
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator`.
        largest: the ``k`` largest (else smallest) of the perturbed scores.
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the gradient (``"linear"``: plus the linear
            control variate, see :func:`softtorch.perturbed`).
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        kk = _check_k(k, st.n)
        order = st.y.topk(kk, dim=-1, largest=bool(largest)).indices
        p = st.rows(order)
        values = (p @ st.x.unsqueeze(-1)).squeeze(-1)
        return torch.return_types.topk((st.place(values, False), st.place(p, True)))


def perturbed_topk_mask(
    x: torch.Tensor,
    k: int,
    dim: int = -1,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    largest: bool = True,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.Tensor:
    r"""Soft top-k indicator :math:`\mathbb{E}[\mathbb{1}\{i \in \operatorname{topk}(x + sZ)\}]`
    (shape of ``x``, sums to ``k`` along ``dim``): the perturbed optimiser over ``k``-subsets.

    Args:
        x: real floating tensor.
        k: number of entries, ``0 <= k <= n``.
        dim: the axis.
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator`.
        largest: the ``k`` largest (else smallest).
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the gradient (``"linear"``: plus the linear
            control variate, see :func:`softtorch.perturbed`).
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        kk = _check_k(k, st.n)
        top = st.y.topk(kk, dim=-1, largest=bool(largest)).indices
        v = torch.zeros_like(st.y).scatter_(-1, top, 1.0)
        return st.place(st.vectors(v), False)


def perturbed_sort(
    x: torch.Tensor,
    dim: int = -1,
    descending: bool = False,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.return_types.sort:
    r"""Perturbed sort ``(values, indices)``: ``indices`` is the expected permutation matrix
    :math:`P = \mathbb{E}[\operatorname{perm}(\operatorname{argsort}(x + sZ))]` (SoftIndex
    ``x.shape + (n,)`` with the sorted axis at ``dim``; doubly stochastic), ``values = P @ x``.

    The perturbed optimiser over the Birkhoff polytope (for the linear objective
    :math:`\langle P, w\,\theta^\top\rangle` with increasing ``w``); its gradient is the
    row-wise score-function estimator.

    Args:
        x: real floating tensor.
        dim: the sorted axis.
        descending: sort in descending order.
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator`.
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the gradient (``"linear"``: plus the linear
            control variate, see :func:`softtorch.perturbed`).
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        order = torch.argsort(st.y, dim=-1, descending=bool(descending), stable=True)
        p = st.rows(order)
        values = (p @ st.x.unsqueeze(-1)).squeeze(-1)
        return torch.return_types.sort((st.place(values, False), st.place(p, True)))


def perturbed_rank(
    x: torch.Tensor,
    dim: int = -1,
    descending: bool = True,
    softness: float = 0.1,
    samples: int = 100,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    antithetic: bool = True,
    baseline: bool | str = True,
) -> torch.Tensor:
    r"""Perturbed ranks in ``[1, n]``: :math:`\mathbb{E}[\operatorname{rank}(x + sZ)]`, the
    perturbed argmax over the permutahedron (its vertices are the rank vectors). With
    ``descending=True`` (softtorch's default for ``rank``) the largest entry has rank 1.

    Never builds an ``n x n`` matrix: each sample's rank vector is averaged directly, and the
    backward uses :math:`\langle g, r_i\rangle` per sample.

    Args:
        x: real floating tensor.
        dim: the ranked axis.
        descending: rank 1 for the largest entry (else the smallest).
        softness: noise scale ``s`` > 0, in the units of ``x``.
        samples: Monte-Carlo samples (even and >= 2 with ``antithetic``).
        noise: ``"gaussian"`` or ``"gumbel"``.
        generator: optional :class:`torch.Generator`.
        antithetic: antithetic noise pairs.
        baseline: leave-one-out baseline in the gradient (``"linear"``: plus the linear
            control variate, see :func:`softtorch.perturbed`).
    """
    with plain():
        st = _Setup(x, dim, softness, samples, noise, generator, antithetic, baseline)
        order = torch.argsort(st.y, dim=-1, descending=bool(descending), stable=True)
        ranks = torch.empty_like(order).scatter_(
            -1, order, torch.arange(1, st.n + 1, device=order.device).expand_as(order)
        )
        return st.place(st.vectors(ranks.to(st.x.dtype)), False)
