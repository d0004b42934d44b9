"""softtorch: soft, differentiable drop-in replacements for the non-differentiable parts of PyTorch.

Every relaxation takes ``mode`` (``"hard"``, ``"smooth"``, ``"c0"``, ``"c1"``, ``"c2"``) and
``softness`` (> 0); ``mode="hard"`` reproduces torch exactly. Layout: elementwise, comparison and
logic relaxations (issue 2), the ordering engine (:mod:`softtorch.ordering`) and selection with
soft indices, straight-through estimators, surrogate gradients (:mod:`softtorch.surrogate`) and
the interception layer (``soft_mode``, ``SoftTensor``; :mod:`softtorch.interception`).

``from softtorch import *`` imports the names in ``__all__``; the soft versions of Python builtins
(``abs``, ``all``, ``any``, ``max``, ``min``, ``round``) are left out of it so that they never
shadow the builtins: use them as ``softtorch.max`` etc.
"""

from . import losses, surrogate
from ._sigmoidal import sigmoidal, softrelu
from ._version import __version__
from .comparison import eq, greater, greater_equal, isclose, less, less_equal, not_equal
from .elementwise import abs, clamp, heaviside, relu, round, sign
from .interception import (
    SoftConfig,
    SoftTensor,
    current_mode,
    hard_mode,
    registry,
    soft,
    soft_mode,
)
from .learnable import Softness, positive_softness
from .logic import all, any, logical_and, logical_not, logical_or, logical_xor, where
from .ordering.ops import (
    argmax,
    argmedian,
    argmin,
    argquantile,
    argsort,
    max,
    median,
    min,
    quantile,
    rank,
    sort,
    topk,
)
from .perturbation import perturbed
from .selection import index_select, narrow, take, take_along_dim
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
from .types import SoftBool, SoftIndex

#: Soft versions of Python builtins: attributes only, never star-imported.
_BUILTIN_NAMES = ("abs", "all", "any", "max", "min", "round")

__all__ = [
    "perturbed",
    "SoftBool",
    "SoftConfig",
    "SoftIndex",
    "SoftTensor",
    "Softness",
    "__version__",
    "abs_st",
    "argmax",
    "argmax_st",
    "argmedian",
    "argmedian_st",
    "argmin",
    "argmin_st",
    "argquantile",
    "argquantile_st",
    "argsort",
    "argsort_st",
    "clamp",
    "clamp_st",
    "current_mode",
    "eq",
    "eq_st",
    "equal_st",
    "grad_replace",
    "greater",
    "greater_equal",
    "greater_equal_st",
    "greater_st",
    "hard_mode",
    "heaviside",
    "heaviside_st",
    "index_select",
    "isclose",
    "isclose_st",
    "less",
    "less_equal",
    "less_equal_st",
    "less_st",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "losses",
    "max_st",
    "median",
    "median_st",
    "min_st",
    "narrow",
    "not_equal",
    "not_equal_st",
    "positive_softness",
    "quantile",
    "quantile_st",
    "rank",
    "rank_st",
    "ranking_st",
    "registry",
    "relu",
    "relu_st",
    "round_st",
    "sigmoidal",
    "sign",
    "sign_st",
    "soft",
    "soft_mode",
    "softrelu",
    "sort",
    "sort_st",
    "st",
    "surrogate",
    "take",
    "take_along_dim",
    "topk",
    "topk_st",
    "where",
]
