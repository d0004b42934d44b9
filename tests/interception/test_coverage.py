"""Every registry entry, in every spelling (functions, methods, in-place, operators), is relaxed
inside soft_mode and on SoftTensor data, keeps torch's exact result in hard_mode, and the docs'
coverage table matches the registry."""

from __future__ import annotations

import operator
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import softtorch
from softtorch.interception import discrete, hard_mode, registry, soft, soft_mode
from softtorch.interception.tensor import SoftTensor

Args = tuple[tuple[Any, ...], dict[str, Any]]
Build = Callable[[torch.Tensor], Args]
S = 0.5  # softness: large enough that every relaxation visibly differs from torch


def _y(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1) * 0.7


def a(*args: Any, **kwargs: Any) -> Args:
    return args, kwargs


#: Example calls per op, in the handler's (torch's) signature; built inside the context under
#: test, so comparisons there give SoftBools and argmax etc. SoftIndices.
EXAMPLES: dict[str, list[Build]] = {
    "relu": [lambda x: a(x)],
    "relu6": [lambda x: a(x * 4 + 3)],
    "hardtanh": [lambda x: a(x, min_val=-0.5, max_val=0.5)],
    "clamp": [lambda x: a(x, -0.5, 0.5), lambda x: a(x, min=-0.2), lambda x: a(x, None, 0.3)],
    "clamp_min": [lambda x: a(x, -0.2)],
    "clamp_max": [lambda x: a(x, 0.3)],
    "abs": [lambda x: a(x)],
    "sign": [lambda x: a(x)],
    "heaviside": [lambda x: a(x, torch.tensor(0.5))],
    "round": [lambda x: a(x * 3), lambda x: a(x * 3, decimals=1)],
    "floor": [lambda x: a(x * 3)],
    "ceil": [lambda x: a(x * 3)],
    "trunc": [lambda x: a(x * 3)],
    "maximum": [lambda x: a(x, _y(x))],
    "minimum": [lambda x: a(x, _y(x))],
    "gt": [lambda x: a(x, _y(x)), lambda x: a(x, 0.1)],
    "ge": [lambda x: a(x, _y(x))],
    "lt": [lambda x: a(x, _y(x))],
    "le": [lambda x: a(x, _y(x))],
    "eq": [lambda x: a(x, _y(x)), lambda x: a(x.argmax(1), torch.tensor([0, 1, 2])),
           lambda x: a(x > 0, True)],
    "ne": [lambda x: a(x, _y(x)), lambda x: a(x.argmax(1), torch.tensor([0, 1, 2]))],
    "isclose": [lambda x: a(x, _y(x))],
    "logical_not": [lambda x: a(x > 0)],
    "logical_and": [lambda x: a(x > 0, x < 0.5)],
    "logical_or": [lambda x: a(x > 0, x < -0.5)],
    "logical_xor": [lambda x: a(x > 0, x < 0.5)],
    "all": [lambda x: a(x > -0.5), lambda x: a(x > -0.5, 1), lambda x: a(x > -1, dim=(0, 1))],
    "any": [lambda x: a(x > 0.5), lambda x: a(x > 0.5, 0, True)],
    "where": [lambda x: a(x > 0, x, _y(x)), lambda x: a(x > 0, x, 0.0)],
    "masked_fill": [lambda x: a(x, x > 0, 0.25)],
    "sort": [lambda x: a(x), lambda x: a(x, 0, True)],
    "argsort": [lambda x: a(x), lambda x: a(x, dim=0, descending=True)],
    "msort": [lambda x: a(x)],
    "topk": [lambda x: a(x, 2), lambda x: a(x, 2, 0, False)],
    "kthvalue": [lambda x: a(x, 2), lambda x: a(x, 2, 0, True)],
    "max": [lambda x: a(x), lambda x: a(x, 1), lambda x: a(x, 0, True), lambda x: a(x, _y(x))],
    "min": [lambda x: a(x), lambda x: a(x, 1), lambda x: a(x, 0, True), lambda x: a(x, _y(x))],
    "amax": [lambda x: a(x), lambda x: a(x, 1), lambda x: a(x, (0, 1), True)],
    "amin": [lambda x: a(x), lambda x: a(x, 0)],
    "argmax": [lambda x: a(x), lambda x: a(x, 1, True)],
    "argmin": [lambda x: a(x), lambda x: a(x, 0)],
    "median": [lambda x: a(x), lambda x: a(x, 1)],
    "nanmedian": [lambda x: a(x), lambda x: a(x, 1, True)],
    "quantile": [lambda x: a(x, 0.3), lambda x: a(x, torch.tensor([0.25, 0.75]), 1)],
    "nanquantile": [lambda x: a(x, 0.3), lambda x: a(x, 0.6, 0, interpolation="lower")],
    "cummax": [lambda x: a(x, 1)],
    "cummin": [lambda x: a(x, 0)],
    "max_pool1d": [lambda x: a(x.unsqueeze(0), 2), lambda x: a(x.unsqueeze(0), 3, 2, 1)],
    "max_pool1d_with_indices": [lambda x: a(x.unsqueeze(0), 2)],
    "max_pool2d": [lambda x: a(x.reshape(1, 1, 3, 4), 2),
                   lambda x: a(x.reshape(1, 1, 3, 4), 2, 1, 1, 1, True)],
    "max_pool2d_with_indices": [lambda x: a(x.reshape(1, 1, 3, 4), 2)],
    "max_pool3d": [lambda x: a(x.reshape(1, 1, 1, 3, 4), (1, 2, 2))],
    "max_pool3d_with_indices": [lambda x: a(x.reshape(1, 1, 1, 3, 4), (1, 2, 2))],
    "adaptive_max_pool1d": [lambda x: a(x.unsqueeze(0), 3)],
    "adaptive_max_pool1d_with_indices": [lambda x: a(x.unsqueeze(0), 3)],
    "adaptive_max_pool2d": [lambda x: a(x.reshape(1, 1, 3, 4), (2, 3))],
    "adaptive_max_pool2d_with_indices": [lambda x: a(x.reshape(1, 1, 3, 4), 2)],
    "adaptive_max_pool3d": [lambda x: a(x.reshape(1, 1, 1, 3, 4), (1, 2, 2))],
    "adaptive_max_pool3d_with_indices": [lambda x: a(x.reshape(1, 1, 1, 3, 4), (1, 2, 2))],
    "gather": [lambda x: a(x, 1, x.argsort(1))],
    "take_along_dim": [lambda x: a(x, x.argmax(1, keepdim=True), 1),
                       lambda x: a(x, x.argmax())],
    "index_select": [lambda x: a(x, 1, x[0].argsort())],
    "take": [lambda x: a(x, x.flatten().topk(3).indices)],
    "getitem": [lambda x: a(x, x[:, 0].argmax()), lambda x: a(x, (slice(None), x[0].argmax())),
                lambda x: a(x, (torch.arange(3), x.argmax(1)))],
    "one_hot": [lambda x: a(x.argmax(1)), lambda x: a(x.argmax(1), 6)],
    "bincount": [lambda x: a((x > 0).long().flatten(), minlength=2),
                 lambda x: a(x.argmax(1), minlength=4)],
    "scatter_add": [lambda x: a(torch.zeros(3, 4), 1, x.argmax(1, keepdim=True),
                                torch.ones(3, 1))],
    "index_add": [lambda x: a(torch.zeros(4, 2), 0, x.argmax(1), torch.ones(3, 2))],
    "scatter_reduce": [lambda x: a(torch.zeros(3, 4), 1, x.argmax(1, keepdim=True),
                                   torch.ones(3, 1), "sum")],
    "scatter": [lambda x: a(torch.zeros(3, 4), 1, x.argmax(1, keepdim=True), torch.ones(3, 1))],
    "setitem": [lambda x: a(torch.zeros(4), x[0].argsort(), torch.arange(4.0))],
    "index_put": [lambda x: a(torch.zeros(4), (x[0].argsort(),), torch.arange(4.0)),
                  lambda x: a(torch.ones(4), (x[0].argsort(),), torch.arange(4.0), True)],
    "embedding": [lambda x: a(x.argmax(1), torch.linspace(-1, 1, 8).reshape(4, 2))],
    "unique": [lambda x: a(x.flatten(), True, True)],
    "floor_divide": [lambda x: a(x * 3, 0.7)],
    "bucketize": [lambda x: a(x, torch.tensor([-0.5, 0.0, 0.5]))],
    "searchsorted": [lambda x: a(torch.tensor([-0.5, 0.0, 0.5]), x)],
    "histc": [lambda x: a(x, bins=4, min=-1.0, max=1.0)],
}  # fmt: skip

