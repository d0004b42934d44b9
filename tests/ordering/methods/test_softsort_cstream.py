"""Streamed sparse-mode (``c0`` / ``c1`` / ``c2``) SoftSort values, ranks and soft-permutation rows
against the dense path.

The streamed path is forced on small inputs (``STREAM_MIN = 0``), the torch backend with small
row blocks so that several blocks and bands are exercised; the dense path (``STREAM_MIN`` huge),
``project_simplex`` on the full score matrix and a bisection for the threshold are the
references, in float64, values and gradients.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import softtorch as st
from softtorch import simplex
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods import _stream
from softtorch.ordering.methods.softsort import _sparse as cs

DENSE = 1 << 62
MODES = ("c0", "c1", "c2")


@pytest.fixture(params=["auto", "torch"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[misc]
    monkeypatch.setattr(cs, "BLOCK_ELEMENTS", 40)
    cs.set_backend(request.param)
    yield request.param
    cs.set_backend("auto")


def _inputs(n: int = 23, batch: tuple[int, ...] = (2, 1), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(n + seed)
    x = torch.randn(*batch, n, generator=g, dtype=torch.float64)
    x[..., n // 4] = x[..., n // 2]  # ties
    x[..., 1] = x[..., n // 2]
    return x


def _run(monkeypatch: pytest.MonkeyPatch, stream: bool, fn, x: torch.Tensor):  # noqa: ANN001, ANN202
    monkeypatch.setattr(_stream, "STREAM_MIN", 0 if stream else DENSE)
    xx = x.clone().requires_grad_(True)
    out = fn(xx)
    w = torch.linspace(-1.0, 2.0, out.shape[-1], dtype=out.dtype)
    (g,) = torch.autograd.grad((out * w).sum() + out.square().sum(), xx)
    return out.detach(), g


def _ops(mode: str, descending: bool, standardize: bool, softness: float):  # noqa: ANN202
    kw = {"softness": softness, "method": "softsort", "mode": mode, "standardize": standardize}

    def sort(x: torch.Tensor) -> torch.Tensor:
        return st.sort(x, descending=descending, return_indices=False, **kw).values

    def rank(x: torch.Tensor) -> torch.Tensor:
        return st.rank(x, dim=-1, descending=descending, **kw)

    return {"sort": sort, "rank": rank}


def _bisect_rows(scores: torch.Tensor, e: int) -> torch.Tensor:
    """Independent reference: lambda with sum relu(s - lambda)^e = 1 by bisection (float64)."""
    lo = scores.amax(-1, keepdim=True) - 1.0
    hi = scores.amax(-1, keepdim=True)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        big = (torch.relu(scores - mid) ** e).sum(-1, keepdim=True) > 1.0
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    return torch.relu(scores - 0.5 * (lo + hi)) ** e


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("softness", [0.05, 0.6])
def test_window_smooth_matches_full_projection(backend: str, mode: str, softness: float) -> None:
    u = _inputs(29, (3,)).sort(-1).values.requires_grad_(True)
    w = torch.randn(3, 29, dtype=torch.float64, requires_grad=True)
    y = cs.window_smooth(u, w, softness, mode)
    scores = -(u.unsqueeze(-1) - u.unsqueeze(-2)).abs() / softness
    p = simplex.project_simplex(scores, mode)
    ref = (p @ w.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    pb = _bisect_rows(scores.detach(), cs.EXPONENT[mode])
    torch.testing.assert_close(y.detach(), (pb @ w.detach().unsqueeze(-1)).squeeze(-1))
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (u, w), g)
    exp = torch.autograd.grad(ref, (u, w), g)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_window_smooth_clustered_points(mode: str) -> None:
    """Windows that grow and shrink sharply from row to row (the kernel starts each row from the
    previous radius): dense clusters, gaps, long runs of ties."""
    g = torch.Generator().manual_seed(3)
    parts = (
        torch.randn(60, generator=g, dtype=torch.float64) * 0.01,
        torch.full((15,), 0.4, dtype=torch.float64),
        1.0 + torch.rand(40, generator=g, dtype=torch.float64) * 3.0,
        torch.tensor([9.0, 9.05, 30.0], dtype=torch.float64),
    )
    u = torch.cat(parts).sort().values.unsqueeze(0)
    w = torch.randn(u.shape, generator=g, dtype=torch.float64)
    for softness in (0.02, 0.3, 2.0):
        y = cs.window_smooth(u, w, softness, mode)
        scores = -(u.unsqueeze(-1) - u.unsqueeze(-2)).abs() / softness
        ref = (simplex.project_simplex(scores, mode) @ w.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(y, ref, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("mode", MODES)
def test_window_smooth_gradcheck(backend: str, mode: str) -> None:
    u = torch.tensor([[-1.0, -0.2, 0.1, 0.35, 0.9, 1.4, 2.13]], dtype=torch.float64)
    w = torch.randn(1, 7, dtype=torch.float64)
    fn = lambda uu, ww: cs.window_smooth(uu, ww, 0.7, mode)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (u.requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("descending", "standardize", "softness"), [(False, True, 0.1), (True, False, 0.5)]
)
def test_cstream_matches_dense(
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    mode: str,
    descending: bool,
    standardize: bool,
    softness: float,
) -> None:
    for op, fn in _ops(mode, descending, standardize, softness).items():
        x = _inputs()
        v1, g1 = _run(monkeypatch, True, fn, x)
        v0, g0 = _run(monkeypatch, False, fn, x)
        torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10, msg=op)
        torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9, msg=op)


@pytest.mark.parametrize("mode", MODES)
def test_cstream_heavy_ties_and_wide_support(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Many equal scores (windows of ties on both sides) and a softness wider than the data."""
    x = torch.tensor(
        [[0.0, 1.0, 0.0, 0.5, 1.0, 0.0, -2.0, 0.5, 3.0, 1.0, 0.0]], dtype=torch.float64
    )
    for softness in (0.2, 30.0):
        for op, fn in _ops(mode, True, False, softness).items():
            v1, g1 = _run(monkeypatch, True, fn, x)
            v0, g0 = _run(monkeypatch, False, fn, x)
            torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10, msg=op)
            torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9, msg=op)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("descending", [False, True])
