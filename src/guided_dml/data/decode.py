"""Decoding image files in parallel, and listing the images of a folder or archive.

The shared machinery of :func:`~guided_dml.data.image_folder.load_image_folder` (a labelled
folder, decoded once and cached) and :mod:`guided_dml.data.files` (any files, folders and
archives a trained model embeds): Pillow decoding to one size and one 8-bit mode, run in worker
processes over chunks of files (module-level functions with plain arguments, so they pickle),
and the walk over a folder or an archive's members that both use.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import sys
import tarfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError

OUTPUT_MODES = ("L", "LA", "RGB", "RGBA")  # 8-bit modes an image tensor can hold
MIN_PARALLEL = 512  # below this many images, starting worker processes costs more than it saves
IN_PROCESS_CHUNK = 256  # chunks of a job run in this process, when its caller reports progress


@dataclass(frozen=True)
class Entry:
    """One candidate image: its path relative to ROOT's layout root, and its bytes or file."""

    rel: str  # posix path inside the layout root, e.g. "train/cat/0001.jpg"
    source: str | bytes  # absolute file path (folder) or the member's bytes (archive)


def _open(source: str | bytes) -> Image.Image:
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def _normal_mode(img: Image.Image) -> str:
    """The 8-bit output mode an image maps to by default (palette -> RGB(A), 16-bit -> L, ...)."""
    mode = img.mode
    if mode in OUTPUT_MODES:
        return mode
    if mode in ("1", "F") or mode.startswith("I"):
        return "L"
    if mode == "La":
        return "LA"
    if mode in ("RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        return "RGBA"
    return "RGB"  # P, CMYK, YCbCr, LAB, HSV, RGBX


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float images to ``L`` (PIL's own convert would clip)."""
    if not (img.mode == "F" or img.mode.startswith("I")):
        return img
    arr = np.asarray(img, dtype=np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if img.mode == "F" and top <= 1.0:
        arr = arr * 255.0
    elif top > 255.0:
        arr = arr / 257.0  # 16-bit range 0..65535 onto 0..255
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L")


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def probe_chunk(sources: Sequence[str | bytes]) -> list[tuple[int, int, str] | str]:
    """``(width, height, default mode)`` of each image from its header, or an error message."""
    out: list[tuple[int, int, str] | str] = []
    for source in sources:
        try:
            with _open(source) as img:
                out.append((img.size[0], img.size[1], _normal_mode(img)))
        except Exception as exc:  # Pillow raises many types for bad files; all mean unreadable
            out.append(_describe(exc))
    return out


def decode_chunk(
    sources: Sequence[str | bytes], size: tuple[int, int], mode: str
) -> tuple[np.ndarray, list[str | None]]:
    """Decode images to ``uint8 (n_ok, H, W, C)``, resized to ``size`` (w, h), in ``mode``.

    Returns:
        The stacked readable images and, per input, None if it was decoded or an error message.
    """
    width, height = size
    channels = len(mode)  # L=1, LA=2, RGB=3, RGBA=4
    stack = np.empty((len(sources), height, width, channels), dtype=np.uint8)
    errors: list[str | None] = []
    n_ok = 0
    for source in sources:
        try:
            with _open(source) as img:
                if img.format == "JPEG" and (img.size[0] > width or img.size[1] > height):
                    # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target size).
                    img.draft(mode if mode in ("L", "RGB") else "RGB", (width, height))
                img.load()
                out = _to_8bit(img)
                if out.mode != mode:
                    out = out.convert(mode)
                if out.size != (width, height):
                    out = out.resize((width, height), Image.Resampling.BILINEAR)
                stack[n_ok] = np.asarray(out, dtype=np.uint8).reshape(height, width, channels)
            n_ok += 1
            errors.append(None)
        except Exception as exc:  # any decoding failure marks the file unreadable
            errors.append(_describe(exc))
    return stack[:n_ok], errors


def decode_view_chunk(
    sources: Sequence[str | bytes], resize: int, size: int
) -> tuple[np.ndarray, list[str | None]]:
    """Decode images to RGB with the DML literature's evaluation view: shorter side to
    ``resize``, the central ``size`` x ``size`` crop (``data/transforms.py``'s
    ``eval_transform``, unnormalised). The retrieval benchmarks are stored this way
    (:mod:`guided_dml.data.streaming`) and a model trained on them embeds new photos this way.

    Returns:
        ``uint8 (n_ok, size, size, 3)`` of the readable images and, per input, None or an
        error message (as :func:`decode_chunk`).
    """
    from .transforms import CenterCrop, Resize  # local: only this decoder needs them

    shorter, crop = Resize(resize), CenterCrop(size)
    stack = np.empty((len(sources), size, size, 3), dtype=np.uint8)
    errors: list[str | None] = []
    n_ok = 0
    for source in sources:
        try:
            with _open(source) as img:
                if img.format == "JPEG":
                    # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below the size asked for.
                    img.draft("RGB", (resize, resize))
                stack[n_ok] = np.asarray(crop(shorter(_to_8bit(img).convert("RGB"))), np.uint8)
            n_ok += 1
            errors.append(None)
        except Exception as exc:  # any decoding failure marks the file unreadable
            errors.append(_describe(exc))
    return stack[:n_ok], errors


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def run_chunks(
    fn: Callable[..., Any],
    sources: Sequence[str | bytes],
    extra: tuple[Any, ...],
    num_workers: int,
    progress: bool,
    desc: str,
    on_chunk: Callable[[int], None] | None = None,
) -> list[Any]:
    """Apply ``fn(chunk, *extra)`` to consecutive chunks of ``sources``, in worker processes.

    Returns the per-chunk results in order. Small jobs run in this process. ``on_chunk(n)`` is
    called after each chunk of ``n`` sources (a caller's own progress report).
    """
    n = len(sources)
    if n == 0:
        return []
    workers = max(1, min(num_workers, n))
    if workers == 1 or n < MIN_PARALLEL:
        if on_chunk is None:
            return [fn(sources, *extra)]
        out = []
        for i in range(0, n, IN_PROCESS_CHUNK):
            out.append(fn(sources[i : i + IN_PROCESS_CHUNK], *extra))
            on_chunk(len(sources[i : i + IN_PROCESS_CHUNK]))
        return out
    # A few chunks per worker balances load; the cap keeps the progress bar moving.
    chunk = min(4096, max(64, math.ceil(n / (workers * 4))))
    chunks = [sources[i : i + chunk] for i in range(0, n, chunk)]
    # On Linux, fork starts workers instantly with the modules already imported (the workers only
    # run Pillow and numpy, so torch's threads do not matter); elsewhere fork is unsafe and the
    # platform default (spawn) re-imports this module in each worker.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    bar = tqdm(total=n, desc=desc, unit="img", disable=None if progress else True)
    results = []
    try:
        with bar, ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for part, result in zip(
                chunks, pool.map(fn, chunks, *[[e] * len(chunks) for e in extra]), strict=True
            ):
                results.append(result)
                bar.update(len(part))
                if on_chunk is not None:
                    on_chunk(len(part))
    except BrokenProcessPool as exc:
        raise DataError(
            f"an image-decoding worker died ({exc}), probably out of memory; retry with num_workers=1"
        ) from exc
    return results


def image_suffixes() -> set[str]:
    return {ext.lower() for ext in Image.registered_extensions()}


def wanted(parts: tuple[str, ...], suffixes: set[str]) -> bool:
    """Skip hidden files and folders (``.DS_Store``, ``._x.jpg``), ``__MACOSX``, non-images."""
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return PurePosixPath(parts[-1]).suffix.lower() in suffixes


def walk_folder(root: Path, on_loop: Literal["error", "skip"] = "error"):
    """``os.walk(root, followlinks=True)``, sorted, that never follows a symlink back into a
    folder it is already inside (a loop would list the same files until the OS gives up with
    ELOOP). ``on_loop``: "error" raises a DataError naming the link, "skip" leaves it out with
    a warning (a note on the command line).

    One walker for listing the images and for the cache fingerprint, so both see the same files.
    """
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        here = os.path.realpath(dirpath)
        keep = []
        for d in dirnames:
            target = os.path.realpath(os.path.join(dirpath, d))
            if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                link = os.path.relpath(os.path.join(dirpath, d), root)
                back = os.path.relpath(target, real_root) if target.startswith(real_root) else target
                msg = (f"{root} holds a symlink loop: {link} points back to {back}, a folder it "
                       "is in")
                if on_loop == "error":
                    raise DataError(f"{msg}; remove that link, or give a folder without it")
                warnings.warn(f"{msg}; skipped it (its files are listed once)", stacklevel=2)
                continue
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, dirnames, sorted(filenames)


def list_folder(root: Path, on_loop: Literal["error", "skip"] = "error") -> list[Entry]:
    suffixes = image_suffixes()
    entries = []
    for dirpath, _dirnames, filenames in walk_folder(root, on_loop):
        rel_dir = Path(dirpath).relative_to(root).parts
        for fname in filenames:
            parts = (*rel_dir, fname)
            if wanted(parts, suffixes):
                entries.append(Entry("/".join(parts), os.path.join(dirpath, fname)))
    return entries


def list_archive(path: Path) -> list[Entry]:
    """Read every image member's bytes (sequentially: a compressed tar cannot be seeked cheaply)."""
    suffixes = image_suffixes()
    entries: dict[str, Entry] = {}  # keyed by path: a later member replaces an earlier one, as
    try:  # when the archive is extracted
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                parts = tuple(p for p in PurePosixPath(member.name).parts if p not in ("", "."))
                if not member.isfile() or not parts or ".." in parts or parts[0] == "/":
                    continue
                if wanted(parts, suffixes):
                    f = tar.extractfile(member)
                    if f is not None:
                        rel = "/".join(parts)
                        entries[rel] = Entry(rel, f.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path} ({exc}); it is damaged, fetch it again") from exc
    return list(entries.values())
