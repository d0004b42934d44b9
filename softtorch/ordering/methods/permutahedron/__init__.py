"""``fast_soft_sort``: soft sort and rank by permutahedron projection (Blondel et al., 2020).

* :mod:`.fast_soft_sort`: the projection (math in its docstring), :func:`soft_sort`,
  :func:`soft_rank`, the kernel custom ops and their autograd (VJP, JVP, double backward, vmap),
  and the backend switch :func:`set_backend`.
* :mod:`._pav_numba` / :mod:`._pav_torch`: the pool-adjacent-violators kernels (numba on CPU,
  torch-native on any device), same problem and block formulas.
* :mod:`._fused`: the eager CPU fast path (standardization, argsort, PAV and the inverse map
  in one numba kernel per row, closed-form backward); its kernels are
  :mod:`._fused_numba_sort` and :mod:`._fused_numba_rank` on the row helpers of
  :mod:`._fused_numba`.
* :mod:`._radix_numba`: the stable radix argsort used by the fused path for long rows.
* :mod:`.method`: the :class:`FastSoftSort` ordering method (registered on import).

numba is imported on first use of a numba kernel, not on import of this package.
"""

from __future__ import annotations

from .fast_soft_sort import BACKENDS, MODES, project_sorted, set_backend, soft_rank, soft_sort
from .method import FastSoftSort

__all__ = [
    "BACKENDS",
    "MODES",
    "FastSoftSort",
    "project_sorted",
    "set_backend",
    "soft_rank",
    "soft_sort",
]
