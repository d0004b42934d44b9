"""The soft-integer algebra (:mod:`softtorch.interception.discrete`, ``ops_integer``).

Every relaxed integer value is checked against an independent formula: probability mass
functions are rebuilt here by explicit loops / convolutions / a Poisson-binomial DP, and every
integer or bool result that user code sees is compared with plain torch on the exact operands.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st_

import softtorch as st
from softtorch.interception import SoftTensor, soft_mode
from softtorch.interception import discrete as D
from softtorch.interception.tensor import make, plain

S = 0.5  # moderate softness: probabilities well inside (0, 1)


def _plain(t: torch.Tensor) -> torch.Tensor:
    return plain(t).detach()


def _pmf(t: torch.Tensor) -> dict[tuple[int, ...], dict[int, float]]:
    """The distribution of every element of a soft integer as ``{position: {value: prob}}``
    (equal support values summed), read point by point from ``t.distribution``."""
    v, p = t.distribution
    v, p = v.detach(), p.detach().double()
    out: dict[tuple[int, ...], dict[int, float]] = {}
    for pos in itertools.product(*[range(n) for n in v.shape[1:]]):
        d: dict[int, float] = {}
        for k in range(v.shape[0]):
            val = int(v[(k, *pos)])
            d[val] = d.get(val, 0.0) + float(p[(k, *pos)])
        out[pos] = d
    return out


def _close(a: dict[int, float], b: dict[int, float], tol: float = 1e-5) -> None:
    for key in set(a) | set(b):
        assert abs(a.get(key, 0.0) - b.get(key, 0.0)) < tol, (key, a, b)


def _sums_to_one(t: torch.Tensor) -> None:
    v, p = t.distribution
    assert v.shape == p.shape == (v.shape[0], *t.shape)
    assert bool((p >= -1e-7).all())
    torch.testing.assert_close(p.sum(0), torch.ones_like(p[0]), atol=1e-5, rtol=0)


def _E(t: torch.Tensor) -> torch.Tensor:
    """The expectation of a soft integer (read outside the mode, where roles act as plain)."""
    return D.mean(t.distribution).detach()


def _sig(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z / S)


# ------------------------------------------------------------------- support bookkeeping


def test_soft_bool_is_bernoulli() -> None:
    x = torch.tensor([-1.0, 0.2, 0.5, 2.0], requires_grad=True)
    with soft_mode("smooth", softness=S):
        m = x > 0
    assert torch.equal(m.hard(), x.detach() > 0)
    v, p = m.distribution
    assert torch.equal(v.bool(), torch.tensor([[False] * 4, [True] * 4]))
    q = _sig(x.detach())  # P(x > 0) = sigmoid(x / s)
    torch.testing.assert_close(p.detach(), torch.stack([1 - q, q]))
    _sums_to_one(m)


def test_soft_bool_gradient_at_a_tie() -> None:
    x = torch.zeros(3, requires_grad=True)
    with soft_mode("smooth", softness=S):
        m = x > 0
    torch.testing.assert_close(_plain(m).detach(), torch.full((3,), 0.5))
    m.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.25 / S))


def test_soft_index_is_categorical_over_positions() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
    assert torch.equal(_plain(i), x.detach().argmax(-1))
    v, p = i.distribution
    assert torch.equal(v, torch.arange(5).reshape(5, 1).expand(5, 3))
    torch.testing.assert_close(p, i.soft_index.movedim(-1, 0))
    _sums_to_one(i)


def _bools(seed: int = 0, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return torch.randn(n, requires_grad=True), torch.randn(n, requires_grad=True)


def test_affine_maps_move_the_support() -> None:
    x, _ = _bools()
    a = torch.tensor([2, -3, 0, 5])
    with soft_mode("smooth", softness=S):
        b = (x > 0).long()
        y = a * b + 7
        z = 3 - 2 * y
    q = _sig(x.detach())
    ex = (x.detach() > 0).long()
    assert torch.equal(_plain(y), a * ex + 7) and torch.equal(_plain(z), 3 - 2 * (a * ex + 7))
    for pos, d in _pmf(y).items():
        k = pos[0]
        ref: dict[int, float] = {}
        for val, pr in ((7, 1 - float(q[k])), (int(a[k]) + 7, float(q[k]))):
            ref[val] = ref.get(val, 0.0) + pr
        _close(d, ref)
        _close(_pmf(z)[pos], {3 - 2 * val: pr for val, pr in ref.items()})
    _sums_to_one(z)


def test_remainder_by_an_integer() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 6, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
        r = i % 4
    assert torch.equal(_plain(r), x.detach().argmax(-1) % 4)
    pi = _pmf(i)
    for pos, d in _pmf(r).items():
        ref: dict[int, float] = {}
        for val, pr in pi[pos].items():
            ref[val % 4] = ref.get(val % 4, 0.0) + pr
        _close(d, ref)


def test_floor_divide_by_an_integer() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 6, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
        r = i // 2
    assert torch.equal(_plain(r), x.detach().argmax(-1) // 2)
    assert r.distribution is not None
    pi = _pmf(i)
    for pos, d in _pmf(r).items():
        ref: dict[int, float] = {}
        for val, pr in pi[pos].items():
            ref[val // 2] = ref.get(val // 2, 0.0) + pr
        _close(d, ref)


def test_where_of_a_soft_bool_is_the_distribution_over_both_branches() -> None:
    x, _ = _bools(2)
    a = torch.tensor([4, -1, 9, 2])
    with soft_mode("smooth", softness=S):
        m = x > 0
        w = torch.where(m, a, -3)
        w2 = torch.where(m, 5, a)
    q = _sig(x.detach())
    assert torch.equal(_plain(w), torch.where(x.detach() > 0, a, -3))
    assert torch.equal(_plain(w2), torch.where(x.detach() > 0, 5, a))
    for (k,), d in _pmf(w).items():
        _close(d, {int(a[k]): float(q[k]), -3: 1 - float(q[k])})
    for (k,), d in _pmf(w2).items():
        ref = {5: float(q[k])}
        ref[int(a[k])] = ref.get(int(a[k]), 0.0) + 1 - float(q[k])
        _close(d, ref)


def _dense(t: torch.Tensor, pos: tuple[int, ...], n: int) -> torch.Tensor:
    d = _pmf(t)[pos]
    return torch.tensor([d.get(k, 0.0) for k in range(n)], dtype=torch.float64)


def test_adding_soft_integers_convolves() -> None:
    torch.manual_seed(3)
    x, y = torch.randn(3, 5, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i, j = x.argmax(-1), y.argmax(-1)
        s = i + j
    assert torch.equal(_plain(s), x.detach().argmax(-1) + y.detach().argmax(-1))
    assert s.distribution[0].shape[0] == 8  # 20 combinations merged into the values 0 .. 7
    for r in range(3):
        pi, pj = _dense(i, (r,), 5), _dense(j, (r,), 4)
        conv = torch.tensor([sum(float(pi[a]) * float(pj[k - a]) for a in range(5)
                                 if 0 <= k - a < 4) for k in range(8)], dtype=torch.float64)
        torch.testing.assert_close(_dense(s, (r,), 8), conv, atol=1e-6, rtol=0)
    _sums_to_one(s)
    D.mean(s.distribution).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_products_of_independent_soft_integers() -> None:
    torch.manual_seed(4)
    x, y = torch.randn(2, 5, requires_grad=True), torch.randn(2, 4, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i, j = x.argmax(-1), y.argmax(-1)
        pr = i * j
    assert torch.equal(_plain(pr), x.detach().argmax(-1) * y.detach().argmax(-1))
    for r in range(2):
        pi, pj = _dense(i, (r,), 5), _dense(j, (r,), 4)
        ref: dict[int, float] = {}
        for a in range(5):
            for b in range(4):
                ref[a * b] = ref.get(a * b, 0.0) + float(pi[a] * pj[b])
        _close(_pmf(pr)[(r,)], ref)
    _sums_to_one(pr)


def test_comparisons_are_probability_masses() -> None:
    torch.manual_seed(5)
    x = torch.randn(4, 6, requires_grad=True)
    c = torch.tensor([0, 2, 3, 5])
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
        eq, ne, gt, ge2 = i == c, i != c, i > 2, i >= c
    e = x.detach().argmax(-1)
    for out, ref in ((eq, e == c), (ne, e != c), (gt, e > 2), (ge2, e >= c)):
        assert out.is_soft_bool and torch.equal(out.hard(), ref)
    p = i.soft_index.detach()
    pos = torch.arange(6)
    torch.testing.assert_close(_plain(eq), p[torch.arange(4), c])
    torch.testing.assert_close(_plain(ne), 1 - p[torch.arange(4), c])
    torch.testing.assert_close(_plain(gt), (p * (pos > 2)).sum(-1))
    torch.testing.assert_close(_plain(ge2), (p * (pos >= c[:, None])).sum(-1))


def _poisson_binomial(q: list[float]) -> list[float]:
    dp = [1.0]
    for pk in q:
        new = [0.0] * (len(dp) + 1)
        for k, v in enumerate(dp):
            new[k] += v * (1 - pk)
            new[k + 1] += v * pk
        dp = new
    return dp


def test_sum_of_soft_bools_is_poisson_binomial() -> None:
    torch.manual_seed(6)
    x = torch.randn(3, 7, requires_grad=True)
    with soft_mode("smooth", softness=S):
        b = (x > 0).long()
        total, rows, kept = b.sum(), b.sum(1), b.sum(0, keepdim=True)
    e = (x.detach() > 0).long()
    assert torch.equal(_plain(total), e.sum()) and torch.equal(_plain(rows), e.sum(1))
    assert torch.equal(_plain(kept), e.sum(0, keepdim=True)) and kept.shape == (1, 7)
    q = _sig(x.detach().double())
    _close(_pmf(total)[()], dict(enumerate(_poisson_binomial(q.flatten().tolist()))))
    for r in range(3):
        _close(_pmf(rows)[(r,)], dict(enumerate(_poisson_binomial(q[r].tolist()))))
    for c in range(7):
        _close(_pmf(kept)[(0, c)], dict(enumerate(_poisson_binomial(q[:, c].tolist()))))
    torch.testing.assert_close(_E(rows), q.float().sum(1), atol=1e-5, rtol=0)


def test_beyond_max_support_the_sum_is_the_tent_with_the_same_mean() -> None:
    n = D.MAX_SUPPORT + 44  # the Poisson-binomial would have n + 1 > MAX_SUPPORT values
    torch.manual_seed(7)
    x = torch.randn(n, dtype=torch.float64, requires_grad=True)
    with soft_mode("smooth", softness=S):
        s = (x > 0).long().sum()
    assert torch.equal(_plain(s), (x.detach() > 0).long().sum())  # exact value unchanged
    v, p = s.distribution
    assert v.shape[0] == 2 and int(v[1] - v[0]) == 1
    m = _sig(x.detach()).sum()
    assert int(v[0]) == int(torch.floor(m))
    torch.testing.assert_close(D.mean(s.distribution).detach(), m)  # mean preserved
    torch.testing.assert_close(p.sum(0).detach(), torch.ones((), dtype=p.dtype))
    assert bool((p >= 0).all())
    D.mean(s.distribution).backward()
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach() / S) * (1 - torch.sigmoid(
        x.detach() / S)) / S)  # the gradient of the mean


def test_tent_and_point() -> None:
    m = torch.tensor([2.3, -1.25, 4.0], requires_grad=True)
    v, p = D.tent(m, torch.long)
    assert torch.equal(v, torch.tensor([[2, -2, 4], [3, -1, 5]]))
    torch.testing.assert_close(p.detach(), torch.tensor([[0.7, 0.25, 1.0], [0.3, 0.75, 0.0]]))
    torch.testing.assert_close(D.mean((v, p)).detach(), m.detach())
    pv, pp = D.point(torch.tensor([3, 1]), torch.zeros((), dtype=torch.float64))
    assert torch.equal(pv, torch.tensor([[3, 1]])) and pp.dtype == torch.float64
    assert torch.equal(pp, torch.ones(1, 2, dtype=torch.float64))


def test_tent_gradient_at_an_integer_mean() -> None:
    m = torch.tensor([2.3, 4.0, 150.0], requires_grad=True)
    D.mean(D.tent(m, torch.long)).sum().backward()
    torch.testing.assert_close(m.grad, torch.ones(3))


def test_integer_cast_of_a_soft_float_keeps_the_gradient() -> None:
    x = torch.tensor([[0.3, -0.2, 1.0]], requires_grad=True)
    w = torch.full((3, 1), 4.0, requires_grad=True)  # P W = 4 exactly, d/dW = P
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
        f = F.embedding(i, w).long().float()
    assert float(f.hard()) == 4.0 and float(plain(f)) == 4.0
    f.sum().backward()
    torch.testing.assert_close(w.grad.T, i.soft_index.detach())


def test_compress_merges_equal_values_and_bounds_the_support() -> None:
    v = torch.tensor([[0, 5], [2, 5], [0, 6], [2, 7], [1, 5], [2, 6]])
    p = torch.tensor([[0.1, 0.2], [0.2, 0.2], [0.3, 0.1], [0.1, 0.1], [0.2, 0.3], [0.1, 0.1]])
    cv, cp = D.compress((v, p))
    assert cv.shape[0] == 3  # per-element range 0..2 / 5..7: 3 values instead of 6
    ref0 = {0: 0.4, 1: 0.2, 2: 0.4}
    ref1 = {5: 0.7, 6: 0.2, 7: 0.1}
    for col, ref in ((0, ref0), (1, ref1)):
        got: dict[int, float] = {}
        for k in range(cv.shape[0]):
            got[int(cv[k, col])] = got.get(int(cv[k, col]), 0.0) + float(cp[k, col])
        _close(got, ref)
    small = (v[:4], p[:4])
    assert D.compress(small) is small  # up to 4 points: unchanged
    # distinct values over a span longer than MAX_SUPPORT: the tent with the same mean
    k = D.MAX_SUPPORT + 1
    wide = torch.arange(k).reshape(k, 1) * 1000
    probs = torch.full((k, 1), 1.0 / k, dtype=torch.float64)
    tv, tp = D.compress((wide, probs))
    assert tv.shape[0] == 2
    torch.testing.assert_close(D.mean((tv, tp)), D.mean((wide, probs)))
    torch.testing.assert_close(tp.sum(0), torch.ones(1, dtype=torch.float64))


def test_pointwise_beyond_max_elements_uses_two_point_operands(monkeypatch) -> None:
    torch.manual_seed(8)
    x, y = torch.randn(3, 6, requires_grad=True), torch.randn(3, 6, requires_grad=True)
    monkeypatch.setattr(D, "MAX_ELEMENTS", 40)  # 6 * 6 * 3 combinations > 40
    with soft_mode("smooth", softness=S):
        i, j = x.argmax(-1), y.argmax(-1)
        s = i + j
    assert torch.equal(_plain(s), x.detach().argmax(-1) + y.detach().argmax(-1))
    _sums_to_one(s)
    ref = (i.soft_index.detach() * torch.arange(6)).sum(-1) + (
        j.soft_index.detach() * torch.arange(6)).sum(-1)
    torch.testing.assert_close(D.mean(s.distribution).detach(), ref)  # mean preserved


def test_pointwise_on_an_empty_soft_integer() -> None:
    x = torch.randn(4, requires_grad=True)
    with soft_mode("smooth", softness=S):
        e = (x > 0).long()[:0]
        outs = [e + 1, e == 1, e * e]
    for o in outs:
        assert o.shape == (0,)


# ----------------------------------------------------------------------- exact shadow


def _soft_ints() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(9)
    x = torch.randn(3, 5, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)  # SoftIndex
        b = (x > 0).long()  # SoftInt (Bernoulli)
    return x, i, b


CASTS = {
    "long": lambda t: t.long(),
    "int": lambda t: t.int(),
    "int16": lambda t: t.to(torch.int16),
    "bool": lambda t: t.bool(),
    "float": lambda t: t.float(),
    "double": lambda t: t.double(),
    "to_device": lambda t: t.to("cpu"),
    "to_dtype_device": lambda t: t.to("cpu", torch.float64),
    "type_as_float": lambda t: t.type_as(torch.zeros(1)),
    "type_as_int": lambda t: t.type_as(torch.zeros(1, dtype=torch.int32)),
    "type": lambda t: t.type(torch.float32),
}


@pytest.mark.parametrize("which", ["index", "bernoulli", "sum"])
@pytest.mark.parametrize("cast", list(CASTS))
def test_exact_shadow_through_casts(which: str, cast: str) -> None:
    x, i, b = _soft_ints()
    with soft_mode("smooth", softness=S):
        t = {"index": i, "bernoulli": b, "sum": b.sum(0) if which == "sum" else b}[which]
        out = CASTS[cast](t)
    exact = CASTS[cast](t.hard())
    m = D.mean(t.distribution).detach()
    assert out.shape == exact.shape
    if exact.dtype == torch.bool:  # a SoftBool: probabilities, the exact mask beside them
        assert out.hard().dtype == torch.bool
        assert out.is_soft_bool and torch.equal(out.hard(), exact)
        v, p = t.distribution
        torch.testing.assert_close(_plain(out), (p * (v != 0)).sum(0).detach())
    elif D.is_integral(exact.dtype):
        assert out.dtype == exact.dtype and torch.equal(_plain(out), exact)
        _sums_to_one(out)
        torch.testing.assert_close(D.mean(out.distribution).detach(), m)
    else:  # floating: the expectation, torch's exact cast beside it
        assert out.dtype == exact.dtype
        torch.testing.assert_close(_plain(out), m.to(exact.dtype))
        assert torch.equal(out.hard(), exact)
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


SHAPES = {
    "reshape": lambda t: t.reshape(-1),
    "view": lambda t: t.view(5, 3),
    "permute": lambda t: t.permute(1, 0),
    "transpose": lambda t: t.transpose(0, 1),
    "t": lambda t: t.t(),
    "int_index": lambda t: t[1],
    "slice": lambda t: t[:, 1:4],
    "int_slice": lambda t: t[0, ::2],
    "bool_mask": lambda t: t[torch.tensor([True, False, True])],
    "cat_plain": lambda t: torch.cat([t, torch.full((1, 5), 7, dtype=t.dtype)]),
    "stack_plain": lambda t: torch.stack([t[0], torch.arange(5, dtype=t.dtype)]),
    "diag": lambda t: torch.diag(t[:, :3]),
    "flatten": lambda t: t.flatten(),
    "unsqueeze": lambda t: t.unsqueeze(1),
    "flip": lambda t: t.flip(0),
    "roll": lambda t: t.roll(1, 1),
    "expand": lambda t: t[:1].expand(4, 5),
    "squeeze": lambda t: t[:1].squeeze(0),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_exact_shadow_through_shape_ops(shape: str) -> None:
    x, _, b = _soft_ints()
    op = SHAPES[shape]
    with soft_mode("smooth", softness=S):
        out = op(b)
        view = out.float()
    exact = op(b.hard())
    assert out.dtype == exact.dtype and torch.equal(_plain(out), exact)
    _sums_to_one(out)
    # the probabilities follow the data: the mean of the result is the op on the mean
    q = _sig(x.detach())
    ref = op(q).clone()
    if shape in ("cat_plain", "stack_plain"):  # the plain rows are point masses
        ref = op(q.new_zeros(3, 5)).float()
        ref[:-1] = op(q)[:-1]
        ref[-1] = exact[-1].float()
    torch.testing.assert_close(D.mean(out.distribution).detach(), ref)
    torch.testing.assert_close(_plain(view), ref)
    assert torch.equal(view.hard(), exact.float())


_INDEX_SHAPES = {
    **SHAPES,
    "repeat": lambda t: t.repeat(2, 1),
    "tile": lambda t: t.tile((2,)),
    "repeat_interleave": lambda t: t.repeat_interleave(2, 0),
    "cat_self": lambda t: torch.cat([t, t.flip(0)]),
}


@pytest.mark.parametrize("shape", list(_INDEX_SHAPES))
def test_soft_index_through_shape_ops(shape: str) -> None:
    torch.manual_seed(22)
    x = torch.randn(3, 5, 4, requires_grad=True)
    op = _INDEX_SHAPES[shape]
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)  # (3, 5) over 4 positions
        out = op(i)
    exact = op(x.detach().argmax(-1))
    assert torch.equal(out.hard() if isinstance(out, SoftTensor) else out, exact)
    assert isinstance(out, SoftTensor) and out.distribution is not None
    _sums_to_one(out)
    e = (i.soft_index.detach() * torch.arange(4.0)).sum(-1)  # E[i]
    ref = op(e)
    if shape in ("cat_plain", "stack_plain"):
        ref = ref.clone()
        ref[-1] = exact[-1].float()
    if shape == "diag":
        ref = torch.diag(e[:, :3])
    torch.testing.assert_close(_E(out), ref.float())


def test_masked_fill_of_a_soft_integer_is_a_point_mass() -> None:
    x = torch.tensor([[-1.0, 0.5, 2.0]], requires_grad=True)
    with soft_mode("smooth", softness=S):
        b = (x > 0).long()
        mf = b.masked_fill(torch.tensor([[True, False, False]]), 9)
        view = mf.float()
    assert torch.equal(_plain(mf), torch.tensor([[9, 1, 1]]))
    q = _sig(x.detach())
    torch.testing.assert_close(_plain(view).detach(), torch.tensor([[9.0, q[0, 1], q[0, 2]]]))
    _sums_to_one(mf)


def test_tril_of_a_soft_integer_is_normalised() -> None:
    x, _, b = _soft_ints()
    with soft_mode("smooth", softness=S):
        t = b[:, :3].tril()
    assert torch.equal(_plain(t), b.hard()[:, :3].tril())
    _sums_to_one(t)


def test_diag_fills_off_diagonal_with_point_masses() -> None:
    x, _, b = _soft_ints()
    with soft_mode("smooth", softness=S):
        d = torch.diag(b[0])  # (5, 5), zeros off the diagonal made by torch
    assert torch.equal(_plain(d), torch.diag(b.hard()[0]))
    _sums_to_one(d)
    mean = D.mean(d.distribution).detach()
    torch.testing.assert_close(mean, torch.diag(_sig(x.detach()[0])))


def test_pad_with_a_value_is_a_point_mass() -> None:
    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    with soft_mode("smooth", softness=S):
        b = (x > 0).long()
        pd = F.pad(b, (1, 1), value=3)
        pf = pd.float()
    assert torch.equal(_plain(pd), torch.tensor([3, 0, 1, 3]))
    _sums_to_one(pd)
    q = _sig(x.detach())
    torch.testing.assert_close(_plain(pf).detach(), torch.tensor([3.0, q[0], q[1], 3.0]))


# -------------------------------------------------------------------------- consumers


def _index(seed: int = 10, n: int = 6, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(n, k, requires_grad=True)
    with soft_mode("smooth", softness=S):
        i = x.argmax(-1)
    return x, i


def test_bincount_sums_the_distributions() -> None:
    x, i = _index()
    p = i.soft_index.detach()
    w = torch.rand(6)
    with soft_mode("smooth", softness=S):
        c = torch.bincount(i, minlength=6)
        cw = torch.bincount(i, weights=w, minlength=5)
        c0 = torch.bincount(i)
    e = x.detach().argmax(-1)
    assert torch.equal(_plain(c), torch.bincount(e, minlength=6))
    assert torch.equal(_plain(c0), torch.bincount(e))
    assert torch.equal(cw.hard(), torch.bincount(e, weights=w, minlength=5))
    ref = torch.cat([p.sum(0), torch.zeros(2)])
    torch.testing.assert_close(_E(c), ref)
    torch.testing.assert_close(_plain(cw).detach(), torch.cat([(w[:, None] * p).sum(0),
                                                               torch.zeros(1)]))
    torch.testing.assert_close(_E(c).sum(), torch.tensor(6.0))
    # probabilities beyond the exact length (there are none: positions < 4 <= length)
    cw.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bincount_of_a_confusion_code_is_the_soft_confusion_matrix() -> None:
    torch.manual_seed(11)
    z = torch.randn(12, requires_grad=True)
    target = torch.randint(0, 2, (12,))
    with soft_mode("smooth", softness=S):
        code = (target * 2 + (z > 0).long()).to(torch.long)
        cm = torch.bincount(code, minlength=4).reshape(2, 2)
    e = torch.bincount(target * 2 + (z.detach() > 0).long(), minlength=4).reshape(2, 2)
    assert torch.equal(_plain(cm), e)
    q = _sig(z.detach())
    ref = torch.stack([torch.stack([((1 - q) * (target == t)).sum(), (q * (target == t)).sum()])
                       for t in (0, 1)])
    torch.testing.assert_close(_E(cm), ref)


def test_scatter_add_and_index_add_through_a_soft_index() -> None:
    x, i = _index(12)
    p = i.soft_index.detach()
    v = torch.arange(1.0, 7.0)
    base = torch.tensor([0.5, -1.0, 2.0, 0.0])
    e = x.detach().argmax(-1)
    with soft_mode("smooth", softness=S):
        sa = base.scatter_add(0, i, v)
        ia = base.index_add(0, i, v)
        ia2 = torch.index_add(base, 0, i, v, alpha=2)
    assert torch.equal(sa.hard(), base.scatter_add(0, e, v))
    assert torch.equal(ia.hard(), base.index_add(0, e, v))
    torch.testing.assert_close(_plain(sa).detach(), base + p.T @ v)  # P^T v
    torch.testing.assert_close(_plain(ia).detach(), base + p.T @ v)
    torch.testing.assert_close(_plain(ia2).detach(), base + 2 * p.T @ v)
    (sa.sum() + ia.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_integer_scatter_add_through_a_soft_index_keeps_torch_values() -> None:
    x, i = _index(13)
    p = i.soft_index.detach()
    e = x.detach().argmax(-1)
    ones = torch.ones(6, dtype=torch.long)
    with soft_mode("smooth", softness=S):
        sa = torch.zeros(4, dtype=torch.long).scatter_add(0, i, ones)
        ia = torch.zeros(4, dtype=torch.long).index_add(0, i, ones)
    assert torch.equal(_plain(sa), torch.zeros(4, dtype=torch.long).scatter_add(0, e, ones))
    assert torch.equal(_plain(ia), torch.zeros(4, dtype=torch.long).index_add(0, e, ones))
    torch.testing.assert_close(D.mean(sa.distribution).detach(), p.sum(0))
    torch.testing.assert_close(D.mean(ia.distribution).detach(), p.sum(0))


def test_integer_scatter_add_results_carry_a_soft_config() -> None:
    x, i = _index(13)
    ones = torch.ones(6, dtype=torch.long)
    with soft_mode("smooth", softness=S):
        sa = torch.zeros(4, dtype=torch.long).scatter_add(0, i, ones)
        ia = torch.zeros(4, dtype=torch.long).index_add(0, i, ones)
        sr = torch.zeros(4, dtype=torch.long).scatter(0, i, ones, reduce="add")
    for t in (sa, ia, sr):
        assert t.config is None or isinstance(t.config, st.SoftConfig)
        assert torch.equal(plain(t + 1), t.hard() + 1)  # outside the mode


def test_index_put_accumulate_through_a_soft_index() -> None:
    x, i = _index(23)
    p = i.soft_index.detach()
    v = torch.arange(1.0, 7.0)
    with soft_mode("smooth", softness=S):
        out = torch.zeros(4).index_put((i,), v, accumulate=True)
    assert torch.equal(out.hard(), torch.zeros(4).index_put((x.detach().argmax(-1),), v,
                                                            accumulate=True))
    torch.testing.assert_close(_plain(out).detach(), p.T @ v)


@pytest.mark.parametrize("old", ["zeros", "sevens", "inf", "empty", "long"])
def test_soft_rank_by_setitem_through_argsort(old: str) -> None:
    torch.manual_seed(14)
    r = torch.randn(5, requires_grad=True)
    dtype = torch.long if old == "long" else torch.float32
    with soft_mode("smooth", softness=S):
        idx = r.argsort()
        rank = {"zeros": torch.zeros(5), "sevens": torch.full((5,), 7.0),
                "inf": torch.full((5,), float("inf")), "empty": torch.empty(5),
                "long": torch.zeros(5, dtype=torch.long)}[old]
        rank[idx] = torch.arange(5, dtype=dtype)
    e = torch.empty(5, dtype=dtype)
    e[r.detach().argsort()] = torch.arange(5, dtype=dtype)
    p = idx.soft_index.detach()  # row k: where the k-th smallest sits
    soft_rank = p.T @ torch.arange(5.0)  # P^T v (every position written: old content unused)
    assert torch.equal(rank.hard() if old != "long" else _plain(rank), e)
    view = D.mean(rank.distribution) if old == "long" else plain(rank)
    torch.testing.assert_close(view.detach(), soft_rank)
    (view * torch.arange(5.0)).sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0


def test_one_hot_is_the_distribution() -> None:
    x, i = _index(15)
    with soft_mode("smooth", softness=S):
        oh = F.one_hot(i, 5)
        b = (x > 0).long()
        ohb = F.one_hot(b, 3)
    e = x.detach().argmax(-1)
    assert torch.equal(_plain(oh), F.one_hot(e, 5))
    p = i.soft_index.detach()
    torch.testing.assert_close(_E(oh), torch.cat([p, torch.zeros(6, 1)], -1))
    _sums_to_one(oh)
    q = _sig(x.detach())
    torch.testing.assert_close(_E(ohb),
                               torch.stack([1 - q, q, torch.zeros_like(q)], -1))


def test_gather_of_integer_data_by_a_soft_index_is_a_mixture() -> None:
    x, i = _index(16)
    p = i.soft_index.detach()
    tgt = torch.tensor([3, 1, 4, 1])
    e = x.detach().argmax(-1)
    with soft_mode("smooth", softness=S):
        outs = {
            "getitem": tgt[i],
            "gather": torch.gather(tgt.expand(6, 4), 1, i.unsqueeze(1)).squeeze(1),
            "index_select": torch.index_select(tgt, 0, i),
            "take": torch.take(tgt, i),
        }
    for name, out in outs.items():
        assert torch.equal(_plain(out), tgt[e]), name
        for (r,), d in _pmf(out).items():  # P(out = v) = sum_j P_rj [tgt_j = v]
            ref: dict[int, float] = {}
            for j in range(4):
                ref[int(tgt[j])] = ref.get(int(tgt[j]), 0.0) + float(p[r, j])
            _close(d, ref)
    # soft-integer data: P(out = 1) = sum_j P_rj q_j
    y = torch.randn(4, requires_grad=True)
    with soft_mode("smooth", softness=S):
        bits = (y > 0).long()
        mixed = bits[i]
    assert torch.equal(_plain(mixed), (y.detach() > 0).long()[e])
    _sums_to_one(mixed)
    torch.testing.assert_close(_E(mixed), p @ _sig(y.detach()))
    D.mean(mixed.distribution).sum().backward()
    assert y.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_embedding_by_a_soft_index_is_p_w() -> None:
    x, i = _index(17)
    w = torch.randn(4, 3, requires_grad=True)
    emb = torch.nn.Embedding.from_pretrained(w.detach().clone(), freeze=False)
    with soft_mode("smooth", softness=S):
        out = F.embedding(i, w)
        out2 = emb(i)
    p = i.soft_index.detach()
    torch.testing.assert_close(_plain(out).detach(), p @ w.detach())
    torch.testing.assert_close(_plain(out2).detach(), p @ w.detach())
    assert torch.equal(out.hard(), w.detach()[x.detach().argmax(-1)])
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


@pytest.mark.parametrize("right", [False, True])
def test_bucketize_and_searchsorted_vs_soft_steps(right: bool) -> None:
    torch.manual_seed(18)
    z = torch.randn(7, requires_grad=True)
    bd = torch.tensor([-0.5, 0.0, 0.5])
    with soft_mode("smooth", softness=S):
        bk = torch.bucketize(z, bd, right=right)
        ss = torch.searchsorted(bd, z, right=right)
    step = st.greater_equal if right else st.greater
    sg = torch.stack([step(z.detach(), b, S) for b in bd])  # S_i = P(x > b_i)
    probs = torch.cat([1 - sg[:1], sg[:-1] - sg[1:], sg[-1:]])
    for out in (bk, ss):
        assert torch.equal(_plain(out), torch.bucketize(z.detach(), bd, right=right))
        _sums_to_one(out)
        for (k,), d in _pmf(out).items():
            _close(d, {b: float(probs[b, k]) for b in range(4)})
        torch.testing.assert_close(_E(out), sg.sum(0))  # E = sum_i S_i
    D.mean(bk.distribution).sum().backward()
    assert z.grad.abs().sum() > 0


def test_histc_soft_counts() -> None:
    torch.manual_seed(19)
    z = torch.tensor([-0.9, -0.45, -0.1, 0.12, 0.3, 0.77, 1.6, -2.0], requires_grad=True)
    s = 0.005
    with soft_mode("smooth", softness=s):
        h = torch.histc(z, bins=4, min=-1, max=1)
    assert torch.equal(h.hard(), torch.histc(z.detach(), bins=4, min=-1, max=1))
    edges = torch.linspace(-1, 1, 5)
    ge = torch.stack([st.greater_equal(z.detach(), e, s) for e in edges[:-1]])
    last = st.greater(z.detach(), edges[-1], s)
    steps = torch.cat([ge, last[None]])
    ref = (steps[:-1] - steps[1:]).clamp_min(0).sum(-1)
    torch.testing.assert_close(_plain(h).detach(), ref)
    inside = ((z.detach() >= -1) & (z.detach() <= 1)).sum().float()
    torch.testing.assert_close(_plain(h).sum().detach(), inside, atol=1e-3, rtol=0)
    h.sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_producers_converge_to_exact_as_softness_goes_to_zero() -> None:
    z = torch.tensor([-0.93, -0.41, -0.07, 0.12, 0.33, 0.77, 1.6, -2.1], requires_grad=True)
    bd = torch.tensor([-0.5, 0.0, 0.5])
    with soft_mode("smooth", softness=1e-4):
        bk = torch.bucketize(z, bd)
        h = torch.histc(z, bins=4, min=-1, max=1)
        fd = z // 0.5  # a soft floor
    ze = z.detach()
    torch.testing.assert_close(_E(bk), torch.bucketize(ze, bd).float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(_plain(h), torch.histc(ze, bins=4, min=-1, max=1), atol=1e-3,
                               rtol=0)
    torch.testing.assert_close(fd.detach(), ze // 0.5, atol=1e-3, rtol=0)
    fd.sum().backward()  # x // 0.5 used to fail in backward
    assert torch.isfinite(z.grad).all()


# ------------------------------------------------------------------ hypothesis properties

_logits = st_.lists(st_.floats(-3, 3).map(lambda v: round(v, 1)), min_size=12, max_size=12)


def _pipeline(x: torch.Tensor, thr: torch.Tensor, a: int, b: int, k: int) -> dict:
    """Integer code written the way libraries write it; run inside or outside the mode."""
    m = x > thr
    y = a * m.long() + b
    cls = x.reshape(4, 3).argmax(-1)
    code = cls * 2 + m.reshape(4, 3)[:, 0].long()
    return {
        "m": m,
        "y": y,
        "ysum": y.sum(),
        "rows": m.long().reshape(4, 3).sum(1),
        "code": code,
        "cm": torch.bincount(code, minlength=k),
        "eq": code == 3,
        "onehot": F.one_hot(cls, 3),
        "mean": m.float().mean(),
        "ratio": y.sum().float() / (m.long().sum() + 1).float(),
        "cnt_gt": m.long().reshape(4, 3).sum(1).float() > 1.5,  # a SoftFloat compared
        "cnt_long": (m.long().reshape(4, 3).sum(1).float() * 2).long(),
        "rank": cls.argsort(),
    }


@settings(max_examples=25, deadline=None)
@given(vals=_logits, a=st_.integers(-3, 3), b=st_.integers(-5, 5), k=st_.integers(6, 9),
       s=st_.sampled_from([1e-2, 0.1, 1.0, 10.0]))
def test_property_exact_integers_and_normalised_distributions(
    vals: list[float], a: int, b: int, k: int, s: float
) -> None:
    x = torch.tensor(vals, requires_grad=True)
    thr = torch.tensor(0.05)  # no value sits on the threshold (values are on a 0.1 grid)
    with soft_mode("smooth", softness=s):
        soft = _pipeline(x, thr, a, b, k)
    exact = _pipeline(x.detach(), thr, a, b, k)
    for name, e in exact.items():
        o = soft[name]
        if e.dtype == torch.bool:
            assert torch.equal(o.hard(), e), name
        elif D.is_integral(e.dtype):
            assert torch.equal(_plain(o), e), name
            if isinstance(o, SoftTensor) and o.distribution is not None:
                _sums_to_one(o)
        else:  # floating: soft values (with the exact ones beside them when tracked)
            if isinstance(o, SoftTensor) and o.hard() is not plain(o):
                assert torch.equal(o.hard(), e), name
            assert torch.isfinite(_plain(o)).all(), name
    # probabilities are probabilities
    for name in ("m", "eq"):
        pv = _plain(soft[name])
        assert bool(((pv >= 0) & (pv <= 1)).all())


@settings(max_examples=20, deadline=None)
@given(vals=_logits, a=st_.integers(-3, 3), b=st_.integers(-5, 5))
def test_property_soft_values_converge_to_exact(vals: list[float], a: int, b: int) -> None:
    x = torch.tensor(vals, dtype=torch.float64, requires_grad=True)
    xs = x.detach().reshape(4, 3)
    top2 = xs.topk(2, -1).values
    if bool(((top2[:, 0] - top2[:, 1]) < 0.05).any()):  # ties in the argmax: skip
        return
    thr = torch.tensor(0.05, dtype=torch.float64)
    with soft_mode("smooth", softness=1e-4):
        soft = _pipeline(x, thr, a, b, 9)
    exact = _pipeline(x.detach(), thr, a, b, 9)
    for name, e in exact.items():
        o = soft[name]
        if isinstance(o, SoftTensor) and o.distribution is not None:
            view = D.mean(o.distribution).detach()
        else:
            view = _plain(o).detach()
        torch.testing.assert_close(view.double(), e.double(), atol=1e-3, rtol=0, msg=name)
    loss = soft["ratio"] + D.mean(soft["cm"].distribution).sum() + soft["mean"]
    loss.backward()
    assert torch.isfinite(x.grad).all()


# ---------------------------------------------------------------------------- no NaN


def test_expectation_of_infinite_values_at_zero_probability() -> None:
    inf = float("inf")
    v = torch.tensor([[0.0, 1.0], [inf, -inf]])
    p = torch.tensor([[1.0, 1.0], [0.0, 0.0]], requires_grad=True)
    torch.testing.assert_close(D.expect(p, v), torch.tensor([0.0, 1.0]))
    D.expect(p, v).sum().backward()
    assert torch.isfinite(p.grad[0]).all()
    big = (torch.tensor([[0], [2**62]]), torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(D.mean(big), torch.tensor([0.0]))


def test_gather_of_infinite_data_at_zero_probability_is_finite() -> None:
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], requires_grad=True)
    i = make(torch.tensor([0, 0]), None, sidx=p)
    v = torch.tensor([1.0, 2.0, float("inf")])
    with soft_mode("smooth", softness=S):
        out = v[i]
    assert torch.equal(out.hard(), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(_plain(out).detach(), torch.tensor([1.5, 1.0]))


def test_ratio_of_soft_counts_that_are_exactly_zero_has_finite_gradients() -> None:
    x = torch.tensor([-1.0, 2.0, -3.0, 0.5], requires_grad=True)
    none = torch.zeros(4, dtype=torch.long)
    with soft_mode("smooth", softness=0.1):
        pred = (x > 0).long()
        tp = (pred * none).sum()  # exactly zero, exactly zero soft count (0 * p)
        d = tp.float()
        n = (pred * (1 - none)).sum().float()
        r = torch.where(d != 0, n / d, torch.zeros(()))
        r2 = torch.where(d != 0, d / d, torch.zeros(()))
    assert float(r.hard()) == 0.0 and float(_plain(r)) == 0.0
    (r + r2).backward()
    assert torch.isfinite(x.grad).all()


def test_soft_bools_at_saturation_with_infinite_branches() -> None:
    x = torch.tensor([-1e6, 3.0, 1e6], requires_grad=True)
    with soft_mode("smooth", softness=0.1):
        m = x > 0
        w = torch.where(m, float("inf"), 1.0)
        w2 = torch.where(m.long() == 0, 1.0, float("inf"))
    for out in (w, w2):
        assert torch.equal(_plain(out).detach(), torch.tensor([1.0, float("inf"), float("inf")]))


# ---------------------------------------------------------------------------- in place


def test_in_place_accumulation_into_a_plain_int_tensor() -> None:
    x = torch.tensor([-1.0, 2.0, -3.0, 0.5], requires_grad=True)
    with soft_mode("smooth", softness=S):
        count = torch.zeros(4, dtype=torch.long)
        before = count
        count += (x > 0).long()
        count += (x > 1).long()
        total = count.sum()
    assert count is before and count.dtype == torch.long
    e = (x.detach() > 0).long() + (x.detach() > 1).long()
    assert torch.equal(_plain(count), e) and torch.equal(_plain(total), e.sum())
    _sums_to_one(count)
    q0, q1 = _sig(x.detach()), _sig(x.detach() - 1)
    for (k,), d in _pmf(count).items():
        a, b = float(q0[k]), float(q1[k])
        _close(d, {0: (1 - a) * (1 - b), 1: a * (1 - b) + (1 - a) * b, 2: a * b})
    D.mean(total.distribution).backward()  # no version-counter error
    torch.testing.assert_close(x.grad, (q0 * (1 - q0) + q1 * (1 - q1)) / S)


def test_setitem_through_a_soft_index_keeps_exact_values_and_autograd_intact() -> None:
    torch.manual_seed(20)
    x = torch.randn(5, requires_grad=True)
    with soft_mode("smooth", softness=S):
        y = x.exp()  # autograd saves y
        idx = y.argsort()
        r = torch.zeros(5, dtype=torch.long)
        r[idx] = torch.arange(5)
        rf = torch.zeros(5)
        rf[idx] = torch.arange(5.0)
        loss = (y * rf).sum() + (r.float() * y).sum()
    e = torch.empty(5, dtype=torch.long)
    e[x.detach().argsort()] = torch.arange(5)
    assert torch.equal(_plain(r), e) and torch.equal(rf.hard(), e.float())
    loss.backward()  # must not raise "modified by an inplace operation"
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_hard_mode_integer_code_is_plain_torch() -> None:
    torch.manual_seed(21)
    x = torch.randn(4, 3, requires_grad=True)
    with soft_mode("hard"):
        out = _pipeline(x.reshape(-1), torch.tensor(0.05), 2, -1, 7)
    ref = _pipeline(x.detach().reshape(-1), torch.tensor(0.05), 2, -1, 7)
    for name, e in ref.items():
        o = out[name]
        got = o.hard() if isinstance(o, SoftTensor) else o
        assert torch.equal(got.detach(), e), name


@pytest.mark.slow
@pytest.mark.parametrize("s", [1e-6, 1e-3, 1.0, 1e4])
@pytest.mark.parametrize("n", [1, 7, 64, 300])
def test_sum_of_soft_bools_sweep(n: int, s: float) -> None:
    torch.manual_seed(n)
    x = (torch.randn(n, dtype=torch.float64) * 1e3).requires_grad_()
    with soft_mode("smooth", softness=s):
        tot = (x > 0).long().sum()
    assert torch.equal(_plain(tot), (x.detach() > 0).long().sum())
    _sums_to_one(tot)
    q = torch.sigmoid(x.detach() / s)
    torch.testing.assert_close(D.mean(tot.distribution).detach(), q.sum())
    if n + 1 <= D.MAX_SUPPORT:
        _close(_pmf(tot)[()], dict(enumerate(_poisson_binomial(q.tolist()))), tol=1e-8)
    D.mean(tot.distribution).backward()
    assert torch.isfinite(x.grad).all()
