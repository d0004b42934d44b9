"""``topk``'s values beside its soft indices (``topk_permutation_with_values``).

The values are ``P_k @ x`` with ``P_k`` the first ``k`` descending rows; softsort / neuralsort
compute them without a ``k x n`` gradient for ``P_k`` (streamed values on large inputs), so a loss
on the values alone never runs the rows' backward, and a loss on both reads the rows' gradient
as autograd passes it (an expanded ``sum`` gradient stays expanded).
"""

from __future__ import annotations

import pytest
import torch

import softtorch as st
from softtorch.ordering.methods.neuralsort import _smooth as _neuralsort_stream
from softtorch.ordering.methods.softsort import _smooth as _softsort_stream

METHODS = ("softsort", "neuralsort")
#: (batch, n, k, dtype): a small dense case (float64) and one past the streaming threshold
#: (batch * k * n; float32, the dtype whose kernels the other large cases compile anyway)
SHAPES = ((3, 31, 5, torch.float64), (1, 4099, 1031, torch.float32))


@pytest.mark.parametrize("shape", SHAPES, ids=["dense", "stream"])
@pytest.mark.parametrize("method", METHODS)
def test_values_are_rows_times_x(method: str, shape: tuple) -> None:
    """Values and gradients equal ``indices @ x`` (an independent contraction)."""
    batch, n, k, dtype = shape
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(batch, n, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    for largest in (True, False):
        out = st.topk(x, k, dim=-1, softness=0.1, method=method, largest=largest)
        ref = (out.indices @ x.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(out.values, ref, **tol)
        w = torch.randn(batch, k, generator=gen, dtype=torch.float64).to(dtype)
        (g1,) = torch.autograd.grad((out.values * w).sum(), x, retain_graph=True)
        (g0,) = torch.autograd.grad((ref * w).sum(), x)
        torch.testing.assert_close(g1, g0, **tol)


@pytest.mark.parametrize("method", METHODS)
def test_values_loss_never_runs_the_rows_backward(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Large input: a loss on the values only does not differentiate the written rows."""

    def boom(*_: object) -> None:
        raise AssertionError("the rows' backward ran for a values-only loss")

    monkeypatch.setattr(_softsort_stream, "_perm_vjp", boom)
    monkeypatch.setattr(_neuralsort_stream, "_perm_rows_vjp", boom)
    x = torch.randn(1, 4099, generator=torch.Generator().manual_seed(3), requires_grad=True)
    out = st.topk(x, 1031, dim=-1, softness=0.1, method=method)
    (g,) = torch.autograd.grad(out.values.square().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(AssertionError, match="rows' backward"):
        torch.autograd.grad(out.indices.sum(), x)
