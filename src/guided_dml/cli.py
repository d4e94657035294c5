"""Command line interface (argument parsing only: each command is one library call)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("gdml: under construction", file=sys.stderr)
    return 1
