"""The support-only kernels of the p-norm OT solver (``_span_numba``, ``_runs_numba``) against
dense torch formulas, and whole p-norm sorts with more than ``DENSE_MAX`` anchors (where the
solver and the backward pass use them) against the torch path (``_dual.USE_NUMBA = False``).

Random ``beta`` (not concave in ``y``) gives rows whose positive slacks are not one interval,
which the envelope bound of ``_span_numba`` and the runs of ``_runs_numba`` must still cover.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import softtorch as st
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods.ot import (
    _autograd,
    _dual,
    _runs,
    _runs_numba,
    _solver,
    _span_numba,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def fresh_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())


def _problem(seed: int, concave: bool, B: int = 2, n: int = 140, m: int = 150):
    """Scores ``a``, ascending anchors ``y`` and anchor potentials ``beta``: the hard-assignment
    potentials (concave, as the solver's) or those plus noise (not concave)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(B, n, generator=g, dtype=F64) * 20.0
    y = torch.linspace(-0.5, 0.5, m, dtype=F64)
    beta = -(y * y) * 20.0 * torch.rand(B, 1, generator=g, dtype=F64)
    if not concave:
        beta = beta + 0.3 * torch.randn(B, m, generator=g, dtype=F64)
    return a, y, beta.contiguous()


def _dense_state(a, y, beta, kind, tol, guess=None):  # noqa: ANN001, ANN202
    """The torch evaluation: ``alpha``, slacks, column sums and ``sum Q s``."""
    X = beta.unsqueeze(-2) - a.unsqueeze(-1) * y
    alpha = _dual._row_potentials_torch(X, kind, tol, guess)
    s = X + alpha.unsqueeze(-1)
    Q = _dual.plan(s, kind)
    return alpha, s, Q.sum(-2), (Q * s).sum((-1, -2))


@pytest.mark.parametrize("kind", [1, 2, 3])
@pytest.mark.parametrize("concave", [True, False])
@pytest.mark.parametrize("asc", [True, False])
def test_evaluate_band_matches_dense(kind: int, concave: bool, asc: bool) -> None:
    a, y, beta = _problem(kind + 10 * concave, concave)
    if not asc:  # the same problem with the anchors in another order: the full-scan path
        perm = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(0))
        y, beta = y[perm], beta[:, perm].contiguous()
    assert _dual.ascending(y) == asc
    for guess in (None, _dense_state(a, y, beta, kind, 1e-13)[0] + 0.05):
        out = _dual.band_evaluate(a, y, beta, kind, 1e-13, guess)
        assert out is not None
        alpha, col, qs = out
        ra, _, rcol, rqs = _dense_state(a, y, beta, kind, 1e-13, guess)
        torch.testing.assert_close(alpha, ra, rtol=0, atol=1e-12)
        torch.testing.assert_close(col, rcol, rtol=1e-11, atol=1e-11)
        torch.testing.assert_close(qs, rqs, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("concave", [True, False])
def test_plan_spans_are_the_positive_spans(concave: bool) -> None:
    a, y, beta = _problem(3, concave)
    alpha = _dense_state(a, y, beta, 2, 1e-13)[0]
    first, last = _span_numba.plan_spans(a.numpy(), y.numpy(), alpha.numpy(), beta.numpy(), True)
    pos = ((alpha.unsqueeze(-1) - a.unsqueeze(-1) * y) + beta.unsqueeze(-2)) > 0
    j = torch.arange(y.shape[0])
    ref_first = torch.where(pos, j, y.shape[0]).amin(-1)
    ref_last = torch.where(pos, j, -1).amax(-1)
    assert torch.equal(torch.from_numpy(first), ref_first)
    assert torch.equal(torch.from_numpy(last), ref_last)


@pytest.mark.parametrize("kind", [1, 2, 3])
@pytest.mark.parametrize("concave", [True, False])
def test_runs_curvature_matches_dense(kind: int, concave: bool) -> None:
    a, y, beta = _problem(20 + kind, concave)
    alpha, s, _, _ = _dense_state(a, y, beta, kind, 1e-13)
    D = _dual.curvature(s, kind)
    op = _runs.runs_curvature(a, y, alpha, beta, kind)
    assert op is not None
    off, row, _, _ = op._runs
    if not concave:  # some rows have several runs
        assert row.shape[0] > a.numel()
    g = torch.Generator().manual_seed(kind)
    v = torch.randn(2, y.shape[0], generator=g, dtype=F64)
    u = torch.randn(2, a.shape[1], generator=g, dtype=F64)
    scale = D.abs().amax()
    tol = dict(rtol=1e-9, atol=1e-9 * float(scale) * y.shape[0])
    torch.testing.assert_close(op.r, D.sum(-1), **tol)
    torch.testing.assert_close(op.c, D.sum(-2), **tol)
    torch.testing.assert_close(op.mv(v), (D @ v.unsqueeze(-1)).squeeze(-1), **tol)
    Dtu = (D.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(op.rmv(u), Dtu, **tol)
    rinv = 1.0 / D.sum(-1).clamp_min(1e-300)
    normal = (D.transpose(-1, -2) @ ((D @ v.unsqueeze(-1)).squeeze(-1) * rinv).unsqueeze(-1))
    torch.testing.assert_close(op.normal(v, rinv), normal.squeeze(-1), **tol)
    # sums of G * D: G transposed (non-contiguous), float32 and expanded
    G = torch.randn(2, y.shape[0], a.shape[1], generator=g, dtype=F64).transpose(-1, -2)
    for GG in (G, G.float(), torch.ones(1, 1, 1, dtype=F64).expand_as(G)):
        GD = GG.to(F64) * D
        ha, hb, gdy = op.gd_sums(GG)
        torch.testing.assert_close(ha, GD.sum(-1), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(hb, GD.sum(-2), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gdy, GD @ y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", [1, 2, 3])
def test_band_plan_vjp_matches_dense_vjp(kind: int) -> None:
    """The implicit backward pass with the ``O(n + m)`` operator equals the dense one."""
    x = torch.randn(2, 150, generator=torch.Generator().manual_seed(kind), dtype=F64)
    a = -2.0 * (x - x.mean(-1, keepdim=True)) / 0.1
    y = torch.linspace(0.0, 1.0, 150, dtype=F64)
    y = y - y.mean()
    b = torch.ones(150, dtype=F64)
    opts = _solver.SolverOptions(tol=1e-12, max_iter=200, what="lbfgs")
    _, alpha, beta = _autograd.solve_plan(a, y, b, kind, opts, None, "col", want_plan=False)
    G = torch.randn(2, 150, 150, generator=torch.Generator().manual_seed(9), dtype=F64)
    fast = _autograd.band_plan_vjp(G, a, y, kind, alpha, beta)
    assert fast is not None
    D = _autograd.curvature_of(a, y, kind, alpha, beta, None)
    ref = _autograd.implicit_vjp(D, G * D, y)
    torch.testing.assert_close(fast, ref, rtol=1e-8, atol=1e-8 * float(ref.abs().amax()))


def _outputs_and_grads(x: torch.Tensor, mode: str, op: str) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    kw = {"dim": -1, "softness": 0.1, "mode": mode, "method": "ot"}
    kw["ot_kwargs"] = {"lbfgs_tol": 1e-11}
    if op == "sort":
        res = st.sort(x, **kw)
        outs = [res.values, res.indices]
    elif op == "rank":
        outs = [st.rank(x, **kw)]
    else:
        outs = [st.sort(x, return_indices=False, **kw).values]
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    (grad,) = torch.autograd.grad(loss, x)
    return (*(o.detach() for o in outs), grad)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
@pytest.mark.parametrize("op", ["sort", "rank", "values"])
def test_large_pnorm_numba_matches_torch_path(
    mode: str, op: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``DENSE_MAX`` anchors: banded evaluation, runs operator and banded backward vs the
    torch solver, dense plan and dense backward (float64)."""
    x = torch.randn(2, 160, generator=torch.Generator().manual_seed(5), dtype=F64)
    fast = _outputs_and_grads(x, mode, op)
    monkeypatch.setattr(_dual, "USE_NUMBA", False)
    ref = _outputs_and_grads(x, mode, op)
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f, r, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("mode", ["c0", "c2"])
def test_large_pnorm_gradcheck(mode: str) -> None:
    x = torch.randn(1, 140, generator=torch.Generator().manual_seed(6), dtype=F64)
    x.requires_grad_(True)
    opts = {"lbfgs_tol": 1e-12}

    def f(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        res = st.sort(x, softness=0.3, mode=mode, method="ot", ot_kwargs=opts)
        return res.values, res.indices

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True, atol=1e-6, rtol=1e-4)


def test_runs_kernel_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 150, generator=torch.Generator().manual_seed(7), dtype=F64)
    ref = _outputs_and_grads(x, "c1", "sort")

    def broken(*_: object, **__: object) -> None:
        raise AssertionError("simulated compiler failure")

    monkeypatch.setattr(_runs_numba, "curvature_runs", broken)
    monkeypatch.setattr(_span_numba, "evaluate_band", broken)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = _outputs_and_grads(x, "c1", "sort")
    assert any(issubclass(w.category, RuntimeWarning) for w in rec)
    for f, r in zip(out, ref):
        torch.testing.assert_close(f, r, rtol=1e-7, atol=1e-8)
