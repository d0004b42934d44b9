"""Ordering ops under ``torch.func`` transforms, forward mode and higher-order autograd.

For every op x method x soft mode: ``vmap`` equals a Python loop, ``jvp`` equals the
Jacobian-vector product of ``jacrev``, ``create_graph=True`` double backward passes
``gradgradcheck`` and the derivative w.r.t. a tensor softness passes ``gradcheck`` (float64,
``n = 5``). The default run covers every (method, mode) pair with a rotating op (so every op is
hit); the full grid is marked slow.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import hessian, jacfwd, jacrev, jvp, vmap

import softtorch as st
import softtorch.ordering.methods.permutahedron.fast_soft_sort as fss
from softtorch import simplex
from softtorch.simplex import project_simplex

# no "perturbed": Monte-Carlo, no torch.func support and no finite-difference gradients
METHODS = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
SOFT_MODES = ("smooth", "c0", "c1", "c2")
VALUE_ONLY = ("fast_soft_sort",)

Op = Callable[..., torch.Tensor]
OPS: dict[str, Op] = {
    "sort": lambda x, **k: st.sort(x, dim=-1, **k).values,
    "argsort": lambda x, **k: st.argsort(x, dim=-1, **k),
    "rank": lambda x, **k: st.rank(x, dim=-1, **k),
    "topk": lambda x, **k: st.topk(x, 2, dim=-1, **k).values,
    "max": lambda x, **k: st.max(x, dim=-1, **k),
    "min": lambda x, **k: st.min(x, dim=-1, **k),
    "argmax": lambda x, **k: st.argmax(x, dim=-1, **k),
    "argmin": lambda x, **k: st.argmin(x, dim=-1, **k),
    "median": lambda x, **k: st.median(x, dim=-1, **k),
    "argmedian": lambda x, **k: st.argmedian(x, dim=-1, **k),
    "quantile": lambda x, **k: st.quantile(x, 0.3, dim=-1, **k),
    "argquantile": lambda x, **k: st.argquantile(x, 0.3, dim=-1, **k),
}
INDEX_OPS = ("argsort", "argmax", "argmin", "argmedian", "argquantile")


def _ops_for(method: str) -> list[str]:
    return [op for op in OPS if not (method in VALUE_ONLY and op in INDEX_OPS)]


def _grid() -> list[tuple[str, str, str]]:
    return [
        (method, mode, op) for method in METHODS for mode in SOFT_MODES for op in _ops_for(method)
    ]


def _fast_grid() -> list[tuple[str, str, str]]:
    """Every (method, mode) pair once, the op rotating so that every op of a method is hit."""
    out = []
    for method in METHODS:
        ops = _ops_for(method)
        for i, mode in enumerate(SOFT_MODES):
            for j in range(3):
                out.append((method, mode, ops[(3 * i + j) % len(ops)]))
    return out


FAST = _fast_grid()
SLOW = [c for c in _grid() if c not in FAST]
GRID = [pytest.param(*c, id="-".join(c)) for c in FAST] + [
    pytest.param(*c, id="-".join(c), marks=pytest.mark.slow) for c in SLOW
]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", UserWarning)


def _fn(method: str, mode: str, op: str, softness: float | torch.Tensor = 0.3) -> Op:
    def f(x: torch.Tensor) -> torch.Tensor:
        out = OPS[op](x, method=method, mode=mode, softness=softness)
        return out[0] if isinstance(out, tuple) else out

    return f


def _x(rows: int = 3, n: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("method,mode,op", GRID)
def test_vmap_matches_loop(method: str, mode: str, op: str) -> None:
    f = _fn(method, mode, op)
    x = _x()
    out = vmap(f)(x)
    ref = torch.stack([f(row) for row in x])
    torch.testing.assert_close(out, ref, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("method,mode,op", GRID)
def test_jvp_matches_jacrev(method: str, mode: str, op: str) -> None:
    f = _fn(method, mode, op)
    x = _x()[0]
    v = _x(seed=1)[0]
    value, tangent = jvp(f, (x,), (v,))
    jac = jacrev(f)(x)
    torch.testing.assert_close(value, f(x))
    ref = (jac.reshape(-1, x.shape[-1]) @ v).reshape(tangent.shape)
    torch.testing.assert_close(tangent, ref, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("method,mode,op", GRID)
def test_double_backward(method: str, mode: str, op: str) -> None:
    f = _fn(method, mode, op)
    x = _x(rows=2).requires_grad_()
    assert torch.autograd.gradgradcheck(f, (x,), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method,mode,op", GRID)
def test_softness_gradcheck(method: str, mode: str, op: str) -> None:
    x = _x(rows=2)

    def g(s: torch.Tensor) -> torch.Tensor:
        return _fn(method, mode, op, softness=s)(x)

    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(g, (s,), atol=1e-5, rtol=1e-4)


HESS = [
    pytest.param(m, mode, marks=() if mode in ("smooth", "c1") else pytest.mark.slow)
    for m in METHODS
    for mode in SOFT_MODES
]


@pytest.mark.parametrize("method,mode", HESS)
def test_hessian_compositions(method: str, mode: str) -> None:
    """hessian (forward over reverse), reverse over reverse, forward over forward and
    ``create_graph`` autograd agree."""
    x = _x()[0]
    w = _x(seed=2)[0]

    def h(z: torch.Tensor) -> torch.Tensor:
        return (st.sort(z, method=method, mode=mode, softness=0.3).values * w).sum() + (
            st.rank(z, method=method, mode=mode, softness=0.3) * w
        ).sum()

    ref = hessian(h)(x)
    torch.testing.assert_close(jacrev(jacrev(h))(x), ref, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(jacfwd(jacfwd(h))(x), ref, atol=1e-7, rtol=1e-6)
    xx = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(h(xx), xx, create_graph=True)
    rows = [torch.autograd.grad(g[i], xx, retain_graph=True)[0] for i in range(x.numel())]
    torch.testing.assert_close(torch.stack(rows), ref, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize(
    "method,backend",
    [("fast_soft_sort", "numba"), ("fast_soft_sort", "torch"), ("ot", None)],
)
@pytest.mark.parametrize("mode", SOFT_MODES)
def test_forward_ad_eager(method: str, backend: str | None, mode: str) -> None:
    """Eager forward mode (``torch.autograd.forward_ad``) uses the Functions' ``jvp``."""
    if backend == "numba" and not fss.HAS_NUMBA:
        pytest.skip("numba not installed")
    old = fss.BACKEND
    if backend is not None:
        fss.set_backend(backend)
    try:
        for op in ("sort", "rank", "quantile"):
            f = _fn(method, mode, op)
            x, v = _x(), _x(seed=3)
            with fwAD.dual_level():
                tangent = fwAD.unpack_dual(f(fwAD.make_dual(x, v))).tangent
            jac = torch.autograd.functional.jacobian(f, x).reshape(-1, x.numel())
            ref = (jac @ v.reshape(-1)).reshape(tangent.shape)
            torch.testing.assert_close(tangent, ref, atol=1e-7, rtol=1e-6)
    finally:
        fss.set_backend(old)


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_fast_soft_sort_torch_backend_transforms(mode: str) -> None:
    old = fss.BACKEND
    fss.set_backend("torch")
    try:
        f = _fn("fast_soft_sort", mode, "rank")
        x = _x()
        torch.testing.assert_close(vmap(f)(x), torch.stack([f(r) for r in x]))
        v = _x(seed=4)[0]
        _, t = jvp(f, (x[0],), (v,))
        torch.testing.assert_close(t, jacrev(f)(x[0]) @ v, atol=1e-8, rtol=1e-7)
        assert torch.autograd.gradgradcheck(f, (x[:2].clone().requires_grad_(),))
    finally:
        fss.set_backend(old)


