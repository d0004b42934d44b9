"""Mixed precision: every public function under ``torch.autocast("cpu", dtype=torch.bfloat16)``,
and the sort family on bfloat16 / float16 tensors directly.

Documented behaviour (docs/compile.md, "Mixed precision"): every op returns finite values; every
op returns the dtype of its input, like its torch counterpart (torch's sort, max, quantile,
take_along_dim ... are not autocast ops). The ordering and selection ops run with autocast
disabled (their internal matmuls would otherwise run in bfloat16), so under autocast a float32
input gives float32 results equal to the float32 results without autocast; half-precision
inputs are computed in float32 internally and cast back.
"""

from __future__ import annotations

import warnings

import _public_api as api
import pytest
import torch

import softtorch as st

CASES = {c.id: c for c in api.all_cases()}
#: Default run: one case per group and every ordering method; the full catalog is slow.
FAST = (
    "relu",
    "softrelu",
    "isclose",
    "logical_or",
    "take",
    "narrow",
    "sort[softsort]",
    "sort[neuralsort]",
    "sort[fast_soft_sort]",
    "sort[ot]",
    "sort[sorting_network]",
    "quantile[neuralsort]",
    "argsort[ot]",
    "topk_st[softsort]",
    "surrogate.threshold[tanh]",
    "soft_mode[default]",
    "SoftTensor",
)


def _run(case: api.Case, x: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(3)
    with warnings.catch_warnings(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        warnings.simplefilter("ignore")
        return case.fn(x)


def _check_autocast(case: api.Case) -> None:
    x = api.make_input(torch.float32).requires_grad_()
    ref = _run(case, x, autocast=False)
    out = _run(case, x, autocast=True)
    assert len(out) == len(ref)
    for i, (o, r) in enumerate(zip(out, ref)):
        assert torch.isfinite(o).all(), f"output {i} not finite"
        assert o.dtype == r.dtype == torch.float32, f"output {i}: {o.dtype}"
        if not case.stochastic:  # float32 compute: equal to the run without autocast
            torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5, msg=f"output {i}")
    terms = [o.sum() for o in out if o.requires_grad]
    if terms:
        (g,) = torch.autograd.grad(torch.stack(terms).sum(), x)
        assert g.dtype == torch.float32 and torch.isfinite(g).all()


@pytest.mark.parametrize("case", [pytest.param(CASES[c], id=c) for c in FAST])
def test_autocast_bf16(case: api.Case) -> None:
    _check_autocast(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c, id=cid) for cid, c in CASES.items()])
def test_autocast_bf16_all(case: api.Case) -> None:
    _check_autocast(case)


def test_autocast_bf16_input_from_linear() -> None:
    """An autocast Linear gives bfloat16 activations; soft sorting them returns bfloat16."""
    lin = torch.nn.Linear(4, 6)
    x = torch.randn(3, 4)
    with torch.autocast("cpu", torch.bfloat16):
        h = lin(x)
        assert h.dtype == torch.bfloat16
        out = [
            st.sort(h).values,
            st.topk(h, 2, dim=-1).values,
            st.rank(h, dim=-1),
            st.quantile(h, 0.5, dim=-1),
            st.argmax(h, dim=-1),
            st.relu(h),
            st.greater(h, 0.0),
        ]
    for o in out:
        assert o.dtype == torch.bfloat16 and torch.isfinite(o).all()
    torch.stack([o.float().sum() for o in out]).sum().backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()


SORT_FAMILY = ("sort", "argsort", "topk", "rank", "max", "min", "median", "quantile", "argmax")


def _sort_family(x: torch.Tensor, method: str, mode: str) -> list[torch.Tensor]:
    index_method = method if method != "fast_soft_sort" else "neuralsort"
    kw = {"mode": mode, "softness": 0.2}
    return [
        st.sort(x, method=method, **kw).values,
        st.argsort(x, method=index_method, **kw),
        st.topk(x, 2, dim=-1, method=method, **kw).values,
        st.rank(x, dim=-1, method=method, **kw),
        st.max(x, dim=-1, method=method, **kw).values,
        st.min(x, dim=-1, method=method, **kw).values,
        st.median(x, dim=-1, method=method, **kw).values,
        st.quantile(x, 0.3, dim=-1, method=method, **kw),
        st.argmax(x, dim=-1, method=index_method, **kw),
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("method", api.METHODS)
def test_half_inputs_sort_family(method: str, dtype: torch.dtype) -> None:
    """Half-precision tensors (no autocast): computed in float32, returned in their dtype, and
    equal to the float32 result of the rounded input up to the output rounding."""
    x32 = api.make_input(torch.float32).to(dtype).float()
    xh = x32.to(dtype).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode in api.MODES:
            out = _sort_family(xh, method, mode)
            ref = _sort_family(x32, method, mode)
            for name, o, r in zip(SORT_FAMILY, out, ref):
                assert o.dtype == dtype, (name, mode)
                assert torch.isfinite(o).all(), (name, mode)
                tol = 2 * torch.finfo(dtype).eps * max(1.0, float(r.abs().max()))
                torch.testing.assert_close(o.float(), r, rtol=0, atol=tol, msg=f"{name} {mode}")
            (g,) = torch.autograd.grad(torch.stack([o.float().sum() for o in out]).sum(), xh)
            assert g.dtype == dtype and torch.isfinite(g).all(), mode
