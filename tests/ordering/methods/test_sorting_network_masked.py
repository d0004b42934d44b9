"""Masked sorting_network rows by the in-place kernels (numba layer groups, each batch row's
network depth passed to the kernel; torch ops as the fallback) against the batched autograd
composition (``torch.where`` per layer, :mod:`._counts`) and against the unmasked op on every
slice's real entries, in float64."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import softtorch as st
import softtorch.ordering.methods.sorting_network._counts as ct
import softtorch.ordering.methods.sorting_network._grouped as gr
import softtorch.ordering.methods.sorting_network._transposed as tr

TOL = {"rtol": 1e-6, "atol": 1e-6}
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


@contextmanager
def _path(mp: pytest.MonkeyPatch, kind: str) -> Iterator[None]:
    """``autograd``: the composition under autograd; ``numba`` / ``torch``: the in-place rows
    (layer groups on 2 workers / torch ops), small blocks so several run."""
    with mp.context() as m:
        m.setattr(ct, "ROWS_BUDGET", 1 << 40 if kind == "autograd" else 1)
        m.setattr(tr, "BACKEND", "torch" if kind == "torch" else "auto")
        m.setattr(tr, "FORWARD_BLOCK", 32 * 4)
        m.setattr(tr, "BACKWARD_BLOCK", 64)
        m.setattr(gr, "THREADS", 2)
        m.setattr(gr, "GROUP_BLOCK", 10 * 32 * 3)
        m.setattr(gr, "MIN_WIDTH", 2)
        yield


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([19, 2, 3, 5, 9, 16, 17, 1, 12, 0])
    n = 19
    x = torch.randn(lengths.shape[0], n, dtype=torch.float64, generator=g)
    m = torch.arange(n) < lengths[:, None]
    m = m.gather(-1, torch.argsort(torch.rand(m.shape, generator=g), dim=-1))
    return x, m


def _ops(mode: str) -> dict[str, object]:
    kw = {"softness": 0.3, "method": "sorting_network", "mode": mode, "dim": -1}
    return {
        "argsort": lambda a, **k: st.argsort(a, descending=True, **kw, **k),
        "topk": lambda a, **k: st.topk(a, 2, **kw, **k).indices,
        "topk_smallest": lambda a, **k: st.topk(a, 1, largest=False, **kw, **k).indices,
    }


def _run(op: object, x: torch.Tensor, m: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    xb = x.clone().requires_grad_()
    out = op(xb, mask=m)  # type: ignore[operator]
    (g,) = torch.autograd.grad((out * w).sum(), xb)
    return out.detach(), g


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_masked_kernel_rows_match_autograd_and_slices(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, m = _batch(11)
    for name, op in _ops(mode).items():
        with _path(monkeypatch, "autograd"):
            probe = op(x, mask=m)  # type: ignore[operator]
        w = torch.randn(probe.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
        with _path(monkeypatch, "autograd"):
            ref, gref = _run(op, x, m, w)
        for kind in ("numba", "torch"):
            with _path(monkeypatch, kind):
                out, g = _run(op, x, m, w)
            torch.testing.assert_close(out, ref, **TIGHT, equal_nan=True, msg=f"{name} {kind}")
            torch.testing.assert_close(g, gref, **TIGHT, msg=f"{name} {kind}")
            assert (g[~m] == 0).all()
        # every slice with enough real entries: the unmasked op on its real entries alone
        k = 2 if name == "topk" else 1
        for i in range(x.shape[0]):
            c = int(m[i].sum())
            if c < max(k, 2):
                continue
            xi = x[i, m[i]].unsqueeze(0).requires_grad_()
            oi = op(xi)[0]  # type: ignore[operator]
            rows = oi.shape[0]
            (gi,) = torch.autograd.grad((oi * w[i, :rows, m[i]]).sum(), xi)
            torch.testing.assert_close(out[i, :rows][:, m[i]], oi.detach(), **TOL)
            torch.testing.assert_close(g[i, m[i]], gi[0], **TOL)


def test_masked_kernel_rows_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel path runs (its autograd node) and keeps float32."""
    x, m = _batch(12)
    x = x.float().requires_grad_()
    with _path(monkeypatch, "numba"):
        out = st.argsort(x, dim=-1, mask=m, softness=0.3, method="sorting_network")
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    assert "_NetworkRowsBackward" in names
    assert out.dtype == torch.float32
