"""Selection with soft indices: one-hot indices reproduce torch exactly; soft ones give the
expected value; shapes, broadcasting, gradients and errors."""

from __future__ import annotations

import functools

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


# ------------------------------------------------------------------------------------------------
# issue 17: zero weights never touch non-finite entries; empty and 0-d inputs follow torch
# ------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD_ENTRIES = [NAN, INF, -INF]


@pytest.mark.parametrize("bad", BAD_ENTRIES, ids=str)
def test_one_hot_selection_ignores_unselected_non_finite(bad: float) -> None:
    x = torch.tensor([[1.0, bad, 3.0], [bad, 5.0, 6.0]])
    close = functools.partial(torch.testing.assert_close, equal_nan=True)
    idx = torch.tensor([[0, 2], [1, 2]])
    one_hot = F.one_hot(idx, 3).float()
    close(
        st.take_along_dim(x, one_hot, dim=1), torch.take_along_dim(x, idx, dim=1)
    )
    flat_idx = torch.tensor([0, 2, 4, 5])
    close(
        st.take(x, F.one_hot(flat_idx, 6).float()), torch.take(x, flat_idx)
    )
    close(
        st.take_along_dim(x, F.one_hot(flat_idx, 6).float()), torch.take_along_dim(x, flat_idx)
    )
    cols = torch.tensor([2, 0])
    close(
        st.index_select(x.T, F.one_hot(cols, 3).float(), 0), torch.index_select(x.T, 0, cols)
    )
    close(
        st.take(x, F.one_hot(torch.tensor([[2]]), 3).float(), dim=1),
        torch.from_numpy(x.numpy().take([[2]], axis=1)),
    )
    close(
        st.narrow(x[0], torch.tensor([0.0, 1.0]), 2), torch.narrow(x[0], 0, 1, 2)
    )
    close(
        st.narrow(x[1], torch.tensor([0.0, 1.0]), 2), torch.narrow(x[1], 0, 1, 2)
    )


def test_selected_non_finite_entries_propagate() -> None:
    x = torch.tensor([1.0, NAN, INF, -INF])
    w = torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0.5, 0, 0, 0.5], [0, 0, 0.5, 0.5],
                      [-0.5, 0, 1.5, 0]])
    out = st.take(x, w)
    ref = torch.tensor([NAN, INF, -INF, NAN, INF])
    torch.testing.assert_close(out, ref, equal_nan=True)


def test_selection_gradients_finite_with_unselected_nan() -> None:
    x = torch.tensor([1.0, NAN, 3.0], requires_grad=True)
    s = torch.tensor([[0.25, 0.0, 0.75]], requires_grad=True)
    out = st.take_along_dim(x, s)
    torch.testing.assert_close(out.detach(), torch.tensor([2.5]))
    gx, gs = torch.autograd.grad(out.sum(), (x, s))
    torch.testing.assert_close(gx, torch.tensor([0.25, 0.0, 0.75]))
    torch.testing.assert_close(gs, torch.tensor([[1.0, 0.0, 3.0]]))


def test_non_finite_selection_under_vmap_and_compile_path() -> None:
    """The masked path (used when values cannot be read) gives the same as the eager one."""
    x = torch.tensor([[1.0, NAN, 3.0], [4.0, 5.0, INF]])
    s = F.one_hot(torch.tensor([[0], [1]]), 3).float()
    out = torch.func.vmap(lambda r, w: st.take_along_dim(r, w, dim=0))(x, s)
    torch.testing.assert_close(out, torch.tensor([[1.0], [5.0]]))


def _torch_error(fn) -> tuple[type[BaseException], str]:  # noqa: ANN001
    with pytest.raises(Exception) as info:  # noqa: PT011
        fn()
    return type(info.value), str(info.value).splitlines()[0]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: st.index_select(torch.empty(0), torch.ones(1, 0), 0),
         lambda: torch.index_select(torch.empty(0), 0, torch.tensor([0]))),
        (lambda: st.take(torch.empty(0), torch.ones(2, 0)),
         lambda: torch.take(torch.empty(0), torch.tensor([0, 0]))),
        (lambda: st.take_along_dim(torch.empty(0), torch.ones(1, 0)),
         lambda: torch.take_along_dim(torch.empty(0), torch.tensor([0]))),
        (lambda: st.index_select(torch.tensor(3.0), torch.ones(2, 1), 0),
         lambda: torch.index_select(torch.tensor(3.0), 0, torch.tensor([0, 0]))),
        (lambda: st.take_along_dim(torch.tensor(3.0), torch.ones(1), 0),
         lambda: torch.take_along_dim(torch.tensor(3.0), torch.tensor(0), 0)),
    ],
)
def test_empty_and_0d_errors_follow_torch(ours, theirs) -> None:  # noqa: ANN001
    err, msg = _torch_error(ours)
    torch_err, torch_msg = _torch_error(theirs)
    assert issubclass(err, (IndexError, RuntimeError))
    assert msg == torch_msg or issubclass(err, torch_err), (msg, torch_msg)
    assert msg == torch_msg


def test_empty_axis_with_no_index_gives_empty_results() -> None:
    e = torch.empty(0)
    assert st.index_select(e, torch.ones(0, 0), 0).shape == torch.Size([0])
    assert st.take(e, torch.ones(0, 0)).shape == torch.Size([0])
    assert st.take_along_dim(e, torch.ones(0, 0)).shape == torch.Size([0])
    assert st.take(torch.empty(2, 0), torch.ones(0, 0), dim=1).shape == torch.Size([2, 0])
    with pytest.raises(IndexError, match="non-empty take from an empty"):
        st.take(torch.empty(2, 0), torch.ones(1, 0), dim=1)


def test_0d_selection_shapes_follow_torch() -> None:
    z = torch.tensor(3.0)
    one = torch.ones(1)
    assert st.index_select(z, torch.ones(1, 1), 0).shape == torch.index_select(
        z, 0, torch.tensor([0])).shape == torch.Size([])
    assert st.index_select(z, one, -1).shape == torch.Size([])
    assert st.take(z, one).shape == torch.take(z, torch.tensor(0)).shape
    assert st.take(z, torch.ones(1, 1)).shape == torch.take(z, torch.tensor([0])).shape
    assert st.take(z, one, dim=0).shape == torch.Size([])


@pytest.mark.parametrize("length", [-1, 4, 100])
def test_narrow_bad_length_is_value_error_naming_length(length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        st.narrow(torch.ones(3), torch.ones(3), length)
