"""Output files of the practitioner's commands: never overwritten by surprise, never partial.

Every file is written to a temporary file in its folder and renamed over the target
(:mod:`guided_dml.atomic`), so a failure at any moment (a full disk,
Ctrl-C) leaves the old file or none, never half a file; the temporary file is removed. Failures
become one-line :class:`~guided_dml.errors.OutputError` messages that say what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..atomic import describe_os_error, write_atomic, write_bytes
from ..errors import OutputError

__all__ = ["check_output", "describe_os_error", "write_all", "write_bytes", "write_file"]

OVERWRITE_HINT = "pass --overwrite"  # the CLI's flag; the Python API passes its own hint


def check_output(path: str | Path, overwrite: bool, hint: str = OVERWRITE_HINT) -> Path:
    """Refuse an output path that exists (unless ``overwrite``) or that names a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the path of a file to write")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; choose another output path or {hint} to replace it")
    return path


def write_file(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """``write(file)`` into ``path`` with write-then-rename; an OSError becomes a one-line
    :class:`~guided_dml.atomic.WriteError` (an OutputError)."""
    return write_atomic(path, write)


def write_all(files: Sequence[tuple[Path, bytes]]) -> list[Path]:
    """Write several files as one result: if one fails, those already written are removed."""
    done: list[Path] = []
    try:
        for path, data in files:
            done.append(write_bytes(path, data))
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return done
