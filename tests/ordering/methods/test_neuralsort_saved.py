"""NeuralSort's streamed autograd Functions keep their backward state as saved tensors.

Every tensor a backward needs (inputs, intermediates, the plan's sorted scores, sums and bands)
goes through ``ctx.save_for_backward``, only Python numbers stay on ``ctx``: saved-tensor hooks
see the state (``torch.utils.checkpoint`` non-reentrant and offloading work), and autograd frees
it after a backward pass without ``retain_graph`` while the output lives. The streamed paths are
forced on small inputs (``STREAM_MIN = 0``); each public route names the Functions it reaches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods import _stream

from ._saved import assert_checkpoint_matches, assert_freed_after_backward, graph_nodes

B, N, K = 2, 40, 5
KW: dict[str, Any] = {"method": "neuralsort", "softness": 0.3}
_W = torch.linspace(-1.0, 2.0, N, dtype=torch.float64)

#: Least number of ``(B, N)`` tensors each Function saves (inputs, intermediates, plan).
STATE: dict[str, int] = {
    "_ValuesBackward": 6,  # z, x, xs, sorted scores, permutation, sums (and y, the bands)
    "_RankBackward": 7,  # z, r, ok, den, sorted scores, permutation, sums (and the bands)
    "_PermRowsBackward": 4,  # z, sorted scores, permutation, sums (and the bands)
    "_BandCorrectionBackward": 1,  # the sorted scores
}


def _sort_values(a: torch.Tensor) -> torch.Tensor:
    return st.sort(a, return_indices=False, **KW).values


def _sort_indices(a: torch.Tensor) -> torch.Tensor:
    out = st.sort(a, descending=True, **KW)
    return out.values + (out.indices * _W).sum(-1)


def _argsort(a: torch.Tensor) -> torch.Tensor:
    return (st.argsort(a, **KW) * _W).sum(-1)


def _topk(a: torch.Tensor) -> torch.Tensor:
    out = st.topk(a, K, **KW)
    return out.values + (out.indices * _W).sum(-1)


def _rank(a: torch.Tensor) -> torch.Tensor:
    return st.rank(a, dim=-1, **KW)


def _sort_c0(a: torch.Tensor) -> torch.Tensor:
    return st.sort(a, mode="c0", return_indices=False, **KW).values


def _rank_c1(a: torch.Tensor) -> torch.Tensor:
    return st.rank(a, dim=-1, mode="c1", **KW)


ROUTES: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], set[str]]] = {
    "sort values": (_sort_values, {"_ValuesBackward"}),
    "sort indices": (_sort_indices, {"_ValuesBackward", "_PermRowsBackward"}),
    "argsort": (_argsort, {"_PermRowsBackward"}),
    "topk": (_topk, {"_ValuesBackward", "_PermRowsBackward"}),
    "rank": (_rank, {"_RankBackward"}),
    "sort c0": (_sort_c0, {"_BandCorrectionBackward"}),
    "rank c1": (_rank_c1, {"_BandCorrectionBackward"}),
}


@pytest.fixture(autouse=True)
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "STREAM_MIN", 0)


def _x() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, N, generator=g, dtype=torch.float64).requires_grad_(True)


def _attr_tensors(node: Any) -> Iterator[torch.Tensor]:
    """Tensors kept as ``ctx`` attributes, directly, in sequences or in objects' attributes."""
    for value in vars(node).values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            inner = vars(item).values() if hasattr(item, "__dict__") else ()
            yield from (t for t in (item, *inner) if isinstance(t, torch.Tensor))


@pytest.mark.parametrize("route", ROUTES)
def test_state_seen_by_saved_tensor_hooks(route: str) -> None:
    f, names = ROUTES[route]
    x = _x()
    packed: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = f(x)
    nodes = graph_nodes(y, STATE)
    assert {type(n).__name__ for n in nodes} == names
    need = 0
    for node in nodes:
        assert not list(_attr_tensors(node)), f"{type(node).__name__} keeps tensors on ctx"
        kept = [t for t in node.saved_tensors if t is not None]
        numel = sum(t.numel() for t in kept)
        assert numel >= STATE[type(node).__name__] * B * N
        need += numel
    assert sum(t.numel() for t in packed) >= need


@pytest.mark.parametrize("route", ROUTES)
def test_state_freed_after_backward(route: str) -> None:
    f, _ = ROUTES[route]
    x = _x()
    y = f(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    assert_freed_after_backward(y, x, g)


@pytest.mark.parametrize("route", ROUTES)
def test_checkpoint_matches(route: str) -> None:
    f, _ = ROUTES[route]
    x = _x()
    y = f(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=y.dtype)
    assert_checkpoint_matches(f, x, g, atol=1e-12)
