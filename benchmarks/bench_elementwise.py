"""Elementwise relaxations vs the hard torch ops, on 4M float32 elements (2048 x 2048).

Modes ``smooth`` and ``c1`` always; the full run adds ``hard``, ``c0``, ``c2`` (and the p-norm
sigmoidals for ``sigmoidal`` / ``softrelu``) plus the gated relu variants. ``softtorch`` is
imported lazily inside each case, so cases whose op is not available yet are reported as skipped.
Softness is 0.1 everywhere; inputs are standard normal (SoftBools: uniform in [0, 1]).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

SHAPE = (2048, 2048)
QUICK_SHAPE = (64, 64)
SOFTNESS = 0.1


def resolve(name: str) -> Callable[..., Any]:
    """``softtorch.<name>``; falls back to the function of the same name in ``softtorch.<name>``
    (``sigmoidal`` / ``softrelu`` live in the ``softtorch.sigmoidal`` module)."""
    st = importlib.import_module("softtorch")
    obj = getattr(st, name, None)
    if obj is None or not callable(obj):
        for mod_name in (name, "sigmoidal"):
            try:
                mod = importlib.import_module(f"softtorch.{mod_name}")
            except ImportError:
                continue
            obj = getattr(mod, name, None)
            if callable(obj):
                break
    if obj is None or not callable(obj):
        raise AttributeError(f"softtorch.{name} is not available")
    return obj


def _soft(name: str, **kwargs: Any) -> Callable[..., Any]:
    def fn(*inputs: torch.Tensor) -> Any:
        return resolve(name)(*inputs, **kwargs)

    return fn


def _normal(shape: tuple[int, ...], k: int, grad: bool = True) -> Callable[[], tuple]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        return tuple(torch.randn(shape, generator=g).requires_grad_(grad) for _ in range(k))

    return make


def _make_clamp(shape: tuple[int, ...]) -> Callable[[], tuple]:
    def make() -> tuple[torch.Tensor, ...]:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        return x, torch.tensor(-0.5), torch.tensor(0.5)

    return make


def _make_isclose(shape: tuple[int, ...]) -> Callable[[], tuple]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g)
        y = (x + 1e-5 * torch.randn(shape, generator=g)).requires_grad_(True)
        return x.requires_grad_(True), y

    return make


def _uniform(shape: tuple[int, ...], k: int) -> Callable[[], tuple]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        return tuple(torch.rand(shape, generator=g).requires_grad_(True) for _ in range(k))

    return make


def _make_where(shape: tuple[int, ...]) -> Callable[[], tuple]:
    def make() -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        c = torch.rand(shape, generator=g).requires_grad_(True)
        x = torch.randn(shape, generator=g).requires_grad_(True)
        y = torch.randn(shape, generator=g).requires_grad_(True)
        return c, x, y

    return make


_HALF = torch.tensor(0.5)


def _hard_heaviside(x: torch.Tensor) -> torch.Tensor:
    return torch.heaviside(x, _HALF.to(x.dtype))


# op name -> (inputs factory taking the shape, hard torch baseline, takes softness/mode)
_OPS: dict[str, tuple[Callable[..., Callable[[], tuple]], Callable[..., Any], bool]] = {
    "sigmoidal": (lambda s: _normal(s, 1), _hard_heaviside, True),
    "softrelu": (lambda s: _normal(s, 1), torch.relu, True),
    "heaviside": (lambda s: _normal(s, 1), _hard_heaviside, True),
    "sign": (lambda s: _normal(s, 1), torch.sign, True),
    "abs": (lambda s: _normal(s, 1), torch.abs, True),
    "relu": (lambda s: _normal(s, 1), torch.relu, True),
    "clamp": (_make_clamp, torch.clamp, True),
    "round": (lambda s: _normal(s, 1), torch.round, True),
    "greater": (lambda s: _normal(s, 2), lambda x, y: (x > y).float(), True),
    "eq": (lambda s: _normal(s, 2), lambda x, y: (x == y).float(), True),
    "isclose": (_make_isclose, lambda x, y: torch.isclose(x, y).float(), True),
    "logical_and": (lambda s: _uniform(s, 2), lambda x, y: torch.logical_and(x, y).float(), False),
    "where": (_make_where, lambda c, x, y: torch.where(c > 0.5, x, y), False),
}

_SIGMOIDAL_ONLY = ("sigmoidal", "softrelu")


def _modes(op: str, quick: bool) -> list[str]:
    if quick:
        return ["smooth", "c1"]
    if op in _SIGMOIDAL_ONLY:
        return ["smooth", "c0", "c1", "c2", "_c1_pnorm", "_c2_pnorm"]
    return ["hard", "smooth", "c0", "c1", "c2"]


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """One case per (op, mode); the ops without a mode (logic, where) get one case each."""
    shape = QUICK_SHAPE if quick else SHAPE
    shape_s = "x".join(map(str, shape))
    out: list[dict[str, Any]] = []
    for op, (make_factory, baseline, has_mode) in _OPS.items():
        variants: list[tuple[str, dict[str, Any]]]
        if has_mode:
            variants = [(m, {"softness": SOFTNESS, "mode": m}) for m in _modes(op, quick)]
            if op in ("relu", "softrelu") and not quick:
                variants += [
                    (f"{m},gated", {"softness": SOFTNESS, "mode": m, "gated": True})
                    for m in ("smooth", "c1")
                ]
        else:
            variants = [("", {})]
            if op == "logical_and" and not quick:
                variants.append(("geometric", {"use_geometric_mean": True}))
        for label, kwargs in variants:
            out.append(
                {
                    "name": f"{op}[{label}]" if label else op,
                    "shape": shape_s,
                    "make": make_factory(shape),
                    "fn": _soft(op, **kwargs),
                    "baseline": baseline,
                    "group": op,
                }
            )
    return out
