"""Hard mode equals torch exactly; result types, SoftIndex shapes and dtypes follow torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import softtorch as st

SHAPES_DIMS = [((7,), 0), ((7,), -1), ((3, 6), 0), ((3, 6), 1), ((2, 3, 5), 1), ((2, 3, 5), -1)]
DTYPES = [torch.float32, torch.float64]


def data(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(dtype)


def one_hot(idx: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(idx, n).to(dtype)


def _moved(t: torch.Tensor, dim: int) -> int:
    return dim % t.ndim


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_argmax_argmin(shape: tuple, dim: int, keepdim: bool, dtype: torch.dtype) -> None:
    x = data(shape, dtype)
    n = shape[dim]
    for soft, hard, soft_arg, hard_arg, kind in (
        (st.max, torch.max, st.argmax, torch.argmax, torch.return_types.max),
        (st.min, torch.min, st.argmin, torch.argmin, torch.return_types.min),
    ):
        ref = hard(x, dim, keepdim)
        got = soft(x, dim, keepdim, mode="hard")
        assert isinstance(got, kind)
        assert torch.equal(got.values, ref.values)
        assert torch.equal(got.indices, one_hot(ref.indices, n, dtype))
        assert torch.equal(
            soft_arg(x, dim, keepdim, mode="hard"), one_hot(hard_arg(x, dim, keepdim), n, dtype)
        )
    # dim=None: flattened, a 0-d value
    assert torch.equal(st.max(x, mode="hard"), torch.max(x))
    assert torch.equal(st.argmax(x, mode="hard"), one_hot(torch.argmax(x), x.numel(), dtype))
    assert torch.equal(
        st.argmin(x, keepdim=True, mode="hard"),
        one_hot(torch.argmin(x, keepdim=True), x.numel(), dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort(shape: tuple, dim: int, descending: bool, dtype: torch.dtype) -> None:
    x = data(shape, dtype)
    n = shape[dim]
    ref = torch.sort(x, dim, descending)
    got = st.sort(x, dim, descending, mode="hard")
    assert isinstance(got, torch.return_types.sort)
    assert torch.equal(got.values, ref.values)
    expected_idx = one_hot(ref.indices, n, dtype)
    assert torch.equal(got.indices, expected_idx)
    assert got.indices.shape == x.shape + (n,)
    assert torch.equal(
        st.argsort(x, dim, descending, mode="hard"),
        one_hot(torch.argsort(x, dim, descending), n, dtype),
    )
    assert st.sort(x, dim, descending, mode="hard", return_indices=False).indices is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
def test_topk(shape: tuple, dim: int, dtype: torch.dtype) -> None:
    x = data(shape, dtype)
    n = shape[dim]
    for k in (0, 1, 3, n):
        for largest in (True, False):
            ref = torch.topk(x, k, dim, largest=largest)
            got = st.topk(x, k, dim, mode="hard", largest=largest)
            assert isinstance(got, torch.return_types.topk)
            assert torch.equal(got.values, ref.values)
            assert torch.equal(got.indices, one_hot(ref.indices, n, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_median_argmedian(shape: tuple, dim: int, keepdim: bool, dtype: torch.dtype) -> None:
    x = data(shape, dtype)
    n = shape[dim]
    ref = torch.median(x, dim, keepdim)
    got = st.median(x, dim, keepdim, mode="hard")
    assert isinstance(got, torch.return_types.median)
    assert torch.equal(got.values, ref.values)
    assert torch.equal(got.indices, one_hot(ref.indices, n, dtype))
    assert torch.equal(st.argmedian(x, dim, keepdim, mode="hard"), got.indices)
    assert torch.equal(st.median(x, mode="hard"), torch.median(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS + [((2, 3, 5), None)])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_quantile(
    shape: tuple, dim: int | None, keepdim: bool, interpolation: str, dtype: torch.dtype
) -> None:
    x = data(shape, dtype)
    for q in (0.0, 0.2, 0.5, 0.75, 1.0, torch.tensor([0.1, 0.5, 0.9], dtype=dtype)):
        ref = torch.quantile(x, q, dim, keepdim, interpolation=interpolation)
        got = st.quantile(x, q, dim, keepdim, mode="hard", interpolation=interpolation)
        assert torch.equal(got, ref), (q, got, ref)
        # the hard argquantile reproduces the value through selection
        idx = st.argquantile(x, q, dim, keepdim, mode="hard", interpolation=interpolation)
        n = x.numel() if dim is None else shape[dim]
        assert idx.shape == ref.shape + (n,)
        assert ((idx == 0) | (idx > 0)).all()
        torch.testing.assert_close(idx.sum(-1), torch.ones_like(ref))
        if keepdim:
            continue
        xm = x.reshape(-1) if dim is None else x.movedim(dim, -1)
        val = (idx * xm).sum(-1)
        torch.testing.assert_close(val, ref)


def test_argquantile_two_hot_example() -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    got = st.argquantile(x, 0.2, mode="hard")
    torch.testing.assert_close(got, torch.tensor([0.6, 0.4, 0.0, 0.0]))
    got = st.argquantile(x, 0.5, mode="hard", interpolation="nearest")  # pos 1.5 -> 2 (half even)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 1.0, 0.0]))
    got = st.argquantile(x, 0.5, mode="hard", interpolation="midpoint")
    torch.testing.assert_close(got, torch.tensor([0.5, 0.0, 0.5, 0.0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
def test_rank_matches_double_argsort(shape: tuple, dim: int, dtype: torch.dtype) -> None:
    x = data(shape, dtype)
    asc = torch.argsort(torch.argsort(x, dim=dim, stable=True), dim=dim, stable=True) + 1
    order = torch.argsort(x, dim=dim, descending=True, stable=True)
    desc = torch.argsort(order, dim=dim, stable=True) + 1
    assert torch.equal(st.rank(x, dim, mode="hard", descending=False), asc.to(dtype))
    assert torch.equal(st.rank(x, dim, mode="hard"), desc.to(dtype))


def test_rank_ties_and_readme() -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0])
    assert st.rank(x, mode="hard").tolist() == [3, 4, 2, 1]
    assert st.rank(x, mode="hard", descending=False).tolist() == [2, 1, 3, 4]
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert st.rank(t, mode="hard", descending=False).tolist() == [3, 1, 4, 2]
    assert st.rank(t, mode="hard").tolist() == [1, 3, 2, 4]


def test_soft_index_shapes_dim1() -> None:
    x = data((2, 3, 5))
    for mode in ("hard", "smooth"):
        assert st.argsort(x, dim=1, mode=mode).shape == (2, 3, 5, 3)
        assert st.sort(x, dim=1, mode=mode).indices.shape == (2, 3, 5, 3)
        assert st.argmax(x, dim=1, mode=mode).shape == (2, 5, 3)
        assert st.argmax(x, dim=1, keepdim=True, mode=mode).shape == (2, 1, 5, 3)
        assert st.argmin(x, mode=mode).shape == (30,)
        assert st.max(x, dim=1, mode=mode).indices.shape == (2, 5, 3)
        assert st.topk(x, 2, dim=1, mode=mode).indices.shape == (2, 2, 5, 3)
        assert st.argmedian(x, dim=1, keepdim=True, mode=mode).shape == (2, 1, 5, 3)
        assert st.argquantile(x, torch.tensor([0.2, 0.7]), dim=1, mode=mode).shape == (2, 2, 5, 3)
        assert st.rank(x, dim=1, mode=mode).shape == (2, 3, 5)
        assert st.rank(x, mode=mode).shape == (30,)


def test_zero_dim_input() -> None:
    s = torch.tensor(2.5)
    for mode in ("hard", "smooth"):
        r = st.sort(s, mode=mode)
        assert r.values.shape == () and r.indices.shape == (1,)
        assert st.max(s, mode=mode).shape == ()
        assert st.max(s, 0, mode=mode).values.shape == ()
        assert st.argmax(s, mode=mode).shape == (1,)
        assert st.topk(s, 1, mode=mode).values.shape == ()
        torch.testing.assert_close(st.quantile(s, 0.3, mode=mode), s)


def test_integer_input_promoted() -> None:
    x = torch.tensor([[3, 1, 2], [0, 5, 4]])
    assert st.sort(x, mode="hard").values.dtype == torch.get_default_dtype()
    assert st.sort(x).values.dtype == torch.get_default_dtype()
    assert st.argmax(x, dim=1).dtype == torch.get_default_dtype()
    assert torch.equal(st.max(x, 1, mode="hard").values, torch.tensor([3.0, 5.0]))
    assert st.rank(x, dim=1, mode="hard").tolist() == [[1, 3, 2], [3, 1, 2]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_returns_input_dtype(dtype: torch.dtype) -> None:
    x = data((3, 6)).to(dtype)
    for mode in ("hard", "smooth"):
        r = st.sort(x, mode=mode)
        assert r.values.dtype == dtype and r.indices.dtype == dtype
        assert st.quantile(x, 0.3, dim=1, mode=mode).dtype == dtype
        assert st.rank(x, dim=1, mode=mode).dtype == dtype
        assert st.max(x, dim=1, mode=mode).values.dtype == dtype
        assert st.argmax(x, dim=1, mode=mode).dtype == dtype
    assert torch.equal(st.sort(x, mode="hard").values, torch.sort(x).values)


def _torch_error(fn: object, *args: object, **kwargs: object) -> type[BaseException]:
    try:
        fn(*args, **kwargs)  # type: ignore[operator]
    except Exception as err:  # noqa: BLE001
        return type(err)
    raise AssertionError("torch did not raise")


def test_empty_tensors_behave_like_torch() -> None:
    e = torch.empty(0)
    assert st.sort(e).values.shape == (0,)
    assert st.sort(e).indices.shape == (0, 0)
    assert st.argsort(torch.empty(2, 0)).shape == (2, 0, 0)
    assert st.rank(torch.empty(3, 0), dim=1).shape == (3, 0)
    assert st.topk(torch.empty(0), 0).values.shape == (0,)
    assert st.median(e).isnan()
    raising = [
        (st.max, torch.max, (e,), {}),
        (st.min, torch.min, (e,), {}),
        (st.max, torch.max, (torch.empty(2, 0),), {"dim": 1}),
        (st.argmax, torch.argmax, (e,), {}),
        (st.argmin, torch.argmin, (torch.empty(2, 0),), {"dim": 1}),
        (st.quantile, torch.quantile, (e, 0.5), {}),
        (st.median, torch.median, (torch.empty(2, 0),), {"dim": 1}),
    ]
    for ours, theirs, args, kwargs in raising:
        for mode in ("hard", "smooth"):
            with pytest.raises(_torch_error(theirs, *args, **kwargs)):
                ours(*args, mode=mode, **kwargs)
    # an empty batch along another dim works
    x = torch.empty(0, 4)
    for mode in ("hard", "smooth"):
        assert st.sort(x, mode=mode).indices.shape == (0, 4, 4)
        assert st.max(x, dim=1, mode=mode).values.shape == (0,)
        with pytest.raises(_torch_error(torch.quantile, x, 0.5, dim=1)):
            st.quantile(x, 0.5, dim=1, mode=mode)
        assert st.median(x, dim=1, mode=mode).values.shape == (0,)
        assert st.rank(x, dim=1, mode=mode).shape == (0, 4)
        assert st.topk(x, 2, dim=1, mode=mode).indices.shape == (0, 2, 4)
