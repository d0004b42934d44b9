"""Tests of the ``fast_soft_sort`` method (permutahedron projection, Blondel et al. 2020)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from softtorch.ordering._base import get_method
from softtorch.ordering.methods.permutahedron import _pav_torch
from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss
from softtorch.ordering.methods.permutahedron.method import FastSoftSort

BACKENDS = ("numba", "torch")
MODES = fss.MODES


def _opts(backend: str) -> dict[str, str]:
    return {"backend": backend}


def _standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = x.mean(-1, keepdim=True)
    std = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-6)
    return torch.sigmoid((x - mean) / std), mean, std


def _distinct(shape: tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0):
    """Scores in (0, 1) whose gaps are at least 0.5 / n (no ties, no near-ties)."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    base = (torch.arange(n, dtype=dtype) + 0.5) / n
    keys = torch.rand(shape, generator=g)
    perm = torch.argsort(keys, dim=-1)
    return base[perm] + 0.2 / n * torch.rand(shape, generator=g, dtype=dtype)


# ----------------------------------------------------------------------------- reference


def _g(y: float, mode: str) -> float:
    if mode == "smooth":
        return math.exp(y)
    if mode == "c0":
        return y
    if mode == "c1":
        return y * abs(y)  # p = 3/2 on all of R (the kernel assumes the active set is full)
    return y**3


def _block_value(sb: np.ndarray, wb: np.ndarray, mode: str) -> float:
    """gamma with sum g(s - gamma) = sum c(w), by bisection (independent of the kernels)."""
    target = sum(math.exp(x) for x in wb) if mode == "smooth" else float(wb.sum())

    def f(gam: float) -> float:
        return sum(_g(float(x) - gam, mode) for x in sb) - target

    lo, hi = float(sb.min()) - 1.0, float(sb.max()) + 1.0
    while f(lo) < 0:
        lo -= 2 * (float(sb.max()) - lo + 1)
    while f(hi) > 0:
        hi += 2 * (hi - float(sb.min()) + 1)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _project_ref(z: np.ndarray, w: np.ndarray, mode: str) -> np.ndarray:
    """P_Psi(z, w) through the min-max formula v_i = min_{j<=i} max_{k>=i} gamma(j..k)."""
    n = len(z)
    order = np.argsort(-z, kind="stable")
    s = z[order]
    ws = np.sort(w)[::-1]
    gam = {
        (j, k): _block_value(s[j : k + 1], ws[j : k + 1], mode)
        for j in range(n)
        for k in range(j, n)
    }
    v = np.array([min(max(gam[j, k] for k in range(i, n)) for j in range(i + 1)) for i in range(n)])
    y = s - v
    out_sorted = y if mode == "smooth" else np.array([_g(t, mode) for t in y])
    out = np.empty(n)
    out[order] = out_sorted
    return out


# ----------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("backend", BACKENDS)
def test_readme_number(backend: str) -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    z, mean, std = _standardize(x)
    assert torch.allclose(z, torch.tensor([0.4235, 0.1970, 0.5932, 0.7920]), atol=1e-4)
    method = get_method("fast_soft_sort")
    v = method.sorted_values(z, 2.0, "smooth", descending=False, options=_opts(backend))
    out = torch.logit(v) * std + mean
    expected = torch.tensor([-0.7462, -0.1971, 0.2938, 0.8569])
    assert torch.allclose(out, expected, atol=1e-3), out
    assert torch.allclose(out, expected, atol=2e-4), out


def test_numba_is_imported_lazily() -> None:
    code = (
        "import sys, torch, softtorch.ordering.methods.permutahedron.fast_soft_sort as f;"
        "assert 'numba' not in sys.modules;"
        "f.soft_sort(torch.rand(2, 3), 0.1, 'smooth', options={'backend': 'torch'});"
        "assert 'numba' not in sys.modules;"
        "f.soft_sort(torch.rand(2, 3), 0.1, 'smooth');"
        "assert 'numba' in sys.modules"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=root)


