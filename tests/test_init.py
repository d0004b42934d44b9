"""Package hygiene of softtorch/__init__.py: ``__all__``, star imports, one name per thing, and
parameter docs in ``help()``."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pydoc
import types
from pathlib import Path

import pytest

import softtorch

BUILTIN_NAMES = ("abs", "all", "any", "max", "min", "round")

#: public functions whose docstrings live in the modules this file's owner maintains
OWNED = (
    "sigmoidal softrelu heaviside sign abs relu clamp round greater greater_equal less "
    "less_equal eq not_equal isclose logical_not logical_and logical_or logical_xor all any "
    "where take_along_dim take index_select narrow st grad_replace heaviside_st sign_st "
    "abs_st clamp_st relu_st round_st greater_st greater_equal_st less_st less_equal_st eq_st "
    "not_equal_st isclose_st positive_softness Softness"
).split()


def test_all_lists_existing_names_without_builtins() -> None:
    assert len(softtorch.__all__) == len(set(softtorch.__all__))
    for name in softtorch.__all__:
        assert hasattr(softtorch, name), name
    assert not set(BUILTIN_NAMES) & set(softtorch.__all__)
    for name in BUILTIN_NAMES:  # still available as attributes
        assert callable(getattr(softtorch, name))


def test_star_import_does_not_shadow_builtins() -> None:
    namespace: dict[str, object] = {}
    exec("from softtorch import *", namespace)  # noqa: S102
    shadowed = [n for n in namespace if n != "__builtins__" and hasattr(builtins, n)]
    assert shadowed == []
    assert "sort" in namespace and "relu" in namespace


def test_every_public_callable_is_exported_or_a_builtin_name() -> None:
    public = {
        n for n in dir(softtorch)
        if not n.startswith("_") and not isinstance(getattr(softtorch, n), types.ModuleType)
    }
    assert public - set(softtorch.__all__) == set(BUILTIN_NAMES)


def test_sigmoidal_is_one_thing() -> None:
    assert inspect.isfunction(softtorch.sigmoidal)
    assert softtorch.sigmoidal.__module__ == "softtorch._sigmoidal"
    # no module of the same name (not imported here: a development install of another checkout
    # could map it, and importing it would rebind the attribute)
    package = Path(softtorch.__file__).parent
    assert not (package / "sigmoidal.py").exists() and not (package / "sigmoidal").exists()
    kernel = importlib.import_module("softtorch._sigmoidal")

    assert kernel.sigmoidal is softtorch.sigmoidal


@pytest.mark.parametrize("name", OWNED)
def test_help_shows_args(name: str) -> None:
    obj = getattr(softtorch, name)
    text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    assert "Args:" in text, name
    doc = inspect.getdoc(obj)
    assert doc is not None and "Args:" in doc  # in the docstring itself, not added later
    if inspect.isfunction(obj):
        params = [
            p for p in inspect.signature(obj).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        args = doc.split("Args:", 1)[1]
        for p in params:
            assert f"{p.name}:" in args, (name, p.name)
