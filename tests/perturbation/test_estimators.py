"""The estimator internals against direct formulas: the leave-one-out baseline, its cancellation
inside Gaussian antithetic pairs, and the noise draws (antithetic partners, Gumbel moments)."""

from __future__ import annotations

import torch

from softtorch.perturbation._estimators import centered, score_vjps
from softtorch.perturbation._noise import EULER_GAMMA, draw, noise_mean, score


def test_leave_one_out_baseline_singles() -> None:
    a = torch.tensor([1.0, 4.0, -2.0, 7.0], dtype=torch.float64)
    expected = torch.stack([a[i] - (a.sum() - a[i]) / 3 for i in range(4)])
    torch.testing.assert_close(centered(a, pairs=False, baseline=True), expected)
    torch.testing.assert_close(centered(a, pairs=False, baseline=False), a)
    torch.testing.assert_close(centered(a[:1], pairs=False, baseline=True), a[:1])


def test_leave_one_out_baseline_pairs_and_batch() -> None:
    a = torch.randn(6, 3, dtype=torch.float64)  # 3 pairs: rows (0, 3), (1, 4), (2, 5)
    unit = a[:3] + a[3:]
    beta = torch.stack([(unit.sum(0) - unit[k]) / (2 * 2) for k in range(3)])
    torch.testing.assert_close(centered(a, pairs=True, baseline=True), a - torch.cat([beta, beta]))


def test_baseline_cancels_in_gaussian_pairs() -> None:
    z = draw("gaussian", 8, (5,), antithetic=True, generator=torch.Generator().manual_seed(0))
    a = torch.randn(8)
    (with_b,) = score_vjps(a, [z], "gaussian", 0.3, pairs=True, baseline="mean")
    (without,) = score_vjps(a, [z], "gaussian", 0.3, pairs=True, baseline="none")
    torch.testing.assert_close(with_b, without)
    direct = sum(a[i] * z[i] for i in range(8)) / (8 * 0.3)
    torch.testing.assert_close(without, direct)


def test_antithetic_partners_and_moments() -> None:
    g = torch.Generator().manual_seed(0)
    z = draw("gaussian", 6, (4,), antithetic=True, generator=g)
    torch.testing.assert_close(z[3:], -z[:3])
    u = draw("gumbel", 200000, (), antithetic=True, generator=g, dtype=torch.float64)
    cdf = torch.exp(-torch.exp(-u))  # partner: F(Z') = 1 - F(Z)
    torch.testing.assert_close(cdf[100000:], 1 - cdf[:100000])
    assert abs(float(u.mean()) - EULER_GAMMA) < 0.01 and noise_mean("gumbel") == EULER_GAMMA
    assert abs(float(score(u, "gumbel").mean())) < 0.01  # E[psi] = 0
    assert abs(float(score(u, "gumbel").var()) - 1.0) < 0.02


def test_linear_control_variate_formula() -> None:
    """Direct loop: contribution_i - (psi_i <Z_i, c_-k> - c_-k), c_-k the other units' mean."""
    g = torch.Generator().manual_seed(1)
    z = [
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64),
    ]
    a = torch.randn(5, generator=g, dtype=torch.float64)
    s = 0.7
    w = centered(a, pairs=False, baseline=True)
    parts = [[w[i] * zj[i] / s for i in range(5)] for zj in z]
    expected = []
    for j in range(2):
        acc = 0
        for i in range(5):
            c = [sum(p[m] for m in range(5) if m != i) / 4 for p in parts]
            inner = sum((z[q][i] * c[q]).sum() for q in range(2))
            acc = acc + parts[j][i] - (z[j][i] * inner - c[j])
        expected.append(acc / 5)
    got = score_vjps(a, z, "gaussian", s, pairs=False, baseline="linear")
    for gj, ej in zip(got, expected):
        torch.testing.assert_close(gj, ej)
