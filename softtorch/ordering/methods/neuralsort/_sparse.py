r"""NeuralSort in the sparse modes (``c0`` / ``c1`` / ``c2``) without ``n x n``: values and ranks.

With :math:`u = \mathrm{sort}(z)` ascending and :math:`\psi(d) = d\,(2\sigma_s(d) - 1)` the soft
absolute value of the mode, :math:`\psi(d) = |d|` for :math:`|d| \ge w` (``w = BAND * s``, the
half-width of the mode's transition band), so

.. math:: B_k = \sum_j \psi(u_k - u_j) = \sum_j |u_k - u_j|
          + \sum_{|u_k - u_j| < w} \bigl(\psi(u_k - u_j) - |u_k - u_j|\bigr):

prefix sums of the sorted scores (in float64) plus a band correction over row blocks whose
column band holds every pair within ``w`` (:func:`..softsort._sparse._blocks`), recomputed in
backward (:class:`_BandCorrection`).

``B`` is *not* convex in general (the soft absolute value of each sparse mode overshoots ``|d|``'s
slope inside its band, e.g. ``c0``'s slope reaches ``2`` at ``|d| = w``), so the row scores
:math:`f_i(j) = (c_i u_j - B_j)/s` need not be concave in ``j``. With :math:`\hat B \le B` the
lower convex envelope of the points :math:`(u_j, B_j)` (:func:`lower_hull`), the scores
:math:`\hat f_i(j) = (c_i u_j - \hat B_j)/s \ge f_i(j)` are concave in the sorted ``j`` with the
same maximum (attained at a hull vertex), so the columns with :math:`\hat f_i(j) \ge \max - 1`
form a window around the peak that contains the support of the sparse projection (scores within
``1`` of the maximum). The peak and both window ends are found by vectorised binary searches
(``O(n log n)``); the rows are then projected (:func:`softtorch.simplex.project_simplex`) on
their windows only, with the true scores, gathered to a common width (entries beyond a row's
window get score ``-inf``, hence weight exactly ``0``).
Values are :math:`\sum_j p_{ij} x_j`; ranks scatter the column sums of each window.

Autograd memory is ``O(n * window)``; when the widest window would make that large (many
near-ties), :func:`values` / :func:`rank` return None and the dense path runs.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .... import simplex
from ...._sigmoidal_math import BAND, step
from ....kernels import _kernel_guard
from ... import _take
from ..softsort._sparse import BLOCK_ELEMENTS, _blocks, _use_numba

#: Largest ``batch * n * window`` of the gathered windows (else the dense path runs).
MAX_WINDOW_ELEMENTS: int = 1 << 23
#: Index of each sparse mode's sigmoidal in the kernels of :mod:`._sparse_numba`.
_ORDER: dict[str, int] = {"c0": 0, "c1": 1, "c2": 2}
_FAMILY = "neuralsort sparse band correction"
#: Relative slack of the window search beyond the support test's ``1``.
_SLACK: float = 1e-6


def _pair_correction(
    ur: torch.Tensor, ub: torch.Tensor, r0: int, c0: int, softness: float, mode: str
) -> torch.Tensor:
    """Rows ``r0..`` of the band correction over columns ``c0..``: ``|d|`` is written as
    ``d * sign(k - j)`` (equal on sorted points), so tied pairs get the gradient of the prefix
    sums' ``+-1`` back and the total has the dense path's ``psi'(0) = 0``."""
    d = ur.unsqueeze(-1) - ub.unsqueeze(-2)
    rows = torch.arange(r0, r0 + ur.shape[-1], device=ur.device).unsqueeze(-1)
    cols = torch.arange(c0, c0 + ub.shape[-1], device=ur.device)
    sgn = (rows > cols).to(d.dtype) * 2.0 - 1.0
    return (d * (2.0 * step(d, softness, mode) - 1.0 - sgn)).sum(-1)


def _torch_correction(u: torch.Tensor, softness: float, mode: str) -> torch.Tensor:
    out = torch.zeros_like(u)
    with torch.no_grad():
        for r0, r1, c0, c1 in _blocks(u, BAND * softness):
            out[:, r0:r1] = _pair_correction(u[:, r0:r1], u[:, c0:c1], r0, c0, softness, mode)
    return out


