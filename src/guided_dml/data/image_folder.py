"""Image folders (``ROOT/<split>/<class>/<image>`` or ``ROOT/<class>/<image>``), decoded and cached.

``ROOT`` is a folder or a ``.tar`` / ``.tar.gz`` / ``.tgz`` archive of one, possibly with one
extra top-level folder inside. Every image Pillow reads is decoded in parallel worker processes,
resized to one size and converted to one mode, and the result is cached as an ``.npz`` file keyed
by the source (path, size, modification time) and the load options, so a second load only reads
that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..atomic import write_atomic
from ..errors import DataError
from . import names
from .base import ArrayDataset
from .decode import (
    OUTPUT_MODES,
    Entry,
    decode_chunk,
    default_workers,
    list_archive,
    list_folder,
    probe_chunk,
    run_chunks,
    walk_folder,
)
from .paths import cache_disabled, decoded_cache_dir
from .splits import stratified_split

OnError = Literal["raise", "skip"]

CACHE_VERSION = 1  # bump when the decoding or the cache layout changes
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "test": "test", "testing": "test",
    "val": "val", "valid": "val", "validation": "val",
}  # fmt: skip
_SHOW_ERRORS = 5  # unreadable files named in a message

# One split in memory: uint8 (N, C, H, W) images, int64 (N,) labels, (N,) file paths or None.
_Split = tuple[np.ndarray, np.ndarray, np.ndarray | None]






















# ----------------------------------------------------------------------------------------------
# Listing the source












def _fingerprint(path: Path, is_archive: bool) -> str:
    """What the cache key depends on: the archive's size and mtime, or every file's."""
    if is_archive:
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    digest = hashlib.sha256()
    for dirpath, _dirnames, filenames in walk_folder(path):
        for fname in filenames:
            full = os.path.join(dirpath, fname)
            st = os.stat(full)
            # os.fsencode: file names that are not UTF-8 (held as surrogates) hash as their
            # bytes; UTF-8 names give the same bytes as before, so existing caches stay valid.
            digest.update(os.fsencode(os.path.relpath(full, path)))
            digest.update(f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _layout(entries: list[Entry], root: Path) -> tuple[list[tuple[str | None, str]], bool]:
    """Each entry's (split folder or None, class folder), and whether splits exist.

    Accepted layouts (depth = number of path components):
    ``split/class/img`` (3), ``class/img`` (2), and either with one extra top-level folder
    (4, or 3 under a single top folder that is not a split name).
    """
    depths = Counter(len(e.rel.split("/")) for e in entries)
    if len(depths) > 1:
        examples = {d: next(e.rel for e in entries if len(e.rel.split("/")) == d) for d in depths}
        raise DataError(
            f"{root} mixes folder depths ({', '.join(examples.values())}); use "
            f"ROOT/<split>/<class>/<image> or ROOT/<class>/<image> throughout"
        )
    (depth,) = depths
    tops = {e.rel.split("/", 1)[0] for e in entries}
    single_top = next(iter(tops)) if len(tops) == 1 else None
    strip = depth == 4 or (depth == 3 and single_top is not None and single_top.lower() not in SPLIT_ALIASES)
    if strip and single_top is None:
        raise DataError(
            f"{root} has images four folders deep under several top folders ({sorted(tops)[:3]}); "
            f"use ROOT/<split>/<class>/<image>"
        )
    depth -= int(strip)
    if depth not in (2, 3):
        raise DataError(
            f"{root} has images at an unexpected depth (e.g. {entries[0].rel}); use "
            f"ROOT/<split>/<class>/<image> or ROOT/<class>/<image>"
        )
    keys: list[tuple[str | None, str]] = []
    for e in entries:
        parts = e.rel.split("/")[int(strip) :]
        keys.append((parts[0], parts[1]) if depth == 3 else (None, parts[0]))
    return keys, depth == 3


def _split_names(folders: set[str], root: Path) -> dict[str, str]:
    """Map split folder names to output names: train, test (val stands in if no test), others."""
    mapping = {f: SPLIT_ALIASES.get(f.lower(), f) for f in folders}
    names = Counter(mapping.values())
    clash = [n for n, c in names.items() if c > 1]
    if clash:
        raise DataError(f"{root} has several folders for split {clash[0]!r}; keep one")
    if "test" not in names and "val" in names:
        mapping = {f: "test" if n == "val" else n for f, n in mapping.items()}
    if "train" not in mapping.values():
        raise DataError(
            f"{root} has split folders {sorted(folders)} but no 'train'; rename the training split to 'train'"
        )
    return mapping


# ----------------------------------------------------------------------------------------------
# Cache


def _cache_path(path: Path, is_archive: bool, options: dict[str, Any], cache_dir: Path) -> Path:
    key = json.dumps(
        {
            "version": CACHE_VERSION,
            "source": str(path),
            "fingerprint": _fingerprint(path, is_archive),
            "options": options,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:60]
    return cache_dir / f"{stem}-{digest}.npz"


def _read_cache(file: Path) -> tuple[dict[str, _Split], list[str], list[str]] | None:
    """Splits, classes and skipped files from a cache file, or None if absent or unusable."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            splits = [str(s) for s in z["splits"]]
            # Caches written before file names were recorded have no paths__ arrays: None.
            data = {
                s: (
                    z[f"images__{s}"],
                    z[f"labels__{s}"],
                    z[f"paths__{s}"] if f"paths__{s}" in z.files else None,
                )
                for s in splits
            }
            return data, [str(c) for c in z["classes"]], [str(s) for s in z["skipped"]]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring unreadable cache file {file} ({exc}); decoding again", stacklevel=3)
        return None


