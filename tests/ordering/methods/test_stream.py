"""Streamed (no ``n x n``) SoftSort / NeuralSort paths against the dense ones, and the dispatch.

The streamed paths are forced on small inputs (``STREAM_MIN = 0``) with small blocks so that
several blocks are exercised; the dense path (``STREAM_MIN`` huge) and independent dense formulas
are the references, in float64, values and gradients.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import softtorch as st
from softtorch.kernels import _kernel_guard
from softtorch.ordering.methods import _stream
from softtorch.ordering.methods.neuralsort import _smooth as _neuralsort_stream
from softtorch.ordering.methods.softsort import _laplace
from softtorch.ordering.methods.softsort import _smooth as _softsort_stream

DENSE = 1 << 62


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_laplace, "BLOCK", 4)
    monkeypatch.setattr(_neuralsort_stream, "BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(_softsort_stream, "PERM_BLOCK", 50)


@pytest.fixture(params=["auto", "torch"])
def backend(request: pytest.FixtureRequest) -> str:  # type: ignore[misc]
    _neuralsort_stream.set_backend(request.param)
    yield request.param
    _neuralsort_stream.set_backend("auto")


def _inputs(n: int = 23, batch: tuple[int, ...] = (2, 1)) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(*batch, n, generator=g, dtype=torch.float64)
    x[..., n // 4] = x[..., n // 2]  # a tie (n >= 3)
    return x


def _run(monkeypatch: pytest.MonkeyPatch, stream: bool, fn, x: torch.Tensor):  # noqa: ANN001, ANN202
    monkeypatch.setattr(_stream, "STREAM_MIN", 0 if stream else DENSE)
    xx = x.clone().requires_grad_(True)
    out = fn(xx)
    w = torch.linspace(-1.0, 2.0, out.shape[-1], dtype=out.dtype)
    (g,) = torch.autograd.grad((out * w).sum() + out.square().sum(), xx)
    return out.detach(), g


def _ops(method: str, descending: bool, standardize: bool, softness: float):  # noqa: ANN202
    kw = {"softness": softness, "method": method, "standardize": standardize}

    def sort(x: torch.Tensor) -> torch.Tensor:
        return st.sort(x, descending=descending, return_indices=False, **kw).values

    def rank(x: torch.Tensor) -> torch.Tensor:
        return st.rank(x, dim=-1, descending=descending, **kw)

    return {"sort": sort, "rank": rank}


# ----------------------------------------------------------------------------------------------
# the Laplace-kernel smoothing against its dense formula
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("softness", [0.03, 0.7, 50.0])
@pytest.mark.parametrize("n", [3, 4, 9, 37])
def test_laplace_smooth_matches_dense_softmax(n: int, softness: float) -> None:
    x = _inputs(n, (3,))
    u = x.sort(-1).values.requires_grad_(True)
    w = torch.randn(3, n, dtype=torch.float64, requires_grad=True)
    y = _laplace.laplace_smooth(u, w, softness, block=4)
    p = torch.softmax(-(u.unsqueeze(-1) - u.unsqueeze(-2)).abs() / softness, dim=-1)
    ref = (p @ w.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (u, w), g)
    exp = torch.autograd.grad(ref, (u, w), g)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_laplace_smooth_gradcheck() -> None:
    u = torch.tensor([[-1.0, -0.2, 0.1, 0.35, 0.9, 1.4, 2.0]], dtype=torch.float64)
    w = torch.randn(1, 7, dtype=torch.float64)
    fn = lambda uu, ww: _laplace.laplace_smooth(uu, ww, 0.4, block=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (u.requires_grad_(), w.requires_grad_()))


# ----------------------------------------------------------------------------------------------
# streamed vs dense through the public ops
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["sort", "rank"])
@pytest.mark.parametrize(
    ("descending", "standardize", "softness"),
    [(False, True, 0.1), (True, True, 0.02), (True, False, 0.5), (False, False, 3.0)],
)
@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_stream_matches_dense(
    monkeypatch: pytest.MonkeyPatch,
    small_blocks: None,
    backend: str,
    method: str,
    op: str,
    descending: bool,
    standardize: bool,
    softness: float,
) -> None:
    if method == "softsort" and backend == "torch":
        pytest.skip("softsort's streamed path has no backend switch (torch only)")
    fn = _ops(method, descending, standardize, softness)[op]
    x = _inputs()
    v1, g1 = _run(monkeypatch, True, fn, x)
    v0, g0 = _run(monkeypatch, False, fn, x)
    torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_stream_float32_close_to_float64(
    monkeypatch: pytest.MonkeyPatch, small_blocks: None, method: str
) -> None:
    x = _inputs(40)
    for op, fn in _ops(method, False, True, 0.1).items():
        v64, g64 = _run(monkeypatch, False, fn, x)
        v32, g32 = _run(monkeypatch, True, fn, x.float())
        assert v32.dtype == torch.float32 and g32.dtype == torch.float32
        torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=1e-5 * 40, msg=op)
        scale = g64.abs().max()
        torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-4 * scale, msg=op)


@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_stream_order_statistics_match_dense(
    monkeypatch: pytest.MonkeyPatch, small_blocks: None, method: str
) -> None:
    """quantile / max / topk use rows of P; with neuralsort they use the fused sums ``B``."""
    x = _inputs(30)

    def fn(xx: torch.Tensor) -> torch.Tensor:
        kw = {"softness": 0.1, "method": method}
        q = st.quantile(xx, torch.tensor([0.2, 0.7], dtype=xx.dtype), dim=-1, **kw)
        m = st.max(xx, dim=-1, **kw).values
        t = st.topk(xx, 3, dim=-1, **kw).values
        return torch.cat((q.movedim(0, -1), m.unsqueeze(-1), t), dim=-1)

    v1, g1 = _run(monkeypatch, True, fn, x)
    v0, g0 = _run(monkeypatch, False, fn, x)
    torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_soft_indices_match_dense(
    monkeypatch: pytest.MonkeyPatch, small_blocks: None, method: str, descending: bool
) -> None:
    """argsort / sort with indices / topk / quantile rows: P written block by block."""
    x = _inputs()
    n = x.shape[-1]
    w = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def fn(xx: torch.Tensor) -> torch.Tensor:
        kw = {"softness": 0.1, "method": method}
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


def test_softsort_permutation_gradcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_softsort_stream, "PERM_BLOCK", 6)
    x = torch.tensor([[0.3, -1.2, 0.8, 0.05, 1.7, -0.4]], dtype=torch.float64)
    for desc in (False, True):
        fn = lambda z: _softsort_stream.softsort_permutation(z, 0.4, desc, block=2)  # noqa: B023, E731
        assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(),))


def test_neuralsort_gradcheck(monkeypatch: pytest.MonkeyPatch, small_blocks: None) -> None:
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    x = torch.tensor([[0.3, -1.2, 0.8, 0.05, 1.7, -0.4, 0.6]], dtype=torch.float64)
    y = torch.randn(1, 7, dtype=torch.float64)
    for desc in (False, True):
        vals = lambda z, w: _neuralsort_stream.values(z, w, 0.3, desc)  # noqa: B023, E731
        rnk = lambda z: _neuralsort_stream.rank(z, 0.3, desc)  # noqa: B023, E731
        assert torch.autograd.gradcheck(vals, (x.clone().requires_grad_(), y.requires_grad_()))
        assert torch.autograd.gradcheck(rnk, (x.clone().requires_grad_(),))
        sums = lambda z: _neuralsort_stream.soft_abs_sums(z, 0.3)  # noqa: E731
        assert torch.autograd.gradcheck(sums, (x.clone().requires_grad_(),))


def test_soft_abs_sums_against_formula(backend: str) -> None:
    z = _inputs(17).requires_grad_(True)
    s = 0.2
    b = _neuralsort_stream.soft_abs_sums(z, s)
    d = z.unsqueeze(-1) - z.unsqueeze(-2)
    ref = (d * (2.0 * torch.sigmoid(d / s) - 1.0)).sum(-1)
    torch.testing.assert_close(b, ref, rtol=1e-12, atol=1e-12)
    h = torch.randn_like(b)
    torch.testing.assert_close(
        torch.autograd.grad(b, z, h)[0], torch.autograd.grad(ref, z, h)[0], rtol=1e-10, atol=1e-10
    )


def test_bands_cover_every_nonzero_entry() -> None:
    """Outside its band a row's dense softmax is exactly 0 (float64) and inside it is the row."""
    z = torch.sigmoid(_inputs(200, (1,)))
    s = 0.01
    pl = _neuralsort_stream.plan(z, s, descending=False)
    assert pl is not None and pl.width < 200
    zs = pl.zs
    scores = (pl.coef.unsqueeze(-1) * zs.unsqueeze(-2) - pl.bs.unsqueeze(-2)) / s
    dense = torch.softmax(scores, dim=-1)[0]
    j = torch.arange(200)
    inside = (j >= pl.lo[0].unsqueeze(-1)) & (j <= pl.hi[0].unsqueeze(-1))
    assert (dense[~inside] == 0).all()
    assert (dense.sum(-1) - dense.where(inside, 0.0).sum(-1)).abs().max() == 0


