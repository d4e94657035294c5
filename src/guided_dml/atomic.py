"""The one writer of every file guided-dml writes: temporary name, fsync, rename.

Every file (configs, histories, checkpoints, models, embeddings, figures, tables, caches,
exports, downloads) is written to a temporary file ``.NAME.<random suffix>.tmp`` in the target's own
folder, flushed to the disk with ``fsync`` and renamed over the target with ``os.replace``
(atomic on POSIX). So whatever happens while a file is written (a full disk, Ctrl-C, SIGTERM, a
bug in a serialiser) the target holds either its old complete content or the new complete one,
never a part, and the temporary file is removed on every exit path that Python sees. Only a
SIGKILL (or a power cut) can leave a temporary file behind; :func:`remove_temporaries` finds and
removes those the next time the folder is used.

A failed write raises :class:`WriteError`, one line that names the file, says what happened
(for a full disk: how much was to be written and how much space is free) and what to do. It is
both a :class:`~guided_dml.errors.OutputError` (the CLI prints it and exits 2) and an
:class:`OSError` (callers that tolerate a failed write, like caches, still catch it).

Serialisers that report write errors badly (torch wraps them in ``RuntimeError: [enforce fail
at inline_container.cc]``, matplotlib in its own) serialise into memory first
(:func:`write_torch`, :func:`write_figure`), so the disk is touched by this module alone.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError

TEMP_SUFFIX = ".tmp"


class WriteError(OutputError, OSError):
    """A file that could not be written; the message names it and says what to do."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover


def describe_os_error(path: Path, exc: OSError, size: int | None = None, written: int | None = None) -> str:
    """One line for a failed write of ``path``: what happened and what to do.

    ``size``: bytes that were to be written (when known); ``written``: bytes that reached the
    temporary file before the failure (a lower bound of what is needed when ``size`` is unknown).
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f"{_size(shutil.disk_usage(path.parent).free)} free"
        except OSError:
            free = "free space unknown"
        if size is not None:
            need = f"{_size(size)} to write, {free}"
        elif written:
            need = f"more than {_size(written)} to write, {free}"
        else:
            need = free
        return (f"cannot write {path}: no space left on the device ({need}); nothing was "
                "written; free some space or write elsewhere")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied; choose a folder you can write to"
    text = str(exc).splitlines()
    reason = exc.strerror or (text[0] if text else type(exc).__name__)
    return f"cannot write {path}: {reason} (nothing was written)"


def _error(path: Path, exc: OSError, size: int | None, written: int | None) -> WriteError:
    if isinstance(exc, WriteError):
        return exc
    err = WriteError(describe_os_error(path, exc, size, written))
    err.errno = exc.errno  # OSError callers may look at it
    return err


def temporary_name_pattern(name: str) -> str:
    """The glob of the temporary files of target ``name`` (what a SIGKILL may leave behind)."""
    return f".{name}.*{TEMP_SUFFIX}"


def write_atomic(path: str | Path, write: Callable[[BinaryIO], Any], size: int | None = None) -> Path:
    """``write(file)`` into ``path`` through a temporary file in the same folder (see module doc).

    ``write`` gets a binary file open for writing and may raise anything: the temporary file is
    removed and the exception propagates (an :class:`OSError` as a :class:`WriteError` that
    names ``path``). The folder is created if needed. Returns ``path`` as a Path.
    """
    path = Path(path).expanduser()
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        # mkstemp creates the file 0600; give it the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        written = _tmp_size(tmp)
        raise _error(path, exc, size, written) from exc
    finally:
        # Every exit path, KeyboardInterrupt and SystemExit included: no temporary file stays.
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def _tmp_size(tmp: str | None) -> int | None:
    try:
        return os.path.getsize(tmp) if tmp is not None else None
    except OSError:
        return None


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` into ``path``, atomically."""
    return write_atomic(path, lambda f: f.write(data), size=len(data))


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) into ``path``, atomically."""
    return write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """JSON, indent 2, keys in insertion order; tensors and NumPy scalars as numbers."""
    return json.dumps(obj, indent=2, default=_json_default).encode() + b"\n"


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as JSON into ``path``, atomically."""
    return write_bytes(path, json_bytes(obj))


def write_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` into ``path``, atomically.

    Serialised into memory first: torch reports a failed file write as a ``RuntimeError`` from
    its C++ zip writer, which names neither the file nor the cause.
    """
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getvalue())


def figure_bytes(fig: Any, **savefig: Any) -> bytes:
    """A matplotlib figure rendered to bytes (PNG unless ``format=`` says otherwise)."""
    buf = io.BytesIO()
    savefig.setdefault("format", "png")
    fig.savefig(buf, **savefig)
    return buf.getvalue()


def write_figure(path: str | Path, fig: Any, **savefig: Any) -> Path:
    """A matplotlib figure into ``path`` (PNG by default), atomically."""
    return write_bytes(path, figure_bytes(fig, **savefig))


def remove_temporaries(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder``; returns those removed.

    ``names``: only the temporaries of these targets; None: every ``.*.tmp`` of this writer.
    Call it only where no other process is writing into ``folder`` at the same time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    patterns = [temporary_name_pattern(n) for n in names] if names is not None else [f".*{TEMP_SUFFIX}"]
    removed = []
    for pattern in patterns:
        for p in folder.glob(pattern):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _json_default(o: Any) -> Any:
    torch = sys.modules.get("torch")  # no import: most writers never see a tensor
    if torch is not None and isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