def test_soft_indices_match_dense(
    monkeypatch: pytest.MonkeyPatch, backend: str, mode: str, descending: bool
) -> None:
    """argsort / sort with indices / topk / quantile rows written from the windows (ties: the
    anchors keep the dense path's gradient routing)."""
    x = _inputs()
    n = x.shape[-1]
    w = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def fn(xx: torch.Tensor) -> torch.Tensor:
        kw = {"softness": 0.1, "method": "softsort", "mode": mode}
        r = st.sort(xx, descending=descending, **kw)
        a = st.argsort(xx, descending=not descending, **kw)
        t = st.topk(xx, 4, largest=not descending, **kw)
        q = st.argquantile(xx, torch.tensor([0.3, 0.6], dtype=xx.dtype), dim=-1, **kw)
        parts = (
            r.values,
            (r.indices * w).sum(-1),
            (a * w.T).sum(-1),
            (t.indices * w[:4]).sum(-1),
            t.values,
            (q.movedim(0, -2) * w[:2]).sum(-1),
        )
        return torch.cat(parts, dim=-1)

    v1, g1 = _run(monkeypatch, True, fn, x)
    v0, g0 = _run(monkeypatch, False, fn, x)
    torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9)


def test_permutation_rows_gradcheck(backend: str) -> None:
    x = torch.tensor([[0.3, -1.2, 0.8, 0.05, 1.7, -0.4, 0.61]], dtype=torch.float64)
    for mode in MODES:
        for desc in (False, True):
            fn = lambda z: cs.softsort_permutation(z, 0.7, mode, desc)  # noqa: B023, E731
            assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(),))
        fk = lambda z: cs.softsort_topk_permutation(z, 3, 0.7, mode)  # noqa: B023, E731
        assert torch.autograd.gradcheck(fk, (x.clone().requires_grad_(),))


def test_cstream_float32_close_to_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _inputs(40)
    for mode in MODES:
        for op, fn in _ops(mode, False, True, 0.1).items():
            v64, g64 = _run(monkeypatch, False, fn, x)
            v32, g32 = _run(monkeypatch, True, fn, x.float())
            assert v32.dtype == torch.float32 and g32.dtype == torch.float32
            torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=1e-5 * 40, msg=op)
            scale = g64.abs().max()
            torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-4 * scale, msg=op)


