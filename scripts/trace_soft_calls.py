"""Trace the torch calls a metric makes on the gradient path inside ``soft_mode`` (issue 16 survey).

A logging :class:`torch.overrides.TorchFunctionMode` is pushed *inside* the ``soft_mode`` block, so
it sees the user-level torch calls (before softtorch's interceptor relaxes them). A call is on the
path when one of its tensor operands is tainted (derived from the leaf that requires grad) or is a
SoftTensor; its tensor results are then tainted too. A tainted result that is neither a SoftTensor
nor requires grad is where the soft information is lost ("LOST").

Run::

    python scripts/trace_soft_calls.py [case-name-substring ...] > trace.txt
"""

from __future__ import annotations

import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import softtorch  # noqa: E402
from tests.interception.tm_cases import CASES, NOT_RELAXABLE, Case, make_inputs  # noqa: E402

_DT = {torch.float64: "f64", torch.float32: "f32", torch.int64: "i64", torch.bool: "b",
       torch.int32: "i32", torch.uint8: "u8"}  # fmt: skip


#: Metadata queries, left out of the trace.
_QUIET = frozenset(
    {
        "getset_descriptor.__get__",
        "Tensor.dim",
        "Tensor.size",
        "Tensor.ndimension",
        "Tensor.is_floating_point",
        "Tensor.numel",
        "Tensor.__len__",
    }
)
#: Calls whose exact result is a Python-branch condition (not a loss of the soft path).
_BRANCH = frozenset(
    {
        "_VariableFunctionsClass.all",
        "_VariableFunctionsClass.any",
        "Tensor.all",
        "Tensor.any",
        "Tensor.__bool__",
        "Tensor.item",
        "Tensor.tolist",
    }
)


def _name(func: Any) -> str:
    q = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return q.replace("TensorBase.", "Tensor.").replace("_TensorBase.", "Tensor.")


