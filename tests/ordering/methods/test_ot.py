"""Tests of the ``ot`` ordering method (regularised optimal-transport sorting)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import softtorch as st
from softtorch.ordering._base import _REGISTRY
from softtorch.ordering.methods.ot import OPTION_KEYS, OT, OTConvergenceWarning, ot_plan
from softtorch.ordering.methods.ot import _linalg as _ot_linalg
from softtorch.ordering.methods.ot import _ops as _ot_ops
from softtorch.ordering.methods.ot import _problem as ot_problem
from softtorch.ordering.methods.ot import _solver as _ot_solver
from softtorch.ordering.methods.ot import method as ot_module

MODES = ("smooth", "c0", "c1", "c2")
M = OT()

X_README = torch.tensor([-0.2, -1.0, 0.3, 1.0])


def _standardize(x: torch.Tensor) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return torch.sigmoid((x - mu) / torch.sqrt(var + 1e-6))


def _spread(n: int, batch: tuple[int, ...] = (), seed: int = 0) -> torch.Tensor:
    """Well-spread scores in (0, 1): a random permutation of an even grid."""
    g = torch.Generator().manual_seed(seed)
    grid = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    rows = [grid[torch.randperm(n, generator=g)] for _ in range(math.prod(batch))]
    return torch.stack(rows).reshape(*batch, n) if rows else grid.reshape(*batch, 0)


def _hard_perm(z: torch.Tensor, descending: bool = False) -> torch.Tensor:
    idx = torch.argsort(z, dim=-1, descending=descending)
    return torch.nn.functional.one_hot(idx, z.shape[-1]).to(z.dtype)


# ----------------------------------------------------------------------------- registry, README


def test_registered() -> None:
    assert isinstance(_REGISTRY["ot"], OT)
    assert OT.name == "ot" and OT.has_permutation


def test_readme_sort_values() -> None:
    z = _standardize(X_README)
    assert torch.allclose(z, torch.tensor([0.4235, 0.1970, 0.5932, 0.7920]), atol=1e-4)
    values = M.permutation(z, 0.1, "smooth") @ X_README
    expected = torch.tensor([-0.7324, -0.2396, 0.3286, 0.7434])
    assert torch.allclose(values, expected, atol=1e-3), values


def test_readme_sort_values_float64_converged() -> None:
    z = _standardize(X_README.double())
    values = M.permutation(z, 0.1, "smooth") @ X_README.double()
    expected = torch.tensor([-0.7324, -0.2396, 0.3286, 0.7434], dtype=torch.float64)
    assert torch.allclose(values, expected, atol=1e-3)


# ----------------------------------------------------------------------------- simplex structure


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [0.03, 0.3, 3.0])
def test_rows_on_simplex(mode: str, softness: float) -> None:
    z = torch.rand(4, 9, generator=torch.Generator().manual_seed(1))
    for P in (
        M.permutation(z, softness, mode),
        M.permutation(z, softness, mode, descending=True),
        M.topk_permutation(z, 3, softness, mode),
        M.argmax(z, softness, mode).unsqueeze(-2),
    ):
        assert bool((P >= 0).all())
        assert torch.allclose(P.sum(-1), torch.ones(()), atol=1e-5)
    # the sort plan is doubly stochastic, so ranks lie in [1, n] and sum to n (n + 1) / 2
    P = M.permutation(z, softness, mode)
    assert torch.allclose(P.sum(-2), torch.ones(()), atol=2e-3)
    r = M.rank(z, softness, mode)
    assert bool(((r >= 1 - 1e-5) & (r <= 9 + 1e-5)).all())
    assert torch.allclose(r.sum(-1), torch.full((4,), 45.0), atol=1e-2)


@pytest.mark.parametrize("mode", MODES)
def test_descending_and_rank_conventions(mode: str) -> None:
    z = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    asc = M.permutation(z, 0.2, mode)
    desc = M.permutation(z, 0.2, mode, descending=True)
    assert torch.allclose(desc, asc.flip(-2), atol=1e-8)
    r_asc = M.rank(z, 0.2, mode, descending=False)
    r_desc = M.rank(z, 0.2, mode, descending=True)
    assert torch.allclose(r_desc, 7 - r_asc, atol=1e-8)
    # ranks are the transposed plan applied to 1..n
    j = torch.arange(1, 7, dtype=torch.float64)
    assert torch.allclose(r_asc, (asc * j.unsqueeze(-1)).sum(-2), atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_topk_k_equal_n_and_argmax(mode: str) -> None:
    z = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    full = M.permutation(z, 0.1, mode, descending=True)
    assert torch.allclose(M.topk_permutation(z, 5, 0.1, mode), full, atol=1e-9)
    assert torch.allclose(M.topk_permutation(z, 4, 0.1, mode), full[..., :4, :], atol=1e-9)
    a = M.argmax(z, 0.1, mode)
    assert torch.allclose(a, M.topk_permutation(z, 1, 0.1, mode)[..., 0, :])
    assert torch.equal(a.argmax(-1), z.argmax(-1))
    assert M.topk_permutation(z, 0, 0.1, mode).shape == (2, 0, 5)


def test_c0_plans_have_exact_zeros() -> None:
    z = _spread(8, (3,))
    for P in (M.permutation(z, 0.05, "c0"), M.topk_permutation(z, 3, 0.05, "c0")):
        assert int((P == 0).sum()) > P.numel() // 2
    # the entropic plan is dense
    assert int((M.permutation(z, 0.05, "smooth") == 0).sum()) == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_near_hard_at_small_softness(mode: str, dtype: torch.dtype) -> None:
    z = _spread(7, (2, 3)).to(dtype)
    hard = _hard_perm(z)
    assert (M.permutation(z, 1e-3, mode) - hard).abs().max() < 1e-2
    hard_desc = _hard_perm(z, descending=True)
    assert (M.topk_permutation(z, 3, 1e-3, mode) - hard_desc[..., :3, :]).abs().max() < 1e-2
    assert (M.argmax(z, 1e-3, mode) - hard_desc[..., 0, :]).abs().max() < 1e-2
    hard_rank = (torch.argsort(torch.argsort(z, -1), -1) + 1).to(dtype)
    assert (M.rank(z, 1e-3, mode, descending=False) - hard_rank).abs().max() < 1e-2


def test_soft_values_shrink_toward_mean_with_softness() -> None:
    z = _standardize(X_README)
    spread = [float((M.permutation(z, s, "smooth") @ X_README).std()) for s in (0.01, 0.1, 1.0)]
    assert spread[0] > spread[1] > spread[2]


# ----------------------------------------------------------------------------- gradients


def _gradcheck(fn, z: torch.Tensor) -> None:
    assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [0.05, 0.5])
def test_gradcheck(mode: str, softness: float) -> None:
    g = torch.Generator().manual_seed(4)
    z = torch.rand(2, 5, dtype=torch.float64, generator=g).requires_grad_()
    x = torch.randn(2, 5, 1, dtype=torch.float64, generator=g)
    _gradcheck(lambda z: M.permutation(z, softness, mode) @ x, z)
    _gradcheck(lambda z: M.permutation(z, softness, mode, descending=True), z)
    _gradcheck(lambda z: M.rank(z, softness, mode), z)
    _gradcheck(lambda z: M.topk_permutation(z, 2, softness, mode), z)
    _gradcheck(lambda z: M.argmax(z, softness, mode), z)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_full_jacobian(mode: str) -> None:
    g = torch.Generator().manual_seed(15)
    z = torch.rand(1, 4, dtype=torch.float64, generator=g).requires_grad_()
    x = torch.randn(1, 4, 1, dtype=torch.float64, generator=g)
    for fn in (
        lambda z: M.permutation(z, 0.1, mode) @ x,
        lambda z: M.rank(z, 0.1, mode),
        lambda z: M.topk_permutation(z, 2, 0.1, mode),
    ):
        assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_wrt_softness(mode: str) -> None:
    z = torch.rand(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    s = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: M.rank(z, s, mode), (s,), eps=1e-6, atol=1e-5, fast_mode=True
    )


def _fd_directional(loss, z: torch.Tensor, h: float = 1e-5) -> tuple[float, float]:
    """(autograd, central finite difference) directional derivatives along a random direction."""
    v = torch.randn(z.shape, dtype=z.dtype, generator=torch.Generator().manual_seed(6))
    zz = z.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(zz), zz)
    with torch.no_grad():
        fd = (loss(z + h * v) - loss(z - h * v)) / (2 * h)
    return float((grad * v).sum()), float(fd)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_vs_central_differences(mode: str) -> None:
    g = torch.Generator().manual_seed(7)
    z = torch.rand(2, 12, dtype=torch.float64, generator=g)
    x = torch.randn(2, 12, dtype=torch.float64, generator=g)
    w = torch.randn(2, 12, dtype=torch.float64, generator=g)
    wk = torch.randn(2, 3, 12, dtype=torch.float64, generator=g)
    losses = {
        "perm@x": lambda z: ((M.permutation(z, 0.1, mode) @ x.unsqueeze(-1)).squeeze(-1) * w).sum(),
        "rank": lambda z: (M.rank(z, 0.1, mode) * w).sum(),
        "topk": lambda z: (M.topk_permutation(z, 3, 0.1, mode) * wk).sum(),
    }
    for name, loss in losses.items():
        ad, fd = _fd_directional(loss, z)
        assert abs(ad - fd) <= 5e-2 * abs(fd) + 1e-6, (name, ad, fd)


@pytest.mark.parametrize("mode", ["smooth", "c0"])
def test_gradient_large_n_uses_cg(mode: str) -> None:
    n = _ot_linalg.DENSE_MAX + 22
    g = torch.Generator().manual_seed(8)
    z = torch.rand(1, n, dtype=torch.float64, generator=g)
    w = torch.randn(1, n, dtype=torch.float64, generator=g)
    ad, fd = _fd_directional(lambda z: (M.rank(z, 0.05, mode) * w).sum(), z)
    assert abs(ad - fd) <= 5e-2 * abs(fd) + 1e-6, (ad, fd)


@pytest.mark.parametrize("mode", ["c0", "c2"])
def test_banded_presolver_matches_dense(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    n = _ot_solver.BAND_MIN + 44
    z = torch.rand(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(16))
    banded = M.permutation(z, 0.02, mode)
    monkeypatch.setattr(_ot_solver, "BAND_MIN", 10**9)
    dense = M.permutation(z, 0.02, mode)
    assert (banded - dense).abs().max() < 1e-8
    assert int((banded == 0).sum()) > banded.numel() // 2  # short supports


# ----------------------------------------------------------------------------- options, warnings


def test_option_validation() -> None:
    z = torch.rand(5)
    with pytest.raises(ValueError, match="sinkhorn_tol.*sinkhorn_max_iter.*lbfgs_tol"):
        M.permutation(z, 0.1, "smooth", options={"tolerance": 1e-3})
    for bad in ({"sinkhorn_tol": 0.0}, {"lbfgs_tol": float("nan")}, {"sinkhorn_tol": "1e-3"}):
        with pytest.raises(ValueError, match="finite number > 0"):
            M.permutation(z, 0.1, "smooth", options=bad)
    for bad in ({"sinkhorn_max_iter": 0}, {"lbfgs_max_iter": 2.5}, {"lbfgs_max_iter": True}):
        with pytest.raises(ValueError, match="int >= 1"):
            M.rank(z, 0.1, "c0", options=bad)
    with pytest.raises(TypeError, match="dict"):
        M.rank(z, 0.1, "c0", options=[("sinkhorn_tol", 1e-3)])  # type: ignore[arg-type]
    assert set(OPTION_KEYS) == {"sinkhorn_tol", "sinkhorn_max_iter", "lbfgs_tol", "lbfgs_max_iter"}
    # all keys accepted in every mode; the irrelevant ones are ignored
    opts = {"sinkhorn_tol": 1e-6, "sinkhorn_max_iter": 500, "lbfgs_tol": 1e-6, "lbfgs_max_iter": 50}
    for mode in MODES:
        M.permutation(z, 0.1, mode, options=opts)


def test_mode_and_softness_validation() -> None:
    z = torch.rand(5)
    with pytest.raises(ValueError, match="'smooth', 'c0', 'c1', 'c2'"):
        M.permutation(z, 0.1, "hard")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="softness"):
            M.rank(z, bad, "smooth")
    with pytest.raises(TypeError):
        M.rank(torch.rand(4, dtype=torch.complex64), 0.1, "smooth")


@pytest.mark.parametrize(
    ("mode", "opts"),
    [
        ("smooth", {"sinkhorn_max_iter": 1}),
        ("c0", {"lbfgs_max_iter": 1}),
        ("c2", {"lbfgs_max_iter": 1}),
    ],
)
def test_nonconvergence_warns(mode: str, opts: dict) -> None:
    z = torch.rand(3, 30, generator=torch.Generator().manual_seed(9))
    with pytest.warns(OTConvergenceWarning, match="max_iter"):
        P = M.permutation(z, 0.01, mode, options=opts)
    assert issubclass(OTConvergenceWarning, RuntimeWarning)
    assert bool(torch.isfinite(P).all())
    assert torch.allclose(P.sum(-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_tighter_tolerance_is_honoured(mode: str) -> None:
    z = torch.rand(2, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    key = "sinkhorn_tol" if mode == "smooth" else "lbfgs_tol"
    with warnings.catch_warnings():
        warnings.simplefilter("error", OTConvergenceWarning)
        Q = ot_plan(
            z,
            torch.linspace(0, 1, 10, dtype=torch.float64),
            torch.ones(10),
            0.01,
            mode,
            {key: 1e-11},
            normalise="row",
        )
    assert (Q.sum(-2) - 1).abs().max() < 1e-10


# ----------------------------------------------------------------------------- shapes, edge cases


@pytest.mark.parametrize("mode", MODES)
def test_batched_shapes(mode: str) -> None:
    z = torch.rand(2, 3, 6, generator=torch.Generator().manual_seed(11))
    assert M.permutation(z, 0.1, mode).shape == (2, 3, 6, 6)
    assert M.rank(z, 0.1, mode).shape == (2, 3, 6)
    assert M.topk_permutation(z, 2, 0.1, mode).shape == (2, 3, 2, 6)
    assert M.argmax(z, 0.1, mode).shape == (2, 3, 6)
    assert M.argmin(z, 0.1, mode).shape == (2, 3, 6)
    # batch rows are independent: matches the per-row result
    P = M.permutation(z, 0.1, mode)
    assert torch.allclose(P[1, 2], M.permutation(z[1, 2], 0.1, mode), atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_edge_sizes(mode: str) -> None:
    for z in (torch.zeros(0, 4), torch.zeros(2, 0, 4)):
        assert M.permutation(z, 0.1, mode).shape == (*z.shape, 4)
        assert M.rank(z, 0.1, mode).shape == z.shape
        assert M.topk_permutation(z, 2, 0.1, mode).shape == (*z.shape[:-1], 2, 4)
    one = torch.tensor([[0.3], [0.7]], requires_grad=True)
    assert torch.equal(M.permutation(one, 0.1, mode), torch.ones(2, 1, 1))
    r = M.rank(one, 0.1, mode)
    assert torch.equal(r, torch.ones(2, 1))
    r.sum().backward()
    assert torch.equal(one.grad, torch.zeros(2, 1))
    assert torch.equal(M.argmax(one, 0.1, mode), torch.ones(2, 1))


def test_integer_input_promoted() -> None:
    r = M.rank(torch.tensor([3, 1, 2]), 0.1, "smooth")
    assert r.dtype == torch.get_default_dtype()
    assert torch.equal(r.round(), torch.tensor([1.0, 3.0, 2.0]))


@pytest.mark.parametrize("mode", MODES)
def test_nan_rows_propagate(mode: str) -> None:
    z = torch.rand(3, 5, generator=torch.Generator().manual_seed(12))
    z[1, 2] = float("nan")
    z.requires_grad_()
    P = M.permutation(z, 0.1, mode)
    assert bool(torch.isnan(P[1]).all()) and bool(torch.isfinite(P[[0, 2]]).all())
    clean = M.permutation(z.detach()[[0, 2]], 0.1, mode)
    assert torch.allclose(P[[0, 2]], clean)
    R = M.rank(z, 0.1, mode)
    assert bool(torch.isnan(R[1]).all())
    (P.nan_to_num().sum() + R.nan_to_num().sum()).backward()
    assert bool(torch.isfinite(z.grad).all())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extremes(mode: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(13)
    for scale, softness in ((1.0, 1e-6), (1e6, 1e-6), (1e6, 1e4), (1e-3, 1e-3), (1.0, 1e4)):
        x = (torch.randn(2, 6, generator=g) * scale).to(dtype)
        x[0, 1] = x[0, 2]  # an exact tie
        x.requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("error", OTConvergenceWarning)
            P = M.permutation(x, softness, mode)
            R = M.rank(x, softness, mode)
            T = M.topk_permutation(x, 2, softness, mode)
        loss = (P * torch.randn(P.shape, generator=g, dtype=dtype)).sum() + R.sum() + T.sum()
        loss.backward()
        for t in (P, R, T, x.grad):
            assert bool(torch.isfinite(t).all()), (scale, softness)
        assert torch.allclose(P.sum(-1), torch.ones((), dtype=dtype), atol=1e-5)


def test_half_precision_input() -> None:
    z = torch.rand(2, 6).to(torch.bfloat16)
    P = M.permutation(z, 0.1, "smooth")
    assert P.dtype == torch.bfloat16 and P.shape == (2, 6, 6)
    assert bool(torch.isfinite(P).all())


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_sweep_random_inputs(mode: str) -> None:
    g = torch.Generator().manual_seed(14)
    for n in (2, 3, 17, 64, 200):
        for softness in (1e-4, 1e-2, 0.1, 1.0, 100.0):
            z = torch.rand(3, n, generator=g)
            with warnings.catch_warnings():
                warnings.simplefilter("error", OTConvergenceWarning)
                P = M.permutation(z, softness, mode)
                r = M.rank(z, softness, mode)
            assert torch.allclose(P.sum(-1), torch.ones(()), atol=1e-5)
            assert torch.allclose(P.sum(-2), torch.ones(()), atol=5e-3)
            assert bool(((r >= 1 - 1e-4) & (r <= n + 1e-4)).all())


# ----------------------------------------------------------------------------- custom ops (compile)


def _plan_outputs(z: torch.Tensor, softness: torch.Tensor, mode: str) -> list[torch.Tensor]:
    outs = [M.permutation(z, softness, mode), M.rank(z, softness, mode)]
    outs.append(M.topk_permutation(z, 3, softness, mode))
    if mode == "smooth":
        outs += [M.log_permutation(z, softness, mode), M.log_topk_permutation(z, 3, softness, mode)]
    return outs


def _values_and_grads(
    z: torch.Tensor, mode: str
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    z = z.clone().requires_grad_()
    softness = torch.tensor(0.15, dtype=torch.float64, requires_grad=True)
    outs = _plan_outputs(z, softness, mode)
    w = torch.linspace(0.5, 1.5, z.shape[-1], dtype=z.dtype)
    loss = sum(
        (torch.where(torch.isfinite(o), o, 0) * w * (i + 1)).sum() for i, o in enumerate(outs)
    )
    gz, gs = torch.autograd.grad(loss, (z, softness))
    return [o.detach() for o in outs], gz, gs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", MODES)
def test_custom_op_path_matches_eager(
    mode: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The traced path (``._ot_ops``, run eagerly here) gives the eager values and gradients,
    the softness gradient and NaN rows included."""
    z = torch.rand(4, 12, dtype=dtype, generator=torch.Generator().manual_seed(21))
    z[2, 5] = math.nan
    eager = _values_and_grads(z, mode)
    for module in (ot_problem, ot_module):
        monkeypatch.setattr(module, "is_traced", lambda t: True)
    traced = _values_and_grads(z, mode)
    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == torch.float64 else {}
    for o, e in zip(traced[0], eager[0]):
        assert o.dtype == e.dtype
        torch.testing.assert_close(o, e, equal_nan=True, **tol)
    torch.testing.assert_close(traced[1], eager[1], **tol)
    torch.testing.assert_close(traced[2], eager[2], **tol)
    assert float(traced[2]) != 0


