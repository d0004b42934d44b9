"""The learnable softness parametrisation (softtorch/learnable.py)."""

from __future__ import annotations

import math

import pytest
import torch

import softtorch as st


def test_softness_initialises_at_target_and_follows_formula() -> None:
    for init, floor in ((0.1, 1e-4), (1.0, 1e-3), (50.0, 0.5), (2e-4, 1e-4)):
        module = st.Softness(init, min_softness=floor, dtype=torch.float64)
        s = module()
        assert s.shape == () and s.requires_grad
        torch.testing.assert_close(s.detach(), torch.tensor(init, dtype=torch.float64))
        raw = module.raw.detach()
        torch.testing.assert_close(
            s.detach(), floor + torch.log1p(torch.exp(raw)), msg="s = floor + softplus(raw)"
        )


def test_positive_softness_never_below_floor() -> None:
    raw = torch.tensor([-1e4, -50.0, 0.0, 3.0, 1e4])
    s = st.positive_softness(raw, 1e-3)
    assert (s >= 1e-3).all() and torch.isfinite(s).all()
    torch.testing.assert_close(s[2], torch.tensor(1e-3 + math.log(2.0)))


@pytest.mark.parametrize(
    "kwargs", [{"init": 0.0}, {"init": -1.0}, {"init": 1e-5, "min_softness": 1e-4},
               {"init": 0.1, "min_softness": 0.0}, {"init": float("nan")}]
)
def test_softness_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        st.Softness(**kwargs)


def test_learning_the_softness_trains_and_stays_valid() -> None:
    """The docs example: fit a soft sort to the hard one; the softness shrinks, stays > floor."""
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    target = torch.sort(x, dim=-1).values
    softness = st.Softness(init=1.0, min_softness=1e-3)
    opt = torch.optim.Adam(softness.parameters(), lr=0.1)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        values = st.sort(x, dim=-1, softness=softness(), mode="smooth").values
        loss = (values - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = softness().item()
    assert 1e-3 < final < 0.5, final
    assert losses[-1] < 0.5 * losses[0], losses
    # an unconstrained softness would have been driven below zero by a large step; the
    # parametrised one cannot: a huge negative step on raw still gives a valid softness
    with torch.no_grad():
        softness.raw -= 1e4
    st.relu(x, softness=softness())  # no error