@pytest.mark.parametrize("method", ["softsort", "neuralsort", "sorting_network"])
def test_chunked_rows_fall_back_under_transforms(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inputs large enough for the row-chunked path still vmap / jvp (one plain evaluation)."""
    monkeypatch.setattr(simplex, "PLAIN_BUDGET", 8)
    monkeypatch.setattr(simplex, "CHUNK_BUDGET", 8)
    f = _fn(method, "c1", "argsort")
    x = _x(n=6)
    torch.testing.assert_close(vmap(f)(x), torch.stack([f(r) for r in x]))
    v = _x(n=6, seed=5)[0]
    _, t = jvp(f, (x[0],), (v,))
    ref = jacrev(f)(x[0]).reshape(-1, 6) @ v
    torch.testing.assert_close(t.reshape(-1), ref, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_project_simplex_vmap_long_rows(mode: str) -> None:
    """Long rows use a partial sort in eager mode and a full sort under vmap: same result."""
    g = torch.Generator().manual_seed(6)
    s = torch.randn(4, 3, 200, generator=g, dtype=torch.float64) * 3
    out = vmap(lambda t: project_simplex(t, mode))(s)
    torch.testing.assert_close(out, project_simplex(s, mode))
    torch.testing.assert_close(out.sum(-1), torch.ones(4, 3, dtype=torch.float64))


def test_ot_vmap_nested_and_in_dims() -> None:
    f = _fn("ot", "smooth", "sort")
    x = torch.randn(2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    ref = f(x)
    torch.testing.assert_close(vmap(vmap(f))(x), ref)
    torch.testing.assert_close(vmap(f, in_dims=1, out_dims=1)(x), ref)


@pytest.mark.parametrize("method", METHODS)
def test_softness_parameter_gets_gradient(method: str) -> None:
    s = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    x = _x()
    for mode in SOFT_MODES:
        s.grad = None
        st.sort(x, method=method, mode=mode, softness=s).values.pow(2).sum().backward()
        assert s.grad is not None and torch.isfinite(s.grad) and s.grad != 0


@pytest.mark.parametrize("method", METHODS)
def test_non_scalar_softness_raises(method: str) -> None:
    with pytest.raises(ValueError, match="softness must be a scalar"):
        st.sort(_x(), method=method, softness=torch.tensor([0.1, 0.2]))


def test_grid_covers_every_op() -> None:
    for method in METHODS:
        hit = {op for m, _, op in FAST if m == method}
        assert hit == set(_ops_for(method))
    assert len(set(itertools.chain(FAST, SLOW))) == len(_grid())
