"""Every ordering line of the published README (softtorch 0.1.1) within 1e-3.

x = [-0.2, -1.0, 0.3, 1.0]; default softness 0.1, mode smooth, standardize=True.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import softtorch as st
from softtorch.ordering._base import _REGISTRY

X = torch.tensor([-0.2, -1.0, 0.3, 1.0])
TOL = 1e-3
ARGSORT = [
    [0.1494, 0.8496, 0.0009, 0.0000],
    [0.8009, 0.0491, 0.1498, 0.0002],
    [0.1418, 0.0001, 0.7899, 0.0681],
    [0.0011, 0.0000, 0.1784, 0.8205],
]


def _have(method: str) -> bool:
    return method in _REGISTRY


CASES: dict[str, tuple[Callable[[], torch.Tensor], object]] = {
    # tensor-valued operators
    "max hard": (lambda: st.max(X, mode="hard"), 1.0),
    "max soft": (lambda: st.max(X), 0.8874),
    "min hard": (lambda: st.min(X, mode="hard"), -1.0),
    "min soft": (lambda: st.min(X), -0.8996),
    "sort hard": (lambda: st.sort(X, mode="hard").values, [-1.0, -0.2, 0.3, 1.0]),
    "sort soft": (lambda: st.sort(X).values, [-0.8792, -0.1641, 0.2767, 0.8738]),
    "quantile hard": (lambda: st.quantile(X, q=0.2, mode="hard"), -0.52),
    "quantile soft": (lambda: st.quantile(X, q=0.2), -0.4501),
    "median hard": (lambda: st.median(X, mode="hard"), -0.2),
    "median soft": (lambda: st.median(X), -0.1641),
    "topk hard": (lambda: st.topk(X, k=3, mode="hard").values, [1.0, 0.3, -0.2]),
    "topk soft": (lambda: st.topk(X, k=3).values, [0.8738, 0.2767, -0.1641]),
    "rank hard": (lambda: st.rank(X, mode="hard", descending=False), [2.0, 1.0, 3.0, 4.0]),
    "rank soft": (lambda: st.rank(X, descending=False), [1.9950, 1.0548, 3.0239, 3.9228]),
    # sort: methods
    "sort softsort": (
        lambda: st.sort(X, method="softsort", softness=0.1).values,
        [-0.8996, -0.1705, 0.2847, 0.8874],
    ),
    "sort neuralsort": (
        lambda: st.sort(X, method="neuralsort", softness=0.1).values,
        [-0.8792, -0.1641, 0.2767, 0.8738],
    ),
    "sort fast_soft_sort": (
        lambda: st.sort(X, method="fast_soft_sort", softness=2.0).values,
        [-0.7462, -0.1971, 0.2938, 0.8569],
    ),
    "sort ot": (
        lambda: st.sort(X, method="ot", softness=0.1).values,
        [-0.7324, -0.2396, 0.3286, 0.7434],
    ),
    "sort sorting_network": (
        lambda: st.sort(X, method="sorting_network", softness=0.1).values,
        [-0.7999, -0.2672, 0.3847, 0.7863],
    ),
    # sort: modes (neuralsort, softness 0.5)
    "sort mode hard": (
        lambda: st.sort(X, softness=0.5, mode="hard").values,
        [-1.0, -0.2, 0.3, 1.0],
    ),
    "sort mode smooth": (
        lambda: st.sort(X, softness=0.5, mode="smooth").values,
        [-0.6057, -0.1997, 0.2729, 0.6281],
    ),
    "sort mode c0": (
        lambda: st.sort(X, softness=0.5, mode="c0").values,
        [-1.0000, -0.6313, 0.6525, 0.9824],
    ),
    "sort mode c1": (
        lambda: st.sort(X, softness=0.5, mode="c1").values,
        [-0.9982, -0.5432, 0.5814, 0.9837],
    ),
    "sort mode c2": (
        lambda: st.sort(X, softness=0.5, mode="c2").values,
        [-0.9978, -0.4905, 0.5425, 0.9903],
    ),
    # operators returning indices
    "argmax hard": (lambda: st.argmax(X, mode="hard"), [0.0, 0.0, 0.0, 1.0]),
    "argmax soft": (lambda: st.argmax(X), [0.0215, 0.0022, 0.1176, 0.8586]),
    "argmin hard": (lambda: st.argmin(X, mode="hard"), [0.0, 1.0, 0.0, 0.0]),
    "argmin soft": (lambda: st.argmin(X), [0.0922, 0.8885, 0.0169, 0.0023]),
    "argquantile hard": (lambda: st.argquantile(X, q=0.2, mode="hard"), [0.6, 0.4, 0.0, 0.0]),
    "argquantile soft": (lambda: st.argquantile(X, q=0.2), [0.5403, 0.3693, 0.0902, 0.0001]),
    "argmedian hard": (lambda: st.median(X, mode="hard", dim=0).indices, [1.0, 0.0, 0.0, 0.0]),
    "argmedian soft": (lambda: st.median(X, dim=0).indices, [0.8009, 0.0491, 0.1498, 0.0002]),
    "argmedian fn": (lambda: st.argmedian(X), [0.8009, 0.0491, 0.1498, 0.0002]),
    "argsort hard": (
        lambda: st.argsort(X, mode="hard"),
        [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
    ),
    "argsort soft": (lambda: st.argsort(X), ARGSORT),
    "argtopk hard": (
        lambda: st.topk(X, k=3, mode="hard").indices,
        [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]],
    ),
    "argtopk soft": (lambda: st.topk(X, k=3).indices, ARGSORT[::-1][:3]),
    # consistency lines implied by the README (same numbers through other ops)
    "max softsort = last softsort value": (lambda: st.max(X, method="softsort"), 0.8874),
    "quantile argquantile pair": (
        lambda: st.quantile(X, q=0.2, return_argquantile=True)[1],
        [0.5403, 0.3693, 0.0902, 0.0001],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_readme_line(name: str) -> None:
    for method in ("fast_soft_sort", "ot"):
        if method in name and not _have(method):
            pytest.skip(f"softtorch.ordering.{method} is not installed")
    fn, want = CASES[name]
    got = fn()
    expected = torch.tensor(want, dtype=got.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert (got - expected).abs().max() <= TOL, f"{name}: {got} vs README {expected}"


def test_hard_values_are_torch_exact() -> None:
    assert torch.equal(st.max(X, mode="hard"), torch.max(X))
    assert torch.equal(st.min(X, mode="hard"), torch.min(X))
    assert torch.equal(st.sort(X, mode="hard").values, torch.sort(X).values)
    assert torch.equal(st.quantile(X, q=0.2, mode="hard"), torch.quantile(X, q=0.2))
    assert torch.equal(st.median(X, mode="hard"), torch.median(X))
    assert torch.equal(st.topk(X, k=3, mode="hard").values, torch.topk(X, k=3).values)
