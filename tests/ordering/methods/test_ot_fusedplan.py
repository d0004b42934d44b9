"""The fused entropic plan of ``method="ot"`` (:mod:`._fusedplan`, :mod:`._plan_numba`).

References: the existing path (:class:`._autograd.OTPlan`, switched on with ``USE_FUSED =
False``) for values and gradients of the soft permutation and of the values next to it, the
dense formulas ``exp(alpha + beta - a y^T)`` and the sums of ``G * Q`` for the kernels, and
central differences for the gradient of the plan output.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import softtorch as st
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods.ot import _fusedplan, _plan_numba

F64 = torch.float64
N = 320  # the smallest sizes the blockwise Sinkhorn takes at softness 0.5 (standardised scores)
SOFT = 0.5
TIGHT = {"sinkhorn_tol": 1e-12}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(B: int, dtype: torch.dtype = F64, seed: int = 0, ties: bool = False) -> torch.Tensor:
    x = torch.randn(B, N, generator=_gen(seed), dtype=dtype)
    if ties:
        x[:, 1:40:3] = x[:, 0:39:3]  # repeated values
    return x.requires_grad_(True)


def _uses_fused(t: torch.Tensor) -> bool:
    """Whether the autograd graph of ``t`` contains the fused plan."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        f = todo.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        if type(f).__name__ == "FusedPlanBackward":
            return True
        todo.extend(g for g, _ in f.next_functions)
    return False


