r"""Regularised projections onto the probability simplex, and a row-chunked evaluator.

``project_simplex(s, mode)`` returns the regularised argmax over the simplex
:math:`\Delta^n = \{p \ge 0, \sum_i p_i = 1\}` of the scores ``s`` (already divided by softness):

.. math:: p^\star = \arg\max_{p \in \Delta^n} \langle s, p\rangle - \Omega(p).

* ``smooth``: negative entropy, :math:`p = \mathrm{softmax}(s)`.
* ``c0``: :math:`\Omega = \tfrac12\|p\|^2`, the Euclidean projection (sparsemax,
  :math:`p_i = (s_i - \lambda)_+`).
* ``c1``: p-norm regulariser with :math:`p = 3/2`, :math:`p_i = (s_i - \lambda)_+^2`.
* ``c2``: p-norm regulariser with :math:`p = 4/3`, :math:`p_i = (s_i - \lambda)_+^3`.
* ``hard``: one-hot of the (first) argmax.

For the sparse modes, with exponent :math:`e \in \{1, 2, 3\}`, :math:`\lambda` solves
:math:`\sum_i (s_i - \lambda)_+^e = 1`. Writing :math:`u_1 \ge u_2 \ge \dots` for the sorted scores,
entry :math:`k` is in the support iff :math:`f_k = \sum_{j \le k} (u_j - u_k)^e < 1` (``f`` is
non-decreasing in ``k``), so the support is found with cumulative sums of the sorted scores. On the
support of size :math:`K` with mean :math:`\mu` and centred moments :math:`M_2, M_3`,
:math:`t = \mu - \lambda` solves

* :math:`e = 1`: :math:`t = 1/K`;
* :math:`e = 2`: :math:`M_2 + K t^2 = 1`, so :math:`t = \sqrt{(1 - M_2)/K}`;
* :math:`e = 3`: :math:`K t^3 + 3 M_2 t + M_3 - 1 = 0`, a depressed cubic with
  :math:`P = M_2/K \ge 0` and :math:`Q = (M_3 - 1)/(2K) < 0`, whose one real root is
  :math:`t = c - P/c` with :math:`c = \sqrt[3]{-Q + \sqrt{Q^2 + P^3}}` (Cardano, no cancellation).

Only the support search is discrete; autograd through the closed form on the (locally constant)
support gives the exact Jacobian. Scores are shifted by their (detached) maximum first; entries
below ``max - 1`` are never in the support (only the largest candidates above it are sorted, with
``topk`` when they are few) and are clamped to ``max - 1.5`` so that ``-inf`` or huge negative
scores cannot overflow the moment sums.

:func:`chunked_rows` evaluates a function of a matrix built row-block by row-block (e.g. an
``n x n`` score matrix) and, in backward, recomputes each block instead of keeping its autograd
graph, so memory stays ``O(output + block)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

from ._checks import MODES, check_choice

_EXPONENT: dict[str, int] = {"c0": 1, "c1": 2, "c2": 3}

#: Elements of intermediate work per row block in :func:`chunked_rows` (4 MB per float32 temporary).
CHUNK_BUDGET: int = 1 << 20
#: Problems up to this many elements are evaluated in one piece under ordinary autograd.
PLAIN_BUDGET: int = 1 << 22


def project_simplex(scores: torch.Tensor, mode: str = "smooth", dim: int = -1) -> torch.Tensor:
    r"""Regularised argmax of ``scores`` over the probability simplex along ``dim``.

    Args:
        scores: real scores, already divided by the softness.
        mode: ``smooth`` (softmax), ``c0`` (sparsemax), ``c1`` / ``c2`` (p-norm, p = 3/2, 4/3)
            or ``hard`` (one-hot argmax).
        dim: the simplex axis.

    Returns:
        Non-negative weights of the same shape summing to 1 along ``dim`` (NaN rows stay NaN).

    Example:
        >>> project_simplex(torch.tensor([0.0, 0.5, 2.0]), "c0")
        tensor([0., 0., 1.])
    """
    mode = check_choice(mode, MODES, "mode")
    if dim != -1 and dim != scores.ndim - 1:
        return project_simplex(scores.movedim(dim, -1), mode).movedim(-1, dim)
    if mode == "smooth":
        return _softmax(scores)
    if mode == "hard":
        if scores.shape[-1] == 0:
            return scores.clone()
        idx = scores.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(scores).scatter_(-1, idx, 1.0)
    return _project_pnorm(scores, _EXPONENT[mode])


def _softmax(s: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; explicit for short rows, where torch's CPU kernel is slow."""
    if s.shape[-1] >= 16 or s.shape[-1] == 0:
        return torch.softmax(s, dim=-1)
    e = torch.exp(s - s.detach().amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def is_concrete(t: torch.Tensor) -> bool:
    """Whether the values of ``t`` can be read in Python (``int(t)``, ``bool(t)``): eager mode,
    not a ``torch.func`` (vmap / grad / jvp) wrapper and not a fake tensor. Code paths with
    data-dependent shapes or control flow fall back to pure tensor ops otherwise."""
    # torch internal, checked on torch 2.13.0
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(t):
        return False
    # torch internal, checked on torch 2.13.0
    from torch._subclasses.fake_tensor import is_fake

    return not is_fake(t)


def _support_mask(u: torch.Tensor, e: int) -> torch.Tensor:
    """Boolean support of the e-power projection of shifted scores ``u <= 0`` (no gradient)."""
    with torch.no_grad():
        n = u.shape[-1]
        if n > 32 and is_concrete(u):
            # only entries above -1 can be in the support: sort just the largest of them
            cand = int((u > -1.0).sum(-1).amax()) if u.numel() else 1
            cand = min(n, cand + 1)
        else:  # short rows, or traced / vmapped: a full sort (no data-dependent shape)
            cand = n
        if cand < n // 2:
            srt = u.topk(cand, dim=-1).values
        else:
            srt = u.sort(dim=-1, descending=True).values
        k = torch.arange(1, srt.shape[-1] + 1, device=u.device, dtype=u.dtype)
        c1 = srt.cumsum(-1)
        if e == 1:
            f = c1 - k * srt
        else:
            c2 = (srt * srt).cumsum(-1)
            if e == 2:
                f = c2 - 2.0 * srt * c1 + k * srt * srt
            else:
                c3 = (srt * srt * srt).cumsum(-1)
                f = c3 - 3.0 * srt * c2 + 3.0 * srt * srt * c1 - k * srt * srt * srt
        size = (f < 1.0).sum(-1, keepdim=True).clamp_min(1)
        thr = srt.gather(-1, size - 1)
        return u >= thr


def _project_pnorm(scores: torch.Tensor, e: int) -> torch.Tensor:
    """``p_i = relu(s_i - lam)^e`` with ``sum(p) = 1`` (see the module docstring)."""
    if scores.shape[-1] == 0:
        return scores.clone()
    top = scores.detach().amax(dim=-1, keepdim=True)
    u = (scores - top).clamp_min(-1.5)
    mask = _support_mask(u, e)
    size = mask.sum(-1, keepdim=True).to(u.dtype).clamp_min(1.0)
    mu = torch.where(mask, u, 0.0).sum(-1, keepdim=True) / size
    if e == 1:
        t = 1.0 / size
    else:
        tiny = torch.finfo(u.dtype).tiny ** 0.25
        d = torch.where(mask, u - mu, 0.0)
        m2 = (d * d).sum(-1, keepdim=True)
        if e == 2:
            t = torch.sqrt(((1.0 - m2) / size).clamp_min(tiny))
        else:
            m3 = (d * d * d).sum(-1, keepdim=True)
            p = m2 / size
            q = (m3 - 1.0) / (2.0 * size)
            disc = torch.sqrt((q * q + p * p * p).clamp_min(tiny))
            c = torch.pow((disc - q).clamp_min(tiny), 1.0 / 3.0)
            t = c - p / c
    lam = mu - t
    r = torch.relu(u - lam)
    return r if e == 1 else r**e


RowFn = Callable[..., "torch.Tensor | tuple[torch.Tensor, ...]"]
CatDim = int | None


def _bounds(n_rows: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk, n_rows)) for a in range(0, n_rows, chunk)]


