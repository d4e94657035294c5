"""CIFAR-10 from the official pickled batches, or from a JPEG image folder.

The official ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with ``data_batch_1`` ...
``data_batch_5``, ``test_batch`` (pickled dicts with bytes keys: ``b"data"`` ``uint8 N×3072``, the
1024 red, 1024 green then 1024 blue values of each 32×32 image, and ``b"labels"``) and
``batches.meta`` (``b"label_names"``). The archive is read directly, without extracting it.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import DataError
from .base import ArrayDataset
from .download import REMOTE_FILES, fetch_files
from .image_folder import load_image_folder
from .paths import resolve_data_dir

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
JPEG_NAMES = ("cifar10-jpeg.tar.gz", "cifar10-jpeg.tgz", "cifar10-jpeg.tar", "cifar10-jpeg")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"
_SUBDIRS = (".", "cifar10", "cifar-10")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain containers.

    The batches are pickles; refusing every other global means a tampered file cannot run code.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _unpickle(f: IO[bytes], where: str) -> dict[bytes, Any]:
    try:
        obj = _ArrayUnpickler(f, encoding="bytes").load()  # python-2 pickles: bytes keys
    except Exception as exc:  # any unpickling failure means a damaged file
        raise DataError(f"CIFAR-10 batch {where} is corrupt ({exc}); download it again") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 batch {where} is not a dict; is this the python version?")
    return obj


def _batch_arrays(batch: dict[bytes, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``uint8 (N, 3, 32, 32)`` images and ``int64 (N,)`` labels of one batch."""
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"CIFAR-10 batch {where} lacks b'data' or b'labels'; download it again")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"CIFAR-10 batch {where}: b'data' should be uint8 N×3072, got {data.dtype} "
            f"{data.shape}; download it again"
        )
    if labels.shape != (len(data),):
        raise DataError(
            f"CIFAR-10 batch {where}: {len(data)} images but {labels.size} labels; download it again"
        )
    return data.reshape(-1, 3, 32, 32), labels  # rows are R plane, G plane, B plane


def _from_members(read: dict[str, bytes], source: Path) -> dict[str, ArrayDataset]:
    """Build the splits from the raw bytes of the batch files (keyed by base name)."""
    missing = [n for n in (*TRAIN_BATCHES, *TEST_BATCHES, META) if n not in read]
    if missing:
        raise DataError(
            f"{source} lacks {', '.join(missing)}; it is not a complete cifar-10-python "
            f"distribution, download it again"
        )
    meta = _unpickle(io.BytesIO(read[META]), f"{source}:{META}")
    names = meta.get(b"label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{source}:{META} has no b'label_names'; download it again")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    out = {}
    for split, batches in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
        parts = [
            _batch_arrays(_unpickle(io.BytesIO(read[b]), f"{source}:{b}"), f"{source}:{b}") for b in batches
        ]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"{source}: {split} labels outside [0, {len(classes)}); download it again")
        out[split] = ArrayDataset(
            torch.from_numpy(images), torch.from_numpy(labels), classes, f"cifar10/{split}"
        )
    return out


def read_cifar10_archive(path: str | os.PathLike[str]) -> dict[str, ArrayDataset]:
    """Read ``cifar-10-python.tar.gz`` without extracting it.

    Raises:
        DataError: the archive is unreadable or incomplete.
    """
    path = Path(path)
    wanted = {*TRAIN_BATCHES, *TEST_BATCHES, META}
    read: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and f"{FOLDER}/" in member.name + "/":
                    f = tar.extractfile(member)
                    if f is not None:
                        read[base] = f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"cannot read CIFAR-10 archive {path} ({exc}); it is damaged, download it again"
        ) from exc
    return _from_members(read, path)


def read_cifar10_folder(folder: str | os.PathLike[str]) -> dict[str, ArrayDataset]:
    """Read an extracted ``cifar-10-batches-py/`` folder.

    Raises:
        DataError: a batch file is missing or corrupt.
    """
    folder = Path(folder)
    read = {}
    for name in (*TRAIN_BATCHES, *TEST_BATCHES, META):
        if (folder / name).is_file():
            read[name] = (folder / name).read_bytes()
    return _from_members(read, folder)


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int | None = None,
) -> dict[str, ArrayDataset]:
    """CIFAR-10: 50 000 train and 10 000 test colour images, ``uint8 (N, 3, 32, 32)``.

    Sources, first found wins, each looked for in ``<data_dir>``, ``<data_dir>/cifar10`` and
    ``<data_dir>/cifar-10``: the official ``cifar-10-python.tar.gz``, its extracted
    ``cifar-10-batches-py/``, then a JPEG image folder ``cifar10-jpeg.tar.gz`` or
    ``cifar10-jpeg/`` (``train/<class>/*.jpg``, ``test/<class>/*.jpg``, decoded once and cached).
    If none is there, the official archive is downloaded into ``<data_dir>`` (md5-checked).

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        download: fetch the official archive when no source is present.
        progress: show progress bars.
        cache_dir: decoded-cache folder for the JPEG source (default: per-user cache).
        num_workers: decoding processes for the JPEG source (default: CPU count, at most 8).

    Returns:
        ``{"train": ArrayDataset, "test": ArrayDataset}``.

    Raises:
        DataError: nothing found and no download possible, or a damaged source.
    """
    source = ensure_cifar10_source(data_dir, download, progress=progress)
    if source.name == ARCHIVE:
        return read_cifar10_archive(source)
    if source.name == FOLDER:
        return read_cifar10_folder(source)
    splits = load_image_folder(source, size=32, mode="RGB", cache_dir=cache_dir,
                               num_workers=num_workers, progress=progress, name="cifar10")
    return {"train": splits["train"], "test": splits["test"]}


def ensure_cifar10_source(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> Path:
    """The CIFAR-10 source :func:`load_cifar10` reads (the official archive, its extracted
    folder or a JPEG folder / archive, in that order), downloading the official archive when
    none is there; nothing is decoded, so commands can check the data before any other work.

    Raises:
        DataError: nothing found and no download possible (the message says what to put where).
    """
    root = resolve_data_dir(data_dir)
    folders = [(root / s).resolve() for s in _SUBDIRS]
    for folder in folders:
        if (folder / ARCHIVE).is_file():
            return folder / ARCHIVE
        if (folder / FOLDER).is_dir():
            return folder / FOLDER
    for folder in folders:
        for name in JPEG_NAMES:
            if (folder / name).exists():
                return folder / name
    (path,) = fetch_files("cifar10", root, REMOTE_FILES["cifar10"], download=download, progress=progress)
    return path
