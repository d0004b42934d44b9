"""Peak memory of softsort / neuralsort sort at n = 10000 (float32, forward + backward).

Each case runs in a fresh subprocess and reads its own peak resident set size, which includes the
interpreter and torch itself (about 0.2-0.3 GB). Budget: 1.5 GB.

On Linux the peak is ``VmHWM`` from ``/proc/self/status``: it belongs to the address space created
by ``execve``. ``ru_maxrss`` is not usable there: Linux keeps it across ``fork`` + ``execve``, so a
child of a large pytest worker reports the worker's peak (CI saw 1578 MB for all four cases).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET_MB = 1536.0

SCRIPT = """
import resource, sys, torch
sys.path.insert(0, {root!r})
import softtorch as st
torch.manual_seed(0)
x = torch.randn(1, 10000, requires_grad=True)
r = st.sort(x, method={method!r}, return_indices={indices})
r.values.square().sum().backward()
assert torch.isfinite(x.grad).all()
peak = None
try:
    with open("/proc/self/status") as f:
        peak = next(float(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(peak)
"""


@pytest.mark.slow
@pytest.mark.parametrize("indices", [False, True], ids=["values", "values+indices"])
@pytest.mark.parametrize("method", ["softsort", "neuralsort"])
def test_peak_rss_n10000(method: str, indices: bool) -> None:
    code = SCRIPT.format(root=str(ROOT), method=method, indices=indices)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1200, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak_mb = float(proc.stdout.strip().splitlines()[-1])
    assert peak_mb <= BUDGET_MB, f"{method}: peak RSS {peak_mb:.0f} MB > {BUDGET_MB:.0f} MB"
