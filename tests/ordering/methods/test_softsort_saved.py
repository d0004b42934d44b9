"""SoftSort's streamed autograd functions keep what backward needs as saved tensors.

Tensors kept as plain ``ctx`` attributes would outlive the backward pass while the output lives
and be invisible to saved-tensor hooks (``torch.utils.checkpoint``, ``save_on_cpu``). For each
function (reached through the public ops, the streamed path forced with ``STREAM_MIN = 0``):
the hooks see every saved tensor and ``ctx`` holds none, a backward without ``retain_graph``
frees them (a second one raises) and gives the retained result exactly, and non-reentrant
checkpointing / CPU offloading reproduce value and gradient exactly.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods import _stream
from softtorch.ordering.methods.softsort import _sparse as cs

from ._saved import assert_checkpoint_matches, graph_nodes

KW: dict[str, Any] = {"method": "softsort", "softness": 0.3}

#: case -> (op, node name, saved tensors, backend): saved = inputs kept + kernel state.
CASES: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str, int, str]] = {
    "laplace_sort": (
        lambda x: st.sort(x, mode="smooth", return_indices=False, **KW).values,
        "_LaplaceSmoothBackward", 4, "auto",
    ),
    "laplace_rank": (lambda x: st.rank(x, dim=-1, mode="smooth", **KW), "_LaplaceSmoothBackward",
                     4, "auto"),
    "window_sort": (
        lambda x: st.sort(x, mode="c1", return_indices=False, **KW).values,
        "_WindowSmoothBackward", 6, "auto",
    ),
    "window_rank": (lambda x: st.rank(x, dim=-1, mode="c2", **KW), "_WindowSmoothBackward", 6,
                    "auto"),
    "window_rank_torch": (lambda x: st.rank(x, dim=-1, mode="c0", **KW), "_WindowSmoothBackward",
                          2, "torch"),
    "rows_argsort": (lambda x: st.argsort(x, mode="c0", **KW), "_WindowRowsBackward", 6, "auto"),
    "rows_topk": (lambda x: st.topk(x, 5, dim=-1, mode="c2", **KW).indices, "_WindowRowsBackward",
                  6, "auto"),
    "rows_topk_torch": (lambda x: st.topk(x, 5, dim=-1, mode="c1", **KW).indices,
                        "_WindowRowsBackward", 3, "torch"),
    "perm_argsort": (lambda x: st.argsort(x, mode="smooth", **KW), "_PermBackward", 3, "auto"),
}  # fmt: skip


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:  # type: ignore[misc]
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)
    fn, name, saved, backend = CASES[request.param]
    cs.set_backend(backend)
    yield fn, name, saved
    cs.set_backend("auto")


def _x() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 60, generator=g, dtype=torch.float64)
    x[:, 7] = x[:, 20]  # a tie
    return x.requires_grad_(True)


def _node(y: torch.Tensor, name: str) -> Any:
    """The graph node of the function ``name`` (asserts the op routed through it)."""
    nodes = graph_nodes(y, {name})
    assert nodes, f"{name} not in the graph"
    return nodes[0]


def _tensors(v: Any) -> list[torch.Tensor]:
    """The tensors in ``v`` (a tensor, or nested tuples / lists)."""
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (tuple, list)):
        return [t for e in v for t in _tensors(e)]
    return []


def test_state_seen_by_hooks_and_not_on_ctx(case: Any) -> None:
    fn, name, n_saved = case
    packed: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed.append(t)
        return t

    x = _x()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    node = _node(y, name)
    assert not [k for k, v in vars(node).items() if _tensors(v)]
    saved = node.saved_tensors
    assert len(saved) == n_saved
    ptrs = {t.data_ptr() for t in packed}
    assert all(t.data_ptr() in ptrs for t in saved)


def test_backward_frees_the_state(case: Any) -> None:
    fn, name, _ = case
    x = _x()
    y = fn(x)
    node = _node(y, name)
    kept = [*node.saved_tensors, *_tensors(list(vars(node).values()))]
    refs = [weakref.ref(t) for t in kept]
    del node, kept
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (want,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (got,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(y, x, g)
    gc.collect()
    assert all(r() is None for r in refs)  # freed while the output ``y`` lives


def test_checkpoint_and_offload_match(case: Any) -> None:
    fn, _, _ = case
    x = _x()
    y = fn(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=y.dtype)
    assert_checkpoint_matches(fn, x, g, atol=0.0)
    (want,) = torch.autograd.grad(fn(x), x, g)
    with torch.autograd.graph.save_on_cpu():
        off = fn(x)
    torch.testing.assert_close(torch.autograd.grad(off, x, g)[0], want, rtol=0, atol=0)
