"""POT (Python Optimal Transport) as an independent oracle for ``method="ot"``.

Our problem (see :mod:`softtorch.ordering.methods.ot.method`): inputs ``z_i`` with mass ``1/n``,
anchors ``y_j = j / (n - 1)`` with capacity ``b_j / n`` (``b_j = 1`` for sort / rank), cost
``C_ij = (z_i - y_j)^2`` and regulariser strength ``eps = softness``; ``ot_plan`` returns the
plan in permutation units, ``Q = n * Plan``. Agreement: about 1e-10 (entropic) and 1e-7 (POT's
L-BFGS on the quadratic dual); a 20% change of ``reg`` moves the plans by about 1e-2.

* ``smooth``: ``min <Plan, C> + eps sum Plan log Plan``, which is POT's ``ot.sinkhorn(a, b, M,
  reg)`` with ``a = 1/n``, ``b = b_j/n``, ``M = C``, ``reg = eps`` (POT's
  :math:`\\Omega(\\gamma) = \\sum \\gamma \\log \\gamma`).
* ``c0``: ``eps sum_ij omega(n Plan_ij) / n`` with ``omega(t) = t^2 / 2``, i.e.
  ``(eps n / 2) sum Plan^2``, which is POT's ``ot.smooth.smooth_ot_dual(..., reg_type="l2")``
  (:math:`\\mathrm{reg}\\,\\Omega(\\gamma) = \\tfrac{\\mathrm{reg}}{2} \\sum \\gamma^2`) with
  ``reg = eps * n``.

Soft sorted values are ``P @ x`` with ``P = Q^T`` (row ``j``: the ``j``-th smallest), soft
ascending ranks ``sum_j Q_ij (j + 1)``. Everything in float64 on small problems.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import softtorch as st
from softtorch.ordering.methods.ot import ot_plan

ot = pytest.importorskip("ot")

#: (n, softness, seed): small problems where POT converges to high accuracy.
PROBLEMS = [(5, 0.05, 0), (8, 0.2, 1), (12, 1.0, 2)]


def _problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g, dtype=torch.float64)
    y = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return z, y


def _pot_plan(z: torch.Tensor, y: torch.Tensor, softness: float, mode: str) -> np.ndarray:
    """POT's plan (probability units) for our problem."""
    n = z.numel()
    a = np.full(n, 1.0 / n)
    b = np.full(n, 1.0 / n)
    M = ((z[:, None] - y[None, :]) ** 2).numpy()
    if mode == "smooth":
        return ot.sinkhorn(
            a, b, M, softness, method="sinkhorn_log", stopThr=1e-13, numItermax=100000
        )
    return ot.smooth.smooth_ot_dual(
        a, b, M, softness * n, reg_type="l2", stopThr=1e-14, numItermax=100000
    )


@pytest.mark.parametrize("mode", ["smooth", "c0"])
@pytest.mark.parametrize(("n", "softness", "seed"), PROBLEMS)
def test_plan_matches_pot(mode: str, n: int, softness: float, seed: int) -> None:
    z, y = _problem(n, seed)
    ours = ot_plan(z, y, torch.ones(n, dtype=torch.float64), softness, mode, None)
    pot = torch.from_numpy(_pot_plan(z, y, softness, mode)) * n
    torch.testing.assert_close(ours, pot, atol=1e-6, rtol=1e-5)
    if mode == "c0":  # the quadratic regulariser gives exact zeros: same support as POT's
        assert torch.equal(ours > 1e-9, pot > 1e-9)


@pytest.mark.parametrize("mode", ["smooth", "c0"])
@pytest.mark.parametrize(("n", "softness", "seed"), PROBLEMS)
def test_sorted_values_and_ranks_match_pot(mode: str, n: int, softness: float, seed: int) -> None:
    z, y = _problem(n, seed)
    Q = torch.from_numpy(_pot_plan(z, y, softness, mode)) * n
    kw = {"softness": softness, "mode": mode, "method": "ot", "standardize": False}
    values = st.sort(z, **kw).values
    ranks = st.rank(z, descending=False, **kw)
    expected_values = Q.T @ z
    expected_ranks = Q @ torch.arange(1, n + 1, dtype=torch.float64)
    torch.testing.assert_close(values, expected_values, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ranks, expected_ranks, atol=1e-5, rtol=1e-5)
