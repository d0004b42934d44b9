"""The surrogate gradients reach heaviside_st / sign_st and soft_mode(straight_through=True)."""

from __future__ import annotations

import pytest
import torch

import softtorch as st
from softtorch.surrogate import METHODS, SURROGATES, sign, threshold

DETERMINISTIC = [m for m in METHODS if not SURROGATES[m].stochastic]


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_heaviside_st_uses_surrogate_backward(method: str) -> None:
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    y = st.heaviside_st(x, surrogate=method, alpha=1.5)
    assert torch.equal(y.detach(), torch.heaviside(x.detach(), torch.tensor(0.5).double()))
    (g,) = torch.autograd.grad(y.sum(), x)
    (want,) = torch.autograd.grad(threshold(x, method, 1.5).sum(), x)
    torch.testing.assert_close(g, want)


@pytest.mark.parametrize("method", DETERMINISTIC)
def test_sign_st_uses_surrogate_backward(method: str) -> None:
    x = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    y = st.sign_st(x, surrogate=method)
    assert torch.equal(y.detach(), torch.sign(x.detach()))
    (g,) = torch.autograd.grad(y.sum(), x)
    (want,) = torch.autograd.grad(sign(x, method).sum(), x)
    torch.testing.assert_close(g, want)


def test_unknown_surrogate_is_rejected() -> None:
    with pytest.raises(ValueError, match="super"):
        st.heaviside_st(torch.zeros(3), surrogate="nope")


def test_soft_mode_surrogate_trains_unmodified_spiking_code() -> None:
    v = torch.tensor([-0.4, 0.1, 0.7], requires_grad=True)
    v_th = 0.2

    def neuron(v: torch.Tensor) -> torch.Tensor:  # plain torch, as a third party writes it
        return (v - v_th > 0).float()

    assert not neuron(v).requires_grad  # hard code: no gradient at all
    with st.soft_mode(straight_through=True, surrogate="super"):
        spikes = neuron(v)
    assert torch.equal(spikes.detach().as_subclass(torch.Tensor), torch.tensor([0.0, 0.0, 1.0]))
    (g,) = torch.autograd.grad(spikes.sum(), v)
    (want,) = torch.autograd.grad(threshold(v - v_th, "super").sum(), v)
    torch.testing.assert_close(g, want)
