"""Every Python block of README.md runs; the soft_mode snippet yields a non-zero gradient."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int) -> None:
    namespace: dict[str, object] = {}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)
    if "logits" in namespace:
        grad = namespace["logits"].grad  # type: ignore[attr-defined]
        assert grad is not None and float(grad.abs().sum()) > 0
