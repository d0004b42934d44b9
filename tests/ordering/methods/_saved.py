"""Shared checks of the ``test_*_saved.py`` files: an autograd Function keeps its backward state
as saved tensors (seen by saved-tensor hooks, freed by the backward pass, recomputed under
non-reentrant checkpointing)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pytest
import torch


def graph_nodes(out: torch.Tensor, names: Collection[str]) -> list[torch.autograd.graph.Node]:
    """The nodes behind ``out`` whose type name is in ``names`` (each once)."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ in names:
            found.append(node)
        stack.extend(f for f, _ in node.next_functions)
    return found


def assert_freed_after_backward(out: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> None:
    """Two backward passes with ``retain_graph`` give the same gradient; after one without it a
    further backward raises torch's "second time" error (the saved state is gone)."""
    (want,) = torch.autograd.grad(out, x, g, retain_graph=True)
    (got,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(out, x, g)


def assert_checkpoint_matches(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, g: torch.Tensor, atol: float
) -> torch.Tensor:
    """``torch.utils.checkpoint`` (non-reentrant) of ``f`` gives ``f``'s value and gradient;
    returns the checkpointed output."""
    ref = f(x)
    (want,) = torch.autograd.grad(ref, x, g)
    ck = torch.utils.checkpoint.checkpoint(f, x, use_reentrant=False)
    torch.testing.assert_close(ck, ref.detach(), rtol=0, atol=atol)
    (got,) = torch.autograd.grad(ck, x, g)
    torch.testing.assert_close(got, want, rtol=0, atol=atol)
    return ck
