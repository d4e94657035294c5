"""Run the quick versions of every benchmark in this folder (``make bench``).

The full-size runs (and the figures quoted in docs/benchmarks.md) come from each script with its
default arguments; see their docstrings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = [
    [HERE / "bench_evaluate.py", "--sizes", "10000", "3000x20000"],
    [HERE / "bench_training.py", "--steps", "8", "--repeats", "1"],
]


def main() -> int:
    status = 0
    for cmd in QUICK:
        print(f"\n$ {' '.join(str(c) for c in cmd)}", flush=True)
        status |= subprocess.call([sys.executable, *map(str, cmd)])
    return status


if __name__ == "__main__":
    sys.exit(main())
