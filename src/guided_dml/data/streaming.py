"""The retrieval benchmarks as data sets that train: decoded once, then read from disk on access.

:mod:`guided_dml.data.retrieval` lists the files of CUB-200-2011, Cars-196, SOP and In-Shop
with their class-disjoint splits; training needs random access by index (P x K batches, the
validation split, GEMINI's triplets, ``embed``) over and over, and SOP's 120 000 photos at
224 px are 18 GB, more than the memory of a laptop. So each split is decoded **once**, in
worker processes, with the evaluation transform of the DML literature (shorter side to 256,
central 224 crop: :func:`~guided_dml.data.transforms.eval_transform`, unnormalised), into a
``uint8`` ``.npy`` file in the decoded cache; training then memory-maps it
(:class:`~guided_dml.data.mapped.MappedImages`): the operating system pages in the rows a batch
touches, so memory holds what the page cache can spare, not the data set, and no photo is
decoded again in a later epoch or run. Training augmentation (random-resized crop + flip, the
MDR recipe) is applied to these 224-px views on the fly
(:func:`~guided_dml.training.batches.random_resized_crop_flip`); unlike the usual per-file
pipeline its crops come from the central 224 x 224 region of the 256-px image rather than the
whole photo (docs/design.md).

Decoding is resumable: rows are written block by block and the finished blocks are recorded
next to the partial file, so an interrupted decode of SOP continues where it stopped; a lock
file keeps two processes (a benchmark's workers) from decoding the same split at once.
``bench/bench_streaming.py`` measures batch throughput against in-memory tensors and against a
per-file ``DataLoader``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..errors import DataError
from ..progress import Progress
from .base import ArrayDataset
from .decode import decode_view_chunk, default_workers, run_chunks
from .mapped import MappedImages
from .paths import cache_disabled, decoded_cache_dir
from .retrieval import RetrievalDataset

CACHE_VERSION = 1  # bump when decoding or the file layout changes
VIEW = (256, 224)  # (resize, size): the stored view, recorded in the models trained on it
BLOCK = 2048  # images decoded between two progress records (a resumed decode redoes < 1 block)
_SHOW = 5  # unreadable files named in a message

# ----------------------------------------------------------------------------------------------
# Decoding into the cache


def decode_view(paths: Sequence[str], resize: int, size: int) -> tuple[np.ndarray, list[str | None]]:
    """:func:`~guided_dml.data.decode.decode_view_chunk` as ``uint8 (n, 3, size, size)`` rows,
    one per file (an unreadable file's row is zeros), and per file None or an error message."""
    ok, errors = decode_view_chunk(paths, resize, size)
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    out[[e is None for e in errors]] = ok.transpose(0, 3, 1, 2)
    return out, errors


def _cache_file(split: RetrievalDataset, resize: int, size: int, cache_dir: Path) -> Path:
    """Keyed by the split's files and labels and the decoding options (not by mtimes: the
    benchmarks' files do not change; a re-extracted set with other files gets a new key)."""
    digest = hashlib.sha256(json.dumps({
        "version": CACHE_VERSION, "resize": resize, "size": size,
        "paths": [str(p) for p in split.paths], "labels": split.labels.tolist(),
    }).encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", split.name)
    return cache_dir / f"{stem}-{size}px-{digest}.npy"


def decode_split(
    split: RetrievalDataset,
    file: Path,
    *,
    resize: int = 256,
    size: int = 224,
    num_workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Decode every image of ``split`` into ``file`` (``uint8 (N, 3, size, size)`` ``.npy``).

    Written to ``<file>.partial`` block by block, the finished blocks recorded in
    ``<file>.partial.json``; an interrupted decode resumes from there, and the file appears
    under its name only when complete.

    Raises:
        DataError: unreadable images (named; the rest of the work is kept for the next try).
    """
    if file.is_file():
        return file
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with _locked(file.with_name(file.name + ".lock")):
            if file.is_file():  # another process finished it while this one waited
                return file
            return _decode_locked(split, file, resize, size, num_workers, progress)
    except OSError as exc:  # a read-only or full cache folder: say where, and what to do
        raise DataError(f"cannot write the decoded images of {split.name} into {file.parent} "
                        f"({exc}); point GDML_CACHE at a writable folder with room, or set "
                        "GDML_CACHE=off to decode into memory") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (where the platform has one) while the block runs."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one process at a time is the user's job
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _decode_locked(split: RetrievalDataset, file: Path, resize: int, size: int,
                   num_workers: int | None, progress: bool) -> Path:
    """:func:`decode_split`'s work, with its lock held."""
    n = len(split)
    partial = file.with_name(file.name + ".partial")
    record = file.with_name(file.name + ".partial.json")
    done: set[int] = set()
    if partial.is_file() and record.is_file():
        try:
            done = set(json.loads(record.read_text())["blocks"])
            array = np.lib.format.open_memmap(partial, mode="r+")
            if array.shape != (n, 3, size, size):
                raise ValueError(f"shape {array.shape}")
        except (OSError, ValueError, KeyError, TypeError):
            done = set()  # an unusable partial file: start again
    if not done:
        _check_space(file.parent, n * 3 * size * size, split.name)
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8,
                                          shape=(n, 3, size, size))
    paths = [str(p) for p in split.paths]
    workers = num_workers if num_workers is not None else default_workers()
    blocks = range(0, n, BLOCK)
    bad: list[str] = []
    # A bar on a terminal, a line per tenth elsewhere (an SOP decode takes many minutes).
    with Progress(f"decoding {split.name}", n, None if progress else False) as bar:
        bar.update(sum(len(paths[b * BLOCK : (b + 1) * BLOCK]) for b in done))
        for b, start in enumerate(blocks):
            if b in done:
                continue
            chunk = paths[start : start + BLOCK]
            parts = run_chunks(decode_view, chunk, (resize, size), workers, False, "")
            images = np.concatenate([p[0] for p in parts])
            errors = [e for p in parts for e in p[1]]
            failed = [f"{chunk[i]} ({e})" for i, e in enumerate(errors) if e is not None]
            if failed:
                bad.extend(failed)  # the block is not recorded as done: it is decoded again
            else:
                array[start : start + len(chunk)] = images
                array.flush()
                done.add(b)
                write_atomic(record, lambda f: f.write(json.dumps({"blocks": sorted(done)})
                                                       .encode()))
            bar.update(len(chunk))
    del array
    if bad:
        shown = "; ".join(bad[:_SHOW]) + (f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else "")
        raise DataError(f"{split.name}: {len(bad)} unreadable image(s): {shown}; re-extract the "
                        "data set (the images decoded so far are kept, the next run goes on)")
    os.replace(partial, file)
    record.unlink(missing_ok=True)
    return file


def _check_space(folder: Path, needed: int, name: str) -> None:
    """Refuse, before writing anything, a decode the disk cannot hold (a sparse memory map
    would otherwise fail half-way with a bus error)."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(f"decoding {name} needs {needed / 1e9:.1f} GB in {folder}, which has "
                        f"{free / 1e9:.1f} GB free; point GDML_CACHE at a larger disk")


def as_array_dataset(
    split: RetrievalDataset,
    *,
    resize: int = 256,
    size: int = 224,
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> ArrayDataset:
    """``split`` as an :class:`ArrayDataset` whose images are a :class:`MappedImages` of its
    decoded cache (decoded now if not cached yet). With the cache off (``GDML_CACHE=off``) the
    images are decoded into memory instead."""
    if cache_disabled(cache_dir):
        parts = run_chunks(decode_view, [str(p) for p in split.paths], (resize, size),
                           num_workers or default_workers(), progress, f"decoding {split.name}")
        errors = [(str(split.paths[i]), e) for i, e in
                  enumerate(e for p in parts for e in p[1]) if e is not None]
        if errors:
            raise DataError(f"{split.name}: {len(errors)} unreadable image(s), e.g. "
                            f"{errors[0][0]} ({errors[0][1]}); re-extract the data set")
        images: torch.Tensor | MappedImages = torch.from_numpy(
            np.concatenate([p[0] for p in parts]))
    else:
        file = _cache_file(split, resize, size, decoded_cache_dir(cache_dir))
        images = MappedImages(decode_split(split, file, resize=resize, size=size,
                                           num_workers=num_workers, progress=progress))
    return ArrayDataset(images, split.labels.clone(), list(split.classes), split.name,
                        paths=[str(p) for p in split.paths])


def _merge(name: str, parts: Sequence[RetrievalDataset]) -> RetrievalDataset:
    """Splits that share class indices (In-Shop's query and gallery) as one split."""
    return RetrievalDataset([p for s in parts for p in s.paths],
                            torch.cat([s.labels for s in parts]), parts[0].classes, name)


def streaming_loader(key: str, load: Callable[..., dict[str, RetrievalDataset]]
                     ) -> Callable[..., dict[str, ArrayDataset]]:
    """The registry's loader of retrieval benchmark ``key``: ``{"train", "test"}`` with
    memory-mapped images (:func:`as_array_dataset`). In-Shop's query and gallery become one
    ``test`` split searched leave-one-out, like the other sets' test classes (its own protocol
    searches the gallery with the queries: docs/design.md)."""

    def loader(
        data_dir: str | os.PathLike[str] | None = None,
        download: bool = True,
        *,
        size: int = VIEW[1],
        resize: int = VIEW[0],
        cache_dir: str | os.PathLike[str] | None = None,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> dict[str, ArrayDataset]:
        del download  # the four benchmarks need a licence click-through: nothing is fetched
        if not 0 < size <= resize:
            raise DataError(f"size must lie in 1..resize ({resize}), got {size}")
        splits = load(data_dir)
        if "query" in splits:
            splits = {"train": splits["train"],
                      "test": _merge(f"{key}/test", [splits["query"], splits["gallery"]])}
        return {name: as_array_dataset(s, resize=resize, size=size, cache_dir=cache_dir,
                                       num_workers=num_workers, progress=progress)
                for name, s in splits.items()}

    loader.__name__ = f"load_{key}_streaming"
    loader.__doc__ = (f"{key} as mapped data sets that train ({{'train', 'test'}}, classes "
                      f"disjoint): see :func:`guided_dml.data.streaming.streaming_loader`.")
    return loader
