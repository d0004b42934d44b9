"""``method="neuralsort"``: NeuralSort (Grover et al., 2019) with the library's soft absolute
value; the formulation is stated in :mod:`.method`. The files, from the bottom layer up:

* :mod:`._numba`: CPU kernels of the ``smooth`` streamed path: pairwise soft-absolute sums
  (serial and parallel) and the banded softmax rows (values, ranks, written rows and their
  gradients; the written rows also in parallel).
* :mod:`._sparse_numba`: CPU kernels of the sparse modes' band correction and the batched lower
  convex hull.
* :mod:`._smooth`: the ``smooth`` streamed paths (sums, bands, values, ranks, written rows) as
  autograd functions, with torch fallbacks.
* :mod:`._sparse`: the sparse-mode (``c0`` / ``c1`` / ``c2``) values and ranks on row windows
  (shares the row blocks and backend switch of :mod:`..softsort._sparse`).
* :mod:`.method`: the :class:`NeuralSort` ordering method (dense row blocks for small inputs).

When the streamed paths replace the dense ones: :mod:`softtorch.ordering.methods._stream`.
"""

from __future__ import annotations

from .method import NeuralSort

__all__ = ["NeuralSort"]
