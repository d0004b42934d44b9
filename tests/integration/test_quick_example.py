"""examples/quick_example.py reproduces every line of the published README within 1e-3."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = (ROOT / "tests" / "data" / "readme_quick_example.txt").read_text()
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?|True|False|Not implemented")


def parse(text: str) -> list[tuple[str, list[float]]]:
    """(label, numbers) per printed entry; multi-line tensors are joined to their label."""
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace() and entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line)
        else:
            label, _, rest = line.partition(":")
            entries.append((label.strip(), rest))
    out = []
    for label, rest in entries:
        nums = []
        for tok in NUMBER.findall(rest.replace("tensor", "")):
            if tok == "Not implemented":
                continue
            nums.append(1.0 if tok == "True" else 0.0 if tok == "False" else float(tok))
        out.append((label, nums))
    return out


@lru_cache(maxsize=1)
def actual_output() -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quick_example.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


EXPECTED_ENTRIES = parse(EXPECTED)


@pytest.mark.parametrize(
    "index", range(len(EXPECTED_ENTRIES)),
    ids=[f"{i:03d}-{lab}" for i, (lab, _) in enumerate(EXPECTED_ENTRIES)],
)
def test_readme_line(index: int) -> None:
    got = parse(actual_output())
    assert len(got) == len(EXPECTED_ENTRIES), "the example prints a different number of lines"
    label, want = EXPECTED_ENTRIES[index]
    glabel, have = got[index]
    assert glabel == label
    assert len(have) == len(want), f"{label}: {have} vs README {want}"
    for h, w in zip(have, want):
        assert abs(h - w) <= 1e-3 + 1e-9, f"{label}: {have} vs README {want}"
