"""Crash-safe files: write to a temporary file in the same folder, then rename over the target.

``os.replace`` is atomic on POSIX, so a run killed at any moment leaves either the old complete
file or the new complete file, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Nothing partial survives a failure (full disk, Ctrl-C): remove the temporary file.
        Path(tmp).unlink(missing_ok=True)
        raise


def save_with(write: Any, path: str | Path) -> None:
    """``write(binary file)`` with write-then-rename: for writers that take a file object."""
    _atomic_write(Path(path), write)


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` with write-then-rename."""
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


def load_torch(path: str | Path) -> Any:
    """Load a checkpoint written by :func:`save_torch` (CPU tensors)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def save_json(obj: Any, path: str | Path) -> None:
    """JSON with write-then-rename (indent 2, keys in insertion order)."""
    data = json.dumps(obj, indent=2, default=_json_default).encode() + b"\n"
    _atomic_write(Path(path), lambda f: f.write(data))


def save_bytes(data: bytes, path: str | Path) -> None:
    """Raw bytes with write-then-rename."""
    _atomic_write(Path(path), lambda f: f.write(data))


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