def _write_cache(
    file: Path,
    data: dict[str, _Split],
    classes: list[str],
    skipped: list[str],
) -> None:
    """Write atomically (temp file + ``os.replace``) so readers never see a partial cache."""
    arrays: dict[str, np.ndarray] = {
        "splits": np.array(list(data), dtype=str),
        "classes": np.array(classes, dtype=str),
        "skipped": np.array(skipped, dtype=str),
    }
    for split, (images, labels, paths) in data.items():
        arrays[f"images__{split}"] = images
        arrays[f"labels__{split}"] = labels
        if paths is not None:
            arrays[f"paths__{split}"] = paths
    try:
        write_atomic(file, lambda f: np.savez(f, **arrays))  # uncompressed: loading is a plain read
    except OSError as exc:  # a cache is a convenience: the data are there, only slower next time
        warnings.warn(f"{exc}; the next load decodes the images again", stacklevel=3)


# ----------------------------------------------------------------------------------------------
# Public entry point


def _parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` as PIL's (width, height); user-facing ``size`` is (height, width) or an int."""
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any(int(s) <= 0 for s in size):
        raise DataError(f"size must be a positive int or (height, width), got {size!r}")
    return int(size[1]), int(size[0])


def _report_unreadable(bad: list[tuple[str, str]], root: Path, on_error: OnError) -> None:
    if not bad:
        return
    shown = "; ".join(f"{rel} ({msg})" for rel, msg in bad[:_SHOW_ERRORS])
    more = f" and {len(bad) - _SHOW_ERRORS} more" if len(bad) > _SHOW_ERRORS else ""
    if on_error == "raise":
        raise DataError(
            f"{len(bad)} unreadable image(s) in {root}: {shown}{more}; fix or remove them, or "
            f"pass on_error='skip' (gdml: --skip-bad)"
        )
    warnings.warn(f"skipped {len(bad)} unreadable image(s) in {root}: {shown}{more}", stacklevel=3)


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    size: int | Sequence[int] | None = None,
    mode: str | None = None,
    on_error: OnError = "raise",
    test_fraction: float = 0.2,
    seed: int = 0,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    name: str | None = None,
) -> dict[str, ArrayDataset]:
    """Load an image folder (or a tar archive of one) into memory as ``uint8 N×C×H×W``.

    Layouts: ``ROOT/<split>/<class>/<image>`` (split folders ``train``, ``test``, and optionally
    ``val``; ``training``/``testing``/``valid``/``validation`` are understood, and ``val`` serves
    as ``test`` when there is no ``test``), or ``ROOT/<class>/<image>``, in which case a
    deterministic stratified split (``test_fraction``, ``seed``) makes ``train`` and ``test``.
    Class names are the sorted class folder names (union over splits, so labels agree across
    splits). Hidden files and files without an image extension Pillow knows are ignored.

    Args:
        path: folder, or ``.tar`` / ``.tar.gz`` / ``.tgz`` archive (read without extracting; its
            image members are held in memory while they are decoded).
        size: output ``(height, width)`` or an int for square images; default: the most common
            image size in the data.
        mode: output Pillow mode, one of ``L``, ``LA``, ``RGB``, ``RGBA``; default: the most
            common mode in the data (palette images count as RGB, 16-bit ones as L).
        on_error: ``"raise"``: unreadable images give a DataError listing them; ``"skip"``:
            they are left out with a warning.
        test_fraction: test share when the data has no split folders.
        seed: seed of that split.
        cache: read/write the decoded cache (also off when ``cache_dir`` or ``$GDML_CACHE`` is
            ``off``).
        cache_dir: cache folder (default ``$GDML_CACHE``, else ``<user cache>/decoded``).
        num_workers: decoding processes (default: available cores, at most 8).
        progress: show a progress bar while decoding.
        name: data set name for the returned sets (default: the file or folder name).

    Returns:
        ``{"train": ..., "test": ...}`` plus ``"val"`` or other split folders when present.

    Raises:
        DataError: missing path, unknown layout, unreadable images (with ``on_error="raise"``),
            bad options.
    """
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; check the path")
    is_archive = names.is_archive(root, zip_ok=False)
    if not is_archive and not root.is_dir():
        raise DataError(f"{root} is neither a folder nor a tar archive of one")
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if mode is not None and mode not in OUTPUT_MODES:
        raise DataError(f"mode must be one of {', '.join(OUTPUT_MODES)}, got {mode!r}")
    wh = _parse_size(size)
    if name is None:
        name = names.strip_archive_suffix(root.name)

    options = {
        "size": wh,
        "mode": mode,
        "on_error": on_error,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    cache = cache and not cache_disabled(cache_dir)
    cache_file = _cache_path(root, is_archive, options, decoded_cache_dir(cache_dir)) if cache else None
    cached = _read_cache(cache_file) if cache_file is not None else None
    if cached is not None:
        data, classes, skipped = cached
        if skipped:
            warnings.warn(
                f"skipped {len(skipped)} unreadable image(s) in {root} (cached "
                f"result): {'; '.join(skipped[:_SHOW_ERRORS])}",
                stacklevel=2,
            )
        return _to_datasets(data, classes, name)

    entries = list_archive(root) if is_archive else list_folder(root)
    if not entries:
        raise DataError(
            f"no images found in {root}; expected ROOT/<split>/<class>/<image> or ROOT/<class>/<image>"
        )
    entries.sort(key=lambda e: e.rel)  # order independent of the file system and the tar
    keys, has_splits = _layout(entries, root)
    workers = num_workers if num_workers is not None else default_workers()
    sources = [e.source for e in entries]

    if wh is None or mode is None:
        probes = [
            p
            for part in run_chunks(probe_chunk, sources, (), workers, progress, f"probing {name}")
            for p in part
        ]
        good = [p for p in probes if not isinstance(p, str)]
        if not good:
            _report_unreadable([(e.rel, str(p)) for e, p in zip(entries, probes, strict=True)], root, "raise")
        wh = wh or Counter((w, h) for w, h, _ in good).most_common(1)[0][0]
        mode = mode or Counter(m for _, _, m in good).most_common(1)[0][0]

    parts = run_chunks(decode_chunk, sources, (wh, mode), workers, progress, f"decoding {name}")
    images = (
        np.concatenate([p[0] for p in parts]) if parts else np.empty((0, wh[1], wh[0], len(mode)), np.uint8)
    )
    errors = [err for p in parts for err in p[1]]
    bad = [(e.rel, err) for e, err in zip(entries, errors, strict=True) if err is not None]
    _report_unreadable(bad, root, on_error)
    ok = np.array([err is None for err in errors], dtype=bool)
    keys = [k for k, good_one in zip(keys, ok, strict=True) if good_one]
    # Each image's path inside the layout root, e.g. "train/cat/0001.jpg": what `gdml search`
    # shows for a neighbour.
    rels = np.array([e.rel for e, good_one in zip(entries, ok, strict=True) if good_one], dtype=str)
    if not keys:
        raise DataError(f"none of the images in {root} could be read")

    classes = sorted({cls for _, cls in keys})
    class_index = {c: i for i, c in enumerate(classes)}
    labels = np.array([class_index[cls] for _, cls in keys], dtype=np.int64)
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)

    data: dict[str, _Split] = {}
    if has_splits:
        mapping = _split_names({s for s, _ in keys if s is not None}, root)
        split_of = np.array([mapping[s] for s, _ in keys if s is not None])
        for split in sorted(set(mapping.values()), key=lambda s: (s != "train", s != "test", s)):
            mask = split_of == split
            data[split] = (images[mask], labels[mask], rels[mask])
        if "test" not in data:  # only a train folder: carve out the test part
            data["train"], data["test"] = _carve(data["train"], test_fraction, seed)
    else:
        data["train"], data["test"] = _carve((images, labels, rels), test_fraction, seed)

    if cache_file is not None:
        _write_cache(cache_file, data, classes, [f"{rel} ({msg})" for rel, msg in bad])
    return _to_datasets(data, classes, name)


def _carve(split: _Split, test_fraction: float, seed: int) -> tuple[_Split, _Split]:
    """Deterministic stratified train/test split of one split's arrays."""
    images, labels, paths = split
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    tr, te = train_idx.numpy(), test_idx.numpy()
    return (
        (images[tr], labels[tr], None if paths is None else paths[tr]),
        (images[te], labels[te], None if paths is None else paths[te]),
    )


def _to_datasets(data: dict[str, _Split], classes: list[str], name: str) -> dict[str, ArrayDataset]:
    return {
        split: ArrayDataset(
            torch.from_numpy(images),
            torch.from_numpy(labels.astype(np.int64)),
            list(classes),
            f"{name}/{split}",
            paths=None if paths is None else [str(p) for p in paths],
        )
        for split, (images, labels, paths) in data.items()
    }
