"""Relaxations that exist only in the interception layer, against independent reference formulas.

Every expected value is computed here in float64 from the math stated in the registry's relaxation
strings and the handlers' module docstrings (soft relu ``r_s(t) = s softplus(t / s)``, the soft
staircase, NeuralSort / SoftSort rows on standardized scores, prefix softmax for cummax, the
log-mean-exp of each pooling window, ...), never by calling softtorch, and compared with what
``soft_mode("smooth", softness=s)`` returns for plain torch calls, within 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import softtorch as st

TOL = 1e-6
SOFTNESSES = (0.3, 1.0)


def _x(*shape: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    actual = actual.as_subclass(torch.Tensor).detach()  # a SoftBool result is a SoftTensor
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual.double(), expected.double(), atol=TOL, rtol=TOL)


# ------------------------------------------------------------------------------ reference math


def r_s(t: torch.Tensor, s: float) -> torch.Tensor:
    """Soft relu of the smooth mode: s * log(1 + exp(t / s))."""
    u = t / s
    return s * (torch.clamp(u, min=0) + torch.log1p(torch.exp(-u.abs())))


def sigma(t: torch.Tensor, s: float) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t / s))


def staircase(x: torch.Tensor, s: float, radius: int = 5) -> torch.Tensor:
    """Soft staircase (arXiv 2504.19026) with r = 5 steps on each side of x:
    floor(x) - r + sum_{j=-r}^{r-1} sigma_s(x - floor(x) - j - 1/2)."""
    base = torch.floor(x)
    j = torch.arange(-radius, radius, dtype=torch.float64)
    return base - radius + sigma((x - base).unsqueeze(-1) - j - 0.5, s).sum(-1)


def soft_sign(x: torch.Tensor, s: float) -> torch.Tensor:
    return 2.0 * sigma(x, s) - 1.0


def soft_clamp(x: torch.Tensor, a: float, b: float, s: float) -> torch.Tensor:
    return b - r_s(b - a - r_s(x - a, s), s)


def zscore(x: torch.Tensor) -> torch.Tensor:
    """Standardized scores along the last axis: sigmoid((x - mean) / sqrt(var + 1e-6))."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return torch.sigmoid((x - mean) / torch.sqrt(var + 1e-6))


