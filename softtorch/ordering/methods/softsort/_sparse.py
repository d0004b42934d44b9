r"""SoftSort in the sparse modes (``c0`` / ``c1`` / ``c2``) without ``n x n``: values and ranks.

As in ``smooth`` (:mod:`._smooth`), the anchors are the sorted scores themselves, so with
:math:`u = \mathrm{sort}(z)` ascending, ``P @ x`` and the ranks are
:math:`y_m = \sum_j p_{mj} w_j` with :math:`p_{m,:} = \Pi(-|u_m - u_{:}|/s)` the sparse
projection of :mod:`softtorch.simplex` (``w`` the sorted values, or the positions ``1..n``). Its
support is a window of sorted points around ``m`` of distance below ``s`` (an entry whose score
is ``1`` below the peak is never in the support), found in ``O(window)`` per row.

* CPU with numba: :mod:`._sparse_numba` (merge outward from the peak; saves the window limits and
  thresholds, ``O(n)``, and recomputes the window sums in backward).
* Otherwise (or with ``set_backend("torch")``): blocks of rows projected by
  :func:`softtorch.simplex.project_simplex` over the band of columns within distance ``s`` (a
  superset of every support), recomputed under autograd in backward.

Both give the dense path's values and first-order gradients (the same projection restricted to
columns outside which it is exactly zero). Inputs must be finite and the softness a Python float
(:mod:`.._stream` keeps the dense path otherwise).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .... import simplex
from ....kernels import _kernel_guard
from ... import _take
from ._smooth import _ascending

#: Exponent of the p-norm projection of each sparse mode (``p_i = relu(s_i - lam)^e``).
EXPONENT: dict[str, int] = {"c0": 1, "c1": 2, "c2": 3}
#: Score elements per row block of the torch path.
BLOCK_ELEMENTS: int = 1 << 18
#: Relative margin of the torch path's column band beyond distance ``s``.
_MARGIN: float = 1e-6
_HAS_NUMBA = importlib.util.find_spec("numba") is not None
_FAMILY = "softsort sparse windows"
_backend = "auto"


def set_backend(backend: str) -> None:
    """Select the implementation of the window sums (process-wide).

    Args:
        backend: ``"auto"`` (the numba kernels on CPU when numba is installed, float32 / float64)
            or ``"torch"`` (row blocks of torch ops on every device).
    """
    global _backend
    if backend not in ("auto", "torch"):
        raise ValueError(f"unknown backend {backend!r}; valid backends are: ('auto', 'torch')")
    _backend = backend


def _numba() -> Any:
    return importlib.import_module("softtorch.ordering.methods.softsort._sparse_numba")


def _f64(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached, float64 and contiguous (the kernels' input; a view when it already is)."""
    return t.detach().to(torch.float64).contiguous()


def _use_numba(u: torch.Tensor) -> bool:
    dtype_ok = u.dtype in (torch.float32, torch.float64)
    return _backend == "auto" and _HAS_NUMBA and u.device.type == "cpu" and dtype_ok


# ----------------------------------------------------------------------------------------------
# torch path: row blocks over a band of columns
# ----------------------------------------------------------------------------------------------


