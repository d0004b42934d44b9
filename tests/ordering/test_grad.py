"""Gradients of every ordering op x method x soft mode, checked in float64.

``softsort``, ``neuralsort``, ``sorting_network`` and ``fast_soft_sort`` use
``torch.autograd.gradcheck``; ``ot`` (implicit differentiation of an iterative solver) is compared
with central finite differences along random directions within 5e-2 relative.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

import softtorch as st

OPTIONAL = ["fast_soft_sort", "ot"]
# no "perturbed": Monte-Carlo gradients are not gradcheckable (see
# tests/ordering/methods/test_perturbed_method.py: closed forms and unbiasedness)
METHODS = ["softsort", "neuralsort", "sorting_network", *OPTIONAL]
MODES = ["smooth", "c0", "c1", "c2"]
Q = torch.tensor([0.3, 0.75], dtype=torch.float64)


def _cat(*ts: torch.Tensor | None) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts if t is not None])


#: name -> (fn(x, **kw) -> tensor, needs soft indices)
OPS: dict[str, tuple[Callable[..., torch.Tensor], bool]] = {
    "sort": (lambda x, **kw: _cat(*st.sort(x, **kw)), False),
    "sort_values_only": (
        lambda x, **kw: st.sort(x, descending=True, return_indices=False, **kw).values,
        False,
    ),
    "argsort": (lambda x, **kw: st.argsort(x, dim=0, **kw), True),
    "argmax": (lambda x, **kw: st.argmax(x, dim=1, **kw), True),
    "argmin": (lambda x, **kw: st.argmin(x, **kw), True),
    "max": (lambda x, **kw: _cat(*st.max(x, dim=1, **kw)), False),
    "min_flat": (lambda x, **kw: st.min(x, **kw), False),
    "topk": (lambda x, **kw: _cat(*st.topk(x, 3, dim=1, **kw)), False),
    "rank": (lambda x, **kw: st.rank(x, dim=1, **kw), False),
    "rank_asc_flat": (lambda x, **kw: st.rank(x, descending=False, **kw), False),
    "quantile": (lambda x, **kw: st.quantile(x, Q, dim=1, **kw), False),
    "argquantile": (lambda x, **kw: st.argquantile(x, 0.4, dim=1, **kw), True),
    "median": (lambda x, **kw: _cat(*st.median(x, dim=1, **kw)), False),
    "argmedian": (lambda x, **kw: st.argmedian(x, **kw), True),
}


def _x() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, generator=g, dtype=torch.float64)


def _directional_fd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(1)
    xr = x.clone().requires_grad_(True)
    out = fn(xr)
    for _ in range(3):
        v = torch.randn(x.shape, generator=g, dtype=x.dtype)
        u = torch.randn(out.shape, generator=g, dtype=x.dtype)
        (grad,) = torch.autograd.grad(out, xr, u, retain_graph=True)
        analytic = (grad * v).sum()
        h = 1e-5
        with torch.no_grad():
            numeric = ((fn(x + h * v) - fn(x - h * v)) * u).sum() / (2 * h)
        scale = max(abs(float(numeric)), abs(float(analytic)), 1e-3)
        assert abs(float(analytic - numeric)) <= 5e-2 * scale, (float(analytic), float(numeric))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op", list(OPS))
def test_gradients(op: str, method: str, mode: str) -> None:
    fn, needs_index = OPS[op]
    if needs_index and method == "fast_soft_sort":
        pytest.skip("fast_soft_sort has no soft indices")

    def f(x: torch.Tensor) -> torch.Tensor:
        return fn(x, softness=0.3, mode=mode, method=method)

    x = _x()
    if method == "ot":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _directional_fd(f, x)
        return
    assert gradcheck(f, (x.requires_grad_(True),), atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("method", ["softsort", "neuralsort", "sorting_network"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_without_standardize_and_softness_grad(method: str, mode: str) -> None:
    x = _x().requires_grad_(True)
    s = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        srt = st.sort(x, softness=s, mode=mode, method=method, standardize=False)
        return _cat(srt.values, st.rank(x, dim=1, softness=s, mode=mode, method=method))

    assert gradcheck(f, (x, s), atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_double_backward_small_inputs(method: str) -> None:
    x = _x().requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        lambda t: st.sort(t, method=method, softness=0.5).values, (x,), fast_mode=True
    )