def softmax(v: torch.Tensor) -> torch.Tensor:
    e = torch.exp(v - v.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def neuralsort_ascending(x: torch.Tensor, s: float) -> torch.Tensor:
    """Row i (1..n) = softmax((-(n + 1 - 2i) z - B) / s), B_k = sum_j |z_k - z_j|_s with the
    smooth soft abs |d|_s = d tanh(d / 2s); returns the soft sorted values P x."""
    x = x.detach().double()
    z = zscore(x)
    n = x.shape[-1]
    d = z.unsqueeze(-1) - z.unsqueeze(-2)
    b = (d * torch.tanh(d / (2 * s))).sum(-1)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    coef = -(n + 1 - 2 * i)
    scores = (coef[:, None] * z.unsqueeze(-2) - b.unsqueeze(-2)) / s
    return (softmax(scores) * x.unsqueeze(-2)).sum(-1)


def softsort_extreme(x: torch.Tensor, s: float, largest: bool) -> torch.Tensor:
    """SoftSort row of the max (min): softmax(-|z* - z| / s) over the standardized scores."""
    x = x.detach().double()
    z = zscore(x)
    anchor = z.max(-1, keepdim=True).values if largest else z.min(-1, keepdim=True).values
    return (softmax(-(anchor - z).abs() / s) * x).sum(-1)


def lme(window: torch.Tensor, valid: torch.Tensor, s: float) -> torch.Tensor:
    """Log-mean-exp s log(mean_valid exp(x / s)) over the last axis."""
    w = torch.where(valid, window / s, torch.tensor(-math.inf, dtype=torch.float64))
    top = w.max(-1, keepdim=True).values
    total = torch.exp(w - top).sum(-1)
    return s * (top.squeeze(-1) + torch.log(total) - torch.log(valid.sum(-1).double()))


# ------------------------------------------------------------------------------ elementwise


@pytest.mark.parametrize("s", SOFTNESSES)
def test_floor_ceil_trunc(s: float) -> None:
    x = _x(3, 7, scale=3.0)
    with st.soft_mode("smooth", softness=s):
        fl, ce, tr = torch.floor(x), torch.ceil(x), torch.trunc(x)
    xd = x.detach()
    _close(fl, staircase(xd - 0.5, s))
    _close(ce, staircase(xd + 0.5, s))
    _close(tr, staircase(xd - 0.5 * soft_sign(xd, s), s))


@pytest.mark.parametrize("s", SOFTNESSES)
def test_hardtanh_relu6(s: float) -> None:
    x = _x(4, 5, scale=5.0)
    with st.soft_mode("smooth", softness=s):
        h = F.hardtanh(x, -0.5, 2.0)
        r6 = F.relu6(x)
    _close(h, soft_clamp(x.detach(), -0.5, 2.0, s))
    _close(r6, soft_clamp(x.detach(), 0.0, 6.0, s))


@pytest.mark.parametrize("s", SOFTNESSES)
def test_isclose(s: float) -> None:
    x = _x(6, seed=1)
    y = (x.detach() + torch.tensor([0.0, 1e-3, 0.2, -0.5, 2.0, -3.0], dtype=torch.float64))
    rtol, atol = 0.1, 0.05
    with st.soft_mode("smooth", softness=s):
        out = torch.isclose(x, y, rtol=rtol, atol=atol)
    d = x.detach() - y
    soft_abs = d * torch.tanh(d / (2 * s))
    tol = atol + rtol * y.abs() + 1e-10
    _close(out, torch.clamp(2.0 * sigma(tol - soft_abs, s), max=1.0))


# ------------------------------------------------------------------------------ ordering


@pytest.mark.parametrize("s", SOFTNESSES)
def test_msort(s: float) -> None:
    x = _x(6, 3)
    with st.soft_mode("smooth", softness=s):
        out = torch.msort(x)
    _close(out, neuralsort_ascending(x.detach().T, s).T)


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_kthvalue(s: float, keepdim: bool) -> None:
    x = _x(3, 6)
    with st.soft_mode("smooth", softness=s):
        values, _ = torch.kthvalue(x, 2, dim=-1, keepdim=keepdim)
    expected = neuralsort_ascending(x, s)[:, 1]
    _close(values, expected.unsqueeze(-1) if keepdim else expected)


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize("largest", [True, False])
def test_amax_amin(s: float, largest: bool) -> None:
    x = _x(2, 3, 4)
    fn = torch.amax if largest else torch.amin
    with st.soft_mode("smooth", softness=s):
        over_two = fn(x, dim=(1, 2))
        over_one = fn(x, dim=-1)
    _close(over_two, softsort_extreme(x.detach().reshape(2, 12), s, largest))
    _close(over_one, softsort_extreme(x.detach(), s, largest))


@pytest.mark.parametrize("s", SOFTNESSES)
def test_nanmedian(s: float) -> None:
    x = _x(3, 6)
    xn = x.detach().clone()
    xn[1, 2] = math.nan
    xn.requires_grad_()
    with st.soft_mode("smooth", softness=s):
        values, _ = torch.nanmedian(xn, dim=-1)
    # lower median = row (n - 1) // 2 of the ascending soft sort; on the NaN row that of the
    # five non-NaN entries (NaN is padding)
    expected = neuralsort_ascending(x.detach(), s)[:, (6 - 1) // 2]
    keep = ~torch.isnan(xn.detach()[1])
    expected[1] = neuralsort_ascending(x.detach()[1][keep][None], s)[0, (5 - 1) // 2]
    _close(values, expected)


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize("q", [0.25, 0.5, 0.9])
def test_nanquantile(s: float, q: float) -> None:
    x = _x(3, 5)
    xn = x.detach().clone()
    xn[2, 0] = math.nan
    xn.requires_grad_()
    with st.soft_mode("smooth", softness=s):
        out = torch.nanquantile(xn, q, dim=-1)
    rows = neuralsort_ascending(x.detach(), s)
    pos = q * (5 - 1)
    lo, frac = math.floor(pos), pos - math.floor(pos)
    hi = min(lo + 1, 4)
    expected = (1 - frac) * rows[:, lo] + frac * rows[:, hi]
    # the NaN row: the quantile of its four non-NaN entries (NaN is padding)
    rows2 = neuralsort_ascending(x.detach()[2][1:][None], s)[0]
    pos2 = q * (4 - 1)
    lo2, frac2 = math.floor(pos2), pos2 - math.floor(pos2)
    expected[2] = (1 - frac2) * rows2[lo2] + frac2 * rows2[min(lo2 + 1, 3)]
    _close(out, expected)


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize("largest", [True, False])
def test_cummax_cummin(s: float, largest: bool) -> None:
    x = _x(2, 6)
    fn = torch.cummax if largest else torch.cummin
    with st.soft_mode("smooth", softness=s):
        values, _ = fn(x, dim=-1)
    xd = x.detach()
    z = zscore(xd)
    z = z if largest else 1.0 - z
    expected = torch.stack(
        [(softmax(z[:, : j + 1] / s) * xd[:, : j + 1]).sum(-1) for j in range(6)], dim=-1
    )
    _close(values, expected)


# ------------------------------------------------------------------------------ pooling


def _pool_ref(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
    dilation: tuple[int, ...], s: float,
) -> torch.Tensor:
    """Log-mean-exp over each window (padding never counts), windows cut out with unfold."""
    nd = len(kernel)
    xd = x.detach().double()
    base = xd.ndim - nd
    pad: list[int] = []
    for p in reversed(padding):
        pad += [p, p]
    valid = F.pad(torch.ones_like(xd, dtype=torch.bool), pad, value=False)
    xd = F.pad(xd, pad, value=0.0)
    for i in range(nd):
        span = dilation[i] * (kernel[i] - 1) + 1
        xd = xd.unfold(base + i, span, stride[i])[..., :: dilation[i]]
        valid = valid.unfold(base + i, span, stride[i])[..., :: dilation[i]]
    # the window axes are the last nd axes: merge them
    flat_x = xd.reshape(*xd.shape[: xd.ndim - nd], -1)
    flat_v = valid.reshape(*valid.shape[: valid.ndim - nd], -1)
    return lme(flat_x, flat_v, s)


POOLS = [
    (1, (3,), (2,), (1,), (1,)),
    (1, (2,), (1,), (0,), (2,)),
    (2, (2, 3), (2, 1), (1, 1), (1, 1)),
    (2, (3, 3), (2, 2), (0, 1), (1, 1)),
    (3, (2, 2, 2), (1, 2, 1), (0, 1, 1), (1, 1, 1)),
]


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize(("nd", "kernel", "stride", "padding", "dilation"), POOLS)
@pytest.mark.parametrize("with_indices", [False, True])
def test_max_pool(
    s: float, nd: int, kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...], with_indices: bool,
) -> None:
    x = _x(2, 3, *([5, 6, 4][:nd]))
    fn = getattr(F, f"max_pool{nd}d")
    with st.soft_mode("smooth", softness=s):
        out = fn(x, kernel, stride, padding, dilation, return_indices=with_indices)
    values = out[0] if with_indices else out
    _close(values, _pool_ref(x, kernel, stride, padding, dilation, s))
    if with_indices:
        exact = fn(x.detach(), kernel, stride, padding, dilation, return_indices=True)
        assert torch.equal(torch.as_tensor(out[1]), exact[1])


def _adaptive_ref(x: torch.Tensor, sizes: tuple[int, ...], s: float) -> torch.Tensor:
    """Log-mean-exp over the adaptive windows [floor(i L / m), ceil((i + 1) L / m))."""
    nd = len(sizes)
    xd = x.detach().double()
    spatial = xd.shape[-nd:]
    out = torch.empty(*xd.shape[:-nd], *sizes, dtype=torch.float64)
    for idx in torch.cartesian_prod(*[torch.arange(m) for m in sizes]).reshape(-1, nd).tolist():
        sl = [slice(None)] * (xd.ndim - nd)
        for i, m in enumerate(sizes):
            lo = (idx[i] * spatial[i]) // m
            hi = -((-(idx[i] + 1) * spatial[i]) // m)
            sl.append(slice(lo, hi))
        w = xd[tuple(sl)].reshape(*xd.shape[:-nd], -1)
        out[(Ellipsis, *idx)] = lme(w, torch.ones_like(w, dtype=torch.bool), s)
    return out


@pytest.mark.parametrize("s", SOFTNESSES)
@pytest.mark.parametrize(("nd", "sizes"), [(1, (3,)), (2, (2, 3)), (3, (2, 1, 3))])
@pytest.mark.parametrize("with_indices", [False, True])
def test_adaptive_max_pool(s: float, nd: int, sizes: tuple[int, ...], with_indices: bool) -> None:
    x = _x(2, 2, *([7, 5, 4][:nd]), seed=3)
    fn = getattr(F, f"adaptive_max_pool{nd}d")
    with st.soft_mode("smooth", softness=s):
        out = fn(x, sizes, return_indices=with_indices)
    values = out[0] if with_indices else out
    _close(values, _adaptive_ref(x, sizes, s))
    if with_indices:
        assert torch.equal(torch.as_tensor(out[1]), fn(x.detach(), sizes, True)[1])