def test_not_unimodal_falls_back_to_dense(
    monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    x = _inputs()
    fn = _ops("neuralsort", True, True, 0.1)["rank"]
    monkeypatch.setattr(_neuralsort_stream, "WIGGLE", -1.0)  # every plan is rejected
    assert _neuralsort_stream.plan(x, 0.1, True) is None
    v1, g1 = _run(monkeypatch, True, fn, x)
    v0, g0 = _run(monkeypatch, False, fn, x)
    torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g1, g0, rtol=1e-8, atol=1e-9)


def test_broken_kernel_falls_back_to_torch(
    monkeypatch: pytest.MonkeyPatch, small_blocks: None
) -> None:
    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())

    def broken(*_: object) -> None:
        raise AssertionError("simulated compile failure")

    fake = type("M", (), {n: staticmethod(broken) for n in ("abs_sums", "band_values")})
    monkeypatch.setattr(_neuralsort_stream, "_numba", lambda: fake)
    x = _inputs()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = _neuralsort_stream.values(x, x, 0.1, False)
    assert any("neuralsort sums" in str(w.message) for w in rec)
    monkeypatch.setattr(_stream, "STREAM_MIN", DENSE)
    ref = st.sort(x, softness=0.1, standardize=False, return_indices=False).values
    assert got is not None
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# the dispatch rule
# ----------------------------------------------------------------------------------------------


