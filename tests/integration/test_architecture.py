"""The package's import structure: every module imports on its own, and the import graph has no
cycles.

**Import graph.** A static scan (``ast``) of every module of ``softtorch``: an edge ``a -> b`` for
each ``import`` / ``from ... import`` that names module ``b``, at any depth (an import deferred
into a function body still counts: it only hides the cycle), except inside ``if TYPE_CHECKING:``
blocks. A module's imports of its own ancestor packages are not edges (importing a submodule
imports its parents anyway, and a package importing its submodules is the normal direction). A
cycle is a strongly connected component with more than one module.

**Imports alone.** Importing any ``softtorch.x.y`` first imports ``softtorch`` and every package
on the way, so a module imports "alone" exactly as in a fresh interpreter: each module is
imported in a fresh child process (forked from one that has imported torch but no softtorch).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "softtorch"
#: The interception layer still has a cycle (registry <-> handlers); issue 16 removes it.
INTERCEPTION = "softtorch.interception"


def module_sources(pkg: Path = PKG) -> dict[str, tuple[str, bool]]:
    """``{module name: (source, is_package)}`` for every ``.py`` file under ``pkg``."""
    out = {}
    for f in sorted(pkg.rglob("*.py")):
        parts = list(f.relative_to(pkg.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (f.read_text(), is_pkg)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (every depth, see the module docstring)."""
    graph: dict[str, set[str]] = {}
    for name, (src, is_pkg) in sources.items():
        tree = ast.parse(src)
        skip = _type_checking_nodes(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in sources)
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_scanner_finds_deferred_and_relative_cycles() -> None:
    """The scan itself: a cycle through a function-level ``from . import`` is found, a
    ``TYPE_CHECKING`` import and a child -> parent-package import are not edges."""
    sources = {
        "p": ("from . import a\n", True),
        "p.a": ("from .b import f\n", False),
        "p.b": ("def f():\n    from . import a\n", False),
        "p.c": ("import typing\nif typing.TYPE_CHECKING:\n    from . import d\n", False),
        "p.d": ("from .c import x\nfrom . import a\n", False),
        "p.sub": ("from . import e\n", True),
        "p.sub.e": ("from .. import sub\nfrom ..c import y\n", False),
    }
    graph = import_graph(sources)
    assert graph["p.b"] == {"p.a"}
    assert graph["p.c"] == set()
    assert graph["p.sub.e"] == {"p.c"}
    assert cycles(graph) == [["p.a", "p.b"]]


def test_no_import_cycles() -> None:
    found = cycles(import_graph(module_sources()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


_CHILD = r"""
import importlib, json, os, sys, traceback
import torch  # noqa: F401  (loaded once in the parent: the children start without softtorch)
names = json.loads(sys.argv[1])
failures = {}
for name in names:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            msg = b""
        except BaseException:
            msg = traceback.format_exc().encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    if text or status != 0:
        failures[name] = text or f"child exited with status {status}"
print(json.dumps(failures))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_each_module_imports_alone() -> None:
    names = [n for n in module_sources() if not n.endswith(".__main__")]
    assert "softtorch.ordering.methods.permutahedron._pav_numba" in names
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
