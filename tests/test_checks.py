"""Argument checks shared by every public function (softtorch/_checks.py): the softness range
check for tensors (learnable, batched, compiled) and ``check_k``."""

from __future__ import annotations

import pytest
import torch

import softtorch as st
from softtorch._checks import check_k, check_softness

BAD = [0.0, -0.1, float("nan"), float("inf"), -1e-30]

FNS = {
    "relu": lambda x, s: st.relu(x, softness=s),
    "heaviside_st": lambda x, s: st.heaviside_st(x, softness=s),
    "greater": lambda x, s: st.greater(x, 0.0, softness=s),
    "isclose": lambda x, s: st.isclose(x, 0.0, softness=s),
    "sort": lambda x, s: st.sort(x, softness=s).values,
    "rank": lambda x, s: st.rank(x, softness=s),
    "sigmoidal": lambda x, s: st.sigmoidal(x, softness=s),
}


@pytest.mark.parametrize("name", list(FNS))
@pytest.mark.parametrize("bad", BAD, ids=str)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_bad_tensor_softness_raises_in_eager_mode(
    name: str, bad: float, requires_grad: bool
) -> None:
    softness = torch.tensor(bad, requires_grad=requires_grad)
    with pytest.raises(ValueError, match="softness must be positive"):
        FNS[name](torch.randn(5), softness)


@pytest.mark.parametrize("bad", BAD, ids=str)
def test_bad_float_softness_message(bad: float) -> None:
    with pytest.raises(ValueError, match="softness must be positive") as info:
        check_softness(bad)
    assert "softness must be a finite number > 0" in str(info.value)


def test_issue_17_reproducers_raise() -> None:
    s = torch.tensor(-0.1, requires_grad=True)
    with pytest.raises(ValueError, match="softness must be positive"):
        st.relu(torch.randn(4), softness=s)
    with pytest.raises(ValueError, match="softness must be positive"):
        st.sort(torch.randn(4), softness=s)


def test_good_tensor_softness_keeps_its_gradient() -> None:
    s = torch.tensor(0.3, requires_grad=True)
    out = st.relu(torch.tensor([0.1, -0.2]), softness=s)
    (g,) = torch.autograd.grad(out.sum(), s)
    assert torch.isfinite(g) and g != 0


def test_vmap_batched_softness_is_checked() -> None:
    x = torch.randn(2, 4)
    good = torch.tensor([0.1, 0.5])
    out = torch.func.vmap(lambda r, t: st.relu(r, softness=t))(x, good)
    torch.testing.assert_close(out, torch.stack([st.relu(x[i], float(good[i])) for i in range(2)]))
    with pytest.raises(ValueError, match="softness must be positive"):
        torch.func.vmap(lambda r, t: st.relu(r, softness=t))(x, torch.tensor([0.1, -0.5]))
    with pytest.raises(ValueError, match="softness must be positive"):
        torch.func.grad(lambda t: st.relu(x, softness=t).sum())(torch.tensor(float("nan")))


def test_compiled_guard_without_graph_break() -> None:
    def f(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return st.relu(x, softness=s)

    compiled = torch.compile(f, fullgraph=True, backend="eager")  # fullgraph: no graph break
    x = torch.randn(5)
    torch.testing.assert_close(compiled(x, torch.tensor(0.2)), st.relu(x, 0.2))
    for bad in (-0.2, float("nan")):
        with pytest.raises(RuntimeError, match="softness must be positive"):
            compiled(x, torch.tensor(bad, requires_grad=True))


def test_fake_tensor_softness_is_not_read() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        out = st.relu(torch.randn(3), softness=torch.tensor(0.1))
    assert out.shape == (3,)


@pytest.mark.parametrize("mode", ["smooth", "c1", "hard"])
def test_check_k(mode: str) -> None:
    assert check_k(3, 5, mode) == 3
    assert check_k(torch.tensor(2), 5, mode) == 2
    with pytest.raises(ValueError, match="k must be positive"):
        check_k(-1, 5, mode)
    with pytest.raises(ValueError, match=r"k must be in \["):
        check_k(6, 5, mode)
    with pytest.raises(TypeError, match="k must be an int"):
        check_k(2.0, 5, mode)
    if mode == "hard":
        assert check_k(0, 5, mode) == 0  # torch.topk(x, 0): empty results
    else:
        with pytest.raises(ValueError, match="k must be positive"):
            check_k(0, 5, mode)