def test_cstream_nonfinite_keeps_dense_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """+-inf and NaN inputs take the dense path (same values, NaN propagates)."""
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    x = _inputs(12, (1,))
    for bad in (float("inf"), -float("inf"), float("nan")):
        xb = x.clone()
        xb[0, 3] = bad
        assert not _stream.use_stream("c1", 0.1, xb, modes=_stream.ALL_MODES)
        for mode in MODES:
            kw = {"softness": 0.3, "method": "softsort", "mode": mode, "standardize": False}
            got = st.sort(xb, return_indices=False, **kw).values
            monkeypatch.setattr(_stream, "STREAM_MIN", DENSE)
            ref = st.sort(xb, return_indices=False, **kw).values
            monkeypatch.setattr(_stream, "STREAM_MIN", 0)
            torch.testing.assert_close(got, ref, equal_nan=True)


def test_cstream_dispatch_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    big = torch.rand(1, 2100)  # 2100^2 > STREAM_MIN
    for mode in MODES:
        assert _stream.use_stream(mode, 0.1, big, modes=_stream.ALL_MODES)
        assert not _stream.use_stream(mode, 0.1, big)  # callers that only stream smooth
        s = torch.tensor(0.1, requires_grad=True)
        assert not _stream.use_stream(mode, s, big, modes=_stream.ALL_MODES)
    assert not _stream.use_stream("hard", 0.1, big, modes=_stream.ALL_MODES)
    assert not _stream.use_stream("c0", 0.1, torch.rand(2, 50), modes=_stream.ALL_MODES)
    # softsort values / ranks take the window path; soft indices and learnable softness do not
    calls: list[str] = []
    monkeypatch.setattr(cs, "window_smooth", lambda *a: calls.append(a[3]) or a[0] * 0)
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    x = _inputs(9, (1,))
    st.sort(x, mode="c2", method="softsort", return_indices=False)
    st.rank(x, dim=-1, mode="c0", method="softsort")
    assert calls == ["c2", "c0"]
    st.rank(x, dim=-1, mode="c1", method="softsort", softness=torch.tensor(0.1).requires_grad_())
    st.rank(x, dim=-1, mode="c1", method="neuralsort")
    st.sort(x, mode="hard", method="softsort", return_indices=False)
    assert calls == ["c2", "c0"]
    rows: list[int] = []

    def spy(z: torch.Tensor, a: torch.Tensor, r: torch.Tensor, s: float, m: str) -> torch.Tensor:
        rows.append(r.shape[0])
        return z.new_zeros(*z.shape[:-1], r.shape[0], z.shape[-1])

    monkeypatch.setattr(cs, "_perm_rows", spy)
    st.topk(x, 3, dim=-1, mode="c1", method="softsort")
    st.argsort(x, mode="c0", method="softsort")
    assert rows == [3, 9]


def test_cstream_double_backward_stays_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small problems keep the dense graph (double backward); the streamed one is first order."""
    x = _inputs(12, (1,)).requires_grad_(True)
    r = st.rank(x, dim=-1, softness=0.3, mode="c2", method="softsort")
    (gx,) = torch.autograd.grad(r.square().sum(), x, create_graph=True)
    (hx,) = torch.autograd.grad(gx.sum(), x)
    assert torch.isfinite(hx).all()


def test_broken_kernel_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())

    def broken(*_: object) -> None:
        raise AssertionError("simulated compile failure")

    names = ("window_values", "window_values_vjp", "window_rows", "window_rows_vjp")
    fake = type("M", (), {n: staticmethod(broken) for n in names})
    monkeypatch.setattr(cs, "_numba", lambda: fake)
    u = _inputs(15, (2,)).sort(-1).values.requires_grad_(True)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        y = cs.window_smooth(u, u.detach(), 0.3, "c1")
    assert any("softsort sparse windows" in str(w.message) for w in rec)
    scores = -(u.unsqueeze(-1) - u.unsqueeze(-2)).abs() / 0.3
    ref = (simplex.project_simplex(scores, "c1") @ u.detach().unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    torch.testing.assert_close(
        torch.autograd.grad(y, u, g)[0], torch.autograd.grad(ref, u, g)[0], rtol=1e-10, atol=1e-10
    )
