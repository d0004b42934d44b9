r"""Relax unmodified PyTorch code: :func:`soft_mode`, :func:`hard_mode`, :class:`SoftTensor`.

``soft_mode`` is a :class:`torch.overrides.TorchFunctionMode`; ``SoftTensor`` a tensor subclass
whose data carries its own settings. Both read one declarative :mod:`registry` of relaxations.
"""

from . import registry
from .config import SoftConfig
from .mode import current_mode, hard_mode, soft_mode
from .settings import soft
from .tensor import SoftTensor

__all__ = [
    "SoftConfig",
    "SoftTensor",
    "current_mode",
    "hard_mode",
    "registry",
    "soft",
    "soft_mode",
]
