"""The elementwise, comparison, logic and where lines of the published README quick example.

Expected numbers are copied from the printed output in
/work/shared/spec/seed-001-softtorch-readme.txt; each line must match within 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import softtorch as st

X = [-0.2, -1.0, 0.3, 1.0]
Y = [0.2, -0.5, 0.5, -1.0]
FUZZY_A = [0.1, 0.2, 0.8, 1.0]
FUZZY_B = [0.7, 0.3, 0.1, 0.9]


def _x() -> torch.Tensor:
    return torch.tensor(X)


def _y() -> torch.Tensor:
    return torch.tensor(Y)


def _a() -> torch.Tensor:
    return torch.tensor(FUZZY_A)


def _b() -> torch.Tensor:
    return torch.tensor(FUZZY_B)


# (README label, call, printed numbers)
README: list[tuple[str, Callable[[], torch.Tensor], list[float]]] = [
    # elementwise
    ("absolute (hard mode)", lambda: st.abs(_x(), mode="hard"), [0.2, 1.0, 0.3, 1.0]),
    ("absolute (soft mode)", lambda: st.abs(_x()), [0.1523, 0.9999, 0.2715, 0.9999]),
    ("clamp (hard mode)", lambda: st.clamp(_x(), -0.5, 0.5, mode="hard"), [-0.2, -0.5, 0.3, 0.5]),
    ("clamp (soft mode)", lambda: st.clamp(_x(), -0.5, 0.5), [-0.1952, -0.4993, 0.2873, 0.4993]),
    ("heaviside (hard mode)", lambda: st.heaviside(_x(), mode="hard"), [0.0, 0.0, 1.0, 1.0]),
    ("heaviside (soft mode)", lambda: st.heaviside(_x()), [0.1192, 0.0000, 0.9526, 1.0000]),
    ("ReLU (hard mode)", lambda: st.relu(_x(), mode="hard"), [0.0, 0.0, 0.3, 1.0]),
    ("ReLU (soft mode)", lambda: st.relu(_x()), [0.0127, 0.0000, 0.3049, 1.0000]),
    ("round (hard mode)", lambda: st.round(_x(), mode="hard"), [-0.0, -1.0, 0.0, 1.0]),
    ("round (soft mode)", lambda: st.round(_x()), [-0.0465, -1.0000, 0.1189, 1.0000]),
    ("sign (hard mode)", lambda: st.sign(_x(), mode="hard"), [-1.0, -1.0, 1.0, 1.0]),
    ("sign (soft mode)", lambda: st.sign(_x()), [-0.7616, -0.9999, 0.9051, 0.9999]),
    # comparisons
    ("greater (hard mode)", lambda: st.greater(_x(), _y(), mode="hard"), [0.0, 0.0, 0.0, 1.0]),
    ("greater (soft mode)", lambda: st.greater(_x(), _y()), [0.0180, 0.0067, 0.1192, 1.0000]),
    ("greater equal (hard mode)", lambda: st.greater_equal(_x(), _y(), mode="hard"),
     [0.0, 0.0, 0.0, 1.0]),
    ("greater equal (soft mode)", lambda: st.greater_equal(_x(), _y()),
     [0.0180, 0.0067, 0.1192, 1.0000]),
    ("less (hard mode)", lambda: st.less(_x(), _y(), mode="hard"), [1.0, 1.0, 1.0, 0.0]),
    ("less (soft mode)", lambda: st.less(_x(), _y()), [0.9820, 0.9933, 0.8808, 0.0000]),
    ("less equal (hard mode)", lambda: st.less_equal(_x(), _y(), mode="hard"),
     [1.0, 1.0, 1.0, 0.0]),
    ("less equal (soft mode)", lambda: st.less_equal(_x(), _y()),
     [0.9820, 0.9933, 0.8808, 0.0000]),
    ("eq (hard mode)", lambda: st.eq(_x(), _y(), mode="hard"), [0.0, 0.0, 0.0, 0.0]),
    ("eq (soft mode)", lambda: st.eq(_x(), _y()), [0.0414, 0.0143, 0.3580, 0.0000]),
    ("not equal (hard mode)", lambda: st.not_equal(_x(), _y(), mode="hard"), [1.0, 1.0, 1.0, 1.0]),
    ("not equal (soft mode)", lambda: st.not_equal(_x(), _y()), [0.9586, 0.9857, 0.6420, 1.0000]),
    ("isclose (hard mode)", lambda: st.isclose(_x(), _y(), mode="hard"), [0.0, 0.0, 0.0, 0.0]),
    ("isclose (soft mode)", lambda: st.isclose(_x(), _y()), [0.0414, 0.0143, 0.3580, 0.0000]),
    # logic
    ("AND", lambda: st.logical_and(_a(), _b()), [0.0700, 0.0600, 0.0800, 0.9000]),
    ("OR", lambda: st.logical_or(_a(), _b()), [0.7300, 0.4400, 0.8200, 1.0000]),
    ("NOT", lambda: st.logical_not(_a()), [0.9000, 0.8000, 0.2000, 0.0000]),
    ("XOR", lambda: st.logical_xor(_a(), _b()), [0.6411, 0.3464, 0.7256, 0.1000]),
    ("ALL", lambda: st.all(_a()), [0.0160]),
    ("ANY", lambda: st.any(_a()), [1.0]),
    # selection
    ("Where", lambda: st.where(_a(), _x(), _y()), [0.1600, -0.6000, 0.3400, 1.0000]),
    # straight-through
    ("Straight-through ReLU", lambda: st.relu_st(_x()), [0.0000, 0.0000, 0.3000, 1.0000]),
    ("Straight-through greater", lambda: st.greater_st(_x(), _y()), [0.0, 0.0, 0.0, 1.0]),
]


@pytest.mark.parametrize(("label", "call", "expected"), README, ids=[r[0] for r in README])
def test_readme_line(label: str, call: Callable[[], torch.Tensor], expected: list[float]) -> None:
    out = call()
    assert out.dtype == torch.float32, label
    assert out.shape == ((4,) if len(expected) == 4 else ()), label
    ref = torch.tensor(expected if len(expected) == 4 else expected[0])
    torch.testing.assert_close(out, ref, rtol=0.0, atol=1e-3)


def test_readme_hard_lines_equal_torch() -> None:
    """The "Torch ..." lines: hard mode reproduces torch exactly on the README inputs."""
    x, y = _x(), _y()
    bool_a = _a() >= 0.5
    assert torch.equal(st.abs(x, mode="hard"), torch.abs(x))
    assert torch.equal(st.clamp(x, -0.5, 0.5, mode="hard"), torch.clamp(x, -0.5, 0.5))
    assert torch.equal(st.heaviside(x, mode="hard"), torch.heaviside(x, torch.tensor(0.5)))
    assert torch.equal(st.relu(x, mode="hard"), torch.nn.functional.relu(x))
    assert torch.equal(st.round(x, mode="hard"), torch.round(x))
    assert torch.equal(st.sign(x, mode="hard"), torch.sign(x))
    for name in ("greater", "greater_equal", "less", "less_equal", "eq", "not_equal", "isclose"):
        assert torch.equal(getattr(st, name)(x, y, mode="hard"), getattr(torch, name)(x, y).float())
    assert torch.equal(st.where(bool_a, x, y), torch.where(bool_a, x, y))


def test_readme_straight_through_gradients_are_soft() -> None:
    x = _x().requires_grad_()
    (g_st,) = torch.autograd.grad(st.relu_st(x).sum(), x)
    (g_soft,) = torch.autograd.grad(st.relu(x).sum(), x)
    assert torch.equal(g_st, g_soft)
    y = _y()
    (g_st,) = torch.autograd.grad(st.greater_st(x, y).sum(), x)
    (g_soft,) = torch.autograd.grad(st.greater(x, y).sum(), x)
    assert torch.equal(g_st, g_soft)
