"""``python -m guided_dml``: the ``gdml`` command, for environments without its console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
