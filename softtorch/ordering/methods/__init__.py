"""The ordering methods: one module (or subpackage) per ``method=``, each an
:class:`~softtorch.ordering._base.OrderingMethod` that registers itself on import.

* :mod:`.softsort`: SoftSort rows, a simplex projection of ``-|s_i - z_j| / softness``, with
  its streamed (no ``n x n``) paths and kernels.
* :mod:`.neuralsort`: NeuralSort rows (Grover et al., 2019), with its streamed paths and kernels.
* :mod:`._stream`: when the streamed paths of both apply, and their kernel launcher.
* :mod:`.sorting_network`: a bitonic network of soft compare-and-swap layers.
* :mod:`.permutahedron`: ``fast_soft_sort``, the permutahedron projection (Blondel et al., 2020)
  with its PAV kernels (numba and torch), the fused CPU path and the radix argsort.
* :mod:`.ot`: ``ot``, regularised optimal transport to sorted anchors (solver, banded pre-solver,
  linear algebra, log-domain plan, implicit autograd, custom ops).
* :mod:`.perturbed`: perturbed optimisers (Berthet et al., 2020), Monte-Carlo over the kernels of
  :mod:`softtorch.perturbation.ordering`.

Importing this package imports (and so registers) every method; :mod:`softtorch.ordering` does
that once, before any op runs, so no import happens inside traced code.
"""

from __future__ import annotations

from .neuralsort import NeuralSort
from .ot import OT
from .permutahedron import FastSoftSort
from .perturbed import Perturbed
from .softsort import SoftSort
from .sorting_network import SortingNetwork

__all__ = ["FastSoftSort", "NeuralSort", "OT", "Perturbed", "SoftSort", "SortingNetwork"]