#: Spellings whose argument order differs from the op's handler.
SPELLING_EXAMPLES: dict[str, list[Build]] = {
    "Tensor.where": [lambda x: a(x, x > 0, _y(x))],
}

#: Results whose dtype intentionally differs from torch's (soft truth values, soft one-hots).
FLOAT_RESULT = {"comparison", "logic"}


def _base() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(3, 4, generator=g) * 0.8).requires_grad_()


def _cases() -> list[tuple[str, str, int]]:
    out = []
    for op in registry.REGISTRY:
        for sp in op.spellings:
            n = len(SPELLING_EXAMPLES.get(sp.path, EXAMPLES.get(op.name, [])))
            out += [(op.name, sp.path, i) for i in range(n)]
        out += [(op.name, label, i) for label, _ in op.operators
                for i in range(len(EXAMPLES.get(op.name, [])))]  # fmt: skip
    return out


def _lookup(name: str, path: str) -> tuple[registry.Op, Callable[..., Any], bool]:
    op = next(o for o in registry.REGISTRY if o.name == name)
    for sp in op.spellings:
        if sp.path == path:
            return op, sp.target, sp.inplace
    return op, dict(op.operators)[path], path.endswith("= n")


def _build(name: str, path: str, i: int, x: torch.Tensor, inplace: bool) -> Args:
    builds = SPELLING_EXAMPLES.get(path, EXAMPLES[name])
    args, kwargs = builds[i](x)
    if inplace:  # write into a fresh non-leaf copy
        args = (args[0].clone(), *args[1:])
    return args, kwargs


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    out = fn(*args, **kwargs)
    return args[0] if fn in (torch.Tensor.__setitem__, operator.setitem) else out