def test_registry() -> None:
    method = get_method("fast_soft_sort")
    assert isinstance(method, FastSoftSort)
    assert method.name == "fast_soft_sort" and method.has_permutation is False
    with pytest.raises(ValueError, match="soft indices"):
        method.permutation(torch.rand(3), 0.1, "smooth")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference(mode: str, backend: str) -> None:
    rng = np.random.default_rng(1)
    for trial in range(12):
        n = 1 + trial % 6
        z = rng.random(n)
        eps = (0.05, 0.3, 1.0, 5.0)[trial % 4]
        zt = torch.tensor(z)
        rho = np.linspace(1.0, 0.0, n)
        ref_sort = np.sort(_project_ref(rho / eps, z, mode))  # descending anchors -> ascending
        got = fss.soft_sort(zt, eps, mode, options=_opts(backend)).numpy()
        np.testing.assert_allclose(got, ref_sort, rtol=1e-8, atol=1e-9)
        ref_rank = 1 + (n - 1) * _project_ref(-z / eps, rho, mode)
        got_r = fss.soft_rank(zt, eps, mode, options=_opts(backend)).numpy()
        np.testing.assert_allclose(got_r, ref_rank, rtol=1e-8, atol=1e-8)


# ----------------------------------------------------------------------------- kernels agree


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_torch_agree(mode: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    # float32: the torch kernel works in float32, the numba one in float64; at softness 1e-3 the
    # projected scores are ~1e3, so float32 rounding of them shows at ~1e-4 relative.
    tol = 1e-10 if dtype == torch.float64 else 1e-4

    def check(z: torch.Tensor, eps: float) -> None:
        for fn in (fss.soft_sort, fss.soft_rank):
            a = fn(z, eps, mode, options=_opts("numba"))
            b = fn(z, eps, mode, options=_opts("torch"))
            assert a.dtype == b.dtype == dtype and a.shape == b.shape == z.shape
            scale = 1.0 + z.abs().max() if fn is fss.soft_sort else float(z.shape[-1])
            err = float((a - b).abs().max()) / float(scale)
            assert err < tol, (tuple(z.shape), eps, fn.__name__, err)

    for shape in [(7,), (3, 5, 9), (2, 120)]:
        x = torch.randn(shape, generator=g, dtype=dtype)
        z = _standardize(x)[0]
        for case in (z, x, torch.round(4 * z) / 4):  # standardized, raw, ties
            for eps in (1e-3, 0.1, 2.0, 100.0):
                check(case, eps)
    # many rows: the numba kernel's parallel path
    check(_standardize(torch.randn(200, 350, generator=g, dtype=dtype))[0], 0.1)


@pytest.mark.parametrize("mode", MODES)
def test_torch_kernel_cascades(mode: str) -> None:
    """Inputs that make plain parallel PAV take O(n) rounds (a spike eating a decreasing run)."""
    n = 3000
    s = torch.linspace(1.0, 0.0, n, dtype=torch.float64).unsqueeze(0) * n
    w = torch.linspace(1.0, 0.9, n, dtype=torch.float64).unsqueeze(0)
    w[0, -1] = -50.0 * n if mode == "c0" else 0.0
    w = torch.sort(w, descending=True).values
    w2 = torch.sort(torch.rand(4, n, dtype=torch.float64) ** 8, descending=True).values
    for ww in (w, w2):
        a = fss.project_sorted(s, ww, mode, "numba")
        b = fss.project_sorted(s, ww, mode, "torch")
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)
    blk = _pav_torch.pav_blocks(s, w2, fss.REGS[mode])
    assert blk.shape == (4, n) and bool((blk.diff(dim=-1) >= 0).all()) and int(blk[:, 0].max()) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype: torch.dtype) -> None:
    z = _distinct((4, 16), torch.float32)
    for backend in BACKENDS:
        for fn in (fss.soft_sort, fss.soft_rank):
            out = fn(z.to(dtype), 0.3, "smooth", options=_opts(backend))
            assert out.dtype == dtype
            ref = fn(z.to(dtype).float(), 0.3, "smooth", options=_opts(backend))
            assert torch.allclose(out.float(), ref, rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sort", "rank"])
def test_gradcheck(mode: str, backend: str, op: str) -> None:
    fn = fss.soft_sort if op == "sort" else fss.soft_rank
    z = _distinct((2, 6), seed=3).requires_grad_()
    for eps0 in (0.05, 0.5):
        eps = torch.tensor(eps0, dtype=torch.float64, requires_grad=True)

        def f(z: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
            return fn(z, eps, mode, descending=False, options=_opts(backend))

        assert torch.autograd.gradcheck(f, (z, eps), eps=1e-6, atol=1e-6, rtol=1e-3)
        if eps0 == 0.5:  # double backward (closed form recomputed from the block partition)
            assert torch.autograd.gradgradcheck(f, (z, eps), eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_is_block_structured(mode: str) -> None:
    """Large softness pools everything into one block: d sort / d z has rank one."""
    z = _distinct((8,), seed=4).requires_grad_()
    jac = torch.autograd.functional.jacobian(lambda t: fss.soft_sort(t, 1e4, mode), z)
    assert torch.linalg.matrix_rank(jac, atol=1e-8) == 1


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_near_hard(mode: str, backend: str) -> None:
    x = torch.randn(5, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    z, _, _ = _standardize(x)
    soft = fss.soft_sort(z, 1e-3, mode, options=_opts(backend))
    assert torch.allclose(soft, torch.sort(z).values, atol=1e-2)
    soft_desc = fss.soft_sort(z, 1e-3, mode, descending=True, options=_opts(backend))
    assert torch.allclose(soft_desc, torch.sort(z, descending=True).values, atol=1e-2)
    hard_rank_asc = torch.argsort(torch.argsort(z, dim=-1), dim=-1).to(z.dtype) + 1
    r_asc = fss.soft_rank(z, 1e-3, mode, descending=False, options=_opts(backend))
    assert torch.allclose(r_asc, hard_rank_asc, atol=1e-2)
    r_desc = fss.soft_rank(z, 1e-3, mode, descending=True, options=_opts(backend))
    assert torch.allclose(r_desc, 11 - hard_rank_asc, atol=1e-2)


def test_readme_rank_orientation() -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    z, _, _ = _standardize(x)
    r_desc = fss.soft_rank(z, 1e-4, "smooth")
    r_asc = fss.soft_rank(z, 1e-4, "smooth", descending=False)
    assert torch.allclose(r_desc, torch.tensor([3.0, 4.0, 2.0, 1.0]), atol=1e-3)
    assert torch.allclose(r_asc, torch.tensor([2.0, 1.0, 3.0, 4.0]), atol=1e-3)
    soft = fss.soft_rank(z, 1.0, "smooth")
    assert torch.allclose(fss.soft_rank(z, 1.0, "smooth", descending=False), 5 - soft)


@pytest.mark.parametrize("mode", MODES)
def test_ranks_in_range_and_sums(mode: str) -> None:
    g = torch.Generator().manual_seed(6)
    for n in (2, 5, 50):
        x = torch.randn(4, n, generator=g, dtype=torch.float64)
        for z in (_standardize(x)[0], 1e3 * x):
            for eps in (1e-6, 1e-2, 1.0, 1e4):
                r = fss.soft_rank(z, eps, mode)
                assert float(r.min()) >= 1 - 1e-9 and float(r.max()) <= n + 1e-9
                v = fss.soft_sort(z, eps, mode)
                assert bool((v.diff(dim=-1) >= -1e-9 * (1 + v.abs()[..., 1:])).all())
                if mode == "smooth":  # exp(sort) lies in the permutahedron of exp(z)
                    lhs, rhs = torch.logsumexp(v, -1), torch.logsumexp(z, -1)
                    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-9)
                else:  # sort lies in the permutahedron of z; ranks in that of 1..n
                    assert torch.allclose(v.sum(-1), z.sum(-1), rtol=1e-9, atol=1e-9)
                    total = torch.full((4,), n * (n + 1) / 2.0, dtype=r.dtype)
                    assert torch.allclose(r.sum(-1), total)


@pytest.mark.parametrize("mode", MODES)
def test_majorization(mode: str) -> None:
    """Prefix sums of the soft sort (descending) never exceed those of the hard sort."""
    z = torch.rand(6, 40, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for eps in (0.01, 0.3, 10.0):
        v = fss.soft_sort(z, eps, mode, descending=True)
        hard = torch.sort(z, descending=True).values
        if mode == "smooth":
            v, hard = v.exp(), hard.exp()
        assert bool((v.cumsum(-1) <= hard.cumsum(-1) + 1e-9).all())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_at_extremes(mode: str, backend: str) -> None:
    g = torch.Generator().manual_seed(8)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, 20, generator=g, dtype=dtype)
        inputs = [_standardize(x)[0], 1e6 * x, torch.full((3, 20), 0.5, dtype=dtype), x[:, :1]]
        for z in inputs:
            for eps in (1e-6, 1e-3, 1.0, 1e4):
                for fn in (fss.soft_sort, fss.soft_rank):
                    zz = z.clone().requires_grad_()
                    out = fn(zz, eps, mode, options=_opts(backend))
                    (out * torch.linspace(-1, 1, out.shape[-1], dtype=dtype)).sum().backward()
                    assert torch.isfinite(out).all(), (fn.__name__, eps, dtype)
                    assert torch.isfinite(zz.grad).all(), (fn.__name__, eps, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_get_equal_ranks(backend: str) -> None:
    z = torch.tensor([[0.3, 0.7, 0.3, 0.1, 0.7]], dtype=torch.float64)
    for mode in MODES:
        r = fss.soft_rank(z, 1e-3, mode, options=_opts(backend))[0]
        assert r[0] == r[2] and r[1] == r[4] and r[1] < 2 < r[0] < 4 and r[3] == 5.0
        if mode != "smooth":  # a tied block shares the mean rank (smooth: log-mean-exp)
            assert torch.allclose(r, torch.tensor([3.5, 1.5, 3.5, 5.0, 1.5], dtype=r.dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes(backend: str) -> None:
    z = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    for fn in (fss.soft_sort, fss.soft_rank):
        out = fn(z, 0.2, "c1", options=_opts(backend))
        assert out.shape == z.shape
        rows = torch.stack([fn(r, 0.2, "c1", options=_opts(backend)) for r in z.reshape(-1, 5)])
        assert torch.allclose(out.reshape(-1, 5), rows)
        assert fn(torch.rand(0, 5), 0.2, "c1", options=_opts(backend)).shape == (0, 5)
        assert fn(torch.rand(3, 0), 0.2, "c1", options=_opts(backend)).shape == (3, 0)
    one = torch.tensor([[0.3], [0.9]], requires_grad=True)
    assert torch.equal(fss.soft_sort(one, 0.2, "smooth", options=_opts(backend)), one.detach())
    assert torch.equal(fss.soft_rank(one, 0.2, "smooth", options=_opts(backend)), torch.ones(2, 1))
    ints = fss.soft_sort(torch.tensor([3, 1, 2]), 1e-3, "c0", options=_opts(backend))
    assert ints.dtype == torch.get_default_dtype()
    assert torch.allclose(ints, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_propagates(backend: str) -> None:
    z = torch.rand(3, 6, dtype=torch.float64)
    z[1, 2] = float("nan")
    for mode in MODES:
        for fn in (fss.soft_sort, fss.soft_rank):
            out = fn(z, 0.5, mode, options=_opts(backend))
            assert torch.isnan(out[1]).all()
            assert torch.isfinite(out[[0, 2]]).all()


def test_validation() -> None:
    z = torch.rand(4)
    with pytest.raises(ValueError, match="'smooth', 'c0', 'c1', 'c2'"):
        fss.soft_sort(z, 0.1, "hard")
    with pytest.raises(ValueError, match="valid modes"):
        fss.soft_rank(z, 0.1, "c3")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="softness"):
            fss.soft_sort(z, bad, "smooth")
    with pytest.raises(ValueError, match="valid backends"):
        fss.soft_sort(z, 0.1, "smooth", options={"backend": "cuda"})
    with pytest.raises(ValueError, match="valid options"):
        fss.soft_sort(z, 0.1, "smooth", options={"backnd": "torch"})
    with pytest.raises(ValueError, match="CPU tensors only"):
        fss.soft_sort(torch.rand(4, device="meta"), 0.1, "smooth", options={"backend": "numba"})
    with pytest.raises(TypeError, match="complex"):
        fss.soft_sort(torch.rand(4, dtype=torch.complex64), 0.1, "smooth")
    with pytest.raises(ValueError, match="valid backends"):
        fss.set_backend("gpu")


def test_set_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_torch, real_numba = fss._torch_impl, fss._numba_impl
    monkeypatch.setattr(fss, "_torch_impl", lambda *a: calls.append("torch") or real_torch(*a))
    monkeypatch.setattr(fss, "_numba_impl", lambda *a: calls.append("numba") or real_numba(*a))
    z = torch.rand(2, 5)
    fss.soft_sort(z, 0.1, "smooth")
    assert calls == ["numba"]
    monkeypatch.setattr(fss, "BACKEND", "auto")
    fss.set_backend("torch")
    try:
        fss.soft_sort(z, 0.1, "smooth")
        assert calls == ["numba", "torch"]
        fss.soft_sort(z, 0.1, "smooth", options={"backend": "numba"})
        assert calls == ["numba", "torch", "numba"]
    finally:
        fss.set_backend("auto")


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_vmap(backend: str, mode: str) -> None:
    z = _distinct((3, 4, 7), seed=9)
    for fn in (fss.soft_sort, fss.soft_rank):

        def f(t: torch.Tensor, fn=fn) -> torch.Tensor:
            return fn(t, 0.3, mode, options=_opts(backend))

        assert torch.allclose(torch.func.vmap(f)(z), f(z))
        assert torch.allclose(torch.func.vmap(f, in_dims=1, out_dims=1)(z), f(z))
        assert torch.allclose(torch.func.vmap(torch.func.vmap(f))(z), f(z))
        w = torch.linspace(-1, 1, 7, dtype=z.dtype)

        def loss(t: torch.Tensor, f=f, w=w) -> torch.Tensor:
            return (f(t) * w).sum()

        grads = torch.func.vmap(torch.func.grad(loss))(z[0])
        zz = z[0].clone().requires_grad_()
        (f(zz) * w).sum().backward()
        assert torch.allclose(grads, zz.grad)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_smoke(backend: str) -> None:
    torch._dynamo.reset()

    def f(t: torch.Tensor) -> torch.Tensor:
        a = fss.soft_sort(t, 0.3, "smooth", options=_opts(backend))
        b = fss.soft_rank(t, 0.3, "c0", options=_opts(backend))
        return (a * b).sum(-1)

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    z = _distinct((3, 9), seed=10).requires_grad_()
    t0 = time.perf_counter()
    out = cf(z)
    out.sum().backward()
    assert time.perf_counter() - t0 < 300
    zz = z.detach().clone().requires_grad_()
    ref = f(zz)
    ref.sum().backward()
    assert torch.allclose(out, ref) and torch.allclose(z.grad, zz.grad)