def _both(fn: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """``fn()`` on the fused path and on the existing one."""
    new = fn()
    with monkeypatch.context() as m:
        m.setattr(_fusedplan, "USE_FUSED", False)
        old = fn()
    return new, old


def _sort(x: torch.Tensor, descending: bool = False, **kw: Any) -> Any:
    return st.sort(x, dim=-1, softness=SOFT, method="ot", descending=descending, **kw)


def _losses(P: torch.Tensor, W: torch.Tensor) -> list[torch.Tensor]:
    """Losses whose gradients reach the plan laid out like ``P``, like ``P^T``, and expanded."""
    return [(P * W).sum(), (P.transpose(-1, -2) * W).sum(), P.sum() + (P[..., 0, :] ** 2).sum()]


@pytest.mark.parametrize(
    ("dtype", "B", "descending"), [(F64, 1, False), (F64, 3, True), (torch.float32, 3, False)]
)
def test_sort_matches_existing_path(
    dtype: torch.dtype, B: int, descending: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _x(B, dtype, ties=B > 1)
    W = torch.randn(B, N, N, generator=_gen(1), dtype=dtype)
    w = torch.randn(B, N, generator=_gen(2), dtype=dtype)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == F64 else {"rtol": 1e-4, "atol": 2e-6}

    def run() -> list[torch.Tensor]:
        out = _sort(x, descending)
        grads = []
        for loss in _losses(out.indices, W):
            loss = loss + (out.values * w).sum()
            grads.append(torch.autograd.grad(loss, x, retain_graph=True)[0])
        return [out.indices.detach(), out.values.detach(), *grads]

    new, old = _both(run, monkeypatch)
    assert _uses_fused(_sort(x, descending).indices)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, **tol)
    P = new[0]
    ones = torch.ones(B, N, dtype=dtype)
    tol1 = {"rtol": 0, "atol": 1e-9 if dtype == F64 else 1e-4}
    torch.testing.assert_close(P.sum(-1), ones, **tol1)  # rows: distributions over inputs
    torch.testing.assert_close(P.sum(-2), ones, **tol1)


def test_argsort_topk_match_existing_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _x(2, ties=True)
    W = torch.randn(2, N, N, generator=_gen(3), dtype=F64)
    k = 210  # k + 1 anchors: large enough for the blockwise Sinkhorn at softness 2

    def run() -> list[torch.Tensor]:
        P = st.argsort(x, dim=-1, softness=SOFT, method="ot", ot_kwargs=TIGHT)
        T = st.topk(x, k, dim=-1, softness=SOFT, method="ot", ot_kwargs=TIGHT).indices
        loss = (P * W).sum() + (T * W[:, :k]).sum()
        return [P.detach(), T.detach(), *torch.autograd.grad(loss, x)]

    new, old = _both(run, monkeypatch)
    x2 = x.detach().requires_grad_(True)
    assert _uses_fused(st.topk(x2, k, dim=-1, softness=2.0, method="ot").indices)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_plan_gradient_central_differences() -> None:
    """The gradient of ``<W, P>`` against central differences of the fused forward."""
    x = _x(1, seed=4)
    W = torch.randn(1, N, N, generator=_gen(5), dtype=F64)
    d = torch.randn(1, N, generator=_gen(6), dtype=F64)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (_sort(t, ot_kwargs=TIGHT).indices * W).sum()

    (g,) = torch.autograd.grad(f(x), x)
    h = 1e-5
    with torch.no_grad():
        fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
    torch.testing.assert_close((g * d).sum(), fd, rtol=1e-6, atol=1e-9)


def test_double_backward_and_jvp_match_existing_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _x(1, seed=7)
    W = torch.randn(1, N, N, generator=_gen(8), dtype=F64)
    v = torch.randn(1, N, generator=_gen(9), dtype=F64)

    def run() -> list[torch.Tensor]:
        P = st.argsort(x, dim=-1, softness=SOFT, method="ot", ot_kwargs=TIGHT)
        (g,) = torch.autograd.grad((P * W).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), x)
        with torch.autograd.forward_ad.dual_level():
            xd = torch.autograd.forward_ad.make_dual(x.detach(), v)
            Pd = st.argsort(xd, dim=-1, softness=SOFT, method="ot", ot_kwargs=TIGHT)
            tangent = torch.autograd.forward_ad.unpack_dual(Pd).tangent
        return [g.detach(), h, tangent]

    new, old = _both(run, monkeypatch)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_nan_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _x(3, seed=10).detach()
    x[1, 5] = float("nan")
    x.requires_grad_(True)

    def run() -> list[torch.Tensor]:
        P = st.argsort(x, dim=-1, softness=SOFT, method="ot")
        return [P.detach(), *torch.autograd.grad(P[[0, 2]].square().sum(), x)]

    new, old = _both(run, monkeypatch)
    assert bool(new[0][1].isnan().all()) and bool(new[0][[0, 2]].isfinite().all())
    torch.testing.assert_close(new[0], old[0], rtol=1e-10, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(new[1], old[1], rtol=1e-10, atol=1e-12, equal_nan=True)


def test_stalled_sinkhorn_keeps_existing_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _x(1, seed=11)
    monkeypatch.setattr(_fusedplan.lowrank, "sinkhorn", lambda *a: None)
    assert _fusedplan.fused_plan(x, torch.linspace(-0.5, 0.5, N, dtype=F64), torch.ones(N), 0,
                                 _fusedplan.SolverOptions(1e-9, 100, "sinkhorn"), None,
                                 "col") is None  # fmt: skip
    P = st.argsort(x, dim=-1, softness=SOFT, method="ot")
    assert not _uses_fused(P)


# ------------------------------------------------------------------------------------ kernels


def _scalars(B: int, R: int, C: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = _gen(12)
    p = torch.randn(B, R, generator=g, dtype=F64) - 2
    u = torch.randn(B, R, generator=g, dtype=F64) * 6
    q = torch.randn(B, C, generator=g, dtype=F64)
    v = torch.linspace(-0.5, 0.5, C, dtype=F64).expand(B, C).contiguous()
    return tuple(t.to(dtype) for t in (p, u, q, v))


def _dense(p: torch.Tensor, u: torch.Tensor, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.exp(p.unsqueeze(-1) + q.unsqueeze(-2) - u.unsqueeze(-1) * v.unsqueeze(-2))


@pytest.fixture(params=["serial", "parallel", "torch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Serial kernels, row-block parallel kernels (2 threads) or the torch fallback."""
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())
    if request.param == "parallel":
        monkeypatch.setattr(_fusedplan, "PARALLEL_MIN", 1)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    if request.param == "torch":
        monkeypatch.setattr(_fusedplan, "_kernels", lambda: None)  # AttributeError: fallback
    return request.param


def _quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn()


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_write_matches_dense(dtype: torch.dtype, path: str) -> None:
    B, R, C = 3, 37, 300
    p, u, q, v = _scalars(B, R, C, dtype)
    out = _quiet(lambda: _fusedplan.write(p, u, q, v, dtype))
    ref = _dense(p.double(), u.double(), q.double(), v.double())
    rtol = 1e-14 if dtype == F64 else 2e-6
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("layout", ["rows", "cols", "row", "one"])
def test_sums_match_dense(dtype: torch.dtype, layout: str, path: str) -> None:
    """``(GD 1, GD v, GD^T 1)`` and ``(GD 1, GD^T u, GD^T 1)`` for full and broadcast ``G``."""
    B, R, C = 2, 41, 600  # several column spans and row flushes
    p, u, q, v = _scalars(B, R, C, dtype)
    shape = {"rows": (B, R, C), "cols": (B, R, 1), "row": (1, 1, C), "one": (1, 1, 1)}[layout]
    G = torch.randn(*shape, generator=_gen(13), dtype=dtype)
    GD = G.double() * _dense(p.double(), u.double(), q.double(), v.double())
    rtol = 1e-12 if dtype == F64 else 1e-5
    tol = {"rtol": rtol, "atol": rtol * float(GD.abs().sum(-1).amax())}  # signed sums: cancellation
    rs, rw, cs = _quiet(lambda: _fusedplan.sums(G, p, u, q, v, True))
    torch.testing.assert_close(rs, GD.sum(-1), **tol)
    torch.testing.assert_close(rw, GD @ v[0].double(), **tol)
    torch.testing.assert_close(cs, GD.sum(-2), **tol)
    rs, cw, cs = _quiet(lambda: _fusedplan.sums(G, p, u, q, v, False))
    torch.testing.assert_close(rs, GD.sum(-1), **tol)
    torch.testing.assert_close(cw, (u.double().unsqueeze(-1) * GD).sum(-2), **tol)
    torch.testing.assert_close(cs, GD.sum(-2), **tol)


def test_kernel_failure_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())
    x = _x(2, seed=14)
    W = torch.randn(2, N, N, generator=_gen(15), dtype=F64)

    def run() -> list[torch.Tensor]:
        P = st.argsort(x, dim=-1, softness=SOFT, method="ot")
        return [P.detach(), *torch.autograd.grad((P * W).sum(), x)]

    ref = run()

    def fail(*_: object) -> None:
        raise AssertionError("unexpected cycle in lookup()")

    monkeypatch.setattr(_kernel_guard, "_OK", set())
    for name in ("write_plan", "write_plan_parallel", "plan_sums", "plan_sums_parallel"):
        monkeypatch.setattr(_plan_numba, name, fail)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = run()
    assert sum("OT plan" in str(w.message) for w in rec) == 2
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