def _flat(out: Any) -> list[Any]:
    return list(out) if isinstance(out, tuple) else [out]


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(torch.Tensor) if isinstance(t, SoftTensor) else t


def _weighted(t: torch.Tensor) -> torch.Tensor:
    """A sum with unequal weights (plain sums of soft one-hots are constant)."""
    return (t * torch.linspace(0.5, 1.5, t.numel()).reshape(t.shape)).sum()


def test_every_op_has_examples() -> None:
    missing = [op.name for op in registry.REGISTRY if op.name not in EXAMPLES]
    assert not missing, f"add examples for {missing}"
    assert set(EXAMPLES) <= {op.name for op in registry.REGISTRY}
    for op in registry.REGISTRY:
        assert op.spellings, f"{op.name} has no spelling in this torch version"


@pytest.mark.parametrize("name,path,i", _cases())
def test_spelling_is_relaxed(name: str, path: str, i: int) -> None:
    op, fn, inplace = _lookup(name, path)
    x = _base()
    ref = _flat(_call(fn, *_build(name, path, i, x.detach(), inplace)))
    with hard_mode():
        exact = _flat(_call(fn, *_build(name, path, i, x, inplace)))
    with soft_mode("smooth", S):
        args, kwargs = _build(name, path, i, x, inplace)
        out = _flat(_call(fn, args, kwargs))
    if inplace and not args[0].is_floating_point():  # integer storage: torch's exact result
        assert all(torch.equal(_plain(o), r) for o, r in zip(out, ref))
        return
    relaxed = False
    loss = torch.zeros(())
    for r, h, o in zip(ref, exact, out):
        # hard mode: torch's exact result
        assert type(_plain(h)) is torch.Tensor and h.dtype == r.dtype and h.shape == r.shape
        assert torch.equal(h.detach(), r) or torch.allclose(h.detach(), r, equal_nan=True)
        # soft mode: same shape; values relaxed, exact results kept where torch has booleans / ints
        assert o.shape == r.shape, (o.shape, r.shape)
        if r.dtype == torch.bool:
            assert isinstance(o, SoftTensor) and o.is_soft_bool, type(o)
            assert torch.equal(o.hard(), r) and o.is_floating_point()
            relaxed |= bool(((_plain(o) > 0) & (_plain(o) < 1)).any())
        elif not r.is_floating_point():  # integers: torch's values, carrying a distribution
            assert torch.equal(_plain(o), r) and o.dtype == r.dtype
            relaxed |= isinstance(o, SoftTensor) and o.distribution is not None
        else:
            assert o.dtype == r.dtype
            relaxed |= not torch.allclose(_plain(o).double(), r.double(), atol=1e-6)
        if o.is_floating_point() and o.requires_grad:
            loss = loss + _weighted(_plain(o))
        if isinstance(o, SoftTensor) and o.soft_index is not None:
            loss = loss + _weighted(o.soft_index)
        elif isinstance(o, SoftTensor) and not o.is_floating_point() and o.distribution:
            loss = loss + _weighted(discrete.mean(o.distribution))
    assert relaxed, f"{path} was not relaxed"
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name,path,i", [c for c in _cases() if c[2] == 0])
def test_spelling_on_soft_tensor(name: str, path: str, i: int) -> None:
    op, fn, inplace = _lookup(name, path)
    x = _base()
    with soft_mode("smooth", S):
        expected = _flat(_call(fn, *_build(name, path, i, x, inplace)))
    xs = soft(x, softness=S)
    out = _flat(_call(fn, *_build(name, path, i, xs, inplace)))
    for e, o in zip(expected, out):
        # an in-place write into plain storage keeps the target's type
        assert (inplace and args_plain_target(name)) or (
            isinstance(o, SoftTensor) and o.config is xs.config)
        torch.testing.assert_close(_plain(o), _plain(e))


