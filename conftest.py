"""Shared pytest configuration: deterministic seeding, hypothesis profile, common constants.

Slow sweeps are marked ``@pytest.mark.slow``; the default command deselects them with
``-m "not slow"`` and CI runs them with ``-m slow``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

#: Every mode of the public elementwise / comparison API.
MODES: tuple[str, ...] = ("hard", "smooth", "c0", "c1", "c2")
#: The soft modes (everything except ``hard``).
SOFT_MODES: tuple[str, ...] = ("smooth", "c0", "c1", "c2")
#: Piecewise-polynomial modes that equal the hard function outside |x| >= 5 * softness.
POLY_MODES: tuple[str, ...] = ("c0", "c1", "c2")
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
HALF_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)
INT_DTYPES: tuple[torch.dtype, ...] = (torch.int32, torch.int64)
#: 0-d, 1-d, 3-d and two empty shapes.
SHAPES: tuple[tuple[int, ...], ...] = ((), (5,), (2, 3, 4), (0,), (3, 0))
#: Half-width of the c0/c1/c2 transition band in units of softness.
BAND: float = 5.0

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long parameter sweeps (run with -m slow)")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Same random numbers in every test, whatever the order or the worker."""
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(params=SOFT_MODES)
def soft_mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def float_dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def default_float64():
    """Run a test with float64 as torch's default dtype, restoring the previous default."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(old)