def _torch_correction_vjp(
    u: torch.Tensor, g: torch.Tensor, softness: float, mode: str
) -> torch.Tensor:
    gu = torch.zeros_like(u)
    for r0, r1, c0, c1 in _blocks(u, BAND * softness):
        ur = u[:, r0:r1].detach().requires_grad_(True)
        ub = u[:, c0:c1].detach().requires_grad_(True)
        with torch.enable_grad():
            c = _pair_correction(ur, ub, r0, c0, softness, mode)
        dr, db = torch.autograd.grad(c, (ur, ub), g[:, r0:r1])
        gu[:, r0:r1] += dr
        gu[:, c0:c1] += db
    return gu


def _numba() -> Any:
    return importlib.import_module("softtorch.ordering.methods.neuralsort._sparse_numba")


class _BandCorrection(torch.autograd.Function):
    """:math:`C_k = \\sum_j (\\psi - |\\cdot|)(u_k - u_j)` on ascending float64 ``u``
    (batch, n): the numba kernels of :mod:`._sparse_numba` on CPU (the backend switch of
    :mod:`..softsort._sparse`), else row blocks recomputed in backward."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, softness: float, mode: str) -> torch.Tensor:  # type: ignore[override]
        ctx.softness, ctx.mode = softness, mode
        ctx.save_for_backward(u)
        fallback = partial(_torch_correction, u.detach(), softness, mode)
        if not _use_numba(u):
            return fallback()
        un = u.detach().contiguous().numpy()

        def kernel() -> torch.Tensor:
            out = _numba().band_correction(un, BAND * softness, _ORDER[mode])
            return torch.from_numpy(out)

        return _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch path")

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        s, mode = ctx.softness, ctx.mode
        fallback = partial(_torch_correction_vjp, u.detach(), g, s, mode)
        if not _use_numba(u):
            return fallback(), None, None
        un, gn = u.detach().contiguous().numpy(), g.detach().contiguous().numpy()

        def kernel() -> torch.Tensor:
            return torch.from_numpy(_numba().band_correction_vjp(un, gn, BAND * s, _ORDER[mode]))

        return _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch path"), None, None


def sorted_abs_sums(u: torch.Tensor, softness: float, mode: str) -> torch.Tensor:
    r""":math:`B_k = \sum_j |u_k - u_j|_s` of ascending ``u`` ``(batch, n)``, in float64.

    Args:
        u: finite points sorted ascending along the last axis.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
    """
    ud = u.to(torch.float64)
    n = u.shape[-1]
    k = torch.arange(n, device=u.device, dtype=torch.float64)
    cs = ud.cumsum(-1)
    below = k * ud - (cs - ud)
    above = (cs[..., -1:] - cs) - (n - 1 - k) * ud
    return below + above + _BandCorrection.apply(ud, float(softness), mode)


def _neighbours(act: torch.Tensor, strict: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column ``j``: the last active column ``< j`` (``<= j`` unless ``strict``; ``-1`` if
    none) and the first active column ``> j`` (``>= j``; ``n`` if none)."""
    n = act.shape[-1]
    idx = torch.arange(n, device=act.device).expand_as(act)
    prev = torch.where(act, idx, -1).cummax(-1).values
    nxt = torch.where(act, idx, n).flip(-1).cummin(-1).values.flip(-1)
    if strict:
        prev = torch.cat((torch.full_like(prev[..., :1], -1), prev[..., :-1]), dim=-1)
        nxt = torch.cat((nxt[..., 1:], torch.full_like(nxt[..., :1], n)), dim=-1)
    return prev, nxt


