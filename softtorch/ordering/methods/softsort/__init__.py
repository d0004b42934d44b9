"""``method="softsort"``: SoftSort (Prillo & Eisenschlos, 2020); the formulation is stated in
:mod:`.method`. The files, from the bottom layer up:

* :mod:`._laplace`: Laplace-kernel smoothing on sorted points by forward / backward scans
  (``O(n)`` memory), the ``smooth`` values and ranks.
* :mod:`._numba`: CPU kernels writing the ``smooth`` soft permutation rows and their gradient
  (serial and ``parallel=True`` variants).
* :mod:`._sparse_numba`: CPU kernels of the sparse-mode (``c0`` / ``c1`` / ``c2``) row windows.
* :mod:`._smooth`: the ``smooth`` streamed paths (values, ranks, written rows) as autograd
  functions, with torch fallbacks.
* :mod:`._sparse`: the sparse-mode streamed paths (row windows on sorted points).
* :mod:`.method`: the :class:`SoftSort` ordering method (dense row blocks for small inputs).

When the streamed paths replace the dense ones: :mod:`softtorch.ordering.methods._stream`.
"""

from __future__ import annotations

from .method import SoftSort

__all__ = ["SoftSort"]