def _as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


class _RowChunked(torch.autograd.Function):
    """Row-block evaluation with per-block recomputation in backward (first order only).

    Outputs whose gradient is not needed arrive as ``None`` in backward (grads are not
    materialised), so e.g. a returned ``P`` costs no ``n x n`` gradient when only ``P @ x`` is used.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        fn: RowFn,
        bounds: list[tuple[int, int]],
        cat_dims: tuple[CatDim, ...],
        *inputs: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        firsts = _as_tuple(fn(*bounds[0], *inputs))
        outs = []
        for first, cd in zip(firsts, cat_dims):
            if cd is None:
                outs.append(first)
                continue
            # fill a preallocated result block by block (no second copy via torch.cat)
            shape = list(first.shape)
            shape[cd] = bounds[-1][1]
            out = first.new_empty(shape)
            out.narrow(cd, 0, bounds[0][1]).copy_(first)
            outs.append(out)
        del firsts
        for a, b in bounds[1:]:
            for i, (part, cd) in enumerate(zip(_as_tuple(fn(a, b, *inputs)), cat_dims)):
                if cd is None:
                    outs[i] = outs[i] + part
                else:
                    outs[i].narrow(cd, a, b - a).copy_(part)
        ctx.fn, ctx.bounds, ctx.cat_dims = fn, bounds, cat_dims  # type: ignore[attr-defined]
        ctx.save_for_backward(*inputs)
        ctx.set_materialize_grads(False)
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, *grads_out: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        inputs = ctx.saved_tensors  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad[3:]  # type: ignore[attr-defined]
        leaves = [t.detach().requires_grad_(bool(nd)) for t, nd in zip(inputs, needs)]
        wanted = [leaf for leaf in leaves if leaf.requires_grad]
        grads: list[torch.Tensor | None] = [None] * len(inputs)
        live = [i for i, g in enumerate(grads_out) if g is not None]
        if not wanted or not live:
            return (None, None, None, *grads)
        acc: list[torch.Tensor | None] = [None] * len(wanted)
        cat_dims = ctx.cat_dims  # type: ignore[attr-defined]
        for a, b in ctx.bounds:  # type: ignore[attr-defined]
            with torch.enable_grad():
                outs = _as_tuple(ctx.fn(a, b, *leaves))  # type: ignore[attr-defined]
            sel, gs = [], []
            for i in live:
                g = grads_out[i]
                assert g is not None
                cd = cat_dims[i]
                sel.append(outs[i])
                gs.append(g if cd is None else g.narrow(cd, a, b - a))
            parts = torch.autograd.grad(sel, wanted, gs, allow_unused=True)
            acc = [p if s is None else (s if p is None else s + p) for s, p in zip(acc, parts)]
            del outs, sel, gs, parts
        it = iter(acc)
        for i, leaf in enumerate(leaves):
            if leaf.requires_grad:
                gi = next(it)
                grads[i] = torch.zeros_like(leaf) if gi is None else gi
        return (None, None, None, *grads)


def chunked_rows(
    fn: RowFn,
    n_rows: int,
    inputs: Sequence[torch.Tensor],
    *,
    row_numel: int,
    cat_dim: CatDim | tuple[CatDim, ...] = -2,
    budget: int | None = None,
    plain_budget: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    r"""Evaluate ``fn(0, n_rows, *inputs)`` block by block of rows to bound memory.

    ``fn(a, b, *inputs)`` computes the result for rows ``a:b`` (a tensor, or a tuple of tensors
    with ``cat_dim`` a tuple of the same length); blocks are concatenated along ``cat_dim`` (or
    summed where it is None). ``row_numel`` is the number of intermediate elements one row costs
    (e.g. ``batch * n``). When all rows fit in ``plain_budget`` elements (default
    :data:`PLAIN_BUDGET`), ``fn`` runs once under ordinary autograd (higher-order gradients work);
    otherwise a custom autograd function evaluates blocks of ``budget`` elements (default
    :data:`CHUNK_BUDGET`), keeps only ``inputs`` (and the outputs) and recomputes each block in
    backward (first-order gradients only). Under ``torch.func`` transforms or tracing ``fn`` also
    runs once (the transforms need an ordinary graph). ``inputs`` must be all the tensors ``fn``
    differentiates through.
    """
    budget = CHUNK_BUDGET if budget is None else budget
    plain_budget = PLAIN_BUDGET if plain_budget is None else plain_budget
    chunk = max(1, budget // max(row_numel, 1))
    if n_rows <= chunk or n_rows * row_numel <= plain_budget:
        return fn(0, n_rows, *inputs)
    if not all(is_concrete(t) for t in inputs):  # under torch.func transforms / tracing
        return fn(0, n_rows, *inputs)
    multi = isinstance(cat_dim, tuple)
    cat_dims = cat_dim if isinstance(cat_dim, tuple) else (cat_dim,)
    outs = _RowChunked.apply(fn, _bounds(n_rows, chunk), cat_dims, *inputs)
    return tuple(outs) if multi else outs[0]
