r"""``fast_soft_sort``: soft sort and rank by permutahedron projection (Blondel et al., 2020).

**Projection.** For scores ``z`` and anchors ``w`` (both length ``n``) and a separable convex
regulariser :math:`\Psi(\mu) = \sum_i \psi(\mu_i)`,

.. math:: P_\Psi(z, w) = \arg\max_{\mu \in \mathcal P(w)} \langle z, \mu\rangle - \Psi(\mu),

where :math:`\mathcal P(w)` is the permutahedron (convex hull of the permutations of ``w``). With
``s = z`` sorted descending (permutation :math:`\sigma`) and ``w`` sorted descending, the
Lagrangian of the prefix-sum constraints gives :math:`\mu_{\sigma} = g(s - v)` with
:math:`g = (\psi^*)'` and ``v`` the isotonic (non-increasing) minimiser of
:math:`\sum_i \psi^*(s_i - v_i) + \langle v, w\rangle`, solved by pool-adjacent-violators: on a
block ``B`` of equal ``v`` the value :math:`\gamma_B` solves
:math:`\sum_B g(s_i - \gamma) = \sum_B w_i`.
One sort (O(n log n)) plus O(n) PAV forward; the Jacobian is block-wise rank one, so the backward
is a segment sum over blocks (no n x n matrix).

**Modes** (``mode`` -> regulariser, block value, output):

* ``smooth``: entropic :math:`\psi(\mu) = \mu \log \mu - \mu` on :math:`\mathcal P(e^w)`, output in
  the log domain (Blondel's :math:`P_E`): :math:`\gamma_B = \mathrm{lse}(s_B) - \mathrm{lse}(w_B)`,
  :math:`o = s - v`.
* ``c0``: quadratic :math:`\psi = \mu^2/2` (:math:`P_Q`, Euclidean projection):
  :math:`\gamma_B = \mathrm{mean}(s_B - w_B)`, :math:`o = s - v`.
* ``c1`` / ``c2``: p-norm :math:`\psi = |\mu|^p / p` with p = 3/2 / p = 4/3, so
  :math:`g(y) = y|y|` / :math:`y^3` and :math:`o = g(s - v)`. With centred block moments
  :math:`d = s - \bar s_B`, :math:`M_k = \sum_B d^k`, :math:`W = \sum_B w` and
  :math:`t = \gamma_B - \bar s_B`: for p = 3/2 and ``w >= 0`` every ``s - v >= 0`` (the block's
  sub-projection lies in :math:`\mathcal P(w_B) \subset [0, \infty)^{|B|}`), so
  :math:`M_2 + |B| t^2 = W` and :math:`t = -\sqrt{(W - M_2)/|B|}` (quadratic formula); for
  p = 4/3, :math:`t^3 + (3M_2/|B|)t + (W - M_3)/|B| = 0` has one real root (Cardano, in a
  cancellation-free form). These regularisers are not translation invariant, so anchors with
  negative entries (raw, non-standardized sort inputs) are shifted by their minimum
  ``c = min(0, min w)`` first: :math:`o = P(s, w - c) + c` (exact no-op for ``w >= 0``, which
  includes every standardized input and every rank).

**Sort and rank.** With unit-range anchors :math:`\rho = \mathrm{linspace}(1, 0, n)` and softness
:math:`\varepsilon`: the descending soft sort of :math:`\theta` is :math:`P_{\varepsilon\Psi}(\rho,
\theta) = P_\Psi(\rho/\varepsilon, \theta)` (ascending: reversed); the descending soft rank is
:math:`1 + (n-1)\,P_\Psi(-\theta/\varepsilon, \rho)` (the largest gets 1; ascending rank is
``n + 1 -`` descending). The projection lies in :math:`\mathcal P(\rho) \subset [0, 1]^n` (log of
:math:`\mathcal P(e^\rho)` for ``smooth``), hence ranks in ``[1, n]``. Compared with Blondel's
anchors ``(n, ..., 1)`` (the projection is invariant to shifting ``z``): our sort at softness
:math:`\varepsilon` is Blondel's at :math:`(n-1)\varepsilon` (every mode), and for ``c0`` our rank
is Blondel's at :math:`\varepsilon/(n-1)`; the unit range makes the softness scale independent of
``n``. As :math:`\varepsilon \to 0` both tend to the hard sort / rank. A row containing a NaN
gives an all-NaN row.

**Kernels.** On CPU tensors the batched numba kernel :mod:`._pav_numba` (rows in parallel,
zero-copy ``.numpy()`` views, float64 internally, numba imported on first use); elsewhere, or with
``options={"backend": "torch"}`` / :func:`set_backend`, the torch-native :mod:`._pav_torch`. Both
are ``torch.library`` custom ops (opaque to ``torch.compile``: no graph break) wrapped in one
``autograd.Function`` each with a closed-form backward from the saved block ids and per-element
coefficients, a double backward (exact: the coefficients are recomputed differentiably from the
block partition when ``create_graph=True``) and a ``vmap`` rule. Inside
``torch.autograd.forward_ad`` levels a subclass adds a forward-mode ``jvp`` (the transpose of the
block-wise VJP; kept off the plain path, which ``torch.compile`` must trace and which saves nothing
for forward mode). Under ``torch.func`` transforms the kernel only supplies the block partition
and the outputs come from :func:`._pav_torch.block_solution` in plain torch ops (exact for every
composition of transforms, including nested ``jacfwd``, which ``torch.func`` gets wrong through a
custom ``jvp``). In eager mode on plain tensors the kernels are called directly (custom-op
dispatch costs more than a small problem). float16 / bfloat16 inputs are computed in float32 and
returned in their dtype.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.autograd.forward_ad as _fwAD

from ...._checks import MODES as _ALL_MODES
from ...._checks import check_choice, check_mode, check_softness
from ....kernels import _kernel_guard
from ..._base import Softness
from . import _pav_torch
from ._pav_torch import segsum

#: Modes of this method and their regulariser codes (see the module docstring).
REGS: dict[str, int] = {"c0": 0, "smooth": 1, "c1": 2, "c2": 3}
MODES: tuple[str, ...] = tuple(m for m in _ALL_MODES if m != "hard")
BACKENDS: tuple[str, ...] = ("auto", "numba", "torch")
OPTION_KEYS: tuple[str, ...] = ("backend",)

#: Module-level backend switch used when ``options`` names none ("auto": numba on CPU).
BACKEND: str = "auto"


def set_backend(backend: str) -> None:
    """Set the default kernel: ``"auto"`` (numba on CPU, torch elsewhere), ``"numba"`` or
    ``"torch"``."""
    global BACKEND
    BACKEND = check_choice(backend, BACKENDS, "backend")


#: Whether numba is installed (checked without importing it).
HAS_NUMBA: bool = importlib.util.find_spec("numba") is not None


# ---------------------------------------------------------------- custom ops


def _numba_impl(
    s: torch.Tensor, w: torch.Tensor, reg: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CPU kernel on zero-copy numpy views (numba imported here, on first use); the torch
    kernel if it fails to compile (:mod:`softtorch.kernels._kernel_guard`: one warning)."""

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        from . import _pav_numba

        o, pi, aux, blk = _pav_numba.run(s.contiguous().numpy(), w.contiguous().numpy(), reg)
        return (
            torch.from_numpy(o),
            torch.from_numpy(pi),
            torch.from_numpy(aux),
            torch.from_numpy(blk),
        )

    return _kernel_guard.guarded(
        "PAV", kernel, lambda: _torch_impl(s, w, reg), "the torch PAV kernel"
    )