def test_dispatch_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    z = torch.rand(2, 50)
    assert not _stream.use_stream("smooth", 0.1, z)  # 2 * 50 * 50 <= STREAM_MIN
    big = torch.rand(1, 2100)  # 2100^2 > 2^22
    assert _stream.use_stream("smooth", 0.1, big)
    assert _stream.use_stream("smooth", torch.tensor(0.1), big)
    assert not _stream.use_stream("smooth", torch.tensor(0.1, requires_grad=True), big)
    for mode in ("c0", "c1", "c2"):
        assert not _stream.use_stream(mode, 0.1, big)
    bad = big.clone()
    bad[0, 7] = float("nan")
    assert not _stream.use_stream("smooth", 0.1, bad)
    bad[0, 7] = float("inf")
    assert not _stream.use_stream("smooth", 0.1, big, bad)
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    assert _stream.use_stream("smooth", 0.1, z)
    assert not _stream.use_stream("smooth", 0.1, z[..., :1])
    seen = []
    torch.vmap(lambda t: seen.append(_stream.use_stream("smooth", 0.1, t)) or t)(z)
    assert seen == [False]


def test_dispatch_keeps_dense_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN input, learnable softness and double backward behave as on the dense path."""
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    x = _inputs(12, (1,))
    x[0, 3] = float("nan")
    for method in ("softsort", "neuralsort"):
        v = st.sort(x, method=method, return_indices=False).values
        assert torch.isnan(v).all()
    s = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    xx = _inputs(12, (1,)).requires_grad_(True)
    for method in ("softsort", "neuralsort"):
        r = st.rank(xx, dim=-1, softness=s, method=method)
        gs, gx = torch.autograd.grad(r.square().sum(), (s, xx), create_graph=True)
        assert torch.isfinite(gs) and gs != 0
        (hx,) = torch.autograd.grad(gx.sum(), xx)  # double backward: the dense path's graph
        assert torch.isfinite(hx).all()


def test_parallel_sums_match_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_neuralsort_stream, "PARALLEL_MIN", 1)
    z = _inputs(33, (2,))
    h = torch.randn_like(z)
    serial = (_neuralsort_stream._torch_sums(z, 4.0), _neuralsort_stream._torch_sums_vjp(z, h, 4.0))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        par = (_neuralsort_stream.abs_sums(z, 4.0), _neuralsort_stream.abs_sums_vjp(z, h, 4.0))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(par, serial):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
