"""Import every ordering method module once so that each registers itself.

``softsort``, ``neuralsort`` and ``sorting_network`` always exist; ``fast_soft_sort`` and ``ot``
are imported when their modules are present in the package (they are developed separately). A
module that is present but fails to import raises: errors are never swallowed.
"""

from __future__ import annotations

import importlib
import importlib.util

from . import neuralsort, softsort, sorting_network  # noqa: F401  (registration side effects)

#: Method modules that may be absent from a partial installation.
OPTIONAL_MODULES: tuple[str, ...] = ("fast_soft_sort", "ot")

for _name in OPTIONAL_MODULES:
    if importlib.util.find_spec(f"{__package__}.{_name}") is not None:
        importlib.import_module(f"{__package__}.{_name}")
