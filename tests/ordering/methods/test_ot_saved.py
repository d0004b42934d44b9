"""``method="ot"`` autograd Functions keep the state their backward pass needs as saved tensors.

Every tensor the backward / jvp of :class:`OTPlan`, :class:`FusedPlan`, :class:`OTContract` and
:class:`OTLogPlan` reads (scores, anchors ``y``, capacities ``b``, potentials, plan) goes through
``ctx.save_for_backward`` (none is a Python attribute of the graph node), so saved-tensor hooks
see it (``torch.utils.checkpoint`` non-reentrant, ``save_on_cpu``, offloading) and autograd
frees it after a backward pass without ``retain_graph`` while the output lives. Each route is
reached through the public API; the graph is checked to contain the expected Function.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import softtorch as st

from ._saved import assert_checkpoint_matches, assert_freed_after_backward, graph_nodes

F64 = torch.float64
_FUNCTIONS = ("OTPlanBackward", "FusedPlanBackward", "OTContractBackward", "OTLogPlanBackward")


def _flat(*ts: torch.Tensor) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _sort(mode: str, s: float, indices: bool = True, mask: torch.Tensor | None = None) -> Callable:
    def f(x: torch.Tensor) -> torch.Tensor:
        r = st.sort(x, method="ot", mode=mode, softness=s, return_indices=indices, mask=mask)
        return _flat(r.values, r.indices) if indices else r.values

    return f


def _rank(mode: str, s: float, mask: torch.Tensor | None = None) -> Callable:
    return lambda x: st.rank(x, dim=-1, method="ot", mode=mode, softness=s, mask=mask)


def _mask(n: int) -> torch.Tensor:
    return torch.stack([torch.arange(n) < (3 * n) // 4, torch.arange(n) >= n // 8])


def _grid(m: int) -> torch.Tensor:
    """The centred anchors of the sort / rank problems: ``linspace(0, 1, m) - 1/2``."""
    return torch.linspace(0.0, 1.0, m, dtype=F64) - 0.5


def _topk_grid(n: int, k: int) -> torch.Tensor:
    y = torch.tensor([(n - 1 - j) / (n - 1) for j in range(k)] + [(n - k - 1) / (2 * (n - 1))])
    return (y - y.mean()).to(F64)


# route -> (n, function of x, Functions its graph must contain, anchors kept or None)
ROUTES: dict[str, tuple[int, Callable, set[str], torch.Tensor | None]] = {
    "sort-smooth-fused": (256, _sort("smooth", 1.0), {"OTContract", "FusedPlan"}, _grid(256)),
    "sort-smooth-dense": (16, _sort("smooth", 0.1), {"OTPlan"}, _grid(16)),
    "sort-c1-band": (160, _sort("c1", 0.5), {"OTPlan"}, _grid(160)),
    "sort-c0-dense": (16, _sort("c0", 0.3), {"OTPlan"}, _grid(16)),
    "sort-c2-values": (256, _sort("c2", 0.5, indices=False), {"OTContract"}, _grid(256)),
    "rank-smooth": (256, _rank("smooth", 1.0), {"OTContract"}, _grid(256)),
    "rank-c1": (256, _rank("c1", 0.5), {"OTContract"}, _grid(256)),
    "quantile-smooth": (
        256,
        lambda x: st.quantile(x, 0.3, dim=-1, method="ot", softness=1.0),
        {"FusedPlan"},
        _grid(256),
    ),
    "topk-smooth": (
        16,
        lambda x: _flat(*st.topk(x, 3, method="ot", softness=0.2)),
        {"OTPlan"},
        _topk_grid(16, 3),
    ),
    "argsort-log": (
        16,
        lambda x: st.argsort(x, method="ot", softness=0.2, return_log_probs=True),
        {"OTLogPlan"},
        _grid(16),
    ),
    "masked-rank-smooth": (256, _rank("smooth", 1.0, _mask(256)), {"OTContract"}, None),
    "masked-sort-c1": (256, _sort("c1", 0.5, False, _mask(256)), {"OTContract"}, None),
    "masked-sort-c2-plan": (16, _sort("c2", 0.3, True, _mask(16)), {"OTPlan"}, None),
}


def _x(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randn(2, n, dtype=F64, generator=g).requires_grad_(True)


def _check_graph(out: torch.Tensor, want: set[str]) -> None:
    """The route reached the expected Functions and none of their nodes holds a tensor
    outside autograd's saved tensors."""
    nodes = graph_nodes(out, _FUNCTIONS)
    assert {type(n).__name__.removesuffix("Backward") for n in nodes} >= want
    for node in nodes:
        held = [k for k, v in vars(node).items() if isinstance(v, torch.Tensor)]
        assert not held, f"{type(node).__name__} keeps tensors on ctx: {held}"


@pytest.mark.parametrize("route", list(ROUTES))
def test_state_is_seen_by_saved_tensor_hooks(route: str) -> None:
    n, f, want, anchors = ROUTES[route]
    x = _x(n)
    vault: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> int:  # the graph keeps only a key: offloading in miniature
        vault.append(t)
        return len(vault) - 1

    with torch.autograd.graph.saved_tensors_hooks(pack, vault.__getitem__):
        out = f(x)
    _check_graph(out, want)
    if anchors is not None:  # the anchors (tiny constants) go through the hooks too
        assert any(t.shape == anchors.shape and torch.allclose(t, anchors) for t in vault)
    g = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, x, g)
    (ref,) = torch.autograd.grad(f(x), x, g)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("route", list(ROUTES))
def test_state_is_freed_after_backward(route: str) -> None:
    n, f, want, _ = ROUTES[route]
    x = _x(n)
    out = f(x)
    g = torch.randn_like(out)
    assert_freed_after_backward(out, x, g)
    _check_graph(out, want)  # nothing of the state outlives the backward pass on the nodes


@pytest.mark.parametrize("route", list(ROUTES))
def test_non_reentrant_checkpoint(route: str) -> None:
    n, f, want, _ = ROUTES[route]
    x = _x(n)
    g = torch.randn_like(f(x))
    ck = assert_checkpoint_matches(f, x, g, atol=1e-10)
    _check_graph(ck, want)
