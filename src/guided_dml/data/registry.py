"""Name -> loader registries and the one front door, :func:`load_dataset`."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DataError
from .base import ArrayDataset
from .cifar import ensure_cifar10_source, load_cifar10
from .digits import load_digits
from .image_folder import load_image_folder
from .mnist import ensure_idx_files, load_fashion_mnist, load_mnist
from .names import CLASS_DISJOINT, dataset_key, has_archive_suffix
from .retrieval import (
    RetrievalDataset,
    load_cars196,
    load_cub200,
    load_inshop,
    load_sop,
)
from .streaming import streaming_loader

Loader = Callable[..., dict[str, ArrayDataset]]

# In-memory data sets: loader(data_dir=None, download=True, **opts) -> {"train", "test"}.
DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}

# Lazily decoded retrieval benchmarks: loader(data_dir=None, **opts) -> {split: RetrievalDataset}.
RETRIEVAL_DATASETS: dict[str, Callable[..., dict[str, RetrievalDataset]]] = {
    "cub200": load_cub200,
    "cars196": load_cars196,
    "sop": load_sop,
    "inshop": load_inshop,
}
assert set(RETRIEVAL_DATASETS) == set(CLASS_DISJOINT)
# They train like the others: each split decoded once into a memory-mapped cache
# (data/streaming.py), the same {"train", "test"} with the test classes unseen.
DATASETS.update({key: streaming_loader(key, load) for key, load in RETRIEVAL_DATASETS.items()})


def is_builtin(name: str) -> bool:
    """Whether :func:`load_dataset` reads ``name`` as a built-in data set (not a path)."""
    return dataset_key(name) in DATASETS


def _check_options(name: str, loader: Callable[..., Any], opts: dict[str, Any]) -> None:
    """Turn an unknown keyword into a DataError that lists the valid ones."""
    params = inspect.signature(loader).parameters
    valid = [p for p in params if p not in ("data_dir", "download", "path")]
    unknown = [k for k in opts if k not in params]
    if unknown:
        raise DataError(
            f"unknown option {unknown[0]!r} for data set {name!r}; valid options: "
            f"{', '.join(valid) or 'none'}"
        )


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or has_archive_suffix(name)


def load_dataset(
    name_or_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    **opts: Any,
) -> dict[str, ArrayDataset]:
    """Load a built-in data set by name, or an image folder / archive by path.

    Args:
        name_or_path: a key of :data:`DATASETS` (``digits``, ``mnist``, ``fashion-mnist``,
            ``cifar10``; ``cub200``, ``cars196``, ``sop``, ``inshop``, whose images are decoded
            once into the decoded cache and memory-mapped: :mod:`~guided_dml.data.streaming`), or
            a folder or ``.tar``/``.tar.gz``/``.tgz`` archive laid out as
            ``ROOT/<split>/<class>/<image>`` or ``ROOT/<class>/<image>``. A string that is a
            registered name means the built-in data set; pass a ``Path`` to force a path.
        data_dir: data folder for built-in sets (default ``$GDML_DATA``, else the per-user cache
            folder); ignored for paths.
        download: fetch a missing built-in data set from its official source.
        **opts: loader options (e.g. ``seed`` for digits, ``size``/``mode``/``on_error``/
            ``cache_dir`` for image folders).

    Returns:
        ``{"train": ArrayDataset, "test": ArrayDataset}`` (image folders may add ``"val"``).

    Raises:
        DataError: unknown name (the message lists the choices), missing path, bad option, or
            missing/corrupt data.

    Examples:
        >>> data = load_dataset("digits")
        >>> data["train"].input_shape
        (1, 8, 8)
    """
    text = os.fspath(name_or_path)
    key = dataset_key(text)
    if not isinstance(name_or_path, os.PathLike) and key in DATASETS:
        loader = DATASETS[key]
        _check_options(key, loader, opts)
        return loader(data_dir=data_dir, download=download, **opts)
    check_dataset(name_or_path)
    _check_options(text, load_image_folder, opts)
    return load_image_folder(Path(text).expanduser(), **opts)


def ensure_available(
    name_or_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> None:
    """Make sure a data set can be loaded before any work starts: :func:`check_dataset`, then
    for a built-in data set its files (downloaded now if missing and ``download``), without
    decoding them. ``gdml train`` and ``gdml benchmark`` call it before they create a run
    folder, so a data set that is not there leaves nothing behind.

    Raises:
        DataError: unknown name, missing path, or missing files that cannot be downloaded.
    """
    check_dataset(name_or_path)
    if isinstance(name_or_path, os.PathLike):
        return
    key = dataset_key(os.fspath(name_or_path))
    if key in ("mnist", "fashion-mnist"):
        ensure_idx_files(key, data_dir, download)
    elif key == "cifar10":
        ensure_cifar10_source(data_dir, download)
    elif key in RETRIEVAL_DATASETS:  # the metadata and every listed image file, nothing decoded
        RETRIEVAL_DATASETS[key](data_dir=data_dir)


def check_dataset(name_or_path: str | os.PathLike[str]) -> None:
    """Refuse, without loading anything, a name that is neither a built-in data set nor a path
    that exists: the check that ``gdml train`` and ``gdml benchmark`` make before any work.

    Raises:
        DataError: unknown name (the message lists the choices) or missing path.
    """
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and dataset_key(text) in DATASETS:
        return
    path = Path(text).expanduser()
    if path.exists():
        return
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        raise DataError(f"no such folder or archive: {path}; check the path")
    raise DataError(
        f"unknown data set {text!r}; choose one of {', '.join(DATASETS)}, or give the path of "
        f"an image folder or archive"
    )


def load_retrieval_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, **opts: Any
) -> dict[str, RetrievalDataset]:
    """Load a retrieval benchmark (``cub200``, ``cars196``, ``sop``, ``inshop``) lazily.

    Returns:
        ``{"train", "test"}``, or ``{"train", "query", "gallery"}`` for In-Shop.

    Raises:
        DataError: unknown name (the message lists the choices), bad option, or missing data.
    """
    key = dataset_key(name).replace("-", "")
    if key not in RETRIEVAL_DATASETS:
        raise DataError(f"unknown retrieval data set {name!r}; choose one of {', '.join(RETRIEVAL_DATASETS)}")
    loader = RETRIEVAL_DATASETS[key]
    _check_options(key, loader, opts)
    return loader(data_dir=data_dir, **opts)
