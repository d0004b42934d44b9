"""``python -m softtorch.interception [PATH] [--check]``: write (or check) the coverage table of
``docs/coverage.md`` from the registry."""

import sys

from .registry import main

raise SystemExit(main(sys.argv[1:]))
