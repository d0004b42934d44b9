"""The blockwise entropic OT path (``_lowrank``, ``_contract``) against the dense path, float64.

The dense path (stabilised Sinkhorn on the full kernel, contraction of the full plan, implicit
backward with the dense plan) is the reference: it is what runs when the blockwise sums are not
eligible, so forcing eligibility on or off compares the two on the same problem.
"""

from __future__ import annotations

import math

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods.ot import _autograd, _lowrank
from softtorch.ordering.methods.ot._contract import OTContract
from softtorch.ordering.methods.ot._lowrank import PlanOperator, Rank1Sums, sinkhorn
from softtorch.ordering.methods.ot._solver import SolverOptions, solve

F64 = torch.float64
TIGHT = {"sinkhorn_tol": 1e-12}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many Taylor blocks (small block radius) on every size."""
    monkeypatch.setattr(_lowrank, "R_TAYLOR", 0.4)


def _force(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    monkeypatch.setattr(_lowrank, "eligible", lambda a, y, rows=False: on)


@pytest.mark.parametrize("scale", [0.5, 8.0, 80.0])
def test_rank1_sums_match_dense(scale: float, small_blocks: None) -> None:
    B, n, m = 2, 70, 50
    g = _gen(0)
    a = (torch.rand(B, n, generator=g, dtype=F64) - 0.5) * 2 * scale
    y = torch.linspace(-0.5, 0.5, m, dtype=F64)
    w = torch.randn(B, m, generator=g, dtype=F64) * 4
    w[0, 3] = -math.inf  # a zero weight
    rows = Rank1Sums(a, y.unsqueeze(0))
    assert rows.nb > 1 or scale < 1
    ref = torch.logsumexp(w.unsqueeze(-2) - a.unsqueeze(-1) * y, -1)
    torch.testing.assert_close(rows.lse(w), ref, rtol=1e-12, atol=1e-12)
    u = torch.randn(B, n, generator=g, dtype=F64)
    cols = Rank1Sums(y.unsqueeze(0), a)
    ref = torch.logsumexp(u.unsqueeze(-1) - a.unsqueeze(-1) * y, -2)
    torch.testing.assert_close(cols.lse(u), ref, rtol=1e-12, atol=1e-12)
    # signed mat-vecs with the plan of arbitrary potentials
    alpha = torch.randn(B, n, generator=g, dtype=F64) - 3
    beta = torch.randn(B, m, generator=g, dtype=F64) - 3
    D = torch.exp(alpha.unsqueeze(-1) + beta.unsqueeze(-2) - a.unsqueeze(-1) * y)
    op = PlanOperator(a, y, alpha, beta)
    v = torch.randn(B, m, 3, generator=g, dtype=F64)
    scale_v = (D @ v.abs()).amax()
    torch.testing.assert_close(op.mv(v) / scale_v, (D @ v) / scale_v, rtol=0, atol=1e-12)
    ref_t = (D.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
    scale_u = (D.transpose(-1, -2) @ u.abs().unsqueeze(-1)).amax()
    torch.testing.assert_close(op.rmv(u) / scale_u, ref_t / scale_u, rtol=0, atol=1e-12)


@pytest.mark.parametrize("softness", [0.5, 0.15])
@pytest.mark.parametrize("normalise", ["col", "row"])
def test_sinkhorn_matches_dense_solver(softness: float, normalise: str, small_blocks: None) -> None:
    B, n = 3, 60
    z = torch.rand(B, n, generator=_gen(1), dtype=F64)
    a = (z - z.mean(-1, keepdim=True)) * (-2 / softness)
    y = torch.linspace(0, 1, n, dtype=F64)
    y = y - y.mean()
    b = torch.ones(n, dtype=F64)
    opts = SolverOptions(1e-12, 2000, "sinkhorn")
    out = sinkhorn(a, y, b, None, opts.tol, opts.max_iter, normalise)
    assert out is not None
    alpha, beta = out
    ref = solve(a, y, b, 0, opts, None, normalise)
    Q = torch.exp(alpha.unsqueeze(-1) + beta.unsqueeze(-2) - a.unsqueeze(-1) * y)
    Qref = torch.exp(ref.alpha.unsqueeze(-1) + ref.beta.unsqueeze(-2) - a.unsqueeze(-1) * y)
    torch.testing.assert_close(Q, Qref, rtol=0, atol=1e-10)
    marg = Q.sum(-2) if normalise == "col" else Q.sum(-1)
    torch.testing.assert_close(marg, torch.ones_like(marg), rtol=0, atol=1e-12)


def _run(
    op: str, x: torch.Tensor, softness: torch.Tensor, w: torch.Tensor, **kw: object
) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    s = softness.detach().clone().requires_grad_(True)
    fn = getattr(st, op)
    res = fn(x, dim=-1, softness=s, mode="smooth", method="ot", ot_kwargs=TIGHT, **kw)
    out = res if isinstance(res, torch.Tensor) else res.values
    idx = None if isinstance(res, torch.Tensor) else res.indices
    loss = (out * w).sum()
    if idx is not None:
        loss = loss + (idx * torch.linspace(0, 1, idx.shape[-1], dtype=F64)).sum()
    gx, gs = torch.autograd.grad(loss, (x, s))
    return out.detach(), gx, gs


CASES = [
    ("sort", {"return_indices": False}),
    ("sort", {"return_indices": False, "descending": True}),
    ("sort", {}),
    ("sort", {"descending": True}),
    ("rank", {}),
    ("rank", {"descending": False}),
]


@pytest.mark.parametrize(("op", "kw"), CASES)
def test_values_and_gradients_match_dense_path(
    op: str, kw: dict, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    x = torch.randn(2, 3, 45, generator=_gen(2), dtype=F64)
    x[1, 0, 5] = math.nan  # a NaN row stays NaN, the others are unaffected
    w = torch.randn(2, 3, 45, generator=_gen(3), dtype=F64)
    softness = torch.tensor(0.2, dtype=F64)
    _force(monkeypatch, True)
    new = _run(op, x, softness, w, **kw)
    _force(monkeypatch, False)
    old = _run(op, x, softness, w, **kw)
    assert torch.isnan(new[0][1, 0]).all()
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9, equal_nan=True)


def test_blockwise_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a size where the blockwise sums pay off they are used without forcing."""
    calls: list[str] = []
    real = _lowrank.sinkhorn

    def spy(*args: object, **kwargs: object) -> object:
        calls.append("sinkhorn")
        return real(*args, **kwargs)

    monkeypatch.setattr(_lowrank, "sinkhorn", spy)
    x = torch.randn(1, 400, generator=_gen(4))
    assert _lowrank.eligible(-2 * (torch.rand(1, 400) - 0.5) / 0.1, torch.linspace(-0.5, 0.5, 400))
    st.sort(x, softness=0.1, mode="smooth", method="ot", return_indices=False)
    st.rank(x, softness=0.1, mode="smooth", method="ot")
    assert calls == ["sinkhorn", "sinkhorn"]


