"""SoftTensor: data that carries its own softness through unmodified code."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch
import torch.nn.functional as F

import softtorch as st
from softtorch.interception import SoftTensor, hard_mode, soft, soft_mode


def test_ops_are_relaxed_without_a_block_and_results_stay_soft() -> None:
    x = torch.tensor([-0.2, -1.0, 0.3, 1.0], requires_grad=True)
    s = soft(x, "smooth", 0.5)
    assert isinstance(s, SoftTensor) and s.config.softness == 0.5
    r = F.relu(s)
    assert isinstance(r, SoftTensor) and r.config is s.config
    torch.testing.assert_close(r.as_subclass(torch.Tensor), st.relu(x, 0.5))
    y = (r * 2 + 1).exp()  # non-relaxable ops keep the settings
    assert isinstance(y, SoftTensor) and y.config is s.config
    v = torch.sort(s)
    assert isinstance(v.values, SoftTensor) and isinstance(v.indices, SoftTensor)
    torch.testing.assert_close(v.values.as_subclass(torch.Tensor), st.sort(x, softness=0.5).values)
    assert torch.equal(v.values.hard(), torch.sort(x.detach()).values)  # the exact shadow
    m = s > 0
    assert m.is_soft_bool and m.config is s.config
    mixed = torch.ones(4) + s  # a plain tensor on the left
    assert isinstance(mixed, SoftTensor)
    (r.sum() + v.values.sum() + m.float().sum()).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_leaving_soft_data() -> None:
    x = torch.tensor([0.5, -0.5])
    s = soft(x)
    for out in (s.hard(), s.as_subclass(torch.Tensor)):
        assert type(out) is torch.Tensor
        assert torch.equal(torch.relu(out), torch.relu(x))
    m = s > 0
    assert type(m.hard()) is torch.Tensor and m.hard().dtype == torch.bool
    idx = s.argmax()
    assert type(idx.hard()) is torch.Tensor and int(idx) == 0


def test_active_mode_takes_precedence() -> None:
    x = torch.tensor([-0.2, 0.3])
    s = soft(x, softness=0.5)
    with soft_mode("smooth", 0.05):
        r = torch.relu(s)
    torch.testing.assert_close(r.hard(), st.relu(x, 0.05))
    assert r.config is s.config  # the data keeps its own settings
    with hard_mode():
        h = torch.relu(s)
        assert (s > 0).dtype == torch.bool
    assert isinstance(h, SoftTensor) and torch.equal(h.hard(), torch.relu(x))
    torch.testing.assert_close(torch.relu(h).hard(), st.relu(torch.relu(x), 0.5))


def test_soft_data_relaxes_in_other_threads_and_under_no_grad() -> None:
    s = soft(torch.tensor([-0.2, 0.3]), softness=0.5)
    out: dict[str, torch.Tensor] = {}
    t = threading.Thread(target=lambda: out.setdefault("r", torch.relu(s)))
    t.start()
    t.join()
    torch.testing.assert_close(out["r"].hard(), st.relu(s.hard(), 0.5))
    with torch.no_grad():
        torch.testing.assert_close(torch.relu(s).hard(), st.relu(s.hard(), 0.5))


def test_integer_data_is_promoted_and_settings_validated() -> None:
    s = soft(torch.tensor([1, 2, 3]))
    assert s.dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match="softness"):
        soft(torch.ones(2), softness=0.0)
    with pytest.raises(ValueError, match="valid modes are"):
        soft(torch.ones(2), mode="soft")
    with pytest.raises(TypeError, match="complex"):
        soft(torch.ones(2, dtype=torch.complex64))


def test_repr_copy_and_pickle() -> None:
    s = soft(torch.tensor([0.25, -1.0]), softness=0.3)
    assert repr(s).startswith("SoftTensor(") and "softness=0.3" in repr(s)
    m = s > 0
    assert repr(m).startswith("SoftBool(")
    assert repr(s.argmax()).startswith("SoftIndex(")
    c = copy.deepcopy(s)
    assert isinstance(c, SoftTensor) and c.config.softness == 0.3
    p = pickle.loads(pickle.dumps(s))
    assert isinstance(p, SoftTensor) and p.config.softness == 0.3
    assert torch.equal(p.hard(), s.hard())


def test_in_place_ops_forget_stale_roles() -> None:
    s = soft(torch.tensor([0.4, -0.4]), softness=0.5)
    m = (s > 0).float()
    m.mul_(0.0)
    assert not m.is_soft_bool
    assert torch.equal(m.bool().hard(), torch.tensor([False, False]))


def test_model_forward_on_soft_input() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    out = net(soft(x, softness=0.5))
    assert isinstance(out, SoftTensor)
    with hard_mode():
        exact = net(x)
    assert not torch.allclose(out.hard(), exact)
    with soft_mode("smooth", 0.5):
        torch.testing.assert_close(out.hard(), net(x).detach())
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
