"""numba's parallel CPU kernels called from several Python threads at once.

The ``workqueue`` threading layer (numba's fallback when no OpenMP/TBB runtime is present) aborts
the process on concurrent launches, so softtorch serialises its parallel kernels under that layer
(:func:`softtorch.ordering.methods.permutahedron._pav_numba.parallel_guard`). The check runs
in a child process that forces the layer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from softtorch.ordering.methods.permutahedron import fast_soft_sort as fss

pytestmark = pytest.mark.skipif(not fss.HAS_NUMBA, reason="numba not installed")

SCRIPT = textwrap.dedent(
    """
    import threading

    import numba
    import torch

    import softtorch as st

    errors = []

    def work(shape, learnable):
        try:
            x = torch.randn(*shape)
            for _ in range(3):
                xx = x.clone().requires_grad_()
                s = torch.tensor(0.5, requires_grad=True) if learnable else 0.5
                st.rank(xx, dim=-1, method="fast_soft_sort", softness=s).sum().backward()
                y = st.sort(xx, dim=-1, method="fast_soft_sort", mode="c1", softness=s)
                y.values.sum().backward()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    jobs = [((4, 20000), False), ((1, 70000), False), ((4, 20000), True), ((300, 300), False)]
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    print("ok", numba.threading_layer())
    """
)


def test_concurrent_calls_under_the_workqueue_layer() -> None:
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "workqueue"]