def args_plain_target(name: str) -> bool:
    """Examples whose in-place target is plain storage made by the example itself."""
    return name in ("scatter_add", "index_add", "scatter_reduce", "scatter", "index_put")


def test_registry_selection_by_name_and_group() -> None:
    x = torch.randn(5, requires_grad=True)
    with soft_mode(ops="sort"):
        assert not torch.equal(torch.sort(x).values.detach(), torch.sort(x.detach()).values)
        assert torch.equal(torch.relu(x), torch.relu(x.detach()))
    with soft_mode(exclude=["comparison", "relu"]):
        assert (x > 0).dtype == torch.bool
        assert torch.equal(F.relu(x), torch.relu(x.detach()))
        assert not torch.equal(torch.abs(x), x.detach().abs())
    with pytest.raises(ValueError, match="valid names are"):
        soft_mode(ops=["sortt"])


def test_docs_coverage_table_is_current() -> None:
    path = pathlib.Path(__file__).resolve().parents[2] / "docs" / "coverage.md"
    fix = "python -m softtorch.interception docs/coverage.md"
    assert path.read_text(encoding="utf-8") == registry.coverage_markdown(), f"run {fix}"


def test_public_exports() -> None:
    for name in ("soft_mode", "hard_mode", "current_mode", "SoftTensor", "soft", "registry"):
        assert hasattr(softtorch, name), name
    assert softtorch.registry.ops() is registry.REGISTRY
