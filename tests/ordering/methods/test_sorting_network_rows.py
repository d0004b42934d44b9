"""sorting_network's in-place transposed rows (``_transposed``, numba kernels and torch fallback)
against the dense composition of the layers under autograd (the plain path) and against an
independent bitonic network written out comparator by comparator, in float64."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import softtorch as st
import softtorch.ordering.methods.sorting_network as sn
import softtorch.ordering.methods.sorting_network._columns as cl
import softtorch.ordering.methods.sorting_network._transposed as tr
from softtorch import sigmoidal
from softtorch.ordering import get_method

MODES = ["smooth", "c0", "c1", "c2"]
KW = {"method": "sorting_network", "standardize": False}


@contextmanager
def _path(monkeypatch: pytest.MonkeyPatch, kind: str, backend: str = "auto") -> Iterator[None]:
    """Rows by the autograd composition (``plain``), by the in-place transposed layers in small
    blocks (``rows``) or by columns in small blocks (``columns``)."""
    with monkeypatch.context() as mp:
        mp.setattr(sn, "ROWS_BUDGET", 1 << 40 if kind == "plain" else 1)
        mp.setattr(tr, "BACKEND", backend)
        mp.setattr(tr, "FORWARD_BLOCK", 48)  # a few rows per block
        mp.setattr(tr, "BACKWARD_BLOCK", 64)
        mp.setattr(cl, "FORWARD_BLOCK", 64 if kind == "columns" else 1 << 40)
        yield


def _ops(x: torch.Tensor, s: torch.Tensor, mode: str) -> list[torch.Tensor]:
    kw = {**KW, "mode": mode, "softness": s}
    return [
        st.argsort(x, dim=-1, descending=True, **kw),
        st.argsort(x, dim=-1, **kw),
        st.topk(x, 3, dim=-1, **kw).indices,
        st.topk(x, 2, dim=-1, largest=False, **kw).indices,
        st.argmax(x, dim=-1, **kw),
        st.median(x, dim=-1, **kw).indices,
    ]


def _values_and_grads(
    x0: torch.Tensor, s0: float, mode: str, weights: list[torch.Tensor] | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    x = x0.clone().requires_grad_(True)
    s = torch.tensor(s0, dtype=x0.dtype, requires_grad=True)
    outs = _ops(x, s, mode)
    ws = weights or [torch.randn_like(o) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, ws))
    gx, gs = torch.autograd.grad(loss, (x, s))
    return [o.detach() for o in outs], [gx, gs]


@pytest.mark.parametrize("kind", ["rows", "columns"])
@pytest.mark.parametrize("mode", MODES)
def test_fast_rows_match_dense_composition(
    mode: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    x0 = torch.randn(2, 3, 11, dtype=torch.float64)  # batch dims, n padded to 16
    with _path(monkeypatch, "plain"):
        outs = _ops(x0, torch.tensor(0.3, dtype=torch.float64), mode)
        weights = [torch.randn_like(o) for o in outs]
        ref_v, ref_g = _values_and_grads(x0, 0.3, mode, weights)
    for backend in ("auto", "torch"):
        with _path(monkeypatch, kind, backend=backend):
            fast_v, fast_g = _values_and_grads(x0, 0.3, mode, weights)
        for a, b in zip(fast_v + fast_g, ref_v + ref_g):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "node"), [("rows", "_NetworkRows"), ("columns", "_NetworkColumns")]
)
def test_fast_rows_are_used_and_keep_float32(
    kind: str, node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = torch.randn(1, 40, requires_grad=True)
    with _path(monkeypatch, kind):
        perm = st.argsort(x, dim=-1, mode="smooth", softness=0.5, **KW)
    assert perm.dtype == torch.float32

    def nodes(fn: object, seen: set[object]) -> Iterator[str]:
        if fn is None or fn in seen:
            return
        seen.add(fn)
        yield type(fn).__name__
        for nxt, _ in fn.next_functions:  # type: ignore[attr-defined]
            yield from nodes(nxt, seen)

    assert node + "Backward" in set(nodes(perm.grad_fn, set()))
    torch.testing.assert_close(perm.sum(-1), torch.ones(1, 40))  # doubly stochastic
    torch.testing.assert_close(perm.sum(-2), torch.ones(1, 40))
    (g,) = torch.autograd.grad((perm * torch.randn_like(perm)).sum(), x)
    assert g.dtype == torch.float32 and torch.isfinite(g).all()


@pytest.mark.parametrize("kind", ["rows", "columns"])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_fast_rows_gradcheck(backend: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    method = get_method("sorting_network")
    pos = torch.tensor([4, 0, 2, 5, 1, 3])

    def fn(z: torch.Tensor) -> torch.Tensor:
        return method.permutation_rows(z, pos, 0.4, "smooth", descending=True)

    with _path(monkeypatch, kind, backend=backend):
        assert torch.autograd.gradcheck(fn, (x,))


def _bitonic_reference(z: torch.Tensor, softness: float, mode: str) -> torch.Tensor:
    """The soft permutation of a power-of-two row, one comparator at a time (dense matrices)."""
    m = z.shape[-1]
    v = z.clone()
    perm = torch.eye(m, dtype=z.dtype)
    k = 2
    while k <= m:
        j = k // 2
        while j > 0:
            layer = torch.zeros(m, m, dtype=z.dtype)
            new = v.clone()
            for i in range(m):
                p = i ^ j
                if p < i:
                    continue
                up = (i & k) == 0  # minimum to position i
                lo_pos, hi_pos = (i, p) if up else (p, i)
                a, b = v[lo_pos], v[hi_pos]
                alpha = sigmoidal(b - a, softness=softness, mode=mode)  # P(a is the smaller)
                new[lo_pos] = alpha * a + (1 - alpha) * b
                new[hi_pos] = alpha * b + (1 - alpha) * a
                layer[lo_pos, lo_pos], layer[lo_pos, hi_pos] = alpha, 1 - alpha
                layer[hi_pos, hi_pos], layer[hi_pos, lo_pos] = alpha, 1 - alpha
            v = new
            perm = layer @ perm
            j //= 2
        k *= 2
    return perm


@pytest.mark.parametrize("kind", ["rows", "columns"])
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_fast_rows_match_independent_network(
    mode: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(3)
    z = torch.randn(8, dtype=torch.float64)
    ref = _bitonic_reference(z, 0.4, mode)
    method = get_method("sorting_network")
    pos = torch.tensor([7, 1, 4, 1, 0, 2, 3, 5, 6])  # a repeated row too
    with _path(monkeypatch, kind):
        rows = method.permutation_rows(z.unsqueeze(0), pos, 0.4, mode)[0]
        perm = method.permutation(z.unsqueeze(0), 0.4, mode, descending=True)[0]
    torch.testing.assert_close(rows, ref[pos])
    torch.testing.assert_close(perm, ref.flip(0))


def test_kernel_failure_falls_back_to_torch_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from softtorch.kernels import _kernel_guard
    from softtorch.ordering.methods.sorting_network import _numba

    monkeypatch.setattr(_kernel_guard, "_BROKEN", set())
    monkeypatch.setattr(_kernel_guard, "_OK", set())
    torch.manual_seed(4)
    x0 = torch.randn(2, 11, dtype=torch.float64)
    with _path(monkeypatch, "columns"):
        ref_v, ref_g = _values_and_grads(x0, 0.3, "smooth", None)

    def fail(*_: object) -> None:
        raise AssertionError("unexpected cycle in lookup()")  # a numba compiler failure

    kernels = ("forward", "forward_keep", "backward", "forward_groups", "forward_chain")
    for name in (*kernels, "backward_groups"):
        monkeypatch.setattr(_numba, name, fail)
    with warnings.catch_warnings(record=True) as rec, _path(monkeypatch, "columns"):
        warnings.simplefilter("always")
        torch.manual_seed(4)
        x1 = torch.randn(2, 11, dtype=torch.float64)
        weights = [torch.randn_like(o) for o in _ops(x1, torch.tensor(0.3), "smooth")]
        v, g = _values_and_grads(x1, 0.3, "smooth", weights)
    warned = [w for w in rec if issubclass(w.category, RuntimeWarning)]
    assert len(warned) == 1 and "sorting network" in str(warned[0].message)
    assert _kernel_guard.broken("sorting network")
    for a, b in zip(v, ref_v):
        torch.testing.assert_close(a, b)
    assert all(torch.isfinite(t).all() for t in g)


@pytest.mark.parametrize(
    ("layers", "lch", "min_width", "budget"),
    [(5, 1, 64, 1 << 40), (3, 2, 64, 1 << 40), (2, 4, 1 << 30, 1 << 13), (4, 1, 1, 1 << 40)],
)
def test_grouped_rows_match_layered(
    layers: int, lch: int, min_width: int, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layer groups of ``_grouped`` (numba) against the layer-by-layer path: bit-identical
    rows (support restricted to the rows' blocks in the first stage, several row blocks,
    repeated and scattered positions), weight gradients equal up to summation order, for one-
    and two-level checkpoints in backward."""
    import softtorch.ordering.methods.sorting_network._grouped as gr

    torch.manual_seed(5)
    z = torch.randn(2, 100, dtype=torch.float64)
    _, alphas, m = sn.network_forward(z, 0.05, "smooth")
    pos = torch.tensor([99, 98, 97, 0, 1, 50, 63, 64, 127, 98, 30, 31, 70, 5, 6, 7, 8, 9, 10])
    weights = torch.randn(2, pos.shape[0], 100, dtype=torch.float64)
    res = []
    for grouped in (False, True):
        with monkeypatch.context() as mp:
            mp.setattr(tr, "GROUPED", grouped)
            mp.setattr(gr, "GROUP_LAYERS", layers)
            mp.setattr(gr, "LCH", lch)
            mp.setattr(gr, "MIN_WIDTH", min_width)
            mp.setattr(gr, "GROUP_BLOCK", 1 << 10)  # a few rows per forward block
            ws = [a.detach().requires_grad_(True) for a in alphas]
            rows = tr.network_rows(pos, 100, ws, budget)
            grads = torch.autograd.grad((rows * weights).sum(), ws)
        res.append((rows.detach(), grads))
    assert torch.equal(res[0][0], res[1][0])
    for a, b in zip(res[0][1], res[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_grouped_rows_nan_weights_match_layered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN score makes weights NaN: every group then runs on all slots (same NaN pattern)."""
    z = torch.randn(1, 40, dtype=torch.float64)
    z[0, 7] = float("nan")
    _, alphas, _ = sn.network_forward(z, 0.1, "smooth")
    pos = torch.tensor([39, 38, 0])
    outs = []
    for grouped in (False, True):
        monkeypatch.setattr(tr, "GROUPED", grouped)
        outs.append(tr.network_rows(pos, 40, [a.detach() for a in alphas], 1 << 40))
    assert torch.equal(outs[0].isnan(), outs[1].isnan())
    torch.testing.assert_close(outs[0], outs[1], equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize(("threads", "min_width"), [(1, 4), (2, 4), (3, 1), (2, 1 << 30)])
def test_one_pass_backward_on_threads_matches_layered(
    threads: int, min_width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-pass backward (slots before every group kept, :func:`_numba.backward_rows`) on
    1-3 workers with several blocks each, and its two-level fallback (``min_width`` out of
    reach), against the layer-by-layer path: rows bit-identical, weight gradients equal up to
    summation order (float64)."""
    import softtorch.ordering.methods.sorting_network._grouped as gr

    torch.manual_seed(6)
    z = torch.randn(3, 77, dtype=torch.float64)
    _, alphas, _ = sn.network_forward(z, 0.07, "c1")
    pos = torch.tensor([76, 75, 74, 73, 0, 1, 2, 40, 41, 63, 64, 100, 127, 5, 9, 75])
    weights = torch.randn(3, pos.shape[0], 77, dtype=torch.float64)
    res = []
    for grouped in (False, True):
        with monkeypatch.context() as mp:
            mp.setattr(tr, "GROUPED", grouped)
            mp.setattr(gr, "THREADS", threads)
            mp.setattr(gr, "MIN_WIDTH", min_width)
            mp.setattr(gr, "SNAPSHOT_BUDGET", gr.group_plan(128, 5)["t0"].shape[0] * 3 * 128 * 8)
            mp.setattr(gr, "GROUP_BLOCK", 3 * 128 * 4)  # 4 rows per forward block
            ws = [a.detach().requires_grad_(True) for a in alphas]
            rows = tr.network_rows(pos, 77, ws, 1 << 12)
            grads = torch.autograd.grad((rows * weights).sum(), ws)
        res.append((rows.detach(), grads))
    assert torch.equal(res[0][0], res[1][0])
    for a, b in zip(res[0][1], res[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [65, 96, 128])
def test_padding_blocks_skipped_bit_identical(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of padding positions in the small stages are skipped (``dead_blocks``: some
    chunks for ``n`` not a power of two, none for ``n = m``); rows bit-identical and weight
    gradients equal to the layer-by-layer path (float64, small softness: saturated swaps)."""
    import numpy as np

    import softtorch.ordering.methods.sorting_network._grouped as gr

    plan = gr.group_plan(128, gr.GROUP_LAYERS)
    dead = gr.dead_blocks(plan, n, 128, True)
    skipped = sum(
        ((b ^ dead[g, 0]) >> dead[g, 1] << dead[g, 1]) >= n
        for g in range(dead.shape[0])
        for b in range(0, 128, int(plan["span"][g]))
    )
    assert (skipped > 0) == (n < 128)
    assert (gr.dead_blocks(plan, n, 128, False)[:, 2] == 128).all()
    torch.manual_seed(7)
    z = torch.randn(2, n, dtype=torch.float64)
    _, alphas, _ = sn.network_forward(z, 0.01, "smooth")
    pos = torch.tensor(np.r_[np.arange(n - 5, n), [0, 3, n // 2]])
    weights = torch.randn(2, pos.shape[0], n, dtype=torch.float64)
    res = []
    for grouped in (False, True):
        with monkeypatch.context() as mp:
            mp.setattr(tr, "GROUPED", grouped)
            ws = [a.detach().requires_grad_(True) for a in alphas]
            rows = tr.network_rows(pos, n, ws, 1 << 40)
            grads = torch.autograd.grad((rows * weights).sum(), ws)
        res.append((rows.detach(), grads))
    assert torch.equal(res[0][0], res[1][0])
    for a, b in zip(res[0][1], res[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
