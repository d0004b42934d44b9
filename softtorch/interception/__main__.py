"""``python -m softtorch.interception [PATH] [--check]``: write (or check) the coverage table of
``docs/coverage.md`` from the registry; ``--help`` prints the usage."""

from __future__ import annotations

import argparse
import sys

from .registry import coverage_markdown


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the command line (``--help`` prints the usage and exits)."""
    parser = argparse.ArgumentParser(
        prog="python -m softtorch.interception",
        description="Write the soft_mode coverage table (generated from the registry) to PATH, "
        "or with --check report whether PATH is up to date.",
    )
    parser.add_argument(
        "path", nargs="?", default="docs/coverage.md",
        help="the markdown file to write or check (default: docs/coverage.md)",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="do not write: exit 1 if PATH differs from the generated table",
    )
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    """Write or check the coverage table; returns the exit code."""
    args = parse(argv)
    text = coverage_markdown()
    if args.check:
        try:
            with open(args.path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{args.path} is out of date; run python -m softtorch.interception {args.path}")
            return 1
        return 0
    with open(args.path, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
