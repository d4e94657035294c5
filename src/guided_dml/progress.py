"""Progress of the practitioner's commands (``gdml embed``, ``search``, ``plot``) on large inputs.

As the trainer does for epochs: a tqdm bar on stderr when stderr is a terminal; off a terminal
(logs, CI, ``nohup``) a line per tenth of the work and a summary line at the end, so a long job is
never silent. Inputs under :data:`MIN_ITEMS` items show nothing (they take seconds).

``progress``: ``None`` (default) = bar on a terminal, lines elsewhere; ``True`` = a bar even off
a terminal; ``False`` = nothing (``-q``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

MIN_ITEMS = 2000  # smaller inputs take seconds: no bar, no lines
LINES = 10  # off a terminal: a line per tenth of the work


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class Progress:
    """``total`` items of one step (``desc``, e.g. "embedding"); ``update(n)`` after each chunk.

    A context manager; :meth:`close` prints the summary line (off a terminal).
    """

    def __init__(self, desc: str, total: int, progress: bool | None = None, unit: str = "image") -> None:
        self.desc, self.total, self.unit = desc, int(total), unit
        active = self.total >= MIN_ITEMS and progress is not False
        tty = sys.stderr.isatty()
        self.bar: Any = None
        if active and (progress or tty):
            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                            dynamic_ncols=True)
        self.lines = active and progress is None and not tty
        self.done = 0
        self._next_line = 1
        self._t0 = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(n)
        if not self.lines or self.done >= self.total:
            return
        tenth = self.done * LINES // max(self.total, 1)
        if tenth >= self._next_line:
            self._next_line = tenth + 1
            elapsed = time.perf_counter() - self._t0
            left = elapsed / max(self.done, 1) * (self.total - self.done)
            print(f"gdml: {self.desc} {self.done}/{self.total} {self.unit}s  "
                  f"{_duration(elapsed)}, ~{_duration(left)} left", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.lines:
            self.lines = False
            elapsed = time.perf_counter() - self._t0
            print(f"gdml: {self.desc} {self.done}/{self.total} {self.unit}s done in "
                  f"{_duration(elapsed)}", file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            self.lines = False  # no "done" line after an error
        self.close()
