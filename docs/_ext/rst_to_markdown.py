"""Griffe extension: turn the reStructuredText bits of softtorch's docstrings into Markdown.

The package's docstrings are Google style with a few RST constructs that read well in ``help()``:

* ``:math:`x^2``` (inline math) becomes ``$x^2$`` (rendered by pymdownx.arithmatex + MathJax);
* a ``.. math::`` directive (with its indented continuation lines) becomes a ``$$ ... $$`` block;
* ``:func:`~softtorch.abs``` / ``:mod:`` / ``:class:`` / ``:meth:`` / ``:attr:`` roles become inline
  code (the target's last component when written with ``~``);
* an RST "simple table" (columns delimited by ``====  ====`` borders) becomes a Markdown table;
* a doctest block (``>>>`` lines and the output lines after them) outside a fenced block becomes a
  fenced ``pycon`` code block, so that it renders as code also under an ``Example:`` admonition.

Docstrings are rewritten once, when Griffe loads an object and before they are parsed. A function
whose runtime docstring has an ``Args:`` section that the source text lacks (the ordering ops get
theirs from the table in ``softtorch/ordering/_docs.py`` at import) is documented with the runtime
docstring, so the page shows what ``help()`` shows. Other public functions whose docstring
documents no parameters get an ``Args:`` section generated from the shared parameter glossary in
``param_glossary.py``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))
#: The checkout's package first (as mkdocstrings' ``paths: [.]``), for :func:`runtime_docstring`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from param_glossary import PUBLIC, args_section  # noqa: E402

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_XREF_ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|data|obj|exc):`(~?)([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<first>.*)$")


def _xref(match: re.Match[str]) -> str:
    tilde, target = match.group(1), match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _math_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m.group("indent")
        body = [m.group("first").strip()] if m.group("first").strip() else []
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip() and len(line) - len(line.lstrip()) <= len(indent):
                break
            if not line.strip() and body and (i + 1 >= len(lines) or not lines[i + 1].strip()):
                break
            if line.strip():
                body.append(line.strip())
            i += 1
        out += ["", f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]
    return "\n".join(out)


_BORDER = re.compile(r"^\s*=+(?:[ \t]+=+)+\s*$")


def _cell(text: str) -> str:
    """A table cell: ``|`` escaped outside math, ``\\vert`` inside ``:math:`` roles."""
    parts = re.split(r"(:math:`[^`]*`)", text.strip())
    return "".join(
        p.replace("|", r"\vert ") if p.startswith(":math:") else p.replace("|", r"\|")
        for p in parts
    )


def _table_rows(lines: list[str], starts: list[int]) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        bounds = [*starts[1:], max(len(line), starts[-1])]
        cells = [line[a:b].strip() for a, b in zip(starts, bounds)]
        if rows and not cells[0]:  # continuation line: extends the previous row's cells
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    return rows


def _simple_tables(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        borders = [i]
        j = i + 1
        while j < len(lines) and len(borders) < 3:
            if _BORDER.match(lines[j]):
                borders.append(j)
            j += 1
        if len(borders) < 3:  # not a header + body table: leave it alone
            out.append(lines[i])
            i += 1
            continue
        top, mid, bottom = borders
        starts = [m.start() for m in re.finditer(r"=+", lines[top])]
        indent = lines[top][: len(lines[top]) - len(lines[top].lstrip())]
        header = [" ".join(c) for c in zip(*_table_rows(lines[top + 1 : mid], starts))]
        body = _table_rows(lines[mid + 1 : bottom], starts)
        table = [
            "| " + " | ".join(_cell(c) for c in header) + " |",
            "|" + "---|" * len(starts),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in body),
        ]
        out += ["", *(indent + t for t in table), ""]
        i = bottom + 1
    return "\n".join(out)


def _doctest_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    in_fence = False
    examples_indent: int | None = None  # inside a Google "Examples:" section Griffe does it
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent_len = len(line) - len(stripped)
        if stripped and examples_indent is not None and indent_len <= examples_indent:
            examples_indent = None
        if stripped == "Examples:":
            examples_indent = indent_len
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or examples_indent is not None or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        block = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            block.append(lines[i][len(indent) :])
            i += 1
        out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """The Markdown version of a docstring that uses the RST constructs listed above."""
    text = _doctest_blocks(_math_blocks(_simple_tables(text)))
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    return _XREF_ROLE.sub(_xref, text)


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args):\s*$", re.M)
_TAIL = re.compile(r"^(Example|Examples|Returns|Raises|Note|Notes|Shape|Shapes):\s*$", re.M)


def with_args_section(text: str, function: str, parameters: list[str]) -> str:
    """Add a generated ``Args:`` section (before any trailing section) if ``text`` has none."""
    if function not in PUBLIC or _SECTION.search(text):
        return text
    section = args_section(function, parameters)
    if not section:
        return text
    tail = _TAIL.search(text)
    if tail is None:
        return f"{text.rstrip()}\n\n{section}\n"
    return f"{text[: tail.start()].rstrip()}\n\n{section}\n\n{text[tail.start() :]}"


def runtime_docstring(path: str) -> str | None:
    """The cleaned ``__doc__`` of the object at ``path`` (``pkg.module.name``), or None."""
    module, _, name = path.rpartition(".")
    try:
        doc = getattr(importlib.import_module(module), name).__doc__
    except (ImportError, AttributeError):
        return None
    return inspect.cleandoc(doc) if doc else None


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded docstring with :func:`rst_to_markdown`; give the public functions
    without a parameter section one from the shared glossary (``param_glossary.py``)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if isinstance(obj, griffe.Function) and obj.path.startswith("softtorch."):
            runtime = runtime_docstring(obj.path)
            if runtime and _SECTION.search(runtime) and not _SECTION.search(text):
                text = runtime
            variadic = (griffe.ParameterKind.var_positional, griffe.ParameterKind.var_keyword)
            params = [p.name for p in obj.parameters if p.kind not in variadic]
            text = with_args_section(text, obj.name, params)
        obj.docstring.value = rst_to_markdown(text)
