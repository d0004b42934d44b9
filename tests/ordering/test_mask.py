"""Masked ordering ops (``mask=``): each slice equals the op on its real entries alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as hs

import softtorch as st

MODES = ("hard", "smooth", "c0", "c1", "c2", "_hard")
INDEX_METHODS = ("softsort", "neuralsort", "ot", "sorting_network")
ALL_METHODS = ("fast_soft_sort", *INDEX_METHODS)
TOL = dict(atol=1e-6, rtol=1e-6)


def _batch(seed: int = 0, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, n, dtype=torch.float64, generator=g)
    lengths = torch.tensor([n, 1, 3, 0, n - 2])
    m = torch.arange(n) < lengths[:, None]
    # shuffle the real entries' positions (padding need not be at the end)
    perm = torch.argsort(torch.rand(5, n, generator=g), dim=-1)
    m = m.gather(-1, perm)
    x = torch.where(m, x, torch.tensor(float("nan")))  # padded entries may hold anything
    x[1, ~m[1]] = float("inf")
    x[2, ~m[2]] = -1e30
    return x, m


def _embed_cols(ref: torch.Tensor, m_row: torch.Tensor, n: int) -> torch.Tensor:
    """A soft index over the real entries (..., c) laid out over all n columns."""
    out = ref.new_zeros(*ref.shape[:-1], n)
    out[..., m_row] = ref
    return out


def _pad_rows(ref: torch.Tensor, n: int, axis: int = -2) -> torch.Tensor:
    c = ref.shape[axis]
    shape = list(ref.shape)
    shape[axis] = n - c
    return torch.cat((ref, ref.new_zeros(shape)), dim=axis)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_rank_matches_per_slice(method: str, mode: str, descending: bool) -> None:
    x, m = _batch()
    kw = dict(softness=0.7, mode=mode, method=method, descending=descending)
    out = st.rank(x, dim=-1, mask=m, **kw)
    for b in range(x.shape[0]):
        exp = torch.zeros(x.shape[1], dtype=x.dtype)
        if m[b].any():
            exp[m[b]] = st.rank(x[b][m[b]], dim=-1, **kw)
        torch.testing.assert_close(out[b], exp, **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_sort_matches_per_slice(method: str, mode: str, descending: bool) -> None:
    x, m = _batch(1)
    n = x.shape[1]
    kw = dict(softness=0.7, mode=mode, method=method, descending=descending)
    out = st.sort(x, mask=m, **kw)
    for b in range(x.shape[0]):
        if not m[b].any():
            torch.testing.assert_close(out.values[b], torch.zeros(n, dtype=x.dtype))
            if out.indices is not None:
                assert (out.indices[b] == 0).all()
            continue
        ref = st.sort(x[b][m[b]], **kw)
        torch.testing.assert_close(out.values[b], _pad_rows(ref.values, n, -1), **TOL)
        if ref.indices is not None:
            exp = _pad_rows(_embed_cols(ref.indices, m[b], n), n)
            torch.testing.assert_close(out.indices[b], exp, **TOL)


@pytest.mark.parametrize("mode", ("smooth", "c1"))
@pytest.mark.parametrize("method", ALL_METHODS)
def test_gradients_real_only(method: str, mode: str) -> None:
    x, m = _batch(2)
    xr = torch.where(m, x, 0.0).requires_grad_()
    w = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    kw = dict(softness=0.7, mode=mode, method=method)
    r = st.rank(xr, dim=-1, mask=m, **kw)
    v = st.sort(xr, mask=m, **kw).values
    (g,) = torch.autograd.grad((r * w).sum() + (v * w).sum(), xr)
    assert (g[~m] == 0).all()
    for b in range(x.shape[0]):
        if not m[b].any():
            continue
        xb = x[b][m[b]].clone().requires_grad_()
        c = int(m[b].sum())
        rb = st.rank(xb, dim=-1, **kw)
        vb = st.sort(xb, **kw).values
        (gb,) = torch.autograd.grad((rb * w[b][m[b]]).sum() + (vb * w[b][:c]).sum(), xb)
        torch.testing.assert_close(g[b][m[b]], gb, **TOL)


def _index_methods(method: str, mode: str) -> bool:
    return method != "fast_soft_sort"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_topk_matches_per_slice(method: str, mode: str, largest: bool) -> None:
    x, m = _batch(4)
    n, k = x.shape[1], 3
    kw = dict(softness=0.7, mode=mode, method=method, largest=largest)
    out = st.topk(x, k, dim=-1, mask=m, **kw)
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        if c == 0:
            assert (out.values[b] == 0).all()
            continue
        ref = st.topk(x[b][m[b]], min(k, c), dim=-1, **kw)
        torch.testing.assert_close(out.values[b], _pad_rows(ref.values, k, -1), **TOL)
        if ref.indices is not None:
            exp = _pad_rows(_embed_cols(ref.indices, m[b], n), k)
            torch.testing.assert_close(out.indices[b], exp, **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["max", "min", "median"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_reductions_match_per_slice(method: str, mode: str, op: str) -> None:
    x, m = _batch(5)
    n = x.shape[1]
    fn = getattr(st, op)
    kw = dict(softness=0.7, mode=mode, method=method)
    out = fn(x, dim=-1, mask=m, **kw)
    arg = None
    if _index_methods(method, mode):
        arg = getattr(st, "arg" + op)(x, dim=-1, mask=m, **kw)
    for b in range(x.shape[0]):
        if not m[b].any():
            assert out.values[b] == 0
            if out.indices is not None:
                assert (out.indices[b] == 0).all()
            if arg is not None:
                assert (arg[b] == 0).all()
            continue
        ref = fn(x[b][m[b]], dim=-1, **kw)
        torch.testing.assert_close(out.values[b], ref.values, **TOL)
        if ref.indices is not None:
            torch.testing.assert_close(out.indices[b], _embed_cols(ref.indices, m[b], n), **TOL)
        if arg is not None:
            ref_arg = getattr(st, "arg" + op)(x[b][m[b]], dim=-1, **kw)
            torch.testing.assert_close(arg[b], _embed_cols(ref_arg, m[b], n), **TOL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("interpolation", ["linear", "nearest", "midpoint"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_quantile_matches_per_slice(method: str, mode: str, interpolation: str) -> None:
    x, m = _batch(6)
    n = x.shape[1]
    q = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=x.dtype)
    kw = dict(softness=0.7, mode=mode, method=method, interpolation=interpolation)
    want_idx = _index_methods(method, mode)
    out = st.quantile(x, q, dim=-1, mask=m, return_argquantile=want_idx, **kw)
    values, idx = out if want_idx else (out, None)
    for b in range(x.shape[0]):
        if not m[b].any():
            assert (values[:, b] == 0).all()
            if idx is not None:
                assert (idx[:, b] == 0).all()
            continue
        ref = st.quantile(x[b][m[b]], q, dim=-1, return_argquantile=want_idx, **kw)
        ref_v, ref_i = ref if want_idx else (ref, None)
        torch.testing.assert_close(values[:, b], ref_v, **TOL)
        if idx is not None:
            torch.testing.assert_close(idx[:, b], _embed_cols(ref_i, m[b], n), **TOL)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_hard_equals_torch_on_real_entries(method: str) -> None:
    x, m = _batch(7)
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        if c == 0:
            continue
        xb = x[b][m[b]]
        kw = dict(mode="hard", method=method)
        assert torch.equal(st.sort(x, mask=m, **kw).values[b, :c], torch.sort(xb).values)
        assert torch.equal(st.max(x, dim=-1, mask=m, **kw).values[b], xb.max())
        qv = st.quantile(x, 0.3, dim=-1, mask=m, **kw)[b]
        torch.testing.assert_close(qv, torch.quantile(xb, 0.3), **TOL)
        assert torch.equal(st.median(x, dim=-1, mask=m, **kw).values[b], xb.median())


# ----------------------------------------------------------------------------------------------
# log-probabilities, layout, broadcasting, errors, straight-through, gradients
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ("smooth", "c0"))
@pytest.mark.parametrize("method", INDEX_METHODS)
@pytest.mark.parametrize("eps", [None, 0.01])
def test_log_probs_and_eps_match_per_slice(method: str, mode: str, eps: float | None) -> None:
    x, m = _batch(8)
    n = x.shape[1]
    kw = dict(softness=0.7, mode=mode, method=method, return_log_probs=True, log_prob_eps=eps)
    a = st.argsort(x, mask=m, **kw)
    t = st.topk(x, 2, dim=-1, mask=m, **kw).indices
    g = st.argmax(x, dim=-1, mask=m, **kw)
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        if c == 0:
            assert (a[b] == -torch.inf).all() and (g[b] == -torch.inf).all()
            continue
        xb = x[b][m[b]]
        ninf = torch.full((n,), -torch.inf, dtype=x.dtype)

        def embed(r: torch.Tensor, ninf: torch.Tensor = ninf, row: int = b) -> torch.Tensor:
            out = ninf.expand(*r.shape[:-1], n).clone()
            out[..., m[row]] = r
            return out

        ra = embed(st.argsort(xb, **kw))
        exp_a = torch.cat((ra, ninf.expand(n - c, n)), dim=0)
        torch.testing.assert_close(a[b], exp_a, **TOL)
        rt = embed(st.topk(xb, min(2, c), dim=-1, **kw).indices)
        exp_t = torch.cat((rt, ninf.expand(2 - rt.shape[0], n)), dim=0)
        torch.testing.assert_close(t[b], exp_t, **TOL)
        torch.testing.assert_close(g[b], embed(st.argmax(xb, dim=-1, **kw)), **TOL)


@pytest.mark.parametrize("method", ("fast_soft_sort", "softsort", "ot"))
def test_dim_and_broadcast_mask(method: str) -> None:
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 6, 3, dtype=torch.float64, generator=g)  # reduce dim 1
    m = torch.tensor([True, True, False, True, False, True])  # broadcast over dims 0 and 2
    m3 = m[None, :, None]
    kw = dict(softness=0.5, method=method)
    r = st.rank(x, dim=1, mask=m3, **kw)
    v = st.sort(x, dim=1, mask=m3, **kw).values
    q = st.quantile(x, 0.4, dim=1, mask=m3, **kw)
    for i in range(2):
        for j in range(3):
            xb = x[i, m, j]
            torch.testing.assert_close(r[i, m, j], st.rank(xb, dim=-1, **kw), **TOL)
            assert (r[i, ~m, j] == 0).all()
            torch.testing.assert_close(v[i, :4, j], st.sort(xb, **kw).values, **TOL)
            torch.testing.assert_close(q[i, j], st.quantile(xb, 0.4, **kw), **TOL)
    # dim=None flattens x and the mask alike
    flat = st.rank(x, mask=m3, **kw)
    mf = m3.expand_as(x).reshape(-1)
    torch.testing.assert_close(flat[mf], st.rank(x.reshape(-1)[mf], **kw), **TOL)


def test_all_true_mask_equals_unmasked() -> None:
    x, _ = _batch(10)
    x = torch.nan_to_num(x, nan=0.3, posinf=2.0, neginf=-2.0)
    m = torch.ones_like(x, dtype=torch.bool)
    for method in ALL_METHODS:
        kw = dict(softness=0.6, method=method)
        torch.testing.assert_close(st.rank(x, dim=-1, mask=m, **kw), st.rank(x, dim=-1, **kw))
        torch.testing.assert_close(st.sort(x, mask=m, **kw).values, st.sort(x, **kw).values)


def test_bad_masks_raise() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(TypeError, match="torch.bool"):
        st.rank(x, dim=-1, mask=torch.ones(3, 4))
    with pytest.raises(TypeError, match="bool torch.Tensor"):
        st.sort(x, mask=[[True] * 4] * 3)
    with pytest.raises(ValueError, match="does not broadcast"):
        st.topk(x, 2, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        st.max(x, dim=-1, mask=torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="k"):
        st.topk(x, 5, mask=torch.ones(3, 4, dtype=torch.bool))


@pytest.mark.parametrize(
    "name", ["sort_st", "rank_st", "topk_st", "max_st", "min_st", "median_st", "quantile_st"]
)
def test_straight_through_variants_take_the_mask(name: str) -> None:
    x, m = _batch(11)
    xr = torch.where(m, x, 0.0).requires_grad_()
    fn = getattr(st, name)
    hard = getattr(st, name[:-3])
    args = {"topk_st": (2,), "quantile_st": (0.5,)}.get(name, ())
    kw = {} if name in ("sort_st", "topk_st") else {"dim": -1}
    soft = fn(xr, *args, **kw, mask=m, softness=0.7, method="softsort")
    exact = hard(xr, *args, **kw, mask=m, mode="hard", method="softsort")
    sv = soft if isinstance(soft, torch.Tensor) else soft[0]
    ev = exact if isinstance(exact, torch.Tensor) else exact[0]
    torch.testing.assert_close(sv, ev)  # forward: the exact masked result
    (g,) = torch.autograd.grad(sv.sum(), xr)
    assert (g[~m] == 0).all() and torch.isfinite(g).all()


OPS = {
    "sort": lambda x, kw: st.sort(x, **kw).values,
    "argsort": lambda x, kw: st.argsort(x, **kw),
    "rank": lambda x, kw: st.rank(x, dim=-1, **kw),
    "topk": lambda x, kw: st.topk(x, 3, dim=-1, **kw).values,
    "max": lambda x, kw: st.max(x, dim=-1, **kw).values,
    "min": lambda x, kw: st.min(x, dim=-1, **kw).values,
    "argmax": lambda x, kw: st.argmax(x, dim=-1, **kw),
    "argmin": lambda x, kw: st.argmin(x, dim=-1, **kw),
    "median": lambda x, kw: st.median(x, dim=-1, **kw).values,
    "argmedian": lambda x, kw: st.argmedian(x, dim=-1, **kw),
    "quantile": lambda x, kw: st.quantile(x, torch.tensor([0.2, 0.9]), dim=-1, **kw),
    "argquantile": lambda x, kw: st.argquantile(x, 0.7, dim=-1, **kw),
}
_ARG_OPS = ("argsort", "argmax", "argmin", "argmedian", "argquantile")


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("method", (*ALL_METHODS, "perturbed"))
def test_padded_gradients_zero_and_finite(op: str, method: str) -> None:
    if method == "fast_soft_sort" and op in _ARG_OPS:
        pytest.skip("fast_soft_sort has no soft indices")
    x, m = _batch(12)
    xr = torch.where(m, x, 0.0).requires_grad_()
    out = OPS[op](xr, dict(softness=0.7, method=method, mask=m))
    assert torch.isfinite(out).all()
    w = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad((out * w).sum(), xr)
    assert torch.isfinite(g).all()
    assert (g[~m] == 0).all()
    assert (g[3] == 0).all()  # the all-padded slice


def test_perturbed_padding_independent_and_exact_when_all_real() -> None:
    x, m = _batch(13)
    x2 = torch.where(m, x, 123.0)

    def run(xx: torch.Tensor, mm: torch.Tensor | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(5)
        kw = dict(method="perturbed", softness=0.3, perturbed_kwargs={"generator": gen})
        return st.rank(xx, dim=-1, mask=mm, **kw)

    torch.testing.assert_close(run(x, m), run(x2, m))  # padded values do not matter
    full = torch.ones_like(m)
    xf = torch.nan_to_num(x, nan=0.1, posinf=1.0, neginf=-1.0)
    torch.testing.assert_close(run(xf, full), run(xf, None))
    r = run(x, m)
    assert (r[~m] == 0).all()
    c = m.sum(-1)
    # ranks of each slice's real entries sum to c (c + 1) / 2, as for the op on them alone
    torch.testing.assert_close(r.sum(-1), (c * (c + 1) / 2).to(r.dtype))


def test_float32_masked_fast_soft_sort_close_to_float64() -> None:
    x, m = _batch(14)
    x = torch.where(m, x, 0.0)
    kw = dict(softness=0.2, method="fast_soft_sort", mask=m)
    for mode in ("smooth", "c0", "c1", "c2"):
        r64 = st.rank(x, dim=-1, mode=mode, **kw)
        r32 = st.rank(x.float(), dim=-1, mode=mode, **kw)
        torch.testing.assert_close(r32.double(), r64, atol=1e-4, rtol=1e-4)
        v64 = st.sort(x, mode=mode, **kw).values
        v32 = st.sort(x.float(), mode=mode, **kw).values
        torch.testing.assert_close(v32.double(), v64, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ("smooth", "c0", "c1", "c2"))
def test_fast_soft_sort_torch_backend_takes_the_mask(mode: str) -> None:
    from softtorch.ordering.methods.permutahedron import set_backend

    x, m = _batch(15)
    kw = dict(softness=0.4, mode=mode, method="fast_soft_sort", mask=m)
    r_numba = st.rank(x, dim=-1, **kw)
    v_numba = st.sort(x, **kw).values
    set_backend("torch")
    try:
        r_torch = st.rank(x, dim=-1, **kw)
        v_torch = st.sort(x, **kw).values
    finally:
        set_backend("auto")
    torch.testing.assert_close(r_torch, r_numba, **TOL)
    torch.testing.assert_close(v_torch, v_numba, **TOL)


# ----------------------------------------------------------------------------------------------
# properties over random lengths (including 0 and 1) and a slow sweep
# ----------------------------------------------------------------------------------------------


def _random_batch(lengths: list[int], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), n, dtype=torch.float64, generator=g)
    m = torch.arange(n) < torch.tensor(lengths)[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(len(lengths), n, generator=g), dim=-1))
    return torch.where(m, x, float("nan")), m


def _check_slices(method: str, mode: str, x: torch.Tensor, m: torch.Tensor, **extra) -> None:
    n = x.shape[1]
    kw = dict(mode=mode, method=method, **extra)
    r = st.rank(x, dim=-1, mask=m, **kw)
    v = st.sort(x, mask=m, **kw).values
    mx = st.max(x, dim=-1, mask=m, **kw).values
    q = st.quantile(x, 0.25, dim=-1, mask=m, **kw)
    assert torch.isfinite(r).all() and torch.isfinite(v).all()
    assert torch.isfinite(mx).all() and torch.isfinite(q).all()
    for b in range(x.shape[0]):
        c = int(m[b].sum())
        if c == 0:
            assert (r[b] == 0).all() and (v[b] == 0).all() and mx[b] == 0 and q[b] == 0
            continue
        xb = x[b][m[b]]
        torch.testing.assert_close(r[b][m[b]], st.rank(xb, dim=-1, **kw), **TOL)
        assert (r[b][~m[b]] == 0).all()
        ref_v = st.sort(xb, **kw).values
        torch.testing.assert_close(v[b], torch.cat((ref_v, ref_v.new_zeros(n - c))), **TOL)
        torch.testing.assert_close(mx[b], st.max(xb, dim=-1, **kw).values, **TOL)
        torch.testing.assert_close(q[b], st.quantile(xb, 0.25, **kw), **TOL)


@settings(max_examples=30, deadline=None)
@given(
    lengths=hs.lists(hs.integers(0, 6), min_size=1, max_size=4),
    pad=hs.integers(0, 3),
    seed=hs.integers(0, 2**16),
    method=hs.sampled_from(ALL_METHODS),
    mode=hs.sampled_from(("smooth", "c0", "c1", "c2")),
    softness=hs.sampled_from((0.05, 0.5, 3.0)),
)
@example(lengths=[2], pad=1, seed=0, method="neuralsort", mode="c0", softness=0.05)
def test_property_random_lengths(
    lengths: list[int], pad: int, seed: int, method: str, mode: str, softness: float
) -> None:
    n = max(max(lengths) + pad, 1)
    x, m = _random_batch(lengths, n, seed)
    _check_slices(method, mode, x, m, softness=softness)


@pytest.mark.slow
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("softness", [1e-3, 0.3, 30.0])
@pytest.mark.parametrize("mode", ("smooth", "c0", "c1", "c2", "_hard"))
@pytest.mark.parametrize("method", ALL_METHODS)
def test_sweep_long_rows(method: str, mode: str, softness: float, standardize: bool) -> None:
    lengths = [0, 1, 2, 17, 40, 33, 40, 5]
    x, m = _random_batch(lengths, 40, 99)
    x = x * 50.0
    _check_slices(method, mode, x, m, softness=softness, standardize=standardize)


@pytest.mark.parametrize("method", ("fast_soft_sort", "softsort", "neuralsort"))
def test_vmap_over_slices_matches_batched(method: str) -> None:
    x, m = _batch(16)
    x = torch.where(m, x, 0.0)
    kw = dict(softness=0.3, method=method)
    batched = st.rank(x, dim=-1, mask=m, **kw)
    mapped = torch.func.vmap(lambda xr, mr: st.rank(xr, dim=-1, mask=mr, **kw))(x, m)
    torch.testing.assert_close(mapped, batched, **TOL)


@pytest.mark.slow
@pytest.mark.parametrize("method", ("fast_soft_sort", "softsort", "neuralsort"))
def test_compile_masked_rank(method: str) -> None:
    x, m = _batch(17)
    x = torch.where(m, x, 0.0).requires_grad_()
    fn = lambda xx: st.rank(xx, dim=-1, mask=m, softness=0.3, method=method)  # noqa: E731
    out = torch.compile(fn)(x)
    torch.testing.assert_close(out, fn(x), **TOL)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert (g[~m] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ("softsort", "neuralsort"))
def test_large_rows_match_per_slice(method: str) -> None:
    """Past ``softtorch.simplex.PLAIN_BUDGET`` elements (where streamed paths may take over)."""
    lengths = [1100, 700, 1, 0]
    x, m = _random_batch(lengths, 1100, 21)
    kw = dict(softness=0.05, mode="smooth", method=method)
    r = st.rank(x, dim=-1, mask=m, **kw)
    v = st.sort(x, mask=m, **kw, return_indices=False).values
    for b, c in enumerate(lengths):
        if c == 0:
            assert (r[b] == 0).all() and (v[b] == 0).all()
            continue
        xb = x[b][m[b]]
        torch.testing.assert_close(r[b][m[b]], st.rank(xb, dim=-1, **kw), **TOL)
        ref = st.sort(xb, **kw, return_indices=False).values
        torch.testing.assert_close(v[b, :c], ref, **TOL)


@pytest.mark.parametrize("mode", ("smooth", "c1"))
@pytest.mark.parametrize(
    "method",
    ("fast_soft_sort", "softsort", "neuralsort", pytest.param("ot", marks=pytest.mark.slow)),
)
def test_gradcheck_masked_rank_and_sort(method: str, mode: str) -> None:
    g = torch.Generator().manual_seed(18)
    x = torch.randn(3, 5, dtype=torch.float64, generator=g).requires_grad_()
    m = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    kw = dict(softness=0.8, mode=mode, method=method, mask=m)

    def fn(xx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return st.rank(xx, dim=-1, **kw), st.sort(xx, **kw).values

    assert torch.autograd.gradcheck(fn, (x,), atol=1e-6, rtol=1e-5)


def test_compact_methods_under_func_transforms() -> None:
    x, m = _batch(19)
    x = torch.where(m, x, 0.0)
    kw = dict(softness=0.5, method="sorting_network", mask=m)
    g = torch.func.grad(lambda a: (st.rank(a, dim=-1, **kw) ** 2).sum())(x)
    xr = x.clone().requires_grad_()
    (ref,) = torch.autograd.grad((st.rank(xr, dim=-1, **kw) ** 2).sum(), xr)
    torch.testing.assert_close(g, ref, **TOL)
    # every row's count is a tensor in the batched network: vmap over the mask works too
    out = torch.func.vmap(
        lambda a, b: st.rank(a, dim=-1, softness=0.5, method="sorting_network", mask=b)
    )(x, m)
    torch.testing.assert_close(out, st.rank(x, dim=-1, **kw), **TOL)


def _per_slice(fn, x: torch.Tensor, m: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [fn(x[i, m[i]].unsqueeze(0))[0] for i in range(x.shape[0])]


@pytest.mark.parametrize("budget", [1 << 40, 64])
def test_sorting_network_masked_is_one_batched_pass(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Masked sorting_network runs every row's network (its own real count) in one batched
    call, never the unmasked method per distinct count, and matches the op on each slice's
    real entries (values, soft indices and gradients; small ``budget``: rows in recomputed
    blocks)."""
    import softtorch.ordering.methods.sorting_network as sn
    from softtorch.ordering.methods.sorting_network import _counts

    n = 21
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([21, 1, 2, 3, 5, 8, 13, 16, 17, 0])
    x = torch.randn(lengths.shape[0], n, dtype=torch.float64, generator=g)
    m = torch.arange(n) < lengths[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(m.shape, generator=g), dim=-1))
    kw = dict(softness=0.3, method="sorting_network", mode="smooth")
    ops = {
        "sort": lambda a, **k: st.sort(a, dim=-1, **kw, **k).values,
        "rank": lambda a, **k: st.rank(a, dim=-1, **kw, **k),
        "argsort": lambda a, **k: st.argsort(a, dim=-1, descending=True, **kw, **k),
        "topk": lambda a, **k: st.topk(a, 2, dim=-1, **kw, **k).indices,
    }
    refs = {}
    real = m.sum(-1) >= 2
    for name, op in ops.items():
        refs[name] = []
        for i in range(x.shape[0]):
            if not real[i]:
                continue
            xi = x[i, m[i]].unsqueeze(0).requires_grad_()
            out = op(xi)[0]
            (gi,) = torch.autograd.grad((out * torch.cos(out.detach())).sum(), xi)
            refs[name].append((out.detach(), gi[0]))
    calls = []
    real_forward = _counts.network_forward_counts

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[0].shape)
        return real_forward(*args, **kwargs)

    def per_count(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the per-count path ran")

    monkeypatch.setattr(_counts, "network_forward_counts", counted)
    monkeypatch.setattr(_counts, "ROWS_BUDGET", budget)
    for hook in ("sorted_values", "permutation_rows", "rank", "log_permutation_rows"):
        monkeypatch.setattr(sn.SortingNetwork, hook, per_count)
    for name, op in ops.items():
        calls.clear()
        xb = x.clone().requires_grad_()
        out = op(xb, mask=m)
        # one network pass per method hook (topk: values and indices), each on all rows
        assert len(calls) == (2 if name == "topk" else 1), (name, calls)
        assert all(c[0] == x.shape[0] for c in calls)
        (gb,) = torch.autograd.grad((out * torch.cos(out.detach())).sum(), xb)
        assert (gb[~m] == 0).all()
        rows = [i for i in range(x.shape[0]) if real[i]]
        for (ref, gref), i in zip(refs[name], rows):
            c = int(m[i].sum())
            got = out[i]
            if name in ("argsort", "topk"):
                got = got[: ref.shape[0], m[i]]
            elif name == "sort":
                got = got[:c]
            else:
                got = got[m[i]]
            torch.testing.assert_close(got, ref, **TOL)
            torch.testing.assert_close(gb[i, m[i]], gref, **TOL)


@pytest.mark.slow
def test_compile_masked_sorting_network_fullgraph() -> None:
    """The batched masked network reads no counts on the host: no graph break."""
    x, m = _batch(23)
    x = torch.where(m, x, 0.0)
    kw = dict(dim=-1, mask=m, softness=0.3, method="sorting_network")

    def fn(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return st.rank(a, **kw), st.topk(a, 1, **kw).indices

    out = torch.compile(fn, fullgraph=True)(x)
    for a, b in zip(out, fn(x)):
        torch.testing.assert_close(a, b, **TOL)
