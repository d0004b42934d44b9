"""Type aliases of the public API."""

from __future__ import annotations

from typing import Literal

import torch

#: A soft boolean: a floating tensor with values in [0, 1] (1 = true).
SoftBool = torch.Tensor
#: A soft index: torch's integer index shape plus a trailing axis of length n holding a
#: distribution over the n positions of the indexed dimension (rows sum to 1).
SoftIndex = torch.Tensor

Mode = Literal["hard", "smooth", "c0", "c1", "c2"]
SigmoidalMode = Literal["smooth", "c0", "c1", "_c1_pnorm", "c2", "_c2_pnorm"]
Method = Literal["ot", "softsort", "neuralsort", "fast_soft_sort", "smooth_sort", "sorting_network"]
