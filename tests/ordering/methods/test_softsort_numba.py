"""SoftSort's numba kernels for a written soft permutation against the torch row blocks and the
dense softmax, float64 and float32, values and gradients."""

from __future__ import annotations

import pytest
import torch

from softtorch.ordering.methods.softsort import _smooth as ss


def _both(fn):  # noqa: ANN001, ANN202
    out = []
    for backend in ("auto", "torch"):
        ss.set_backend(backend)
        try:
            out.append(fn())
        finally:
            ss.set_backend("auto")
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("descending", [False, True])
def test_perm_kernels_match_torch_and_dense(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, descending: bool
) -> None:
    monkeypatch.setattr(ss, "PERM_BLOCK", 50)  # several torch blocks
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 1, 23, generator=gen, dtype=torch.float64)
    x[..., 4] = x[..., 11]  # a tie
    x = x.to(dtype)
    w = torch.randn(2, 1, 23, 23, generator=gen, dtype=torch.float64).to(dtype)

    def run(pos: torch.Tensor | None, expanded: bool):  # noqa: ANN202
        def fn():  # noqa: ANN202
            xx = x.clone().requires_grad_(True)
            p = ss.softsort_permutation(xx, 0.3, descending, pos)
            loss = p.sum() if expanded else (p * w[..., : p.shape[-2], :]).sum()
            return p.detach(), torch.autograd.grad(loss, xx)[0]

        return fn

    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {}
    for pos in (None, torch.tensor([0, 5, 22])):
        for expanded in (False, True):
            (p1, g1), (p0, g0) = _both(run(pos, expanded))
            torch.testing.assert_close(p1, p0, **tol)
            torch.testing.assert_close(g1, g0, **tol)
    # against the dense softmax of the distances to the sorted scores
    xs = x.double().sort(-1, descending=descending).values
    dense = torch.softmax(-(xs.unsqueeze(-1) - x.double().unsqueeze(-2)).abs() / 0.3, dim=-1)
    p1 = _both(run(None, False))[0][0]
    torch.testing.assert_close(p1.double(), dense, **(tol or {"rtol": 1e-5, "atol": 1e-6}))


def test_perm_kernels_gradcheck() -> None:
    x = torch.tensor([[0.3, -1.2, 0.8, 0.05, 1.7, -0.4]], dtype=torch.float64)
    for desc in (False, True):
        fn = lambda z: ss.softsort_permutation(z, 0.4, desc, block=2)  # noqa: B023, E731
        assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(),))
        topk = lambda z: ss.softsort_topk_permutation(z, 2, 0.4, block=2)  # noqa: E731
        assert torch.autograd.gradcheck(topk, (x.clone().requires_grad_(),))


def test_broken_kernel_falls_back_to_torch_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    from softtorch.kernels import _kernel_guard

    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())

    def broken(*_: object) -> None:
        raise AssertionError("simulated compile failure")

    fake = type("M", (), {n: staticmethod(broken) for n in ("perm_rows", "perm_rows_vjp")})
    x = torch.randn(1, 9, dtype=torch.float64, requires_grad=True)
    ref = _both(lambda: ss.softsort_permutation(x, 0.2, False))[1]
    monkeypatch.setattr(ss, "_numba", lambda: fake)
    with pytest.warns(RuntimeWarning, match="softsort rows"):
        got = ss.softsort_permutation(x, 0.2, False)
    torch.testing.assert_close(got, ref)
    (g,) = torch.autograd.grad(got.square().sum(), x)
    (g0,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(g, g0)


@pytest.mark.parametrize("batch", [1, 3])
def test_parallel_perm_kernels_match_serial_and_torch(
    monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """The ``*_parallel`` kernels (rows split over threads, private ``gz``) give the serial
    kernels' rows and gradients; through the stream at 2 threads, the torch row blocks'."""
    nk = ss._numba()
    gen = torch.Generator().manual_seed(11)
    n, m = 37, 13  # odd, and rows not divisible by the thread counts
    z = torch.randn(batch, n, generator=gen, dtype=torch.float64)
    a = z.sort(-1).values[:, :m].contiguous()
    ld = ss._log_norms(z, 0.3, False, 8)[:, :m].contiguous()
    g = torch.randn(batch, m, n, generator=gen, dtype=torch.float64)
    args = (a.numpy(), z.numpy(), ld.numpy(), ss._scalar(1.0 / 0.3, z))
    ref = torch.empty(batch, m, n, dtype=torch.float64)
    nk.perm_rows(*args, ref.numpy())
    ga0, gz0 = nk.perm_rows_vjp(*args, g.numpy())
    for threads in (2, 3):
        out = torch.full((batch, m, n), 7.0, dtype=torch.float64)
        nk.perm_rows_parallel(*args, out.numpy(), threads)
        assert torch.equal(out, ref)
        ga, gz = nk.perm_rows_vjp_parallel(*args, g.numpy(), threads)
        torch.testing.assert_close(torch.from_numpy(ga), torch.from_numpy(ga0), rtol=1e-13, atol=0)
        torch.testing.assert_close(
            torch.from_numpy(gz), torch.from_numpy(gz0), rtol=1e-12, atol=1e-14
        )
    # the full autograd path at 2 threads (parallel kernels) against the torch row blocks
    monkeypatch.setattr(ss, "PARALLEL_MIN", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def run():  # noqa: ANN202
            zz = z.clone().requires_grad_(True)
            p = ss.softsort_permutation(zz, 0.3, True)
            return p.detach(), torch.autograd.grad((p * g[:, :1, :]).sum(), zz)[0]

        (p1, g1), (p0, g0) = _both(run)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(p1, p0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-12)
