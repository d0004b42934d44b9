"""numba's parallel CPU kernels called from several Python threads at once.

The ``workqueue`` threading layer (numba's fallback when no OpenMP/TBB runtime is present) aborts
the process on concurrent launches, so softtorch serialises its parallel kernels under that layer
(:func:`softtorch.ordering.methods.permutahedron._pav_numba.parallel_guard`). The check runs
in a child process that forces the layer, and each concurrent result (values and gradients)
must equal the serial one bit for bit."""

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

    def compute(x, learnable):
        # rank and c1 sort with their gradients (w.r.t. x and a learnable softness)
        out = []
        for _ in range(2):
            xx = x.clone().requires_grad_()
            s = torch.tensor(0.5, requires_grad=True) if learnable else 0.5
            r = st.rank(xx, dim=-1, method="fast_soft_sort", softness=s)
            r.sum().backward()
            y = st.sort(xx, dim=-1, method="fast_soft_sort", mode="c1", softness=s)
            (y.values * torch.linspace(-1, 1, x.shape[-1])).sum().backward()
            grads = [xx.grad] + ([s.grad] if learnable else [])
            out.append([r.detach(), y.values.detach(), *grads])
        return out

    torch.manual_seed(0)
    jobs = [((4, 20000), False), ((1, 70000), False), ((4, 20000), True), ((300, 300), False)]
    inputs = [(torch.randn(*shape), learnable) for shape, learnable in jobs]
    serial = [compute(x, learnable) for x, learnable in inputs]  # one call at a time
    concurrent = [None] * len(inputs)

    def work(i):
        try:
            concurrent[i] = compute(*inputs[i])
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (ser, con) in enumerate(zip(serial, concurrent)):
        for rep, (a, b) in enumerate(zip(ser, con)):
            assert len(a) == len(b)
            for k, (u, v) in enumerate(zip(a, b)):
                assert torch.equal(u, v), ("job", i, "repeat", rep, "output", k)
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
