"""softtorch: soft, differentiable drop-in replacements for the non-differentiable parts of PyTorch.

Every relaxation takes ``mode`` (``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``) and
``softness`` (> 0); ``mode="hard"`` reproduces torch exactly. See the documentation for the
formulas of each mode and method.
"""

from ._version import __version__
from .types import SoftBool, SoftIndex

# --- elementwise, comparisons, logic (issue 2) ---
from .sigmoidal import sigmoidal, softrelu
from .elementwise import abs, clamp, heaviside, relu, round, sign
from .comparison import eq, greater, greater_equal, isclose, less, less_equal, not_equal
from .logic import all, any, logical_and, logical_not, logical_or, logical_xor, where
from .straight_through import (
    abs_st,
    argmax_st,
    argmedian_st,
    argmin_st,
    argquantile_st,
    argsort_st,
    clamp_st,
    eq_st,
    equal_st,
    grad_replace,
    greater_equal_st,
    greater_st,
    heaviside_st,
    isclose_st,
    less_equal_st,
    less_st,
    max_st,
    median_st,
    min_st,
    not_equal_st,
    quantile_st,
    rank_st,
    ranking_st,
    relu_st,
    round_st,
    sign_st,
    sort_st,
    st,
    topk_st,
)

# --- ordering (issue 3) ---
from .ordering.ops import argmax, argmedian, argmin, argquantile, argsort, max, median, min, quantile, rank, sort, topk
from .selection import index_select, narrow, take, take_along_dim

# --- soft_mode (issue 5) ---
from .interception import SoftConfig, SoftTensor, current_mode, hard_mode, registry, soft, soft_mode