def _torch_lower_hull(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`lower_hull` in batched torch ops: drop, all at once, every point on or above the
    chord of its remaining neighbours until none is (a dropped point lies above the final convex
    chain, so the survivors are the monotone chain's vertices), then interpolate."""
    n = u.shape[-1]
    act = torch.ones_like(u, dtype=torch.bool)
    while True:
        prev, nxt = _neighbours(act, strict=True)
        p, q = prev.clamp_min(0), nxt.clamp_max(n - 1)
        up, bp, uq, bq = u.gather(-1, p), b.gather(-1, p), u.gather(-1, q), b.gather(-1, q)
        cross = (u - up) * (bq - bp) - (b - bp) * (uq - up)
        drop = act & (prev >= 0) & (nxt < n) & ~(cross > 0.0)
        if not bool(drop.any()):
            break
        act = act & ~drop
    p, q = _neighbours(act, strict=False)
    q = q.clamp_max(n - 1)
    up, bp, uq, bq = u.gather(-1, p), b.gather(-1, p), u.gather(-1, q), b.gather(-1, q)
    dx = uq - up
    slope = (bq - bp) / torch.where(dx > 0.0, dx, 1.0)
    env = torch.where(dx > 0.0, slope * (u - up) + bp, torch.minimum(bp, bq))
    return torch.where(act, b, torch.minimum(b, env))


def lower_hull(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The lower convex envelope of the points ``(u_j, b_j)`` (ascending float64 ``u``,
    ``(batch, n)``) read at every ``u_j``, clipped to ``<= b``: the monotone chain's vertices,
    linear interpolation between consecutive ones. All rows at once: one numba kernel on CPU
    (:func:`._sparse_numba.lower_hull`), else batched torch ops (:func:`_torch_lower_hull`).

    Args:
        u: points sorted ascending along the last axis.
        b: values of ``u``'s shape.
    """
    if u.shape[-1] == 0:
        return b.clone()
    fallback = partial(_torch_lower_hull, u, b)
    if not _use_numba(u):
        return fallback()

    def kernel() -> torch.Tensor:
        un, bn = u.contiguous().numpy(), b.contiguous().numpy()
        return torch.from_numpy(_numba().lower_hull(un, bn))

    return _kernel_guard.guarded(_FAMILY, kernel, fallback, "the torch path")


class _Scores:
    """The row scores ``(c_i u_j - B_j) / s`` of ascending ``u`` and ``B`` (batch, n)."""

    def __init__(self, u: torch.Tensor, b: torch.Tensor, coef: torch.Tensor, inv_s: float):
        self.u, self.b, self.coef, self.inv_s = u, b, coef, inv_s

    def at(self, j: torch.Tensor) -> torch.Tensor:
        """Scores of every row ``i`` at column ``j[:, i]`` (``(batch, R)``)."""
        return (self.coef * self.u.gather(-1, j) - self.b.gather(-1, j)) * self.inv_s


def _windows(sc: _Scores, n: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)`` ``(batch, R)``: per row, the sorted columns whose score is within
    ``1 + slack`` of the (concave) row's maximum, by vectorised binary searches."""
    batch, rows = sc.u.shape[0], sc.coef.shape[-1]
    zeros = torch.zeros(batch, rows, dtype=torch.int64, device=sc.u.device)
    a, c = zeros.clone(), zeros + (n - 1)
    while bool((a < c).any()):  # peak: first j with f(j + 1) <= f(j)
        mid = (a + c) // 2
        up = sc.at((mid + 1).clamp_max(n - 1)) > sc.at(mid)
        a = torch.where(up & (a < c), mid + 1, a)
        c = torch.where(~up & (a < c), mid, c)
    peak = a
    top = sc.at(peak)
    # slack: the relative margin plus the rounding of the scores in the caller's dtype (``eps``)
    scale = sc.coef.abs() * sc.u.abs().amax(-1, keepdim=True) + sc.b.abs().amax(-1, keepdim=True)
    floor = top - 1.0 - _SLACK * (1.0 + top.abs() * 1e-6) - 8.0 * eps * scale * sc.inv_s
    a, c = zeros.clone(), peak.clone()
    while bool((a < c).any()):  # lo: first j <= peak with f(j) >= floor
        mid = (a + c) // 2
        ok = sc.at(mid) >= floor
        a, c = torch.where(ok | (a >= c), a, mid + 1), torch.where(ok & (a < c), mid, c)
    lo = a
    a, c = peak.clone(), zeros + (n - 1)
    while bool((a < c).any()):  # hi: last j >= peak with f(j) >= floor
        mid = (a + c + 1) // 2
        ok = sc.at(mid) >= floor
        a, c = torch.where(ok & (a < c), mid, a), torch.where(ok | (a >= c), c, mid - 1)
    return lo, a


def _plan(
    z: torch.Tensor, softness: float, mode: str, descending: bool
) -> tuple[torch.Tensor, ...] | None:
    """``(u, perm, probs, idx)``: the projected windows ``probs`` ``(batch, n, W)`` at sorted
    columns ``idx``, or None when the windows are too wide (or the device has no float64)."""
    if z.device.type == "mps":  # B and the window search run in float64
        return None
    n = z.shape[-1]
    zf = z.reshape(-1, n)
    u, perm = _take.sort(zf)
    b = sorted_abs_sums(u, softness, mode).to(z.dtype)
    pos = torch.arange(n, device=z.device)
    coef = (n - 1 - 2 * pos).to(z.dtype)
    coef = coef if descending else -coef
    with torch.no_grad():
        ud = u.detach().double()
        sc = _Scores(ud, lower_hull(ud, b.detach().double()), coef.double(), 1.0 / softness)
        lo, hi = _windows(sc, n, torch.finfo(z.dtype).eps)
        width = int((hi - lo).amax()) + 1
    if zf.shape[0] * n * width > MAX_WINDOW_ELEMENTS:
        return None
    offs = torch.arange(width, device=z.device)
    raw = lo.unsqueeze(-1) + offs
    inside = raw <= hi.unsqueeze(-1)
    idx = raw.clamp_max(n - 1)
    step_rows = max(1, BLOCK_ELEMENTS // max(zf.shape[0] * width, 1))
    probs = []
    for r0 in range(0, n, step_rows):
        r1 = min(r0 + step_rows, n)
        ix = idx[:, r0:r1]
        flat = ix.reshape(ix.shape[0], -1)
        uu = u.gather(-1, flat).view_as(ix)
        bb = b.gather(-1, flat).view_as(ix)
        s = (coef[r0:r1, None] * uu - bb) * (1.0 / softness)
        s = torch.where(inside[:, r0:r1], s, float("-inf"))
        probs.append(simplex.project_simplex(s, mode))
    return u, perm, torch.cat(probs, dim=1), idx


def values(
    z: torch.Tensor, x: torch.Tensor, softness: float, mode: str, descending: bool
) -> torch.Tensor | None:
    """NeuralSort's ``P @ x`` in a sparse mode on the row windows, or None (dense path).

    Args:
        z: finite scores ``(..., n)``.
        x: finite values of ``z``'s shape.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
        descending: rows in descending order.
    """
    pl = _plan(z, softness, mode, descending)
    if pl is None:
        return None
    _, perm, probs, idx = pl
    n = z.shape[-1]
    xs = x.reshape(-1, n).gather(-1, perm)
    xw = xs.gather(-1, idx.reshape(idx.shape[0], -1)).view_as(idx)
    return (probs * xw).sum(-1).reshape(z.shape)


def rank(z: torch.Tensor, softness: float, mode: str, descending: bool) -> torch.Tensor | None:
    r"""NeuralSort's ranks :math:`r_k = \sum_i i\,P_{ik} / \sum_i P_{ik}` in a sparse mode from the
    column sums of the row windows, or None (dense path).

    Args:
        z: finite scores ``(..., n)``.
        softness: ``s > 0``.
        mode: ``c0``, ``c1`` or ``c2``.
        descending: rank 1 for the largest score.
    """
    pl = _plan(z, softness, mode, descending)
    if pl is None:
        return None
    _, perm, probs, idx = pl
    n = z.shape[-1]
    pos = torch.arange(1, n + 1, device=z.device, dtype=probs.dtype).view(1, n, 1)
    flat = idx.reshape(idx.shape[0], -1)
    zero = probs.new_zeros(idx.shape[0], n)
    num = zero.scatter_add(-1, flat, (probs * pos).reshape(flat.shape))
    den = zero.scatter_add(-1, flat, probs.reshape(flat.shape))
    ok = ~(den <= torch.finfo(z.dtype).tiny)
    r = torch.where(ok, num / torch.where(ok, den, 1.0), (n + 1) / 2.0)
    return torch.zeros_like(r).scatter(-1, perm, r).reshape(z.shape)
