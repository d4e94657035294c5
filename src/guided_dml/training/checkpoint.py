"""Crash-safe files of the training loop: thin names over :mod:`guided_dml.atomic`.

Every file is written to a temporary file in the same folder, fsynced, then renamed over the
target (``os.replace`` is atomic on POSIX), so a run killed at any moment leaves either the old
complete file or the new complete file, never a half-written one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..atomic import write_atomic, write_bytes, write_json, write_torch
from ..errors import DataError


def save_with(write: Callable[[BinaryIO], Any], path: str | Path) -> None:
    """``write(binary file)`` with write-then-rename: for writers that take a file object."""
    write_atomic(path, write)


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` with write-then-rename."""
    write_torch(path, obj)


def load_torch(path: str | Path) -> Any:
    """Load a checkpoint written by :func:`save_torch` (CPU tensors)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def load_run_file(path: str | Path, expect: type = dict) -> Any:
    """A file of a run folder (``.json`` or a torch file) that must hold an ``expect``.

    Raises:
        DataError: the file is damaged (unreadable, or holds something else): one line naming
            it and what to do.
    """
    import json

    path = Path(path)
    try:
        if path.suffix == ".json":
            obj = json.loads(path.read_text(encoding="utf-8"))
        else:
            obj = load_torch(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # any unpickling or decoding failure: the file is damaged
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DataError(_damaged(path, f"unreadable: {reason}")) from exc
    if not isinstance(obj, expect):
        raise DataError(_damaged(path, f"it holds a {type(obj).__name__}, not a {expect.__name__}"))
    return obj


def _damaged(path: Path, why: str) -> str:
    return (f"run folder file {path} is damaged ({why}); delete that file to recompute it, "
            "or pass --overwrite to start the run again")


def save_json(obj: Any, path: str | Path) -> None:
    """JSON with write-then-rename (indent 2, keys in insertion order)."""
    write_json(path, obj)


def save_bytes(data: bytes, path: str | Path) -> None:
    """Raw bytes with write-then-rename."""
    write_bytes(path, data)
