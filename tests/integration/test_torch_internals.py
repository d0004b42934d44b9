"""The private torch internals softtorch uses still exist and still mean what we rely on.

Each use in the package carries the comment "torch internal, checked on torch 2.13.0". A new torch
that renames or removes one makes these tests fail loudly here, instead of a silent change of
behaviour (most uses sit in fast-path eligibility checks that would otherwise just fall back).
:func:`test_every_use_is_listed` keeps this list complete: a new private internal in the package
must be added below.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch
import torch.autograd.forward_ad as fwAD

ROOT = Path(__file__).resolve().parents[2]

#: Every private torch attribute the package uses, as (module, attribute).
INTERNALS: tuple[tuple[str, str], ...] = (
    ("torch._C", "_are_functorch_transforms_active"),
    ("torch._C", "DisableTorchFunction"),
    ("torch._C", "DisableTorchFunctionSubclass"),
    ("torch._C", "_len_torch_dispatch_stack"),
    ("torch._C._functorch", "is_functorch_wrapped_tensor"),
    ("torch._C._functorch", "is_batchedtensor"),
    ("torch._C._functorch", "get_unwrapped"),
    ("torch", "_assert_async"),
    ("torch._C._functorch", "maybe_current_level"),
    ("torch._C._functorch", "peek_interpreter_stack"),
    ("torch._C._functorch", "TransformType"),
    ("torch._functorch.pyfunctorch", "retrieve_all_functorch_interpreters"),
    ("torch._subclasses.fake_tensor", "is_fake"),
    ("torch._dynamo", "is_compiling"),
    ("torch.autograd.forward_ad", "_current_level"),
)


@pytest.mark.parametrize(("module", "attr"), INTERNALS, ids=[f"{m}.{a}" for m, a in INTERNALS])
def test_internal_exists(module: str, attr: str) -> None:
    assert hasattr(importlib.import_module(module), attr), (
        f"{module}.{attr} is gone in torch {torch.__version__}; softtorch uses it (checked on "
        "torch 2.13.0): find its replacement before raising the torch bound"
    )


def test_internals_behave_as_relied_on() -> None:
    """The values the package branches on, outside and inside a transform."""
    from torch._C import _functorch as F
    from torch._subclasses.fake_tensor import FakeTensorMode, is_fake

    x = torch.ones(3)
    assert not F.is_functorch_wrapped_tensor(x) and not F.is_batchedtensor(x)
    assert F.maybe_current_level() is None and F.peek_interpreter_stack() is None
    assert not torch._C._are_functorch_transforms_active()
    assert fwAD._current_level == -1
    assert torch._C._len_torch_dispatch_stack() == 0
    assert not is_fake(x)
    with FakeTensorMode() as mode:
        assert is_fake(mode.from_tensor(x))

    def inside(t: torch.Tensor) -> torch.Tensor:
        assert F.is_functorch_wrapped_tensor(t) and F.is_batchedtensor(t)
        assert F.maybe_current_level() is not None and F.peek_interpreter_stack() is not None
        assert torch._C._are_functorch_transforms_active()
        return t

    torch.func.vmap(inside)(torch.ones(2, 3))
    with fwAD.dual_level():
        assert fwAD._current_level >= 0

    def jvp_inside(t: torch.Tensor) -> torch.Tensor:
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

        keys = [i.key() for i in retrieve_all_functorch_interpreters()]
        assert F.TransformType.Jvp in keys
        return t

    torch.func.jvp(jvp_inside, (x,), (x,))
    with torch._C.DisableTorchFunctionSubclass(), torch._C.DisableTorchFunction():
        assert torch.add(x, 1).sum().item() == 6.0


def test_every_use_is_listed() -> None:
    """Every ``torch._x`` / ``torch._C._y`` / ``forward_ad._z`` name in the package's code (not
    its comments) is in :data:`INTERNALS` (``torch._check`` is public API)."""
    code = "\n".join(
        line.split("#")[0]
        for f in (ROOT / "softtorch").rglob("*.py")
        for line in f.read_text().splitlines()
    )
    used = set(re.findall(r"torch\.(_[A-Za-z]\w*(?:\.\w+)*)", code))
    fwd = re.findall(r"(?:forward_ad|_fwAD)[.,] ?\"?(_\w+)", code)
    used |= {f"autograd.forward_ad.{a}" for a in fwd}
    listed = {f"{m}.{a}".removeprefix("torch.") for m, a in INTERNALS}
    missing = sorted(
        u
        for u in used - {"_check"}
        if u not in listed and not any(p.startswith(u + ".") for p in listed)
    )
    assert not missing, f"private torch internals used but not listed in INTERNALS: {missing}"
