"""``method="perturbed"`` through the public ordering ops, against closed forms.

References (independent of the implementation): Gumbel argmax = ``softmax(x / s)`` and its
Jacobian; the op layer's max under it, ``<softmax(x / s), x>``; two-entry Gaussian sort / rank /
argmax with ``q = Phi((x1 - x2) / (sqrt(2) s))`` and gradient ``phi(.) / (sqrt(2) s)``. Values are
Monte-Carlo: rows of identical inputs are independent replicas, and their mean is compared with
the closed form within a few standard errors (gradients: unbiasedness). Finite-difference
gradchecks do not apply to Monte-Carlo gradients, so this file replaces them for this method.
"""

from __future__ import annotations

import math

import pytest
import torch

import softtorch as st

S = 0.5
F64 = torch.float64


def Phi(t: float) -> float:  # noqa: N802
    return 0.5 * math.erfc(-t / math.sqrt(2.0))


def phi(t: float) -> float:
    return math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def opts(seed: int = 0, **kw: object) -> dict[str, object]:
    return {"generator": torch.Generator().manual_seed(seed), **kw}


def replicas(row: list[float], rows: int) -> torch.Tensor:
    return torch.tensor(row, dtype=F64).expand(rows, len(row)).clone().requires_grad_()


def mean_and_se(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t.mean(0), t.std(0) / math.sqrt(t.shape[0])


def test_gumbel_argmax_is_softmax_with_softmax_jacobian() -> None:
    row = [0.2, -0.1, 0.5, 0.0]
    x = replicas(row, 2000)
    kw = opts(noise="gumbel", samples=20)
    p = st.argmax(x, dim=-1, softness=S, method="perturbed", standardize=False, perturbed_kwargs=kw)
    sm = torch.softmax(torch.tensor(row, dtype=F64) / S, -1)
    m, se = mean_and_se(p.detach())
    assert ((m - sm).abs() < 3.5 * se).all(), (m, sm)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    (g,) = torch.autograd.grad((p * w).sum(), x)
    jac = (torch.diag(sm) - sm[:, None] * sm[None, :]) / S
    m, se = mean_and_se(g)
    assert ((m - jac @ w).abs() < 3.5 * se).all(), (m, jac @ w)


def test_gumbel_max_is_expected_value_under_softmax() -> None:
    """max = <p, x> for the soft argmax p (the op layer's convention for every method)."""
    row = [0.2, -0.1, 0.5, 0.0]
    x = replicas(row, 2000)
    kw = opts(1, noise="gumbel", samples=20)
    out = st.max(x, dim=-1, softness=S, method="perturbed", standardize=False, perturbed_kwargs=kw)
    xr = torch.tensor(row, dtype=F64, requires_grad=True)
    exact = (torch.softmax(xr / S, -1) * xr).sum()
    (g_exact,) = torch.autograd.grad(exact, xr)
    exact = exact.detach()
    m, se = mean_and_se(out.values.detach())
    assert abs(float(m - exact)) < 3.5 * float(se)
    torch.testing.assert_close(out.values, (out.indices * x).sum(-1))
    (g,) = torch.autograd.grad(out.values.sum(), x)
    m, se = mean_and_se(g)
    assert ((m - g_exact).abs() < 3.5 * se).all(), (m, g_exact)


def test_two_entry_gaussian_sort_rank_argmax() -> None:
    d = 0.4
    t = d / (math.sqrt(2) * S)
    q = Phi(t)  # P(x1 + sZ1 > x2 + sZ2)
    x = torch.tensor([d, 0.0], dtype=F64)
    n = 20000
    tol = 4 * 0.5 / math.sqrt(n / 2)  # Bernoulli std <= 1/2; n/2 antithetic pairs
    kw = {"softness": S, "method": "perturbed", "standardize": False}
    srt = st.sort(x, perturbed_kwargs=opts(samples=n), **kw)
    assert abs(float(srt.indices[0, 0]) - (1 - q)) < tol  # ascending slot 0 holds x1
    torch.testing.assert_close(srt.values, srt.indices @ x)
    r = st.rank(x, perturbed_kwargs=opts(samples=n), **kw)  # descending: x1 has rank 1 w.p. q
    assert abs(float(r[0]) - (2 - q)) < tol
    p = st.argmax(x, perturbed_kwargs=opts(samples=n), **kw)
    assert abs(float(p[0]) - q) < tol
    # gradients: unbiased for the closed forms d(2 - q)/dx1 = -phi(t) / (sqrt(2) s), dq/dx1
    xr = replicas([d, 0.0], 3000)
    r2 = st.rank(xr, dim=-1, perturbed_kwargs=opts(samples=4), **kw)
    (g,) = torch.autograd.grad(r2[:, 0].sum(), xr)
    m, se = mean_and_se(g[:, 0])
    assert abs(float(m) + phi(t) / (math.sqrt(2) * S)) < 3 * float(se)
    p2 = st.argmax(xr, dim=-1, perturbed_kwargs=opts(2, samples=4), **kw)
    (g,) = torch.autograd.grad(p2[:, 0].sum(), xr)
    m, se = mean_and_se(g[:, 0])
    assert abs(float(m) - phi(t) / (math.sqrt(2) * S)) < 3 * float(se)


def test_hard_limit_as_softness_goes_to_zero() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 7, generator=g, dtype=F64)
    kw = {"softness": 1e-6, "method": "perturbed", "perturbed_kwargs": opts(samples=8)}
    torch.testing.assert_close(st.sort(x, **kw).values, torch.sort(x).values)
    torch.testing.assert_close(st.argsort(x, **kw).argmax(-1), torch.argsort(x))
    torch.testing.assert_close(st.rank(x, dim=-1, **kw), st.rank(x, dim=-1, mode="hard"))
    torch.testing.assert_close(st.max(x, dim=1, **kw).values, x.max(1).values)
    torch.testing.assert_close(st.min(x, dim=1, **kw).values, x.min(1).values)
    torch.testing.assert_close(st.argmin(x, dim=1, **kw).argmax(-1), x.argmin(1))
    torch.testing.assert_close(st.topk(x, 3, dim=1, **kw).values, x.topk(3, dim=1).values)
    torch.testing.assert_close(st.median(x, dim=1, **kw).values, x.median(1).values)
    torch.testing.assert_close(
        st.quantile(x, 0.3, dim=1, **kw), torch.quantile(x, 0.3, dim=1)
    )


