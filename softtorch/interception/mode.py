r"""``soft_mode`` / ``hard_mode`` / ``current_mode``: relax unmodified PyTorch code in a block.

Built on PyTorch's ``__torch_function__`` protocol: each thread that enters a block gets one
:class:`torch.overrides.TorchFunctionMode` (pushed by the outermost block, popped by it), and a
thread-local stack of settings in which the innermost block wins. Torch pops the mode while its
handler runs, so the relaxations' own torch calls are never intercepted; the stack is restored by
every exit, also on exceptions; other threads see plain torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import tensor as _tensor
from .config import SoftConfig
from .dispatch import caller_is_engine, dispatch_plain, dispatch_soft
from .registry import Entry, tables
from .settings import make_config
from .tensor import SoftTensor


class _Interceptor(TorchFunctionMode):
    """The torch function mode of one thread; reads the innermost settings."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg: SoftConfig | None = None
        self.plain: dict[Any, Entry] = {}
        #: > 0 while a call is being dispatched: torch calls made meanwhile (the relaxations'
        #: own) pass straight through. Torch pops the mode for them anyway; this also holds when
        #: torch.compile traces the handler.
        self.busy = 0

    def point(self, cfg: SoftConfig) -> None:
        self.cfg = cfg
        t = cfg.tables or tables(cfg.ops, cfg.exclude)
        self.plain = t.plain if cfg.relaxing else {}

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Iterable[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if kwargs is None:
            kwargs = {}
        if self.busy:
            return func(*args, **kwargs)
        if SoftTensor in types:  # type: ignore[operator]
            engine = caller_is_engine()
            self.busy += 1
            try:
                return dispatch_soft(func, args, kwargs, self.cfg, engine)
            finally:
                self.busy -= 1
        entry = self.plain.get(func)
        if entry is None:
            return func(*args, **kwargs)
        self.busy += 1
        try:
            return dispatch_plain(entry, self.cfg, func, args, kwargs)  # type: ignore[arg-type]
        finally:
            self.busy -= 1


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[SoftConfig] = []
        self.mode: _Interceptor | None = None


_STATE = _State()


def active_config() -> SoftConfig | None:
    """The innermost block's settings in this thread, None outside any block."""
    stack = _STATE.stack
    return stack[-1] if stack else None


def _subclass_dispatch(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``SoftTensor.__torch_function__``: the innermost block's settings, else the data's."""
    stack = _STATE.stack
    return dispatch_soft(func, args, kwargs, stack[-1] if stack else None, caller_is_engine(3))


_tensor.set_dispatch(_subclass_dispatch)


def current_mode() -> SoftConfig | None:
    """What is in force in this thread: the innermost ``soft_mode`` / ``hard_mode`` settings
    (a :class:`SoftConfig` with ``mode``, ``softness``, ``method`` ...), or None for plain torch."""
    return active_config()


def _push(cfg: SoftConfig) -> None:
    st = _STATE
    st.stack.append(cfg)
    if st.mode is None:
        mode = _Interceptor()
        mode.point(cfg)
        try:
            mode.__enter__()
        except BaseException:
            st.stack.pop()
            raise
        st.mode = mode
    else:
        st.mode.point(cfg)


def _pop() -> None:
    st = _STATE
    st.stack.pop()
    mode = st.mode
    assert mode is not None
    if st.stack:
        mode.point(st.stack[-1])
    else:
        st.mode = None
        mode.__exit__(None, None, None)


class soft_mode(ContextDecorator):  # noqa: N801  (used like a function)
    r"""Relax the discrete torch operations of unmodified code inside a block or function.

    Example:
        >>> with softtorch.soft_mode("smooth", softness=0.1):
        ...     loss = third_party_loss(model(x), y)  # torch.sort, x > y, F.relu ... now soft

    Args:
        mode: ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``, or ``"hard"`` (relax nothing).
        softness: transition width (> 0); ordering ops standardize their scores first.
        method: ordering method (``softsort``, ``neuralsort``, ``fast_soft_sort``, ``ot``,
            ``sorting_network``); None keeps each op's default. Index results fall back to the
            op's default when the method has no soft indices.
        straight_through: torch's exact values forward, the relaxation's gradient backward.
        ops: op names (``"sort"``, ``"gt"`` ...) or groups (``"elementwise"``,
            ``"comparison"``, ``"logic"``, ``"ordering"``, ``"pooling"``, ``"selection"``) to
            relax; all others stay exact (see ``docs/coverage.md``).
        exclude: op names or groups to leave exact.
        scope: ``"grad"`` relaxes an op only when a floating operand requires grad or is soft data
            (a SoftTensor), so masks, labels and bookkeeping keep exact semantics; under
            ``torch.no_grad`` / inference no gradient path exists and only soft data is relaxed
            (optimizer steps and evaluation stay exact). ``"all"`` relaxes every floating op,
            e.g. to evaluate a soft loss without gradients.
        surrogate: with ``straight_through=True``, comparisons (``>``, ``>=``, ``<``, ``<=``) and
            ``heaviside`` give exact spikes forward and :func:`softtorch.surrogate.threshold`'s
            gradient of the margin backward (e.g. ``"super"``).

    Nested blocks: the innermost wins; ``hard_mode()`` switches relaxation off inside. An active
    block takes precedence over a :class:`SoftTensor`'s own settings. The block is thread-local and
    restores the previous state on exit, also on exceptions; it is reentrant and works as a
    decorator. Entering returns the :class:`SoftConfig`.
    """

    def __init__(
        self,
        mode: str = "smooth",
        softness: float | torch.Tensor = 0.1,
        *,
        method: str | None = None,
        straight_through: bool = False,
        ops: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        scope: str = "grad",
        surrogate: str | None = None,
    ) -> None:
        self.config = make_config(
            mode, softness, method=method, straight_through=straight_through, ops=ops,
            exclude=exclude, scope=scope, surrogate=surrogate,
        )

    def __enter__(self) -> SoftConfig:
        _push(self.config)
        return self.config

    def __exit__(self, *exc: object) -> None:
        _pop()

    def __repr__(self) -> str:
        return f"soft_mode({self.config!r})"


def hard_mode() -> soft_mode:
    """A block in which every op keeps torch's exact semantics (``soft_mode("hard")``)."""
    return soft_mode("hard")
