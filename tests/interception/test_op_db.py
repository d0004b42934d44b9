"""soft_mode over the samples PyTorch tests its own ops with (``op_db``, float32, CPU).

For every op of ``torch.testing._internal.common_methods_invocations.op_db`` that supports
float32 on CPU, the first ``SAMPLES_PER_OP`` samples (about 1,900 in all: a fixed, deterministic
subset of the ~18,800 float32 samples, to keep the sweep under 5 minutes on 2 workers) are run

* without gradients: under ``soft_mode("smooth")`` the result equals plain torch exactly (nothing
  requires grad, so nothing may be relaxed);
* with grad-requiring inputs under ``soft_mode("hard")``: equal to plain torch exactly;
* with grad-requiring inputs under ``soft_mode("smooth")``: no exception that plain torch does not
  raise, the same output structure, shapes and dtypes, finite wherever torch's result is finite,
  and finite gradients wherever torch's gradients are finite.

Random ops are detected by running plain torch twice with the same seed; their values are not
compared. Needs ``expecttest`` (the test extra), which ``torch.testing._internal`` imports.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import softtorch as st

pytest.importorskip("expecttest")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

SAMPLES_PER_OP = 3
SEED = 1234


def _ops() -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_methods_invocations import op_db
    return [op for op in op_db if torch.float32 in op.supported_dtypes("cpu")]


OPS = _ops()


def _samples(op: Any, requires_grad: bool) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(SEED)
        out = []
        for sample in op.sample_inputs("cpu", torch.float32, requires_grad=requires_grad):
            out.append(sample)
            if len(out) == SAMPLES_PER_OP:
                break
    return out


def _leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _leaves(o)


def _plain(t: Any) -> Any:
    if isinstance(t, torch.Tensor) and type(t) is not torch.Tensor:
        return t.as_subclass(torch.Tensor)  # a SoftTensor result
    return t


def _clone(obj: Any) -> Any:
    """Fresh copies of the sample's tensors (in-place ops must not leak between runs)."""
    if isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided:
            return obj.clone()
        c = obj.detach().clone()
        return c.requires_grad_(obj.requires_grad) if obj.is_floating_point() else c
    if isinstance(obj, list):
        return [_clone(o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    return obj


def _call(op: Any, sample: Any, ctx: Callable[[], Any] | None) -> tuple[Any, Any]:
    """(result, inputs) of one call on fresh copies, seeded; raises what the op raises."""
    inputs = _clone((sample.input, sample.args, sample.kwargs))
    torch.manual_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ctx is None:
            out = op(inputs[0], *inputs[1], **inputs[2])
        else:
            with ctx():
                out = op(inputs[0], *inputs[1], **inputs[2])
    return out, inputs


def _same(a: Any, b: Any) -> bool:
    la, lb = list(_leaves(a)), list(_leaves(b))
    if len(la) != len(lb) or type(a) is not type(b) and not (
        isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    ):
        return False
    for x, y in zip(la, lb):
        x, y = _plain(x), _plain(y)
        if x.shape != y.shape or x.dtype != y.dtype or x.layout != y.layout:
            return False
        if x.layout != torch.strided:
            x, y = x.to_dense(), y.to_dense()
        if x.dtype == torch.complex32:  # no comparison kernels for ComplexHalf
            x, y = x.to(torch.complex64), y.to(torch.complex64)
        if not torch.equal(x.detach(), y.detach()) and not (
            x.is_floating_point() or x.is_complex()
        ):
            return False
        if x.is_floating_point() or x.is_complex():
            xd, yd = x.detach(), y.detach()
            both_nan = torch.isnan(xd) & torch.isnan(yd)
            if not bool(((xd == yd) | both_nan).all()):
                return False
    if not isinstance(a, torch.Tensor) and not isinstance(a, (list, tuple, dict)):
        return a == b or (a != a and b != b)
    return True


def _float_outputs(out: Any) -> list[torch.Tensor]:
    return [
        _plain(t) for t in _leaves(out)
        if t.is_floating_point() and t.layout == torch.strided
    ]


def _grads(out: Any, inputs: Any) -> list[torch.Tensor | None]:
    leaves = [
        t for t in _leaves(inputs)
        if t.requires_grad and t.layout == torch.strided and t.is_leaf
    ]
    outs = [t for t in _float_outputs(out) if t.requires_grad and t.numel() > 0]
    if not leaves or not outs:
        return []
    total = sum(torch.where(torch.isfinite(t), t, 0).sum() for t in outs)
    try:
        return list(torch.autograd.grad(total, leaves, allow_unused=True))
    except RuntimeError:
        return []


def _reference(op: Any, sample: Any) -> tuple[Any, Any, bool] | None:
    """Plain torch's (result, inputs, deterministic) or None when torch itself raises; random ops
    are found by a second seeded call."""
    try:
        ref, inputs = _call(op, sample, None)
        again, _ = _call(op, sample, None)
    except Exception:  # noqa: BLE001
        return None
    return ref, inputs, _same(ref, again)


#: ops whose results are uninitialised memory (never comparable)
UNINITIALISED = ("empty", "new_empty", "new_empty_strided", "empty_like", "empty_strided",
                 "empty_permuted")


@pytest.mark.parametrize("op", OPS, ids=lambda op: f"{op.name}.{op.variant_test_name}")
def test_soft_mode_over_op_db(op: Any) -> None:
    if op.name in UNINITIALISED:
        pytest.skip("uninitialised memory")
    problems: list[str] = []
    # 1. inputs without grad: soft_mode("smooth") is transparent
    for i, sample in enumerate(_samples(op, requires_grad=False)):
        reference = _reference(op, sample)
        if reference is None or not reference[2]:
            continue
        try:
            got, _ = _call(op, sample, lambda: st.soft_mode("smooth"))
        except Exception as e:  # noqa: BLE001
            problems.append(f"no-grad sample {i}: smooth raised {type(e).__name__}: {e}")
            continue
        if not _same(reference[0], got):
            problems.append(f"no-grad sample {i}: smooth differs from torch")
    if op.supports_autograd:
        for i, sample in enumerate(_samples(op, requires_grad=True)):
            reference = _reference(op, sample)
            if reference is None:  # torch itself rejects it: nothing to compare
                continue
            ref, ref_inputs, det = reference
            # 2. hard mode with grad inputs: exact
            try:
                hard, _ = _call(op, sample, lambda: st.soft_mode("hard"))
                if det and not _same(ref, hard):
                    problems.append(f"grad sample {i}: hard differs from torch")
            except Exception as e:  # noqa: BLE001
                problems.append(f"grad sample {i}: hard raised {type(e).__name__}: {e}")
            # 3. smooth mode with grad inputs: no new exception, same structure, finite
            try:
                soft, soft_inputs = _call(op, sample, lambda: st.soft_mode("smooth"))
            except Exception as e:  # noqa: BLE001
                problems.append(f"grad sample {i}: smooth raised {type(e).__name__}: {e}")
                continue
            ref_f, soft_f = _float_outputs(ref), _float_outputs(soft)
            if len(list(_leaves(ref))) != len(list(_leaves(soft))) or len(ref_f) != len(soft_f):
                problems.append(f"grad sample {i}: smooth output structure differs")
                continue
            for r, s in zip(_leaves(ref), _leaves(soft)):
                r, s = _plain(r), _plain(s)
                if r.shape != s.shape or r.dtype != s.dtype:
                    problems.append(
                        f"grad sample {i}: smooth shape/dtype {tuple(s.shape)} {s.dtype} vs "
                        f"{tuple(r.shape)} {r.dtype}"
                    )
            for r, s in zip(ref_f, soft_f):
                if r.shape == s.shape and not bool(
                    torch.isfinite(s.detach())[torch.isfinite(r.detach())].all()
                ):
                    problems.append(f"grad sample {i}: smooth not finite where torch is")
            if not det:
                continue
            g_ref, g_soft = _grads(ref, ref_inputs), _grads(soft, soft_inputs)
            for gr, gs in zip(g_ref, g_soft):
                if gr is None or gs is None or gr.shape != gs.shape:
                    continue
                if not bool(torch.isfinite(gs)[torch.isfinite(gr)].all()):
                    problems.append(f"grad sample {i}: smooth gradient not finite where torch's is")
    assert not problems, "\n".join(problems)