def test_slow_sinkhorn_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the blockwise Sinkhorn gives up, the dense solvers answer (same values)."""
    x = torch.randn(2, 40, generator=_gen(5), dtype=F64)
    _force(monkeypatch, False)
    ref = st.sort(x, softness=0.1, mode="smooth", method="ot", ot_kwargs=TIGHT).values
    _force(monkeypatch, True)
    monkeypatch.setattr(_lowrank, "_slow", lambda errs, tol, m: True)
    out = st.sort(x, softness=0.1, mode="smooth", method="ot", ot_kwargs=TIGHT).values
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-10)


def test_entropic_plan_row_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan formed in row blocks (float32 output, float64 slacks) equals the one-shot plan."""
    g = _gen(6)
    a = torch.randn(2, 37, generator=g)
    y = torch.linspace(-0.5, 0.5, 29)
    alpha = torch.randn(2, 37, generator=g, dtype=F64)
    beta = torch.randn(2, 29, generator=g, dtype=F64)
    ref = _autograd.entropic_plan(a.double(), y.double(), alpha, beta, F64).float()
    blocks = _autograd.entropic_plan(a, y, alpha, beta, F64)
    torch.testing.assert_close(blocks, ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("normalise", ["col", "row"])
def test_contract_double_backward_and_jvp(
    normalise: str, monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    """``create_graph=True`` and forward mode use the dense Newton form: compare the first
    derivatives with the matrix-free backward and the Hessian-vector product with finite
    differences of the gradient."""
    B, n = 2, 30
    z = torch.rand(B, n, generator=_gen(7), dtype=F64)
    a = ((z - z.mean(-1, keepdim=True)) * (-2 / 0.2)).requires_grad_(True)
    y = torch.linspace(0, 1, n, dtype=F64)
    y = y - y.mean()
    b = torch.ones(n, dtype=F64)
    opts = SolverOptions(1e-13, 2000, "sinkhorn")
    alpha, beta = sinkhorn(a.detach(), y, b, None, opts.tol, opts.max_iter, normalise)
    x = torch.randn(B, n, generator=_gen(8), dtype=F64)
    if normalise == "row":
        x = torch.arange(1.0, n + 1, dtype=F64)
    w = torch.randn(B, n, generator=_gen(9), dtype=F64)

    def grad_of(av: torch.Tensor, create: bool) -> torch.Tensor:
        out = OTContract.apply(av, x, y, b, alpha, beta, normalise, 0)
        return torch.autograd.grad((out * w).sum(), av, create_graph=create)[0]

    g1 = grad_of(a, False)
    g2 = grad_of(a, True)
    torch.testing.assert_close(g1, g2.detach(), rtol=1e-8, atol=1e-10)
    v = torch.randn(B, n, generator=_gen(10), dtype=F64)
    hvp = torch.autograd.grad((g2 * v).sum(), a)[0]
    h = 1e-5
    fd = []
    for sgn in (1, -1):
        ah = (a.detach() + sgn * h * v).requires_grad_(True)
        al, be = sinkhorn(ah.detach(), y, b, None, opts.tol, opts.max_iter, normalise)
        out = OTContract.apply(ah, x, y, b, al, be, normalise, 0)
        fd.append(torch.autograd.grad((out * w).sum(), ah)[0])
    torch.testing.assert_close(hvp, (fd[0] - fd[1]) / (2 * h), rtol=1e-4, atol=1e-6)
    # forward mode: the directional derivative equals <gradient, direction>
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        out = OTContract.apply(fwad.make_dual(a.detach(), v), x, y, b, alpha, beta, normalise, 0)
        tangent = fwad.unpack_dual(out).tangent
    torch.testing.assert_close((tangent * w).sum(), (g1 * v).sum(), rtol=1e-8, atol=1e-10)