class Tracer(TorchFunctionMode):
    """Records the calls on the path from the tainted leaves."""

    def __init__(self, leaves: list[torch.Tensor]) -> None:
        super().__init__()
        self.keep: list[torch.Tensor] = list(leaves)
        self.tainted = {id(t) for t in leaves}
        self.rows: list[tuple[str, str, str, bool, bool]] = []

    def _is_t(self, a: Any) -> bool:
        if isinstance(a, torch.Tensor):
            return id(a) in self.tainted or type(a).__name__ == "SoftTensor"
        if isinstance(a, (list, tuple)):
            return any(self._is_t(b) for b in a)
        return False

    def _desc(self, a: Any) -> str:
        if isinstance(a, torch.Tensor):
            s = _DT.get(a.dtype, str(a.dtype)) + str(list(a.shape)).replace(" ", "")
            marks = ""
            if type(a).__name__ == "SoftTensor":
                marks += "B" if getattr(a, "_hard", None) is not None else ""
                marks += "I" if getattr(a, "_sidx", None) is not None else ""
                marks += "S" if not marks else ""
            if a.requires_grad:
                marks += "g"
            if id(a) in self.tainted:
                marks += "*"
            return s + ("{" + marks + "}" if marks else "")
        if isinstance(a, (list, tuple)):
            inner = ",".join(self._desc(b) for b in a[:4]) + (",..." if len(a) > 4 else "")
            lb, rb = ("[", "]") if isinstance(a, list) else ("(", ")")
            return lb + inner + rb
        if isinstance(a, slice):
            return f"{a.start}:{a.stop}:{a.step}".replace("None", "")
        r = repr(a)
        return r if len(r) < 24 else r[:21] + "..."

    def _taint(self, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            self.keep.append(out)
            self.tainted.add(id(out))
        elif isinstance(out, (list, tuple)):
            for o in out:
                self._taint(o)

    def _lost(self, out: Any) -> bool:
        outs = out if isinstance(out, (list, tuple)) else [out]
        ts = [o for o in outs if isinstance(o, torch.Tensor)]
        return bool(ts) and all(
            type(o).__name__ != "SoftTensor" and not o.requires_grad for o in ts
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        on_path = self._is_t(args) or self._is_t(tuple(kwargs.values()))
        out = func(*args, **kwargs)
        name = _name(func)
        if on_path and name not in _QUIET:
            ad = ", ".join([self._desc(a) for a in args]
                           + [f"{k}={self._desc(v)}" for k, v in kwargs.items()])  # fmt: skip
            self.rows.append(
                (name, ad, self._desc(out) if not isinstance(out, (bool, int, float)) else
                 repr(out)[:20], self._lost(out), torch.is_grad_enabled())
            )  # fmt: skip
            self._taint(out)
        return out


def _summ(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        v = v.detach()
        if v.numel() == 1:
            return f"{v.item():.4g} ({_DT.get(v.dtype, v.dtype)})"
        return f"{_DT.get(v.dtype, v.dtype)}{list(v.shape)} {v.flatten()[:6].tolist()}"
    return repr(v)


def _grad(out: torch.Tensor, x: torch.Tensor) -> str:
    if not isinstance(out, torch.Tensor):
        return "n/a"
    y = out
    if not y.is_floating_point():
        y = y.float() if type(y).__name__ == "SoftTensor" else None
        if y is None:
            return "none (int result)"
    if not y.requires_grad:
        return "none"
    (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    if g is None:
        return "none (unused)"
    fin, nz = bool(torch.isfinite(g).all()), bool((g != 0).any())
    return f"finite={fin} nonzero={nz} |g|={g.norm():.3g}"


def survey(case: Case) -> tuple[str, Counter[str]]:
    lines = [f"### {case.name}  (inputs: {case.kind})", ""]
    x, t = make_inputs(case.kind)
    try:
        plain = case.call(x, t)
        lines.append(f"- plain: {_summ(plain)}; grad: {_grad(plain, x)}")
    except Exception as e:  # noqa: BLE001
        lines.append(f"- plain: EXC {type(e).__name__}: {e}")
        plain = None
    x, t = make_inputs(case.kind)
    tracer = Tracer([x])
    err = None
    soft = None
    with softtorch.soft_mode("smooth", softness=0.1):
        try:
            with tracer:
                soft = case.call(x, t)
            g = _grad(soft, x)
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {str(e)[:300]}"
            tb = traceback.extract_tb(e.__traceback__)
            where = [f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in tb
                     if "torchmetrics" in f.filename or "tm_cases" in f.filename][-2:]  # fmt: skip
            err += " at " + " | ".join(where)
    if err:
        lines.append(f"- soft_mode(smooth, 0.1): EXCEPTION {err}")
    else:
        lines.append(f"- soft_mode(smooth, 0.1): {_summ(soft)}; grad: {g}")
    lines += ["", "```"]
    used: Counter[str] = Counter()
    first_lost = None
    for name, ad, od, lost, grad_on in tracer.rows:
        flag = (" LOST" if lost else "") + ("" if grad_on else " NO_GRAD")
        if lost and first_lost is None and name not in _BRANCH and "b[]" not in od:
            first_lost = f"{name}({ad})"
        lines.append(f"{name}({ad}) -> {od}{flag}")
        used[name] += 1
    lines += ["```", ""]
    if first_lost:
        lines.insert(3, f"- first call where the soft path is lost: `{first_lost}`")
    return "\n".join(lines), used


def main() -> None:
    keys = sys.argv[1:]
    allc = CASES + [c for c, _ in NOT_RELAXABLE]
    total: Counter[str] = Counter()
    for case in allc:
        if keys and not any(k in case.name for k in keys):
            continue
        text, used = survey(case)
        total.update({k: 1 for k in used})
        print(text, flush=True)
    print("### torch functions on soft data (number of cases using each)\n")
    for k, v in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"- {k}: {v}")


if __name__ == "__main__":
    main()
