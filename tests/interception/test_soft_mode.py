"""soft_mode / hard_mode / current_mode: context semantics, SoftBool and SoftIndex contracts."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

import softtorch as st
from softtorch.interception import SoftTensor, current_mode, hard_mode, soft_mode


def leaf(*values: float) -> torch.Tensor:
    return torch.tensor(values, requires_grad=True)


# ------------------------------------------------------------------------------ context


def _soft(t: torch.Tensor) -> torch.Tensor:
    """The soft values as a plain tensor (compared outside the block: inside it, comparisons of
    results that carry torch's exact values beside the soft ones see the exact ones)."""
    return t.as_subclass(torch.Tensor)


def test_relaxes_like_the_explicit_functions() -> None:
    x = leaf(-0.2, -1.0, 0.3, 1.0)
    with soft_mode("smooth", softness=0.1):
        got = [F.relu(x), torch.sort(x).values, (x > 0), x.max()]
    want = [st.relu(x, 0.1), st.sort(x, softness=0.1).values, st.greater(x, 0.0, 0.1),
            st.max(x, softness=0.1)]  # fmt: skip
    for g, w in zip(got, want):
        torch.testing.assert_close(_soft(g), w)
    with soft_mode("c1", softness=0.3, method="softsort"):
        ref = st.sort(x, softness=0.3, mode="c1", method="softsort").values
        got = x.sort().values
    torch.testing.assert_close(_soft(got), ref)


def test_decorator_nesting_and_current_mode() -> None:
    x = leaf(0.05, -0.3)
    assert current_mode() is None

    @soft_mode("smooth", 0.5)
    def f() -> torch.Tensor:
        return torch.relu(x)

    torch.testing.assert_close(f(), st.relu(x, 0.5))
    with soft_mode("smooth", 0.1) as outer:
        assert current_mode() is outer and outer.softness == 0.1
        with soft_mode("c2", 0.01):
            assert current_mode().mode == "c2"
            torch.testing.assert_close(torch.relu(x), st.relu(x, 0.01, "c2"))
            with hard_mode():
                assert current_mode().mode == "hard"
                assert torch.equal(torch.relu(x), torch.relu(x.detach()))
                assert (x > 0).dtype == torch.bool
            torch.testing.assert_close(f(), st.relu(x, 0.5))  # decorator inside a block
        assert current_mode() is outer
    assert current_mode() is None
    assert torch.equal(torch.relu(x), torch.relu(x.detach()))


def test_exception_restores_previous_state() -> None:
    x = leaf(0.1)
    with soft_mode("smooth", 0.2) as outer:
        with pytest.raises(RuntimeError, match="boom"):
            with soft_mode("c0", 0.5):
                raise RuntimeError("boom")
        assert current_mode() is outer
    assert current_mode() is None
    assert torch._C._len_torch_function_stack() == 0
    assert torch.equal(torch.relu(x), x.detach())


def test_thread_local() -> None:
    x = leaf(-0.1, 0.2)
    seen: dict[str, object] = {}

    def other() -> None:
        seen["mode"] = current_mode()
        seen["cmp"] = x > 0

    with soft_mode():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert isinstance(x > 0, SoftTensor)
    assert seen["mode"] is None and seen["cmp"].dtype == torch.bool


def test_validation_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="valid modes are"):
        soft_mode("soft")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="softness"):
            soft_mode(softness=bad)
    with pytest.raises(ValueError, match="valid methods are"):
        soft_mode(method="bubble")
    with pytest.raises(ValueError, match="valid scopes are"):
        soft_mode(scope="everything")
    with pytest.raises(ValueError, match="straight_through=True"):
        soft_mode(surrogate="super")
    with pytest.raises(ValueError, match="valid surrogates are"):
        soft_mode(straight_through=True, surrogate="nope")
    with pytest.raises(ValueError, match="'sort'"):
        soft_mode(exclude="sorting")
    with pytest.raises(TypeError, match="straight_through"):
        soft_mode(straight_through=1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ scope


def test_scope_grad_keeps_masks_labels_and_bookkeeping_exact() -> None:
    x = leaf(-0.5, 0.2, 0.9)
    target = torch.tensor([0.0, 1.0, 1.0])
    labels = torch.tensor([2, 0, 1])
    with soft_mode():
        assert (target > 0.5).dtype == torch.bool
        assert torch.equal(torch.sort(labels).values, torch.tensor([0, 1, 2]))
        assert torch.isfinite(x).dtype == torch.bool
        assert isinstance(x > 0, SoftTensor)
    with soft_mode(scope="all"):
        assert isinstance(target > 0.5, SoftTensor)
        assert torch.equal(torch.sort(labels).values, torch.tensor([0, 1, 2]))  # ints stay exact


def test_no_grad_and_inference_relax_only_soft_data() -> None:
    x = leaf(-0.5, 0.2, 0.9)
    with soft_mode():
        with torch.no_grad():
            assert torch.equal(torch.relu(x), torch.relu(x.detach()))
            s = st.soft(x.detach())
            assert not torch.equal(torch.relu(s).hard(), torch.relu(x.detach()))
        with torch.inference_mode():
            assert (x > 0).dtype == torch.bool
    with soft_mode(scope="all"), torch.no_grad():
        torch.testing.assert_close(torch.relu(x), st.relu(x.detach(), 0.1))


# ------------------------------------------------------------------------------ SoftBool


def test_soft_bool_acts_as_mask_where_a_boolean_is_needed() -> None:
    x = leaf(-0.2, -1.0, 0.3, 1.0, 0.0)
    hard = x.detach() > 0
    with soft_mode("smooth", 0.5):
        m = x > 0
        assert m.dtype == x.dtype and m.shape == x.shape
        assert 0 < float(m.as_subclass(torch.Tensor)[0]) < 0.5
        assert torch.equal(m.hard(), hard)
        assert bool(m.any()) and not bool(m.all())
        assert m[2].item() is True and m[4].item() is False
        assert m.tolist() == hard.tolist()
        assert torch.equal(x[m], x.detach()[hard])
        assert torch.equal(m.nonzero(), hard.nonzero())
        assert torch.equal(torch.masked_select(x, m), x.detach()[hard])
        assert torch.equal(m.long(), hard.long()) and m.bool().dtype == torch.bool
        # a count is torch's exact integer carrying the soft count (its float view)
        assert m.sum().dtype == torch.int64 and int(m.sum()) == int(hard.sum())
        assert 0 < float(m.sum().float()) < 5 and m.sum().float().requires_grad
        f = m.float()
        assert isinstance(f, SoftTensor) and f.is_soft_bool and f[0].item() == 0.0
        assert torch.equal(f.bool(), hard)
        n = ~m
        torch.testing.assert_close(n.as_subclass(torch.Tensor), 1 - m.as_subclass(torch.Tensor))
        assert torch.equal(n.hard(), ~hard)
        both = m & (x < 0.5)
        assert torch.equal(both.hard(), hard & (x.detach() < 0.5))
        w = torch.where(m, x, torch.zeros(5))
        assert not torch.equal(w, torch.where(hard, x, 0.0))
        col = m.unsqueeze(-1)
        assert col.is_soft_bool and torch.equal(col.hard(), hard.unsqueeze(-1))
        cat = torch.cat([m, x < 0])
        assert cat.is_soft_bool and torch.equal(cat.hard(), torch.cat([hard, x.detach() < 0]))
        if m.any():
            pass
        else:
            raise AssertionError("if m.any() must follow the hard result")
        loss = (m.float() * x).sum() + w.sum() + torch.masked_fill(x, m, 0.0).sum()
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert float(x.grad.abs().sum()) > 0
    # outside the block a SoftBool is still a mask for boolean uses
    assert torch.equal(x[m], x.detach()[hard]) and bool(m[2])


def test_where_with_infinite_branch_stays_finite_elsewhere() -> None:
    x = leaf(-2.0, 0.1, 3.0)
    with soft_mode("smooth", 0.5):
        out = torch.where(x > 0, x, torch.tensor(float("-inf")))
        filled = x.masked_fill(x < 0, float("-inf"))
    assert torch.equal(torch.isinf(out), torch.tensor([True, False, False]))
    assert torch.equal(torch.isinf(filled), torch.tensor([True, False, False]))
    torch.softmax(out, 0).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_soft_bool_equality_is_soft_xnor() -> None:
    x = leaf(-0.2, 0.4)
    with soft_mode("smooth", 0.5):
        m = x > 0
        p = m.as_subclass(torch.Tensor)
        torch.testing.assert_close((m == True).as_subclass(torch.Tensor), p)  # noqa: E712
        torch.testing.assert_close((m != 1).as_subclass(torch.Tensor), 1 - p)
        assert torch.equal((m == m).hard(), torch.tensor([True, True]))


# ------------------------------------------------------------------------------ SoftIndex


def test_index_results_equal_torch_and_carry_soft_index() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(4, 6, generator=g, requires_grad=True)
    s = scores.detach()
    with soft_mode("smooth", 0.3):
        idx = scores.argmax(-1)
        srt = scores.sort(-1)
        top = scores.topk(2, dim=1)
        mx = scores.max(1)
    assert torch.equal(idx, s.argmax(-1)) and idx.dtype == torch.long
    assert torch.equal(srt.indices, s.sort(-1).indices)
    assert torch.equal(top.indices, s.topk(2, dim=1).indices)
    assert torch.equal(mx.indices, s.max(1).indices)
    assert idx.soft_index.shape == (4, 6)
    assert srt.indices.soft_index.shape == (4, 6, 6)
    torch.testing.assert_close(idx.soft_index.sum(-1), torch.ones(4))


def test_selection_uses_the_soft_index_and_gradients_reach_the_scores() -> None:
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 5, generator=g, requires_grad=True)
    values = torch.randn(3, 5, generator=g)
    table = torch.randn(5, 2, generator=g)
    with soft_mode("smooth", 0.5):
        idx = scores.argmax(-1)
        p = idx.soft_index
        picked = [
            (torch.gather(values, 1, idx.unsqueeze(1)).squeeze(1), (p * values).sum(-1)),
            (torch.take_along_dim(values, idx[:, None], 1)[:, 0], (p * values).sum(-1)),
            (values[torch.arange(3), idx], (p * values).sum(-1)),
            (table[idx], p @ table),
            (torch.index_select(table, 0, idx), p @ table),
            (F.one_hot(idx, 5), p),
        ]
        picked[-1] = (picked[-1][0].float(), p)  # the exact one-hot (int64) shows P as float
        loss = sum(got.sum() for got, _ in picked)
    for got, want in picked:
        torch.testing.assert_close(_soft(got), _soft(want))
    loss.backward()
    assert scores.grad is not None and float(scores.grad.abs().sum()) > 0