def _torch_impl(
    s: torch.Tensor, w: torch.Tensor, reg: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch-native kernel (any device); a row with a NaN becomes all NaN, like the CPU kernel."""
    with torch.no_grad():
        blk = _pav_torch.pav_blocks(s, w, reg)
        o, pi, aux = _pav_torch.block_solution(s, w, blk, reg)
        bad = torch.isnan(s).any(-1, keepdim=True) | torch.isnan(w).any(-1, keepdim=True)
        return o.masked_fill(bad, float("nan")), pi, aux, blk


@torch.library.custom_op("softtorch::fast_soft_sort_pav_numba", mutates_args=(), device_types="cpu")
def _pav_numba_op(
    s: torch.Tensor, w: torch.Tensor, reg: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _numba_impl(s, w, reg)


@torch.library.custom_op("softtorch::fast_soft_sort_pav_torch", mutates_args=())
def _pav_torch_op(
    s: torch.Tensor, w: torch.Tensor, reg: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _torch_impl(s, w, reg)


def _eager(*ts: torch.Tensor) -> bool:
    """Plain tensors outside tracing: call the kernels directly (the custom-op dispatch, which
    keeps them opaque to ``torch.compile`` / fake tensors, costs more than a small problem)."""
    return not torch.compiler.is_compiling() and all(type(t) is torch.Tensor for t in ts)


def _fake(
    s: torch.Tensor, w: torch.Tensor, reg: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    shape = torch.broadcast_shapes(s.shape, w.shape)
    return (
        s.new_empty(shape),
        s.new_empty(shape),
        s.new_empty(shape),
        s.new_empty(shape, dtype=torch.int64),
    )


_pav_numba_op.register_fake(_fake)
_pav_torch_op.register_fake(_fake)


# ---------------------------------------------------------------- autograd


def _vjp(
    go: torch.Tensor,
    pi: torch.Tensor,
    aux: torch.Tensor,
    blk: torch.Tensor,
    reg: int,
    need_s: bool,
    need_w: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    r"""Closed-form VJP on block ``B`` (``u`` = incoming gradient):

    quadratic: :math:`\bar u_B = \mathrm{mean}_B u`, ``gs = u - ū``, ``gw = ū``;
    entropic: ``gs = u - softmax_B(s) sum_B u``, ``gw = softmax_B(w) sum_B u``;
    p-norm: ``gs = g' u - pi sum_B g' u``, ``gw = sum_B pi u`` with ``pi = g' / sum_B g'``.
    """
    gs = gw = None
    if reg == 0:
        mean = segsum(go, blk) * pi
        gs = go - mean if need_s else None
        gw = mean if need_w else None
    elif reg == 1:
        tot = segsum(go, blk)
        gs = go - pi * tot if need_s else None
        gw = aux * tot if need_w else None
    else:
        if need_s:
            hu = aux * go
            gs = hu - pi * segsum(hu, blk)
        if need_w:
            gw = segsum(pi * go, blk)
    return gs, gw


def _jvp(
    ds: torch.Tensor | None,
    dw: torch.Tensor | None,
    pi: torch.Tensor,
    aux: torch.Tensor,
    blk: torch.Tensor,
    reg: int,
) -> torch.Tensor:
    r"""Closed-form JVP (the transpose of :func:`_vjp`) on block ``B`` for tangents ``ds``, ``dw``:

    quadratic: ``do = ds - mean_B ds + mean_B dw``;
    entropic: ``do = ds - sum_B softmax_B(s) ds + sum_B softmax_B(w) dw``;
    p-norm: ``do = g' ds - g' sum_B pi ds + pi sum_B dw``.
    """
    do = torch.zeros_like(pi)
    if ds is not None:
        ds = ds.expand(blk.shape)
        if reg == 0:
            do = ds - segsum(ds, blk) * pi
        elif reg == 1:
            do = ds - segsum(pi * ds, blk)
        else:
            do = aux * (ds - segsum(pi * ds, blk))
    if dw is not None:
        dw = dw.expand(blk.shape)
        if reg == 0:
            do = do + segsum(dw, blk) * pi
        elif reg == 1:
            do = do + segsum(aux * dw, blk)
        else:
            do = do + pi * segsum(dw, blk)
    return do


def _unbroadcast(g: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    if g is not None and g.shape[0] != rows:
        return g.sum(0, keepdim=True)
    return g


class _PAVFunction(torch.autograd.Function):
    """Shared ``setup_context`` / ``backward`` / ``vmap`` of the two kernel Functions.

    Inputs ``s`` (Rs, n) and ``w`` (Rw, n), rows sorted descending, ``Rs, Rw in {1, R}``;
    outputs ``(o, pi, aux, blk)``, (R, n); only ``o`` is differentiable.
    """

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        s, w, reg = inputs
        _, pi, aux, blk = output
        ctx.mark_non_differentiable(pi, aux, blk)
        ctx.save_for_backward(s, w, pi, aux, blk)
        ctx.reg = reg

    @staticmethod
    def backward(ctx: Any, go: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        s, w, pi, aux, blk = ctx.saved_tensors
        reg = ctx.reg
        if reg != 0 and torch.is_grad_enabled():
            # double backward: coefficients as differentiable functions of (s, w)
            _, pi, aux = _pav_torch.block_solution(s, w, blk, reg)
        gs, gw = _vjp(go, pi, aux, blk, reg, ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return _unbroadcast(gs, s.shape[0]), _unbroadcast(gw, w.shape[0]), None

    @classmethod
    def _vmap_impl(
        cls, info: Any, in_dims: tuple[Any, ...], s: torch.Tensor, w: torch.Tensor, reg: int
    ) -> tuple[tuple[torch.Tensor, ...], tuple[int, ...]]:
        b = info.batch_size
        sd, wd, _ = in_dims
        rows = max(s.shape[-2], w.shape[-2])
        n = s.shape[-1]

        def flat(x: torch.Tensor, d: int | None) -> torch.Tensor:
            if d is None and x.shape[0] == 1:
                return x
            x = x.unsqueeze(0) if d is None else x.movedim(d, 0)
            return x.expand(b, rows, n).reshape(b * rows, n)

        out = cls.apply(flat(s, sd), flat(w, wd), reg)
        return tuple(t.reshape(b, rows, n) for t in out), (0, 0, 0, 0)


class NumbaPAV(_PAVFunction):
    """Permutahedron projection with the numba CPU kernel."""

    @staticmethod
    def forward(s: torch.Tensor, w: torch.Tensor, reg: int) -> tuple[torch.Tensor, ...]:
        return _numba_impl(s, w, reg) if _eager(s, w) else _pav_numba_op(s, w, reg)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], s: torch.Tensor, w: torch.Tensor, reg: int):
        return NumbaPAV._vmap_impl(info, in_dims, s, w, reg)


class TorchPAV(_PAVFunction):
    """Permutahedron projection with the torch-native kernel (any device)."""

    @staticmethod
    def forward(s: torch.Tensor, w: torch.Tensor, reg: int) -> tuple[torch.Tensor, ...]:
        return _torch_impl(s, w, reg) if _eager(s, w) else _pav_torch_op(s, w, reg)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], s: torch.Tensor, w: torch.Tensor, reg: int):
        return TorchPAV._vmap_impl(info, in_dims, s, w, reg)


def _setup_context_fwd(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
    _PAVFunction.setup_context(ctx, inputs, output)
    s, w, _ = inputs
    ctx.save_for_forward(s, w, *output[1:])


def _pav_jvp(ctx: Any, ds: torch.Tensor | None, dw: torch.Tensor | None, _: Any) -> tuple[Any, ...]:
    s, w, pi, aux, blk = ctx.saved_tensors
    reg = ctx.reg
    if reg != 0:  # coefficients as differentiable functions of (s, w)
        _, pi, aux = _pav_torch.block_solution(s, w, blk, reg)
    return _jvp(ds, dw, pi, aux, blk, reg), None, None, None


class NumbaPAVFwd(NumbaPAV):
    """:class:`NumbaPAV` with a forward-mode ``jvp``, used inside ``torch.autograd.forward_ad``
    levels only (``torch.compile`` cannot trace an ``autograd.Function`` with a custom ``jvp``, and
    the plain path saves nothing for forward mode)."""

    setup_context = staticmethod(_setup_context_fwd)
    jvp = staticmethod(_pav_jvp)


class TorchPAVFwd(TorchPAV):
    """:class:`TorchPAV` with a forward-mode ``jvp`` (see :class:`NumbaPAVFwd`)."""

    setup_context = staticmethod(_setup_context_fwd)
    jvp = staticmethod(_pav_jvp)


# ---------------------------------------------------------------- projections


def _backend(options: dict[str, Any] | None, device: torch.device) -> str:
    opts = options or {}
    unknown = [k for k in opts if k not in OPTION_KEYS]
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for method 'fast_soft_sort'; valid options are: "
            + ", ".join(repr(k) for k in OPTION_KEYS)
        )
    backend = check_choice(opts.get("backend", BACKEND), BACKENDS, "backend")
    if backend == "auto":
        return "numba" if device.type == "cpu" and HAS_NUMBA else "torch"
    if backend == "numba":
        if device.type != "cpu":
            raise ValueError(
                f"backend 'numba' runs on CPU tensors only (got device {device.type!r}); "
                "use backend 'torch' or 'auto'"
            )
        if not HAS_NUMBA:
            raise ValueError("backend 'numba' needs the numba package; use backend 'torch'")
    return backend


def project_sorted(
    s: torch.Tensor, w: torch.Tensor, mode: str, backend: str, *, w_nonneg: bool = False
) -> torch.Tensor:
    """``P_Psi`` on pre-sorted rows: ``s`` (Rs, n), ``w`` (Rw, n), descending, Rs, Rw in {1, R}.

    Returns the projection (R, n) in the sorted order of ``s``; a row with a NaN is all NaN.
    ``w_nonneg`` skips the p-norm anchor shift when ``w >= 0`` is known.
    """
    reg = REGS[mode]
    shift = None
    w_in = w
    if reg >= 2 and not w_nonneg:
        shift = w[:, -1:].clamp(max=0.0)
        w = w - shift
    fn = NumbaPAV if backend == "numba" else TorchPAV
    if torch.compiler.is_compiling():
        o = fn.apply(s, w, reg)[0]
    elif _is_wrapped(s) or _is_wrapped(w):
        o = _project_transformed(fn, s, w, reg)
    # torch internal, checked on torch 2.13.0
    elif getattr(_fwAD, "_current_level", 0) >= 0:  # inside a forward-mode AD level
        o = (NumbaPAVFwd if backend == "numba" else TorchPAVFwd).apply(s, w, reg)[0]
    else:
        o = fn.apply(s, w, reg)[0]
    if shift is None:
        return o
    # the shift does not round-trip exactly (w - shift + shift != w): back inside [min w, max w]
    return _pav_torch.in_w_range(o + shift, w_in)


#: Whether a tensor is a ``torch.func`` (vmap / grad / jvp) wrapper.
# torch internal, checked on torch 2.13.0
_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def _project_transformed(
    fn: type[_PAVFunction], s: torch.Tensor, w: torch.Tensor, reg: int
) -> torch.Tensor:
    """The projection under ``torch.func`` transforms: the block partition from the kernel (no
    derivatives; batched by the ``vmap`` rule) and the outputs from
    :func:`._pav_torch.block_solution` in plain torch ops, so that every composition of
    transforms is exact (nested forward mode through a custom ``autograd.Function`` ``jvp`` is
    not, in ``torch.func``)."""
    ko, _, _, blk = fn.apply(s.detach(), w.detach(), reg)
    o = _pav_torch.block_solution(s, w, blk, reg)[0]
    return torch.where(torch.isnan(ko), ko, o)


def _prepare(
    z: torch.Tensor, softness: Softness, mode: str, options: dict[str, Any] | None
) -> tuple[torch.Tensor, Softness, str]:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if z.is_complex():
        raise TypeError("z is complex; fast_soft_sort needs a real floating tensor")
    check_mode(mode, MODES)
    eps = check_softness(softness)
    backend = _backend(options, z.device)
    if isinstance(eps, torch.Tensor):
        eps = eps.to(device=z.device, dtype=z.dtype if z.is_floating_point() else None)
    return z, eps, backend


def _work_dtype(z: torch.Tensor) -> torch.Tensor:
    if z.dtype in (torch.float16, torch.bfloat16) or not z.is_floating_point():
        return z.to(torch.float32 if z.is_floating_point() else torch.get_default_dtype())
    return z


def soft_sort(
    z: torch.Tensor,
    softness: Softness = 1.0,
    mode: str = "smooth",
    *,
    descending: bool = False,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Soft sort of the last axis: :math:`P_\\Psi(\\rho/\\varepsilon, z)`, :math:`\\rho` =
    ``linspace(1, 0, n)``.

    Ascending unless ``descending``; see the module docstring.
    """
    z, eps, backend = _prepare(z, softness, mode, options)
    out_dtype = z.dtype if z.is_floating_point() else torch.get_default_dtype()
    zw = _work_dtype(z)
    n = zw.shape[-1] if zw.dim() else 1
    if zw.numel() == 0 or n == 1:
        return zw.clone().to(out_dtype)
    if isinstance(eps, torch.Tensor):
        eps = eps.to(zw.dtype)
    flat = zw.reshape(-1, n)
    rho = torch.linspace(1.0, 0.0, n, dtype=zw.dtype, device=zw.device).unsqueeze(0)
    w = torch.sort(flat, dim=-1, descending=True).values
    o = project_sorted(rho / eps, w, mode, backend)
    if not descending:
        o = o.flip(-1)
    return o.reshape(zw.shape).to(out_dtype)


def soft_rank(
    z: torch.Tensor,
    softness: Softness = 1.0,
    mode: str = "smooth",
    *,
    descending: bool = True,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Soft ranks in ``[1, n]``: :math:`1 + (n-1) P_\\Psi(-z/\\varepsilon, \\rho)` (descending)."""
    z, eps, backend = _prepare(z, softness, mode, options)
    out_dtype = z.dtype if z.is_floating_point() else torch.get_default_dtype()
    zw = _work_dtype(z)
    n = zw.shape[-1] if zw.dim() else 1
    if zw.numel() == 0 or n == 1:  # rank 1, NaN for NaN; kept on the graph (zero gradient)
        one = 1.0 + 0.0 * zw.nan_to_num(0.0, 0.0, 0.0)
        return torch.where(torch.isnan(zw), zw, one).to(out_dtype)
    if isinstance(eps, torch.Tensor):
        eps = eps.to(zw.dtype)
    flat = zw.reshape(-1, n)
    rho = torch.linspace(1.0, 0.0, n, dtype=zw.dtype, device=zw.device).unsqueeze(0)
    s, perm = torch.sort(-flat / eps, dim=-1, descending=True)
    o_sorted = project_sorted(s, rho, mode, backend, w_nonneg=True)
    o = torch.zeros_like(o_sorted).scatter(-1, perm, o_sorted)
    rank = 1.0 + (n - 1) * o
    if not descending:
        rank = (n + 1) - rank
    return rank.reshape(zw.shape).to(out_dtype)
