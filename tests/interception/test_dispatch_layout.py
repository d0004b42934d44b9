"""Non-strided tensors (sparse COO / CSR) pass through soft_mode exactly (dispatch.triggered)."""

from __future__ import annotations

import torch

import softtorch as st


def _dense(t: torch.Tensor) -> torch.Tensor:
    t = t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t
    return t.to_dense() if t.layout != torch.strided else t


def test_sparse_operands_pass_through_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g).relu().requires_grad_()
    coo = a.detach().to_sparse().requires_grad_()
    csr = a.detach().to_sparse_csr()
    dense = torch.randn(4, 3, generator=g)
    calls = [
        lambda: torch.relu(coo),
        lambda: torch.abs(coo),
        lambda: torch.sign(coo),
        lambda: torch.sparse.mm(coo, dense),
        lambda: torch.sparse.mm(coo, dense, "sum"),
        lambda: torch.sparse.sampled_addmm(csr, dense, dense.T),
        lambda: torch.clamp(coo, max=0.5),
    ]
    compared = 0
    for call in calls:
        try:
            ref = call()
        except (RuntimeError, NotImplementedError):  # torch has no sparse kernel for it
            continue
        compared += 1
        with st.soft_mode("smooth", softness=0.5):
            out = call()
        assert out.layout == ref.layout and out.dtype == ref.dtype
        assert torch.equal(_dense(out).detach(), _dense(ref).detach())
    assert compared >= 5


def test_strided_operands_are_still_relaxed() -> None:
    x = torch.tensor([-0.2, 0.3], requires_grad=True)
    with st.soft_mode("smooth", softness=0.5):
        out = torch.relu(x)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), st.relu(x, 0.5))
