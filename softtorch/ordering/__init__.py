"""Soft ordering: sort, rank, top-k, quantiles and arg-ops, and the methods behind them.

The public ops live in :mod:`softtorch.ordering.ops` (re-exported by :mod:`softtorch`); each
``method=`` is an :class:`~softtorch.ordering._base.OrderingMethod` in its own module, registered
on import (:mod:`softtorch.ordering.methods` imports them all, when this package is imported).
"""

from . import methods  # noqa: F401, E402  (registers every method now: no import inside traced code)
from ._base import OrderingMethod, get_method, register

__all__ = ["OrderingMethod", "get_method", "register"]
