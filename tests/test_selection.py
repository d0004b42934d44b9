"""Selection with soft indices: one-hot indices reproduce torch exactly; soft ones give the
expected value; shapes, broadcasting, gradients and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import softtorch as st


def one_hot(idx: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(idx, n).float()


def data(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_take_along_dim_one_hot_matches_torch(dim: int) -> None:
    x = data(2, 3, 4)
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = 5
    idx = torch.randint(0, n, shape, generator=torch.Generator().manual_seed(1))
    got = st.take_along_dim(x, one_hot(idx, n), dim)
    assert torch.equal(got, torch.take_along_dim(x, idx, dim))


def test_take_along_dim_broadcasts_and_flattens() -> None:
    x = data(3, 4)
    idx = torch.tensor([[2], [0], [3]])
    torch.testing.assert_close(
        st.take_along_dim(x, one_hot(idx, 4), 1), torch.take_along_dim(x, idx, 1)
    )
    idx = torch.tensor([[1, 3]])  # broadcasts over rows
    torch.testing.assert_close(
        st.take_along_dim(x, one_hot(idx, 4), 1), torch.take_along_dim(x, idx, 1)
    )
    flat = torch.tensor([0, 11, 5])
    torch.testing.assert_close(
        st.take_along_dim(x, one_hot(flat, 12)), torch.take_along_dim(x, flat)
    )


def test_take_along_dim_with_soft_argmax_is_soft_max() -> None:
    x = data(3, 5)
    for dim in (0, 1):
        idx = st.argmax(x, dim=dim, keepdim=True)
        got = st.take_along_dim(x, idx, dim)
        torch.testing.assert_close(got, st.max(x, dim=dim, keepdim=True).values)
    torch.testing.assert_close(st.take_along_dim(x, st.argmax(x)), st.max(x).reshape(1))
    srt = st.sort(x, dim=1)
    torch.testing.assert_close(st.take_along_dim(x, srt.indices, 1), srt.values)


def test_take_matches_torch_and_numpy() -> None:
    x = data(3, 4)
    idx = torch.tensor([[0, 11], [5, 7]])
    assert torch.equal(st.take(x, one_hot(idx, 12)), torch.take(x, idx))
    xn = x.numpy()
    for dim in (0, 1, -1):
        n = x.shape[dim]
        i = torch.tensor([[0, n - 1, 1]])
        expected = torch.from_numpy(xn.take(i.numpy(), axis=dim))
        got = st.take(x, one_hot(i, n), dim=dim)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected)
    x3 = data(2, 3, 4)
    i = torch.tensor([2, 0])
    torch.testing.assert_close(
        st.take(x3, one_hot(i, 3), dim=1), torch.from_numpy(x3.numpy().take(i.numpy(), axis=1))
    )


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dim: int) -> None:
    x = data(3, 4)
    n = x.shape[dim]
    idx = torch.tensor([n - 1, 0, 1, 1])
    assert torch.equal(st.index_select(x, one_hot(idx, n), dim), torch.index_select(x, dim, idx))
    single = one_hot(torch.tensor(1), n)
    assert torch.equal(
        st.index_select(x, single, dim), torch.index_select(x, dim, torch.tensor([1]))
    )
    assert torch.equal(st.index_select(x, single, dim, keepdim=False), x.select(dim, 1))
    v = torch.arange(4.0)
    assert torch.equal(
        st.index_select(v, one_hot(torch.tensor([3, 0]), 4), 0), torch.tensor([3.0, 0.0])
    )


@pytest.mark.parametrize("dim", [0, 1])
def test_narrow(dim: int) -> None:
    x = data(5, 6)
    n = x.shape[dim]
    for length in (1, 3, n):
        for start in range(n - length + 1):
            expected = torch.narrow(x, dim, start, length)
            assert torch.equal(st.narrow(x, one_hot(torch.tensor(start), n), length, dim), expected)
            valid = one_hot(torch.tensor(start), n - length + 1)
            assert torch.equal(st.narrow(x, valid, length, dim), expected)
    # mass on starts past n - length goes to the last valid start
    w = torch.zeros(n)
    w[-1] = 1.0
    torch.testing.assert_close(st.narrow(x, w, 2, dim), torch.narrow(x, dim, n - 2, 2))


def test_soft_indices_give_expected_values() -> None:
    x = torch.tensor([1.0, 2.0, 4.0])
    w = torch.tensor([0.5, 0.25, 0.25])
    torch.testing.assert_close(st.take(x, w), torch.tensor(2.0))
    torch.testing.assert_close(st.take_along_dim(x, w.unsqueeze(0), 0), torch.tensor([2.0]))
    torch.testing.assert_close(st.index_select(x, w, 0, keepdim=False), torch.tensor(2.0))
    torch.testing.assert_close(
        st.narrow(x, torch.tensor([0.5, 0.5]), 2, 0), torch.tensor([1.5, 3.0])
    )


def test_gradcheck_selection() -> None:
    x = data(3, 4).double().requires_grad_(True)
    s = torch.softmax(data(3, 2, 4).double(), -1).requires_grad_(True)
    assert gradcheck(lambda a, b: st.take_along_dim(a, b, 1), (x, s), fast_mode=True)
    assert gradcheck(lambda a, b: st.take(a, b, dim=1), (x, s), fast_mode=True)
    s12 = torch.softmax(data(5, 12).double(), -1).requires_grad_(True)
    assert gradcheck(lambda a, b: st.take(a, b), (x, s12), fast_mode=True)
    s4 = torch.softmax(data(2, 4).double(), -1).requires_grad_(True)
    assert gradcheck(lambda a, b: st.index_select(a, b, 1), (x, s4), fast_mode=True)
    s3 = torch.softmax(data(3).double(), -1).requires_grad_(True)
    assert gradcheck(lambda a, b: st.narrow(a, b, 2, 1), (x, s3), fast_mode=True)


def test_dtype_promotion() -> None:
    xi = torch.tensor([1, 2, 3])
    out = st.take(xi, torch.tensor([0.0, 0.0, 1.0]))
    assert out.dtype == torch.get_default_dtype() and out.item() == 3.0
    out = st.take(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 0.5]))
    assert out.dtype == torch.float64


def test_errors() -> None:
    x = data(3, 4)
    with pytest.raises(ValueError, match="trailing axis of size 4"):
        st.take_along_dim(x, torch.ones(3, 1, 3), 1)
    with pytest.raises(ValueError, match="x.ndim \\+ 1"):
        st.take_along_dim(x, torch.ones(1, 4), 1)
    with pytest.raises(ValueError, match="trailing axis of size 12"):
        st.take(x, torch.ones(4))
    with pytest.raises(IndexError, match="Dimension out of range"):
        st.index_select(x, torch.ones(4), 2)
    with pytest.raises(ValueError, match=r"\(m, n\) or \(n,\)"):
        st.index_select(x, torch.ones(2, 2, 4), 1)
    with pytest.raises(ValueError, match="length must be in"):
        st.narrow(x, torch.ones(4), 5, 1)
    with pytest.raises(ValueError, match="soft_start must have a trailing axis"):
        st.narrow(x, torch.ones(2), 2, 1)
    with pytest.raises(TypeError, match="complex"):
        st.take(torch.tensor([1 + 1j]), torch.ones(1))
    with pytest.raises(TypeError, match="soft_index must be a tensor"):
        st.take(x, [0.0, 1.0])  # type: ignore[arg-type]