def test_differentiable_accuracy() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(8, 4, generator=g, requires_grad=True)
    y = torch.randint(0, 4, (8,), generator=g)
    hard_acc = (logits.detach().argmax(-1) == y).float().mean()
    with soft_mode("smooth", 1e-3):
        acc = (logits.argmax(-1) == y).float().mean()
    torch.testing.assert_close(acc.detach(), hard_acc, atol=1e-3, rtol=0)
    with soft_mode("smooth", 0.5):
        acc = (logits.argmax(-1) == y).float().mean()
    acc.backward()
    assert torch.isfinite(logits.grad).all() and float(logits.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------ variants


def test_straight_through_gives_hard_forward_and_soft_gradient() -> None:
    x = leaf(-0.2, -1.0, 0.3, 1.0)
    with soft_mode("smooth", 0.5, straight_through=True):
        r = F.relu(x)
        m = (x > 0).float()
        srt = torch.sort(x).values
        idx = x.argmax()
        picked = x.detach()[idx] + 0 * x.sum()
    assert torch.equal(r.detach(), torch.relu(x.detach()))
    assert torch.equal(m.as_subclass(torch.Tensor).detach(), (x.detach() > 0).float())
    assert torch.equal(srt.detach(), torch.sort(x.detach()).values)
    assert float(picked) == 1.0
    (m.sum() + r.sum()).backward()
    assert x.grad[1] > 0  # the hard relu and step have zero gradient at -1


def test_surrogate_spiking_neuron() -> None:
    v = leaf(0.2, 1.3, 0.95, 2.0)
    thr = 1.0
    with soft_mode(straight_through=True, surrogate="super"):
        spikes = (v - thr > 0).float()
    assert torch.equal(spikes.as_subclass(torch.Tensor).detach(), (v.detach() > thr).float())
    spikes.sum().backward()
    u = v.detach().clone().requires_grad_()
    st.surrogate.threshold(u - thr, "super").sum().backward()
    torch.testing.assert_close(v.grad, u.grad)
    assert (v.grad > 0).all()


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_every_mode(mode: str) -> None:
    x = leaf(-0.2, -1.0, 0.3, 1.0)
    with soft_mode(mode, 0.3):
        out = (F.relu(x).sum() + (x > 0).float().sum() + torch.sort(x).values[0]
               + x.max() + F.max_pool1d(x.view(1, 1, 4), 2).sum())  # fmt: skip
    out.backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_engine_calls_are_not_intercepted() -> None:
    """The relaxation inside the block equals the explicit call made outside any block; a
    nested block's engine calls do not see the outer block either."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 7, generator=g, requires_grad=True)
    ref = st.quantile(x, 0.3, dim=1, softness=0.2)
    with soft_mode("smooth", 5.0), soft_mode("smooth", 0.2):
        got = torch.quantile(x, 0.3, dim=1)
    torch.testing.assert_close(_soft(got), ref)


def test_in_place_spellings_write_the_relaxed_value() -> None:
    x = leaf(-0.2, 0.3)
    with soft_mode("smooth", 0.1):
        y = x.clone()
        out = y.relu_()
        z = x.clone()
        F.relu(z, inplace=True)
    assert out is y
    torch.testing.assert_close(y, st.relu(x, 0.1))
    torch.testing.assert_close(z, st.relu(x, 0.1))
    (y.sum() + z.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_integer_and_nan_inputs() -> None:
    ints = torch.tensor([3, 1, 2])
    x = leaf(0.3, float("nan"), -1.0)
    with soft_mode(scope="all"):
        assert torch.equal(torch.sort(ints).values, torch.tensor([1, 2, 3]))
        assert torch.equal(torch.relu(ints), ints)
        r = torch.relu(x)
        m = x > 0
    assert torch.isnan(r[1]) and not torch.isnan(r[0])
    assert torch.isnan(m.as_subclass(torch.Tensor)[1])


def test_autocast() -> None:
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(2, 1, 8, 8)
    with soft_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        h = F.relu(conv(x))
        y = F.max_pool2d(h, 2)
        hard = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2)
    assert y.dtype == hard.dtype == torch.bfloat16 and y.shape == hard.shape
    y.float().sum().backward()
    assert torch.isfinite(conv.weight.grad).all()


def test_compiled_function_matches_eager() -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = (F.relu(x) * (x > y).float()).sum() + torch.sort(x).values[0] + x.max()
        return out + x.abs().clamp(max=0.5).sum()

    x = torch.randn(6, requires_grad=True)
    y = torch.randn(6)
    compiled = torch.compile(f, backend="eager")
    with soft_mode("smooth", 0.2):
        eager = f(x, y)
        got = compiled(x, y)  # traced through the mode; the graph's own ops are not re-relaxed
        again = compiled(x, y)
    torch.testing.assert_close(got, eager)
    torch.testing.assert_close(again, eager)
    torch.testing.assert_close(compiled(x, y), f(x, y))  # outside: plain torch again
    decorated = torch.compile(soft_mode("smooth", 0.2)(f), backend="eager")
    torch.testing.assert_close(decorated(x, y), eager)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_function_matches_eager_backends(backend: str) -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = (F.relu(x) * (x > y).float()).sum() + torch.sort(x).values[0] + x.max()
        return out + x.abs().clamp(max=0.5).sum() + F.max_pool1d(x.view(1, 1, 6), 2).sum()

    x = torch.randn(6, requires_grad=True)
    y = torch.randn(6)
    compiled = torch.compile(f, backend=backend)
    with soft_mode("smooth", 0.2):
        eager = f(x, y)
        got = compiled(x, y)
        got.backward()
    torch.testing.assert_close(got, eager)
    assert torch.isfinite(x.grad).all()


def _exercise(x: torch.Tensor) -> torch.Tensor:
    """Unmodified code touching the handlers implemented in the interception layer."""
    y = x.flip(-1)
    m = x > y
    parts = [
        F.relu(x), torch.clamp(x, -1.0, 1.0), torch.floor(x), torch.ceil(x), torch.trunc(x),
        torch.round(x), torch.maximum(x, y), torch.minimum(x, y), torch.abs(x),
        torch.where(m, x, y), x.masked_fill(~m, 0.0), (x == y).float(), m.float(),
        x.cummax(-1).values, x.cummin(-1).values, x.max(-1).values, x.amax(-1),
        torch.quantile(x, 0.3, dim=-1), x.nanmedian(-1).values, x.kthvalue(2, -1).values,
        F.max_pool1d(x.unsqueeze(0), 2), F.adaptive_max_pool1d(x.unsqueeze(0), 3),
        x.gather(-1, x.argsort(-1)), x[:, x[0].argmax()], F.one_hot(x.argmax(-1), x.shape[-1]),
    ]  # fmt: skip
    return sum(p.float().sum() for p in parts)


@pytest.mark.parametrize("mode", ["smooth", "c1"])
@pytest.mark.parametrize("softness", [1e-6, 1.0, 1e4])
@pytest.mark.parametrize("scale", [1e-3, 1e6])
def test_finite_outputs_and_gradients(mode: str, softness: float, scale: float) -> None:
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 8, generator=g) * scale).requires_grad_()
    with soft_mode(mode, softness):
        out = _exercise(x)
    assert torch.isfinite(out)
    out.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
@pytest.mark.parametrize("softness", [1e-6, 1e-3, 0.1, 10.0, 1e4])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_sweep(mode: str, softness: float, scale: float, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(6)
    x = (torch.randn(4, 9, generator=g, dtype=dtype) * scale).requires_grad_()
    with soft_mode(mode, softness):
        out = _exercise(x)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_gradcheck_interception_handlers() -> None:
    """float64 gradcheck of the relaxations written in the interception layer."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)

    def pooled(t: torch.Tensor) -> torch.Tensor:
        with soft_mode("smooth", 0.5):
            return torch.cat([
                F.max_pool1d(t.unsqueeze(0), 3, 2, 1).flatten(),
                F.adaptive_max_pool1d(t.unsqueeze(0), 4).flatten(),
                t.cummax(-1).values.flatten(),
                torch.floor(t * 2).flatten(),
                torch.maximum(t, t.flip(-1)).flatten(),
            ])  # fmt: skip

    def sparse(t: torch.Tensor) -> torch.Tensor:
        with soft_mode("c2", 0.7):
            return torch.cat([F.max_pool1d(t.unsqueeze(0), 2).flatten(), t.cummin(-1).values[0]])

    def selected(t: torch.Tensor) -> torch.Tensor:
        with soft_mode("smooth", 0.5):
            idx = t.argmax(-1)
            return torch.cat([t[torch.arange(2), idx], (idx == torch.tensor([1, 2])).to(t.dtype)])

    for fn in (pooled, sparse, selected):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_roles_survive_shape_ops_and_iteration() -> None:
    x = torch.randn(3, 5, requires_grad=True)
    with soft_mode("smooth", 0.5):
        idx = x.argmax(-1)
        for view in (idx.long(), idx.unsqueeze(-1), idx[1:], idx.view(3, 1), idx.clone()):
            assert view.soft_index is not None
            assert view.soft_index.shape == (*view.shape, 5)
        # the float view of a soft index is its expected position (torch's value beside it)
        expected = (idx.soft_index * torch.arange(5.0)).sum(-1)
        assert idx.float().dtype == torch.float32
        torch.testing.assert_close(_soft(idx.float()), _soft(expected))
        assert torch.equal(idx.float().hard(), idx.hard().float())
        m = x > 0
        rows = list(m)
        assert all(r.is_soft_bool for r in rows)
        assert [bool(r.any()) for r in rows] == [bool(r.any()) for r in (x.detach() > 0)]
        assert m.T.is_soft_bool and torch.equal(m.T.hard(), (x.detach() > 0).T)


def test_integer_data_keeps_exact_selection_and_where() -> None:
    scores = torch.randn(6, requires_grad=True)
    labels = torch.tensor([3, 1, 4, 1, 5, 9])
    with soft_mode("smooth", 0.5):
        top = scores.topk(3).indices
        picked = labels[top]
        kept = torch.where(scores > 0, labels, torch.zeros_like(labels))
    s = scores.detach()
    assert torch.equal(picked, labels[s.topk(3).indices]) and picked.dtype == torch.long
    assert torch.equal(kept, torch.where(s > 0, labels, 0)) and kept.dtype == torch.long


def test_explicit_softtorch_calls_inside_a_block_are_unchanged() -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], requires_grad=True)
    ref = (st.relu(x, 0.3), st.sort(x, softness=0.3).values, st.greater(x, 0.1, 0.3))
    with soft_mode("c0", 2.0):
        got = (st.relu(x, 0.3), st.sort(x, softness=0.3).values, st.greater(x, 0.1, 0.3))
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)
    s = st.soft(x, softness=2.0)
    torch.testing.assert_close(st.sort(s, softness=0.3).values, ref[1])


def test_hard_mode_logic_on_soft_bools() -> None:
    x = torch.randn(6, requires_grad=True)
    with soft_mode():
        m, n = x > 0, x < 0.5
    h_m, h_n = x.detach() > 0, x.detach() < 0.5
    with hard_mode():
        assert torch.equal(m & n, h_m & h_n)
        assert torch.equal(torch.where(m, 1.0, 0.0), torch.where(h_m, 1.0, 0.0))
        k = m.clone()
        k &= n
        assert torch.equal(k.hard(), h_m & h_n)
        assert torch.equal(k.as_subclass(torch.Tensor), (h_m & h_n).float())