def _blocks(u: torch.Tensor, softness: float) -> list[tuple[int, int, int, int]]:
    """``(r0, r1, c0, c1)``: row blocks and the column band holding all their supports."""
    reach = softness * (1.0 + _MARGIN)
    lo = torch.searchsorted(u, u - reach)
    hi = torch.searchsorted(u, u + reach, right=True)
    batch, n = u.shape
    width = int((hi - lo).amax()) + 1
    rows = max(1, BLOCK_ELEMENTS // max(batch * width, 1))
    out = []
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        out.append((r0, r1, int(lo[:, r0].amin()), int(hi[:, r1 - 1].amax())))
    return out


def _block_values(
    ur: torch.Tensor, ub: torch.Tensor, wb: torch.Tensor, inv_s: float, mode: str
) -> torch.Tensor:
    scores = (ur.unsqueeze(-1) - ub.unsqueeze(-2)).abs() * (-inv_s)
    p = simplex.project_simplex(scores, mode)
    return (p @ wb.unsqueeze(-1)).squeeze(-1)


def _torch_values(u: torch.Tensor, w: torch.Tensor, softness: float, mode: str) -> torch.Tensor:
    y = torch.empty_like(u)
    for r0, r1, c0, c1 in _blocks(u, softness):
        y[:, r0:r1] = _block_values(u[:, r0:r1], u[:, c0:c1], w[:, c0:c1], 1.0 / softness, mode)
    return y


def _torch_vjp(
    u: torch.Tensor, w: torch.Tensor, g: torch.Tensor, softness: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    gu = torch.zeros_like(u)
    gw = torch.zeros_like(w)
    for r0, r1, c0, c1 in _blocks(u, softness):
        ur = u[:, r0:r1].detach().requires_grad_(True)
        ub = u[:, c0:c1].detach().requires_grad_(True)
        wb = w[:, c0:c1].detach().requires_grad_(True)
        with torch.enable_grad():
            y = _block_values(ur, ub, wb, 1.0 / softness, mode)
        dr, db, dw = torch.autograd.grad(y, (ur, ub, wb), g[:, r0:r1])
        gu[:, r0:r1] += dr
        gu[:, c0:c1] += db
        gw[:, c0:c1] += dw
    return gu, gw


# ----------------------------------------------------------------------------------------------
# the autograd function
# ----------------------------------------------------------------------------------------------


class _WindowSmooth(torch.autograd.Function):
    """``y_m = sum_j Pi(-|u_m - u_j| / s)_j w_j`` on ascending ``u`` (batch, n); saves ``u``,
    ``w`` and, with the kernel, the ``O(n)`` window limits and thresholds (all saved tensors:
    freed after backward, seen by saved-tensor hooks)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, u: torch.Tensor, w: torch.Tensor, softness: float, mode: str
    ) -> torch.Tensor:
        ctx.softness, ctx.mode = softness, mode
        if _use_numba(u):
            ud, wd = _f64(u), _f64(w)

            def kernel() -> tuple[torch.Tensor, ...]:
                out = _numba().window_values(ud.numpy(), wd.numpy(), 1.0 / softness, EXPONENT[mode])
                return tuple(torch.from_numpy(t) for t in out)

            res = _kernel_guard.guarded(_FAMILY, kernel, lambda: None, "the torch path")
            if res is not None:
                y, *rest = res  # rest: lo, hi, lam, wbar
                ctx.save_for_backward(u, w, *rest)
                return y.to(u.dtype)
        with torch.no_grad():
            y = _torch_values(u.detach(), w.detach(), softness, mode)
        ctx.save_for_backward(u, w)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        u, w, *state = ctx.saved_tensors
        if state:
            lo, hi, lam, wbar = (t.numpy() for t in state)
            ud, wd = _f64(u).numpy(), _f64(w).numpy()
            gd = _f64(g).numpy()
            e = EXPONENT[ctx.mode]

            def kernel() -> tuple[torch.Tensor, torch.Tensor]:
                gu, gw = _numba().window_values_vjp(
                    ud, wd, gd, lo, hi, lam, wbar, 1.0 / ctx.softness, e
                )
                return torch.from_numpy(gu).to(u.dtype), torch.from_numpy(gw).to(w.dtype)

            def fallback() -> tuple[torch.Tensor, torch.Tensor]:
                return _torch_vjp(u.detach(), w.detach(), g, ctx.softness, ctx.mode)

            gu_t, gw_t = _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch path")
        else:
            gu_t, gw_t = _torch_vjp(u.detach(), w.detach(), g, ctx.softness, ctx.mode)
        return (
            gu_t if ctx.needs_input_grad[0] else None,
            gw_t if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def window_smooth(u: torch.Tensor, w: torch.Tensor, softness: float, mode: str) -> torch.Tensor:
    r""":math:`y_m = \sum_j \Pi(-|u_m - u_j|/s)_j\, w_j` for ascending ``u`` (sparse ``mode``).

    Args:
        u: finite points sorted ascending along the last axis, ``(..., n)``.
        w: finite weights broadcastable to ``u``.
        softness: ``s > 0`` (a Python float).
        mode: ``c0``, ``c1`` or ``c2``.

    Returns:
        ``y`` of ``u``'s shape and dtype (first-order gradients w.r.t. ``u`` and ``w``).
    """
    shape = u.shape
    n = shape[-1]
    uf = u.reshape(-1, n)
    wf = w.expand(shape).reshape(-1, n)
    return _WindowSmooth.apply(uf, wf, float(softness), mode).reshape(shape)


def softsort_values(
    z: torch.Tensor, x: torch.Tensor, softness: float, mode: str, descending: bool
) -> torch.Tensor:
    r"""SoftSort's ``P @ x`` in a sparse mode (rows: the sorted scores as anchors) without ``P``.

    Args:
        z: finite scores ``(..., n)``.
        x: finite values of ``z``'s shape.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
        descending: anchors in descending order.
    """
    zs, idx = _take.sort(z, descending=descending)
    xs = x.gather(-1, idx)
    y = window_smooth(_ascending(zs, descending), _ascending(xs, descending), softness, mode)
    return _ascending(y, descending)


def softsort_rank(z: torch.Tensor, softness: float, mode: str, descending: bool) -> torch.Tensor:
    r"""SoftSort's ranks :math:`r_k = \sum_i i\,\Pi_i(-|\hat z_i - z_k| / s)` in a sparse mode:
    the same window sums with the positions ``1..n`` as weights, read back at each input.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
        descending: position 1 is the largest score.
    """
    zs, idx = _take.sort(z, descending=descending)
    pos = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    y = window_smooth(_ascending(zs, descending), _ascending(pos, descending), softness, mode)
    y = _ascending(y, descending)
    return torch.zeros_like(y).scatter(-1, idx, y)


# ----------------------------------------------------------------------------------------------
# rows of the soft permutation (argsort, sort with indices, topk, quantile rows)
# ----------------------------------------------------------------------------------------------


def _row_chunks(
    u: torch.Tensor, rows: list[int], softness: float
) -> list[tuple[int, int, int, int]]:
    """``(i0, i1, c0, c1)``: chunks ``rows[i0:i1]`` whose column band ``c0:c1`` (holding their
    supports) keeps ``batch * rows * band`` within :data:`BLOCK_ELEMENTS` (or one row)."""
    reach = softness * (1.0 + _MARGIN)
    lo = torch.searchsorted(u, u - reach).amin(0).tolist()
    hi = torch.searchsorted(u, u + reach, right=True).amax(0).tolist()
    out: list[tuple[int, int, int, int]] = []
    i0, c0, c1 = 0, lo[rows[0]], hi[rows[0]]
    for i in range(1, len(rows)):
        a, b = min(c0, lo[rows[i]]), max(c1, hi[rows[i]])
        if u.shape[0] * (i + 1 - i0) * (b - a) > BLOCK_ELEMENTS:
            out.append((i0, i, c0, c1))
            i0, a, b = i, lo[rows[i]], hi[rows[i]]
        c0, c1 = a, b
    out.append((i0, len(rows), c0, c1))
    return out


def _chunk_rows(ar: torch.Tensor, ub: torch.Tensor, inv_s: float, mode: str) -> torch.Tensor:
    return simplex.project_simplex((ar.unsqueeze(-1) - ub.unsqueeze(-2)).abs() * (-inv_s), mode)


def _torch_rows(
    u: torch.Tensor, perm: torch.Tensor, rows: torch.Tensor, softness: float, mode: str
) -> torch.Tensor:
    batch, n = u.shape
    out = u.new_zeros(batch, rows.shape[0], n)
    for i0, i1, c0, c1 in _row_chunks(u, rows.tolist(), softness):
        ar = u.index_select(-1, rows[i0:i1])
        p = _chunk_rows(ar, u[:, c0:c1], 1.0 / softness, mode)
        cols = perm[:, None, c0:c1].expand(batch, i1 - i0, c1 - c0)
        out[:, i0:i1].scatter_(-1, cols, p)
    return out


def _torch_rows_vjp(
    u: torch.Tensor, perm: torch.Tensor, rows: torch.Tensor, g: torch.Tensor, softness: float,
    mode: str,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    batch = u.shape[0]
    gu = torch.zeros_like(u)
    ga = u.new_zeros(batch, rows.shape[0])
    for i0, i1, c0, c1 in _row_chunks(u, rows.tolist(), softness):
        ar = u.index_select(-1, rows[i0:i1]).detach().requires_grad_(True)
        ub = u[:, c0:c1].detach().requires_grad_(True)
        with torch.enable_grad():
            p = _chunk_rows(ar, ub, 1.0 / softness, mode)
        cols = perm[:, None, c0:c1].expand(batch, i1 - i0, c1 - c0)
        dr, db = torch.autograd.grad(p, (ar, ub), g[:, i0:i1].gather(-1, cols))
        ga[:, i0:i1] = dr
        gu[:, c0:c1] += db
    return gu, ga


class _WindowRows(torch.autograd.Function):
    """Rows ``rows`` of ``Pi(-|a_i - u_:| / s)`` on ascending ``u`` (batch, n) with the anchors
    ``a_i = u[rows[i]]`` (equal values, their own gradient path), columns in the original order
    ``perm``; saves ``u`` and ``O(rows)`` window data (saved tensors), no ``n x n`` tensor."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, a: torch.Tensor, u: torch.Tensor, perm: torch.Tensor, rows: torch.Tensor,
        softness: float, mode: str,
    ) -> torch.Tensor:  # fmt: skip
        ctx.softness, ctx.mode = softness, mode
        if _use_numba(u):
            ud = _f64(u)
            pn, rn = perm.contiguous().numpy(), rows.contiguous().numpy()

            out = u.new_zeros(u.shape[0], rows.shape[0], u.shape[1])

            def kernel() -> tuple[torch.Tensor, ...]:
                e = EXPONENT[mode]
                res = _numba().window_rows(ud.numpy(), rn, pn, 1.0 / softness, e, out.numpy())
                return tuple(torch.from_numpy(t) for t in res)

            res = _kernel_guard.guarded(_FAMILY, kernel, lambda: None, "the torch path")
            if res is not None:
                ctx.save_for_backward(u, perm, rows, *res)  # res: lo, hi, lam
                return out
        ctx.save_for_backward(u, perm, rows)
        with torch.no_grad():
            return _torch_rows(u.detach(), perm, rows, softness, mode)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        u, perm, rows, *state = ctx.saved_tensors

        def fallback() -> tuple[torch.Tensor, torch.Tensor]:
            return _torch_rows_vjp(u.detach(), perm, rows, g, ctx.softness, ctx.mode)

        if not state:
            gu, ga = fallback()
        else:
            lo, hi, lam = (t.numpy() for t in state)
            ud = _f64(u).numpy()
            pn, rn = perm.contiguous().numpy(), rows.contiguous().numpy()
            gd = g.detach().contiguous().numpy()  # read in its own dtype (no n x n copy)

            def kernel() -> tuple[torch.Tensor, torch.Tensor]:
                gu, ga = _numba().window_rows_vjp(
                    ud, rn, pn, gd, lo, hi, lam, 1.0 / ctx.softness, EXPONENT[ctx.mode]
                )
                return torch.from_numpy(gu).to(u.dtype), torch.from_numpy(ga).to(u.dtype)

            gu, ga = _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch path")
        return ga, gu, None, None, None, None


def _perm_rows(
    z: torch.Tensor, anchors: torch.Tensor, rows: torch.Tensor, softness: float, mode: str
) -> torch.Tensor:
    """Rows of SoftSort's permutation in a sparse mode, ``(..., r, n)``: ``anchors`` (``(..., r)``,
    with the anchors' own gradient path, as the dense path) equal the ascending sorted scores at
    ``rows``."""
    u, perm = _take.sort(z)
    n, r = z.shape[-1], rows.shape[0]
    args = (anchors.reshape(-1, r), u.reshape(-1, n), perm.reshape(-1, n), rows)
    out = _WindowRows.apply(*args, float(softness), mode)
    return out.reshape(*z.shape[:-1], r, n)


def softsort_permutation(
    z: torch.Tensor,
    softness: float,
    mode: str,
    descending: bool,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """SoftSort's soft permutation (or its rows ``positions``) in a sparse mode, written from the
    windows with ``O(n)`` autograd memory besides the result.

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
        descending: rows in descending order.
        positions: 1-D int64 rows to return (all rows when None).
    """
    n = z.shape[-1]
    anchors = _take.sort(z, descending=descending)[0]
    pos = torch.arange(n, device=z.device) if positions is None else positions
    if positions is not None:
        anchors = _take.index_select_last(anchors, positions)
    return _perm_rows(z, anchors, n - 1 - pos if descending else pos, softness, mode)


def softsort_topk_permutation(z: torch.Tensor, k: int, softness: float, mode: str) -> torch.Tensor:
    """The first ``k`` rows of the descending soft permutation in a sparse mode (anchors:
    ``topk(z, k)``, as the dense path).

    Args:
        z: finite scores ``(..., n)``.
        k: rows.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
    """
    n = z.shape[-1]
    rows = n - 1 - torch.arange(k, device=z.device)
    return _perm_rows(z, _take.topk(z, k)[0], rows, softness, mode)
