"""Soft ordering ops: the near-hard limit, SoftIndex rows on the simplex, and consistency
between the ops, the methods and the memory-saving evaluation paths."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import softtorch as st
import softtorch.simplex as sx
from softtorch.ordering import get_method

OPTIONAL = ["fast_soft_sort", "ot"]
# no "perturbed": its values are Monte-Carlo (tests/ordering/methods/test_perturbed_method.py)
METHODS = ["softsort", "neuralsort", "sorting_network", *OPTIONAL]
INDEX_METHODS = [m for m in METHODS if m != "fast_soft_sort"]
OWN = ["softsort", "neuralsort", "sorting_network"]
MODES = ["smooth", "c0", "c1", "c2"]

#: Well separated in every layout: flattened (n = 6), along dim 0 (n = 2) and dim -1 (n = 3).
X = torch.tensor([[0.9, -1.2, 0.3], [-0.4, 1.5, 2.1]])

Out = tuple[torch.Tensor | None, ...]
Op = Callable[..., Out]


def _pair(r: object) -> Out:
    return (r,) if isinstance(r, torch.Tensor) else (r.values, r.indices)  # type: ignore[attr-defined]


def _sd(dim: int | None) -> int:
    return -1 if dim is None else dim


Q = torch.tensor([0.25, 0.8])
#: name -> (fn(x, dim, keepdim, **kw) -> tensors, needs soft indices, uses keepdim)
OPS: dict[str, tuple[Op, bool, bool]] = {
    "argmax": (lambda x, d, k, **kw: (st.argmax(x, d, k, **kw),), True, True),
    "argmin": (lambda x, d, k, **kw: (st.argmin(x, d, k, **kw),), True, True),
    "max": (lambda x, d, k, **kw: _pair(st.max(x, d, k, **kw)), False, True),
    "min": (lambda x, d, k, **kw: _pair(st.min(x, d, k, **kw)), False, True),
    "sort": (lambda x, d, k, **kw: _pair(st.sort(x, _sd(d), **kw)), False, False),
    "sort_desc": (lambda x, d, k, **kw: _pair(st.sort(x, _sd(d), True, **kw)), False, False),
    "argsort": (lambda x, d, k, **kw: (st.argsort(x, _sd(d), True, **kw),), True, False),
    "topk": (lambda x, d, k, **kw: _pair(st.topk(x, 2, _sd(d), **kw)), False, False),
    "topk_smallest": (
        lambda x, d, k, **kw: _pair(st.topk(x, 1, _sd(d), largest=False, **kw)),
        False,
        False,
    ),
    "rank": (lambda x, d, k, **kw: (st.rank(x, d, **kw),), False, False),
    "rank_asc": (lambda x, d, k, **kw: (st.rank(x, d, descending=False, **kw),), False, False),
    "quantile": (lambda x, d, k, **kw: (st.quantile(x, 0.3, d, k, **kw),), False, True),
    "quantile_vec": (
        lambda x, d, k, **kw: st.quantile(x, Q, d, k, return_argquantile=True, **kw),
        True,
        True,
    ),
    "quantile_nearest": (
        lambda x, d, k, **kw: (st.quantile(x, 0.5, d, k, interpolation="nearest", **kw),),
        False,
        True,
    ),
    "argquantile": (lambda x, d, k, **kw: (st.argquantile(x, 0.3, d, k, **kw),), True, True),
    "median": (lambda x, d, k, **kw: _pair(st.median(x, d, k, **kw)), False, True),
    "median_flat": (lambda x, d, k, **kw: (st.median(x, **kw),), False, False),
    "argmedian": (lambda x, d, k, **kw: (st.argmedian(x, d, k, **kw),), True, True),
}


#: positions of SoftIndex outputs in each op's result tuple
INDEX_OUTPUTS: dict[str, tuple[int, ...]] = {
    "argmax": (0,),
    "argmin": (0,),
    "max": (1,),
    "min": (1,),
    "sort": (1,),
    "sort_desc": (1,),
    "argsort": (0,),
    "topk": (1,),
    "topk_smallest": (1,),
    "quantile_vec": (1,),
    "argquantile": (0,),
    "median": (1,),
    "argmedian": (0,),
}


def _near_hard(op: str, method: str, mode: str, dtype: torch.dtype) -> None:
    fn, needs_index, uses_keepdim = OPS[op]
    if needs_index and method not in INDEX_METHODS:
        pytest.skip(f"{method} has no soft indices")
    x = X.to(dtype)
    for dim in (None, 0, -1):
        for keepdim in (False, True) if uses_keepdim else (False,):
            soft = fn(x, dim, keepdim, softness=1e-3, mode=mode, method=method)
            hard = fn(x, dim, keepdim, mode="hard", method=method)
            for pos, (s, h) in enumerate(zip(soft, hard)):
                if s is None:  # value-only methods give no indices
                    assert method in ("fast_soft_sort", "sorting_network")
                    continue
                assert h is not None
                assert s.shape == h.shape and s.dtype == h.dtype == dtype
                err = (s - h).abs().max().item()
                assert err <= 1e-2, f"{op} {method} {mode} dim={dim} keepdim={keepdim}: {err}"
                if pos in INDEX_OUTPUTS.get(op, ()):  # SoftIndex rows on the simplex
                    assert (s >= 0).all()
                    ones = torch.ones(s.shape[:-1], dtype=dtype)
                    torch.testing.assert_close(s.sum(-1), ones, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", list(OPS))
def test_near_hard_float32(op: str, method: str, mode: str) -> None:
    _near_hard(op, method, mode, torch.float32)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", list(OPS))
def test_near_hard_float64(op: str, method: str, mode: str) -> None:
    _near_hard(op, method, mode, torch.float64)


INDEX_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "argmax": lambda x, **kw: st.argmax(x, dim=1, **kw),
    "argmin": lambda x, **kw: st.argmin(x, **kw),
    "argsort": lambda x, **kw: st.argsort(x, dim=0, **kw),
    "sort": lambda x, **kw: st.sort(x, descending=True, **kw).indices,
    "topk": lambda x, **kw: st.topk(x, 3, dim=1, **kw).indices,
    "argquantile": lambda x, **kw: st.argquantile(x, torch.tensor([0.1, 0.5, 1.0]), dim=1, **kw),
    "argmedian": lambda x, **kw: st.argmedian(x, dim=1, keepdim=True, **kw),
    "max": lambda x, **kw: st.max(x, dim=1, **kw).indices,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", INDEX_METHODS)
@pytest.mark.parametrize("op", list(INDEX_OPS))
def test_soft_index_rows_on_simplex(op: str, method: str, mode: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 7)
    for softness in (0.05, 0.5, 5.0):
        p = INDEX_OPS[op](x, softness=softness, mode=mode, method=method)
        if p is None:
            continue
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_rank_in_range(method: str, mode: str) -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 9)
    for softness in (0.01, 0.3, 30.0):
        for descending in (True, False):
            r = st.rank(
                x, dim=1, softness=softness, mode=mode, method=method, descending=descending
            )
            assert (r >= 1 - 1e-4).all() and (r <= 9 + 1e-4).all()


# ---------------------------------------------------------------------------------------------
# methods: internal consistency
# ---------------------------------------------------------------------------------------------


def _z(shape: tuple[int, ...] = (3, 6), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", OWN)
def test_method_hooks_agree_with_permutation(method: str, mode: str) -> None:
    m = get_method(method)
    z, x = _z(), _z(seed=1)
    s = 0.2
    for desc in (False, True):
        perm = m.permutation(z, s, mode, descending=desc)
        pos = torch.tensor([4, 0, 2])
        torch.testing.assert_close(
            m.permutation_rows(z, pos, s, mode, descending=desc), perm[..., pos, :]
        )
        vals = (perm @ x.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(m.permute_values(z, x, s, mode, descending=desc), vals)
        p2, v2 = m.permutation_with_values(z, x, s, mode, descending=desc)
        torch.testing.assert_close(p2, perm)
        torch.testing.assert_close(v2, vals)
    desc = m.permutation(z, s, mode, descending=True)
    asc = m.permutation(z, s, mode, descending=False)
    torch.testing.assert_close(desc, asc.flip(-2))
    torch.testing.assert_close(m.topk_permutation(z, 2, s, mode), desc[..., :2, :])
    torch.testing.assert_close(m.argmax(z, s, mode), desc[..., 0, :])
    torch.testing.assert_close(m.argmin(z, s, mode), asc[..., 0, :])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_sorting_network_structure(n: int, mode: str) -> None:
    m = get_method("sorting_network")
    z = _z((2, n))
    perm = m.permutation(z, 0.1, mode)
    ones = torch.ones(2, n, dtype=z.dtype)
    torch.testing.assert_close(perm.sum(-1), ones)  # doubly stochastic
    torch.testing.assert_close(perm.sum(-2), ones)
    sv = m.sorted_values(z, 0.1, mode)
    torch.testing.assert_close(sv, (perm @ z.unsqueeze(-1)).squeeze(-1))
    idx = torch.arange(1, n + 1, dtype=z.dtype)
    torch.testing.assert_close(m.rank(z, 0.1, mode, descending=False), idx @ perm)
    torch.testing.assert_close(m.rank(z, 0.1, mode), (n + 1) - idx @ perm)
    assert (sv[..., 1:] >= sv[..., :-1] - 1e-12).all()  # the soft output is sorted


def test_neuralsort_rank_is_column_normalised() -> None:
    m = get_method("neuralsort")
    z = _z()
    perm = m.permutation(z, 0.3, "smooth", descending=True)
    idx = torch.arange(1, 7, dtype=z.dtype).unsqueeze(-1)
    expected = (perm * idx).sum(-2) / perm.sum(-2)
    torch.testing.assert_close(m.rank(z, 0.3, "smooth"), expected)


def test_softsort_rank_is_column_projection() -> None:
    z = _z()
    zs = torch.sort(z, descending=True).values
    q = sx.project_simplex(-(zs.unsqueeze(-1) - z.unsqueeze(-2)).abs() / 0.3, "c1", dim=-2)
    expected = (q * torch.arange(1, 7, dtype=z.dtype).unsqueeze(-1)).sum(-2)
    torch.testing.assert_close(get_method("softsort").rank(z, 0.3, "c1"), expected)


@pytest.mark.parametrize("method", METHODS)
def test_rows_are_independent(method: str) -> None:
    torch.manual_seed(2)
    x = torch.randn(4, 6, dtype=torch.float64)
    batched = st.sort(x, method=method, softness=0.3).values
    single = torch.stack([st.sort(row, method=method, softness=0.3).values for row in x])
    torch.testing.assert_close(batched, single)
    batched = st.rank(x, dim=1, method=method, softness=0.3)
    single = torch.stack([st.rank(row, method=method, softness=0.3) for row in x])
    torch.testing.assert_close(batched, single)


@pytest.mark.parametrize("method", OWN)
@pytest.mark.parametrize("mode", MODES)
def test_scale_equivariance(method: str, mode: str) -> None:
    torch.manual_seed(3)
    x = torch.randn(3, 6, dtype=torch.float64)
    a = st.sort(x, softness=0.2, mode=mode, method=method, standardize=False).values
    b = st.sort(10 * x, softness=2.0, mode=mode, method=method, standardize=False).values
    torch.testing.assert_close(b, 10 * a)
    # standardized: invariant to the data's affine scale
    c = st.sort(3 * x + 7, softness=0.2, mode=mode, method=method).values
    d = st.sort(x, softness=0.2, mode=mode, method=method).values
    torch.testing.assert_close(c, 3 * d + 7, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", INDEX_METHODS)
def test_values_are_expectations_under_the_soft_index(method: str) -> None:
    torch.manual_seed(4)
    x = torch.randn(3, 6, dtype=torch.float64)
    kw = {"softness": 0.3, "method": method}
    srt = st.sort(x, **kw)
    if srt.indices is not None:
        torch.testing.assert_close(srt.values, (srt.indices @ x.unsqueeze(-1)).squeeze(-1))
    if method != "sorting_network":
        r = st.max(x, dim=1, **kw)
        torch.testing.assert_close(r.values, (r.indices * x).sum(-1))
        tk = st.topk(x, 3, dim=1, **kw)
        torch.testing.assert_close(tk.values, (tk.indices @ x.unsqueeze(-1)).squeeze(-1))
        v, i = st.quantile(x, torch.tensor([0.2, 0.9]), dim=1, return_argquantile=True, **kw)
        torch.testing.assert_close(v, (i * x).sum(-1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_quantile_interpolates_soft_sorted_values(method: str, interpolation: str) -> None:
    torch.manual_seed(5)
    x = torch.randn(2, 6, dtype=torch.float64)
    kw = {"softness": 0.3, "method": method}
    srt = st.sort(x, return_indices=False, **kw).values
    for q in (0.0, 0.3, 0.5, 0.9, 1.0):
        pos = q * 5
        lo, hi = int(pos // 1), int(-(-pos // 1))
        w = {"linear": pos - lo, "midpoint": 0.5}.get(interpolation, 0.0)
        if interpolation == "higher":
            lo = hi
        if interpolation in ("lower", "nearest"):
            hi = lo if interpolation == "lower" else hi
        if interpolation == "nearest":
            lo = hi = int(torch.tensor(pos).round())
        expected = (1 - w) * srt[:, lo] + w * srt[:, hi]
        got = st.quantile(x, q, dim=1, interpolation=interpolation, **kw)
        torch.testing.assert_close(got, expected)
    med = st.median(x, dim=1, **kw).values
    torch.testing.assert_close(med, srt[:, 2])


def test_max_min_match_softsort_extremes() -> None:
    torch.manual_seed(6)
    x = torch.randn(3, 5)
    srt = st.sort(x, method="softsort").values
    torch.testing.assert_close(st.max(x, dim=1).values, srt[:, -1])
    torch.testing.assert_close(st.min(x, dim=1).values, srt[:, 0])


@pytest.mark.parametrize("method", ["softsort", "neuralsort", "ot"])
def test_gated_grad_false_detaches_the_soft_index(method: str) -> None:
    if method not in METHODS:
        pytest.skip("ot is not installed")
    torch.manual_seed(7)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 5, dtype=torch.float64)
    for return_indices in (True, False):
        r = st.sort(x, method=method, gated_grad=False, return_indices=return_indices)
        (grad,) = torch.autograd.grad((r.values * g).sum(), x)
        perm = st.argsort(x, method=method).detach()
        torch.testing.assert_close(grad, (perm.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1))
    r = st.max(x, dim=1, method=method, gated_grad=False)
    (grad,) = torch.autograd.grad(r.values.sum(), x)
    torch.testing.assert_close(grad, r.indices.detach())


def test_return_indices_false_matches() -> None:
    torch.manual_seed(8)
    x = torch.randn(3, 7)
    for method in ("softsort", "neuralsort"):
        a = st.sort(x, method=method, mode="c1", descending=True)
        b = st.sort(x, method=method, mode="c1", descending=True, return_indices=False)
        assert b.indices is None
        torch.testing.assert_close(a.values, b.values)


def test_sort_indices_none_for_value_methods() -> None:
    for method in ("sorting_network", *[m for m in OPTIONAL if m == "fast_soft_sort"]):
        assert st.sort(X, method=method).indices is None
    assert st.argsort(X, method="sorting_network").shape == (2, 3, 3)


def test_softness_as_tensor_gets_gradient() -> None:
    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.2, -1.0, 0.5, 0.1], dtype=torch.float64)
    for method in OWN:
        for mode in MODES:
            v = st.sort(x, softness=s, method=method, mode=mode).values
            (g,) = torch.autograd.grad((v * torch.arange(4.0, dtype=x.dtype)).sum(), s)
            assert torch.isfinite(g) and g != 0


@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
@pytest.mark.parametrize("mode", ["smooth", "c2"])
def test_chunked_evaluation_matches(
    method: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(9)
    x0 = torch.randn(2, 19, dtype=torch.float64)
    w = torch.randn(2, 19, 19, dtype=torch.float64)

    def run(budget: int) -> list[torch.Tensor]:
        monkeypatch.setattr(sx, "CHUNK_BUDGET", budget)
        monkeypatch.setattr(sx, "PLAIN_BUDGET", budget)
        x = x0.clone().requires_grad_(True)
        kw = {"method": method, "mode": mode, "softness": 0.2}
        srt = st.sort(x, **kw)
        vals = st.sort(x, return_indices=False, **kw).values
        rk = st.rank(x, dim=1, **kw)
        q = st.quantile(x, torch.tensor([0.3, 0.6]), dim=1, **kw)
        loss = (
            srt.values.sum() + (srt.indices * w).sum() + (vals**2).sum() + (rk**2).sum() + q.sum()
        )
        (g,) = torch.autograd.grad(loss, x)
        return [srt.values, srt.indices, vals, rk, q, g]

    for a, b in zip(run(1 << 20), run(150)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_sorting_network_chunked_rows_match(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import softtorch.ordering.methods.sorting_network as sn

    torch.manual_seed(10)
    x0 = torch.randn(2, 11, dtype=torch.float64)
    w = torch.randn(2, 11, 11, dtype=torch.float64)

    def run(budget: int) -> list[torch.Tensor]:
        monkeypatch.setattr(sn, "ROWS_BUDGET", budget)
        x = x0.clone().requires_grad_(True)
        kw = {"method": "sorting_network", "mode": mode, "softness": 0.2}
        perm = st.argsort(x, descending=True, **kw)
        top = st.topk(x, 4, dim=1, **kw).indices
        (g,) = torch.autograd.grad((perm * w).sum() + (top**2).sum(), x)
        return [perm, top, g]

    for a, b in zip(run(1 << 24), run(2000)):
        torch.testing.assert_close(a, b)
