"""The numba kernels of the p-norm OT solver (``_dual_numba``) against their torch versions.

Each kernel has a torch version (``_dual.USE_NUMBA = False``) that computes the same quantity
with batched tensor ops; values agree to the row tolerance, and whole sorts (values and
gradients) agree between the two paths.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwad

import softtorch as st
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods.ot import _dual, _dual_numba, _lowrank, _solver

F64 = torch.float64


@pytest.fixture(autouse=True)
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())


def _problem(seed: int, B: int = 2, n: int = 40, m: int = 30, scale: float = 20.0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(B, n, generator=g, dtype=F64) - 0.5) * scale
    y = torch.linspace(-0.5, 0.5, m, dtype=F64)
    beta = torch.randn(B, m, generator=g, dtype=F64)
    return a, y, beta


@pytest.mark.parametrize("kind", [1, 2, 3])
@pytest.mark.parametrize("with_guess", [False, True])
def test_row_potentials_numba_matches_torch(
    kind: int, with_guess: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, y, beta = _problem(kind)
    X = beta.unsqueeze(-2) - a.unsqueeze(-1) * y
    guess = -X.amax(-1) + 0.3 if with_guess else None
    fast = _dual.row_potentials(X, kind, 1e-13, guess)
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    ref = _dual.row_potentials(X, kind, 1e-13, guess)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    rows = _dual.plan(X + fast.unsqueeze(-1), kind).sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_fused_evaluate_matches_torch(kind: int, monkeypatch: pytest.MonkeyPatch) -> None:
    a, y, beta = _problem(10 + kind)
    Ch = _solver.Cost(a, y)
    b = torch.ones(y.shape[-1], dtype=F64) * (a.shape[-1] / y.shape[-1])
    fast = _solver._evaluate(Ch, b, beta, kind, 1e-13)
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    ref = _solver._evaluate(Ch, b, beta, kind, 1e-13)
    for f in ("alpha", "s", "col", "J", "err"):
        torch.testing.assert_close(getattr(fast, f), getattr(ref, f), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_banded_operators_match_dense(kind: int) -> None:
    a, y, beta = _problem(20 + kind, n=50, m=45, scale=40.0)
    X = beta.unsqueeze(-2) - a.unsqueeze(-1) * y
    alpha = _dual.row_potentials(X, kind, 1e-13)
    s = X + alpha.unsqueeze(-1)
    D = _dual.curvature(s, kind)
    Q = _dual.plan(s, kind)
    assert int((D == 0).sum()) > D.numel() // 4  # a real band
    g = torch.Generator().manual_seed(kind)
    v = torch.randn(2, 45, generator=g, dtype=F64)
    u = torch.randn(2, 50, generator=g, dtype=F64)
    band = _dual.banded_curvature(s, kind)
    assert band is not None
    torch.testing.assert_close(band.r, D.sum(-1), rtol=1e-6, atol=1e-6)  # float32 values
    torch.testing.assert_close(band.c, D.sum(-2), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(band.mv(v), (D @ v.unsqueeze(-1)).squeeze(-1), rtol=1e-5, atol=1e-5)
    Dtu = (D.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(band.rmv(u), Dtu, rtol=1e-5, atol=1e-5)
    bp = _dual.BandedPlan(a, y, alpha, beta, kind)  # float64 values
    torch.testing.assert_close(bp.mv(v), (D @ v.unsqueeze(-1)).squeeze(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bp.rmv(u), Dtu, rtol=1e-12, atol=1e-12)
    Qv = (Q @ v.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(bp.qmv(v), Qv, rtol=1e-12, atol=1e-12)
    Qtu = (Q.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(bp.qrmv(u), Qtu, rtol=1e-12, atol=1e-12)


def _sort_and_grads(x: torch.Tensor, mode: str, op: str, **kw: object) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    s = torch.tensor(0.1, dtype=F64, requires_grad=True)
    opts = {"lbfgs_tol": 1e-11}
    res = getattr(st, op)(x, dim=-1, softness=s, mode=mode, method="ot", ot_kwargs=opts, **kw)
    out = res if isinstance(res, torch.Tensor) else res.values
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    return (out.detach(), *torch.autograd.grad((out * w).sum(), (x, s)))


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
@pytest.mark.parametrize(("op", "kw"), [("sort", {}), ("rank", {}), ("sort", {"descending": True})])
def test_pnorm_sort_rank_numba_matches_torch_path(
    mode: str, op: str, kw: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numba kernels + the banded contraction vs the torch kernels + the dense contraction."""
    monkeypatch.setattr(_lowrank, "MIN_SIZE", 1)  # the contraction path at a small size
    x = torch.randn(2, 60, generator=torch.Generator().manual_seed(3), dtype=F64)
    fast = _sort_and_grads(x, mode, op, **kw)
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    ref = _sort_and_grads(x, mode, op, **kw)
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f, r, rtol=1e-7, atol=1e-8)


def test_kernel_failure_falls_back_once(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 30, generator=torch.Generator().manual_seed(4), dtype=F64)
    ref = st.sort(x, softness=0.1, mode="c1", method="ot").values

    def broken(*_: object, **__: object) -> None:
        raise AssertionError("simulated compiler failure")

    for name in ("row_potentials", "evaluate", "band_curvature"):
        monkeypatch.setattr(_dual_numba, name, broken)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        outs = [st.sort(x, softness=0.1, mode="c1", method="ot").values for _ in range(2)]
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == len(set(msgs)) >= 1  # one warning per failed family
    for o in outs:
        torch.testing.assert_close(o, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["c1", "c2"])
def test_pnorm_contraction_double_backward_and_jvp_match_plan_path(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second derivatives (``create_graph=True``) and forward mode of the banded contraction
    equal those of the dense plan path (both differentiate the dense Newton form)."""
    x = torch.randn(2, 24, generator=torch.Generator().manual_seed(5), dtype=F64)
    w = torch.randn(2, 24, generator=torch.Generator().manual_seed(6), dtype=F64)
    v = torch.randn(2, 24, generator=torch.Generator().manual_seed(7), dtype=F64)
    opts = {"lbfgs_tol": 1e-12}

    def derivs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xx = x.clone().requires_grad_(True)
        out = st.sort(xx, softness=0.3, mode=mode, method="ot", ot_kwargs=opts).values
        (g,) = torch.autograd.grad((out * w).sum(), xx, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), xx)
        with fwad.dual_level():
            dual = fwad.make_dual(x, v)
            out = st.sort(dual, softness=0.3, mode=mode, method="ot", ot_kwargs=opts).values
            tangent = fwad.unpack_dual(out).tangent
        return g.detach(), hv, tangent

    monkeypatch.setattr(_lowrank, "MIN_SIZE", 1)
    fast = derivs()
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    ref = derivs()
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f, r, rtol=1e-7, atol=1e-9)