def test_batched_any_dim_and_simplex_rows() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 4, generator=g, dtype=F64)
    kw = {"softness": 1e-6, "method": "perturbed", "perturbed_kwargs": opts(samples=4)}
    for dim in (0, 1, -1):
        torch.testing.assert_close(st.sort(x, dim=dim, **kw).values, torch.sort(x, dim=dim).values)
        torch.testing.assert_close(st.topk(x, 2, dim=dim, **kw).values, x.topk(2, dim=dim).values)
        torch.testing.assert_close(st.max(x, dim=dim, **kw).values, x.max(dim).values)
    soft = {"softness": 0.5, "method": "perturbed", "perturbed_kwargs": opts(samples=10)}
    n = x.shape[1]
    indices = {
        "argsort": st.argsort(x, dim=1, **soft),
        "sort": st.sort(x, dim=1, **soft).indices,
        "argmax": st.argmax(x, dim=1, **soft),
        "argmin": st.argmin(x, dim=1, keepdim=True, **soft),
        "topk": st.topk(x, 2, dim=1, **soft).indices,
        "argquantile": st.argquantile(x, 0.4, dim=1, **soft),
        "argmedian": st.argmedian(x, dim=1, **soft),
    }
    shapes = {
        "argsort": (3, 5, 4, n), "sort": (3, 5, 4, n), "argmax": (3, 4, n),
        "argmin": (3, 1, 4, n), "topk": (3, 2, 4, n), "argquantile": (3, 4, n),
        "argmedian": (3, 4, n),
    }  # fmt: skip
    for name, p in indices.items():
        assert p.shape == shapes[name], name
        assert (p >= 0).all(), name
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1], dtype=F64), msg=name)
        assert (p < 1).any(), name  # genuinely soft at softness 0.5
    # the expected permutation is doubly stochastic: columns sum to 1 too
    p = indices["argsort"]
    torch.testing.assert_close(p.sum(1), torch.ones(3, 4, n, dtype=F64))
    r = st.rank(x, dim=1, **soft)
    assert r.shape == x.shape and (r >= 1).all() and (r <= n).all()
    torch.testing.assert_close(r.sum(1), torch.full((3, 4), n * (n + 1) / 2, dtype=F64))


def test_sum_of_sorted_values_has_exact_gradient() -> None:
    """sum(P @ x) = sum(x) for a doubly stochastic P: the score term is a constant per sample,
    which the leave-one-out baseline removes exactly, so the gradient is exactly ones."""
    x = torch.randn(2, 6, dtype=F64, requires_grad=True)
    out = st.sort(x, softness=0.3, method="perturbed", perturbed_kwargs=opts(samples=6))
    (g,) = torch.autograd.grad(out.values.sum(), x)
    torch.testing.assert_close(g, torch.ones_like(x))


def test_generator_reproducible_and_options_checked() -> None:
    x = torch.randn(3, 6, dtype=F64, requires_grad=True)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = st.sort(x, softness=0.3, method="perturbed", perturbed_kwargs=opts(seed, samples=8))
        (g,) = torch.autograd.grad((out.values * torch.arange(6.0, dtype=F64)).sum(), x)
        return out.values.detach(), g

    a, b, c = run(0), run(0), run(1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a[1], c[1])
    with pytest.raises(ValueError, match="unknown perturbed_kwargs key.*'samples'"):
        st.sort(x, method="perturbed", perturbed_kwargs={"sample": 10})
    with pytest.raises(TypeError, match="perturbed_kwargs must be a dict"):
        st.rank(x, method="perturbed", perturbed_kwargs=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samples must be even"):
        st.max(x, dim=1, method="perturbed", perturbed_kwargs={"samples": 3})
    with pytest.raises(ValueError, match="unknown noise"):
        st.argmax(x, method="perturbed", perturbed_kwargs={"noise": "uniform"})
    with pytest.raises(TypeError, match="softness"):
        st.sort(x, method="perturbed", softness=torch.tensor(0.1, requires_grad=True))
    # other methods ignore perturbed_kwargs
    st.sort(x, method="softsort", perturbed_kwargs={"samples": 3})


def test_soft_mode_uses_the_method() -> None:
    x = torch.randn(4, 5, dtype=F64, requires_grad=True)
    torch.manual_seed(0)
    with st.soft_mode(softness=0.3, method="perturbed"):
        inside = torch.sort(x, dim=1).values.as_subclass(torch.Tensor)
    torch.manual_seed(0)
    direct = st.sort(x, dim=1, softness=0.3, method="perturbed").values
    torch.testing.assert_close(inside, direct)
    assert not torch.allclose(direct, torch.sort(x, dim=1).values)
    with st.soft_mode(softness=1e-6, method="perturbed"):
        torch.testing.assert_close(torch.max(x, dim=1).values, x.max(1).values)
        torch.testing.assert_close(torch.argsort(x, dim=1), x.argsort(1))
