"""``mode="_hard"`` (softtorch 0.1.1's compatibility mode): every ordering op with every method
gives the values and indices of ``mode="hard"``, through the method's hard limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import softtorch as st
from softtorch.ordering import get_method

METHODS = ("softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network")
VALUE_ONLY = ("fast_soft_sort",)

# op name -> call(x, mode, method); results are tensors or (values, indices) tuples
OPS: dict[str, Callable[..., Any]] = {
    "argmax": lambda x, mo, me, **kw: st.argmax(x, dim=-1, mode=mo, method=me, **kw),
    "max": lambda x, mo, me, **kw: st.max(x, dim=-1, mode=mo, method=me, **kw),
    "argmin": lambda x, mo, me, **kw: st.argmin(x, dim=-1, mode=mo, method=me, **kw),
    "min": lambda x, mo, me, **kw: st.min(x, dim=-1, mode=mo, method=me, **kw),
    "quantile": lambda x, mo, me, **kw: st.quantile(
        x, torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=x.dtype), dim=-1, mode=mo, method=me, **kw
    ),
    "argquantile": lambda x, mo, me, **kw: st.argquantile(
        x, 0.3, dim=-1, mode=mo, method=me, **kw
    ),
    "rank": lambda x, mo, me, **kw: st.rank(x, dim=-1, mode=mo, method=me),
    "topk": lambda x, mo, me, **kw: st.topk(x, 3, dim=-1, mode=mo, method=me, **kw),
    "topk_smallest": lambda x, mo, me, **kw: st.topk(
        x, 2, dim=-1, mode=mo, method=me, largest=False, **kw
    ),
    "median": lambda x, mo, me, **kw: st.median(x, dim=-1, mode=mo, method=me, **kw),
    "argmedian": lambda x, mo, me, **kw: st.argmedian(x, dim=-1, mode=mo, method=me, **kw),
    "sort": lambda x, mo, me, **kw: st.sort(x, dim=-1, mode=mo, method=me, **kw),
    "sort_desc": lambda x, mo, me, **kw: st.sort(
        x, dim=-1, descending=True, mode=mo, method=me, **kw
    ),
    "argsort": lambda x, mo, me, **kw: st.argsort(x, dim=-1, mode=mo, method=me, **kw),
}
INDEX_OPS = ("argmax", "argmin", "argquantile", "argmedian", "argsort")


def _parts(out: Any) -> list[torch.Tensor | None]:
    return list(out) if isinstance(out, tuple) else [out]


def _data(dtype: torch.dtype) -> torch.Tensor:
    """Distinct values over many scales, including tiny and huge ones (no ties)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, generator=g, dtype=torch.float64)
    x[1] *= 1e-30
    x[2] *= 1e6
    x[3, :3] = torch.tensor([1e-30, 0.0, -1e-30])
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", list(OPS))
def test_hard_limit_equals_hard(op: str, method: str, dtype: torch.dtype) -> None:
    if method in VALUE_ONLY and op in INDEX_OPS:
        with pytest.raises(ValueError, match="soft indices"):
            OPS[op](_data(dtype), "_hard", method)
        return
    x = _data(dtype)
    hard, compat = OPS[op](x, "hard", method), OPS[op](x, "_hard", method)
    for h, s in zip(_parts(hard), _parts(compat)):
        if s is None:  # fast_soft_sort: no soft indices
            assert method in VALUE_ONLY
            continue
        assert s.dtype == h.dtype and s.shape == h.shape
        torch.testing.assert_close(s, h, rtol=1e-6, atol=0.0)
    index = _parts(compat)[-1] if op not in ("rank",) else None
    interpolated = op in ("quantile", "argquantile")  # two-hot rows (torch's interpolation)
    if index is not None and (op in INDEX_OPS or len(_parts(compat)) == 2) and not interpolated:
        # one-hot rows on the simplex
        assert bool(((index == 0) | (index == 1)).all())
        torch.testing.assert_close(index.sum(-1), torch.ones_like(index.sum(-1)))


@pytest.mark.parametrize("method", ["softsort", "neuralsort", "ot", "sorting_network"])
def test_hard_limit_log_probs_and_ties(method: str) -> None:
    """Log-probabilities are 0 / -inf; ties pick the first occurrence like torch."""
    x = torch.tensor([[3.0, 1.0, 3.0, -2.0, 1.0, -2.0]])
    lp = st.argmax(x, dim=-1, mode="_hard", method=method, return_log_probs=True)
    assert lp.tolist() == [[0.0] + [-float("inf")] * 5]
    assert st.argmin(x, dim=-1, mode="_hard", method=method).argmax(-1).item() == 3
    perm = st.argsort(x, dim=-1, mode="_hard", method=method)
    assert torch.equal(perm.argmax(-1), torch.argsort(x, dim=-1, stable=True))
    eps = st.argmax(x, dim=-1, mode="_hard", method=method, log_prob_eps=0.01)
    torch.testing.assert_close(eps.sum(-1), torch.ones(1))


def test_hard_limit_default_hook_is_exact_argsort() -> None:
    """The base-class hard permutation is the one-hot of the stable argsort."""
    z = torch.tensor([[0.3, -1.0, 0.3, 2.0]])
    for desc in (False, True):
        p = get_method("softsort").hard_permutation(z, descending=desc)
        order = torch.argsort(z, dim=-1, descending=desc, stable=True)
        assert torch.equal(p, torch.nn.functional.one_hot(order, 4).to(z.dtype))


def test_hard_limit_count() -> None:
    """Every op x method combination accepts "_hard" (value-only methods on value ops)."""
    x = _data(torch.float32)
    ops = ("argmax", "max", "argmin", "min", "quantile", "argquantile", "rank", "topk",
           "median", "argmedian", "sort", "argsort")
    accepted = 0
    for op in ops:
        for method in METHODS:
            try:
                OPS[op](x, "_hard", method)
                accepted += 1
            except ValueError as e:
                assert "soft indices" in str(e) and method in VALUE_ONLY
    assert accepted == 12 * 5 - 5  # fast_soft_sort has no soft indices (5 arg-ops)
