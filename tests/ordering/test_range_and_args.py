"""Order-op outputs stay inside each slice's input range (fast_soft_sort on tiny and constant
values), ``topk``'s ``k`` rules (``check_k``; torch's 0-d semantics) and the ``log_prob_eps``
error wording of softtorch 0.1.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import softtorch as st

TINY = [-8e-31, 6e-31, 2e-31]
ROWS = {
    "tiny": [TINY + [1e-31], [0.0, 0.0, 0.0, 0.0], [1e-30, 1e-30, -1e-30, 3e-31]],
    "constant": [[0.1] * 4, [3.0] * 4, [-7.5] * 4],
    "mixed": [[1e6, -1e6, 1e-30, 0.0], [0.5, 0.5, 0.5, 0.25], [2.0, 2.0, -2.0, -2.0]],
}
OPS: dict[str, Callable[..., Any]] = {
    "sort": lambda x, **kw: st.sort(x, dim=-1, **kw).values,
    "max": lambda x, **kw: st.max(x, dim=-1, **kw).values,
    "min": lambda x, **kw: st.min(x, dim=-1, **kw).values,
    "topk": lambda x, **kw: st.topk(x, 2, dim=-1, **kw).values,
    "median": lambda x, **kw: st.median(x, dim=-1, **kw).values,
    "quantile": lambda x, **kw: st.quantile(x, torch.tensor([0.0, 0.3, 1.0]), dim=-1, **kw).T,
}


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("mode", ["c1", "c2", "smooth", "c0"])
@pytest.mark.parametrize("rows", list(ROWS))
def test_fast_soft_sort_values_inside_each_slice_range(
    rows: str, mode: str, dtype: torch.dtype, standardize: bool, backend: str
) -> None:
    x = torch.tensor(ROWS[rows], dtype=torch.float64).to(dtype)
    lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    kw = dict(mode=mode, method="fast_soft_sort", standardize=standardize,
              ot_kwargs={"backend": backend})
    for name, op in OPS.items():
        v = op(x, **kw).reshape(x.shape[0], -1)
        assert v.dtype == dtype
        assert bool(((v >= lo) & (v <= hi)).all()), (name, x, v)


def test_issue_examples_exactly_in_range() -> None:
    """The two calls of the report: max of tiny values / of a zero row is inside the range."""
    v = st.max(torch.tensor(TINY), mode="c1", method="fast_soft_sort")
    assert -8e-31 <= v.item() <= torch.tensor(6e-31).item()
    z = st.max(torch.zeros(3, 4), dim=-1, mode="c1", method="fast_soft_sort").values
    assert torch.equal(z, torch.zeros(3))


def test_range_clamp_keeps_gradients() -> None:
    """The clamp against rounding is straight-through: gradients of a constant row stay those
    of the unclamped soft sort (finite, summing to the sorted-value weights)."""
    x = torch.full((1, 4), 0.1, dtype=torch.float64, requires_grad=True)
    v = st.sort(x, dim=-1, mode="c1", method="fast_soft_sort").values
    assert torch.equal(v.detach(), x.detach())
    (g,) = torch.autograd.grad(v.sum(), x)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g.sum(), torch.tensor(4.0, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["c1", "c2"])
def test_pnorm_pav_singletons_and_tiny_offsets(mode: str) -> None:
    """The projection itself (no standardization) returns the inputs for tiny distinct values,
    up to rounding well below their size, inside [min w, max w]."""
    from softtorch.ordering.methods.permutahedron.fast_soft_sort import soft_sort

    for backend in ("numba", "torch"):
        z = torch.tensor([TINY], dtype=torch.float64)
        v = soft_sort(z, 0.1, mode, options={"backend": backend})
        torch.testing.assert_close(v, torch.sort(z).values, rtol=1e-6, atol=0.0)
        assert bool(((v >= z.min()) & (v <= z.max())).all())


# ---------------------------------------------------------------------------- topk's k


def test_topk_k0_hard_follows_torch() -> None:
    x0 = torch.tensor(2.0)
    ref = torch.topk(x0, 0)
    got = st.topk(x0, 0, mode="hard")
    assert torch.equal(got.values, ref.values)
    assert got.indices.tolist() == [1.0]  # one-hot of torch's index 0 over n = 1
    x = torch.tensor([[2.0, 1.0, 3.0]])
    got = st.topk(x, 0, dim=-1, mode="hard")
    assert got.values.shape == torch.topk(x, 0, dim=-1).values.shape == (1, 0)


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2", "_hard"])
def test_topk_k0_soft_rejected_with_published_phrase(mode: str) -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        st.topk(torch.tensor([2.0, 1.0, 3.0]), 0, mode=mode)
    with pytest.raises(ValueError, match="k must be positive"):
        st.topk(torch.tensor([2.0, 1.0, 3.0]), -1, mode="hard")
    with pytest.raises(ValueError, match="k must be in"):
        st.topk(torch.tensor([2.0, 1.0, 3.0]), 4, mode=mode)
    with pytest.raises(TypeError, match="k must be an int"):
        st.topk(torch.tensor([2.0, 1.0, 3.0]), 1.0, mode=mode)


# ---------------------------------------------------------------------------- log_prob_eps


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.0, float("nan"), 0.5])
def test_log_prob_eps_message_has_published_phrase(eps: float) -> None:
    x = torch.tensor([1.0, 2.0, 3.0])  # n = 3: 0.5 is valid in (0, 1) but not < 1/n
    with pytest.raises(ValueError, match=r"log_prob_eps must be in \(0, 1/n\)"):
        st.argmax(x, log_prob_eps=eps)
