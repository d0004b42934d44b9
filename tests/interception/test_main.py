"""``python -m softtorch.interception``: argparse help, writing and checking the coverage table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from softtorch.interception.__main__ import run
from softtorch.interception.registry import coverage_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_help_prints_usage_and_writes_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "softtorch.interception", "--help"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout and "--check" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_write_and_check(tmp_path: Path) -> None:
    target = tmp_path / "coverage.md"
    assert run(["--check", str(target)]) == 1  # missing file: out of date
    assert run([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == coverage_markdown()
    assert run([str(target), "--check"]) == 0
    target.write_text("stale", encoding="utf-8")
    assert run(["--check", str(target)]) == 1


def test_docs_coverage_is_current() -> None:
    assert run(["--check", str(ROOT / "docs" / "coverage.md")]) == 0
