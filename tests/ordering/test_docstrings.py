"""Every public ordering op documents every parameter in its runtime docstring (``help()``)."""

from __future__ import annotations

import inspect

import pytest

import softtorch as st
from softtorch.ordering import ops
from softtorch.ordering._docs import PARAMS

OPS = [name for name in ops.__all__ if callable(getattr(ops, name)) and name != "SoftIndex"]


@pytest.mark.parametrize("name", OPS)
def test_help_lists_every_parameter(name: str) -> None:
    fn = getattr(st, name)
    doc = fn.__doc__ or ""
    args = doc[doc.index("Args:") :]
    for p in inspect.signature(fn).parameters:
        assert f"\n    {p}: " in args, f"{name}: parameter {p!r} is not documented"
    # the math / description comes first, Returns and examples after the parameters
    assert doc.index("Args:") > 40
    if "Returns:" in doc:
        assert doc.index("Returns:") > doc.index("Args:")


def test_index_only_ops_list_only_index_methods() -> None:
    assert "fast_soft_sort" not in st.argsort.__doc__.split("method:")[1].split("\n    ")[0]
    assert "fast_soft_sort" in st.sort.__doc__.split("method:")[1]
    assert set(PARAMS) >= {"x", "softness", "mode", "method", "standardize", "ot_kwargs"}
