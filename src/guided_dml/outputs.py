"""Output files of the practitioner's commands: never overwritten by surprise, never partial.

Every file is written to a temporary file in its folder and renamed over the target
(:func:`guided_dml.training.checkpoint.save_with`), so a failure at any moment (a full disk,
Ctrl-C) leaves the old file or none, never half a file; the temporary file is removed. Failures
become one-line :class:`~guided_dml.errors.OutputError` messages that say what to do.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError
from .training.checkpoint import save_with

OVERWRITE_HINT = "pass --overwrite"  # the CLI's flag; the Python API passes its own hint


def check_output(path: str | Path, overwrite: bool, hint: str = OVERWRITE_HINT) -> Path:
    """Refuse an output path that exists (unless ``overwrite``) or that names a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the path of a file to write")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; choose another output path or {hint} to replace it")
    return path


def describe_os_error(path: Path, exc: OSError) -> str:
    """One line for a failed write: what happened and what to do."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"cannot write {path}: no space left on the device (nothing was written); "
                "free some space or write elsewhere")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied; choose a folder you can write to"
    text = str(exc).splitlines()
    reason = exc.strerror or (text[0] if text else type(exc).__name__)
    return f"cannot write {path}: {reason} (nothing was written)"


def write_file(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """``write(file)`` into ``path`` with write-then-rename; an OSError becomes an OutputError."""
    path = Path(path).expanduser()
    try:
        save_with(write, path)
    except OSError as exc:
        raise OutputError(describe_os_error(path, exc)) from exc
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` into ``path``, atomically (see :func:`write_file`)."""
    return write_file(path, lambda f: f.write(data))


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
