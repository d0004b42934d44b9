"""Argument validation shared by every public function.

Each check raises an error that says what to change. Checks run once per call on Python scalars
or tensor metadata only, never inside inner loops.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

_F = TypeVar("_F", bound=Callable[..., Any])

MODES: tuple[str, ...] = ("hard", "smooth", "c0", "c1", "c2")
SIGMOIDAL_MODES: tuple[str, ...] = ("smooth", "c0", "c1", "_c1_pnorm", "c2", "_c2_pnorm")
#: Modes of the elementwise relaxations (heaviside ... round, comparisons, isclose and their
#: ``*_st`` versions): ``hard`` plus every mode of :func:`softtorch.sigmoidal`, including the
#: p-norm sigmoidals ``_c1_pnorm`` / ``_c2_pnorm`` that softtorch 0.1.1 accepts.
ELEMENTWISE_MODES: tuple[str, ...] = ("hard",) + SIGMOIDAL_MODES
METHODS: tuple[str, ...] = (
    "softsort", "neuralsort", "fast_soft_sort", "ot", "sorting_network", "perturbed",
)
INDEX_METHODS: tuple[str, ...] = ("softsort", "neuralsort", "ot", "sorting_network", "perturbed")
INTERPOLATIONS: tuple[str, ...] = ("linear", "lower", "higher", "nearest", "midpoint")


def check_choice(value: object, valid: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise ValueError listing them."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(
            f"unknown {what} {value!r}; valid {what}s are: " + ", ".join(repr(v) for v in valid)
        )
    return value


def check_mode(mode: object, valid: Sequence[str] = MODES) -> str:
    return check_choice(mode, valid, "mode")


def check_method(method: object, valid: Sequence[str] = METHODS) -> str:
    if method == "smooth_sort":  # alias kept for compatibility with softtorch 0.1.1
        method = "fast_soft_sort"
    return check_choice(method, valid, "method")


_SOFTNESS_MSG = "softness must be a finite number > 0 (softness must be positive)"


def check_softness(softness: float | torch.Tensor) -> float | torch.Tensor:
    """Softness must be a finite positive scalar (a float or a 0-d / 1-element tensor).

    A tensor softness (learnable or not) is range-checked too: in eager mode its value is read
    (also through ``torch.func`` wrappers, e.g. a vmap-batched softness); while ``torch.compile``
    traces and for fake tensors a ``torch._assert_async`` guard goes into the graph instead (no
    graph break), raising ``RuntimeError`` with the same message when the graph runs.
    """
    if isinstance(softness, torch.Tensor):
        if softness.numel() != 1:
            raise ValueError(
                f"softness must be a scalar, got a tensor of shape {tuple(softness.shape)}"
            )
        if softness.is_complex():
            raise TypeError("softness must be real, got a complex tensor")
        _check_softness_tensor(softness)
        return softness.reshape(())
    if isinstance(softness, bool) or not isinstance(softness, (int, float)):
        raise TypeError(f"softness must be a float > 0, got {type(softness).__name__}")
    if not (math.isfinite(softness) and softness > 0):
        raise ValueError(f"{_SOFTNESS_MSG}; got {softness}")
    return float(softness)


def _check_softness_tensor(softness: torch.Tensor) -> None:
    if _is_compiling() or _is_fake(softness):
        ok = torch.all((softness > 0) & torch.isfinite(softness))
        torch._assert_async(ok, _SOFTNESS_MSG)  # torch internal, checked on torch 2.13.0
        return
    inner = softness.detach()
    while torch._C._functorch.is_functorch_wrapped_tensor(inner):  # vmap / grad / jvp levels
        inner = torch._C._functorch.get_unwrapped(inner)  # internal, checked on torch 2.13.0
    if _is_fake(inner) or inner.device.type == "meta":
        return
    bad = ~((inner > 0) & torch.isfinite(inner))
    if bool(bad.any()):
        value = inner.reshape(-1)[bad.reshape(-1)][0].item()
        raise ValueError(f"{_SOFTNESS_MSG}; got {value}")


def _is_fake(t: torch.Tensor) -> bool:
    try:  # torch internal (is_fake), checked on torch 2.13.0
        from torch._subclasses.fake_tensor import is_fake
    except ImportError:  # pragma: no cover - very old torch
        return False
    return bool(is_fake(t))


def check_k(k: object, n: int, mode: str = "smooth") -> int:
    """``k`` for ``topk`` over a dimension of size ``n``: an int with ``1 <= k <= n``.

    ``k = 0`` is accepted only in ``mode="hard"``, where torch's own semantics apply
    (``torch.topk(x, 0)`` returns empty tensors); a soft top-k of nothing is rejected with
    "k must be positive", like softtorch 0.1.1.

    Args:
        k: the number of elements to select.
        n: the size of the dimension selected from.
        mode: the relaxation mode of the call.
    """
    if isinstance(k, (bool, float)):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    try:
        kk = operator.index(k)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"k must be an int, got {type(k).__name__}") from None
    lowest = 0 if mode == "hard" else 1
    if kk < lowest:
        raise ValueError(f"k must be positive (k >= {lowest} in mode {mode!r}), got {kk}")
    if kk > n:
        raise ValueError(f"k must be in [{lowest}, n] = [{lowest}, {n}] for a dimension of "
                         f"size {n}, got {kk}")
    return kk


HALF_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)


def upcast_half(x: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """``(x in float32, float16 / bfloat16)`` for half-precision ``x``, else ``(x, x.dtype)``:
    relaxations compute in float32 and return the input dtype (as torch's half ops do)."""
    return (x.float(), x.dtype) if x.dtype in HALF_DTYPES else (x, x.dtype)


def _is_compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # pragma: no cover - torch < 2.3
        return bool(torch._dynamo.is_compiling())  # torch internal, checked on 2.13.0


def forward_ad_active() -> bool:
    """True inside ``torch.func.jvp`` / ``jacfwd`` / ``hessian`` or a ``torch.autograd.forward_ad``
    dual level; always False while compiling.

    Custom ``autograd.Function`` s without a ``jvp`` (Dynamo cannot trace one) switch to an
    equivalent composition of plain torch ops when this is True.
    """
    if torch.compiler.is_compiling():
        return False
    # torch internals (_current_level, functorch interpreters), checked on torch 2.13.0
    if torch.autograd.forward_ad._current_level >= 0:
        return True
    if torch._C._functorch.maybe_current_level() is None:  # no torch.func transform active
        return False
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    return any(i.key() == TransformType.Jvp for i in retrieve_all_functorch_interpreters())


def as_float(x: torch.Tensor | float | int | bool, name: str = "x") -> torch.Tensor:
    """Promote to a floating tensor like torch does for float ops; reject complex input."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)  # a Python complex becomes a complex tensor, rejected below
    if x.is_complex():
        raise TypeError(
            f"{name} is complex ({x.dtype}); soft relaxations need a real floating tensor: "
            f"pass {name}.real or {name}.abs()"
        )
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def as_float_pair(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Promote two operands to one floating dtype (torch's type promotion, floats at least)."""
    xt = x if isinstance(x, torch.Tensor) else None
    yt = y if isinstance(y, torch.Tensor) else None
    if xt is None and yt is None:
        return as_float(x, "x"), as_float(y, "y")  # type: ignore[arg-type]
    for v, name in ((x, "x"), (y, "y")):
        if isinstance(v, complex) or (isinstance(v, torch.Tensor) and v.is_complex()):
            as_float(v, name)  # type: ignore[arg-type]  # raises the TypeError
    ref = xt if xt is not None else yt
    assert ref is not None
    dtype = _result_type(x, y)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    device = ref.device

    def convert(v: object) -> torch.Tensor:
        if isinstance(v, torch.Tensor):
            return v.to(dtype)
        return torch.as_tensor(v, dtype=dtype, device=device)

    return convert(x), convert(y)


def _result_type(x: object, y: object) -> torch.dtype:
    """``torch.result_type(x, y)``; while torch.compile traces (where ``result_type`` returns a
    non-tensor and breaks the graph) the dtype of adding empty probes, which follows the same
    promotion rules (0-d tensors and Python scalars promote only across categories)."""
    if not _is_compiling():
        return torch.result_type(x, y)  # type: ignore[arg-type]

    def probe(v: object) -> object:
        return v.new_empty(() if v.ndim == 0 else (0,)) if isinstance(v, torch.Tensor) else v

    return torch.add(probe(x), probe(y)).dtype  # type: ignore[arg-type]


def canonical_dim(dim: int, ndim: int) -> int:
    """Wrap a possibly negative ``dim``; IndexError like torch when out of range."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})"
        )
    return dim % n


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # pragma: no cover - torch < 2.4 has no device_type argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device_type == "cuda" and torch.is_autocast_enabled()


def autocast_off(fn: _F) -> _F:
    """Run ``fn`` with autocast disabled on the device of its first argument.

    For ops whose torch counterpart keeps its input dtype under ``torch.autocast`` (sort, max,
    quantile, take_along_dim ...) but whose relaxation uses matmuls that autocast would run in
    bfloat16 / float16: the soft result is computed in the input's precision (half-precision
    inputs in float32) and returned in the input dtype, like torch's. Costs one check when no
    autocast is active.
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        x = args[0] if args else kwargs.get("x")
        device_type = x.device.type if isinstance(x, torch.Tensor) else "cpu"
        if not _autocast_enabled(device_type):
            return fn(*args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