def test_custom_op_path_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (ot_problem, ot_module):
        monkeypatch.setattr(module, "is_traced", lambda t: True)
    z = torch.rand(3, 30, generator=torch.Generator().manual_seed(9))
    for mode, key in (("smooth", "sinkhorn_max_iter"), ("c0", "lbfgs_max_iter")):
        with pytest.warns(OTConvergenceWarning, match="max_iter"):
            M.permutation(z, 0.01, mode, options={key: 1})


@pytest.mark.parametrize(("kind", "log"), [(0, False), (1, False), (3, False), (0, True)])
def test_custom_ops_opcheck(kind: int, log: bool) -> None:
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch of the ops."""
    a = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a.requires_grad_()
    y = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)
    b = torch.ones(6, dtype=torch.float64)
    beta0 = ot_problem._hard_beta(-0.5 * a.detach(), y, b)
    what = "sinkhorn" if kind == 0 else "lbfgs"
    args = (a, y, b, kind, 1e-9, 200, what, beta0, "row" if kind == 3 else "col", log)
    torch.library.opcheck(_ot_ops._plan_op, args)
    P, alpha, beta = _ot_ops._plan_op(*args)
    G = torch.randn(P.shape, dtype=P.dtype, generator=torch.Generator().manual_seed(5))
    saved = P.detach() if kind == 0 or log else None
    vjp_args = (G, a.detach(), y, alpha, beta, saved, kind, log)
    torch.library.opcheck(_ot_ops._vjp_op, vjp_args)


def test_compile_fullgraph_learnable_softness() -> None:
    """``torch.compile(fullgraph=True)``: no graph break, eager values and gradients (scores and
    a learnable softness), and the convergence warning from the op at run time."""
    x = torch.rand(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(8))

    def f(x: torch.Tensor, s: torch.Tensor, opts: dict | None) -> torch.Tensor:
        v = st.sort(x, softness=s, method="ot", ot_kwargs=opts).values
        r = st.rank(x, softness=s, mode="c1", method="ot", ot_kwargs=opts)
        return (v * torch.arange(1.0, 8.0, dtype=x.dtype)).sum() + (r * r).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    for fn in (f, compiled):
        xs = x.clone().requires_grad_()
        s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        out = fn(xs, s, None)
        grads = torch.autograd.grad(out, (xs, s))
        if fn is f:
            ref = (out.detach(), *grads)
        else:
            for got, want in zip((out, *grads), ref):
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    with pytest.warns(OTConvergenceWarning, match="max_iter"):
        opts = {"sinkhorn_max_iter": 1, "lbfgs_max_iter": 1}
        compiled(x * 30, torch.tensor(0.01, dtype=torch.float64), opts)


def test_compile_of_functorch_transforms() -> None:
    """``torch.compile`` of ``vmap`` / ``grad`` keeps the transform path (no custom op)."""
    x = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def f(r: torch.Tensor) -> torch.Tensor:
        return st.sort(r, method="ot").values

    def loss(r: torch.Tensor) -> torch.Tensor:
        return (f(r) ** 2).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dynamo's notes on the graph breaks inside transforms
        got = torch.compile(torch.func.vmap(f), backend="aot_eager")(x)
        grad = torch.compile(torch.func.grad(loss), backend="aot_eager")(x[0])
    torch.testing.assert_close(got, torch.func.vmap(f)(x), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(grad, torch.func.grad(loss)(x[0]), rtol=1e-12, atol=1e-13)
