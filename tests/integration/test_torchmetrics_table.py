"""The torchmetrics table of ``docs/relaxing-third-party-code.md`` matches the test matrix.

Regenerate with ``python scripts/torchmetrics_table.py`` after a change to the relaxations or to
``tests/interception/tm_cases.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torchmetrics")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "torchmetrics_table.py"


@pytest.mark.slow
def test_docs_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location("torchmetrics_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "run: python scripts/torchmetrics_table.py"
