"""Soft ordering: sort, rank, top-k, quantiles and arg-ops, and the methods behind them.

Layers, bottom up (no module imports one above it):

* shared plumbing: :mod:`._standardize`, :mod:`._take`, :mod:`._logspace`;
* the method interface and registry: :mod:`._base` (:class:`OrderingMethod`);
* the methods, one module or subpackage each: :mod:`.methods` (``softsort``, ``neuralsort``,
  ``sorting_network``, ``permutahedron`` = ``fast_soft_sort``, ``ot``), registered on import;
* the op layer by family: :mod:`.ops_sort`, :mod:`.ops_extreme`, :mod:`.ops_topk`,
  :mod:`.ops_quantile` on :mod:`._common` (parameter docs: :mod:`._docs`), re-exported by
  :mod:`.ops` (and by :mod:`softtorch`).

Importing this package imports every method once, so that no import happens inside traced code.
"""

from . import methods  # noqa: F401  (registers every method)
from ._base import OrderingMethod, get_method, register

__all__ = ["OrderingMethod", "get_method", "register"]
