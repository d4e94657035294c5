"""MNIST and Fashion-MNIST from their four original IDX files (gzip-compressed or not)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import DataError
from .base import ArrayDataset
from .download import REMOTE_FILES, fetch_files
from .idx import read_idx
from .paths import resolve_data_dir

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

# split -> (images stem, labels stem), as the official files are named
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Sub-folders searched in order: ours, torchvision's, then the data folder itself.
_SUBDIRS = {
    "mnist": ("mnist", "MNIST/raw", "."),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", "."),
}


def _find(folder: Path, stem: str) -> Path | None:
    """``stem[.gz]`` in ``folder``, or the ``train-images.idx3-ubyte`` spelling some mirrors use."""
    for name in (
        stem + ".gz",
        stem,
        stem.replace("-idx", ".idx") + ".gz",
        stem.replace("-idx", ".idx"),
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def _locate(dataset: str, root: Path) -> Path | None:
    """The first candidate folder holding all four files, or None."""
    for sub in _SUBDIRS[dataset]:
        folder = (root / sub).resolve()
        if all(_find(folder, s) for stems in IDX_STEMS.values() for s in stems):
            return folder
    return None


def read_idx_split(
    images_path: Path, labels_path: Path, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``uint8 (N, 1, H, W)`` and labels ``int64 (N,)`` from one pair of IDX files.

    Raises:
        DataError: wrong shapes, mismatched counts or labels outside ``[0, num_classes)``;
            the message names the file at fault.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype.itemsize != 1:
        raise DataError(
            f"{images_path} should hold uint8 images N×H×W, found {images.dtype} {images.shape}; "
            f"check that images and labels files are not swapped"
        )
    if labels.ndim != 1:
        raise DataError(
            f"{labels_path} should hold a 1-D label vector, found shape {labels.shape}; "
            f"check that images and labels files are not swapped"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            f"the two files come from different releases or one is damaged"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{labels_path} has labels outside [0, {num_classes}) (found {labels.min()}..."
            f"{labels.max()}); download it again"
        )
    return (
        torch.from_numpy(images.astype("uint8", copy=False)).unsqueeze(1),  # (N, 1, H, W)
        torch.from_numpy(labels.astype("int64")),
    )


def ensure_idx_files(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> Path:
    """The folder holding ``dataset``'s four IDX files (``"mnist"`` or ``"fashion-mnist"``),
    downloaded into ``<data_dir>/<dataset>/`` when no candidate folder has them; nothing is
    decoded, so commands can check the data before any other work.

    Raises:
        DataError: files missing and not downloadable (the message says what to put where).
    """
    root = resolve_data_dir(data_dir)
    folder = _locate(dataset, root)
    if folder is None:
        # Not found anywhere: fetch into <root>/<dataset>/ (or say what to put there).
        folder = root / dataset
        fetch_files(dataset, folder, REMOTE_FILES[dataset], download=download, progress=progress)
    return folder


def _load(
    dataset: str,
    classes: list[str],
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    progress: bool,
) -> dict[str, ArrayDataset]:
    folder = ensure_idx_files(dataset, data_dir, download, progress=progress)
    out = {}
    for split, (img_stem, lbl_stem) in IDX_STEMS.items():
        img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
        if img_path is None or lbl_path is None:  # a partial set of files in a candidate folder
            raise DataError(f"{dataset}: {img_stem} or {lbl_stem} is missing from {folder}")
        images, labels = read_idx_split(img_path, lbl_path, len(classes))
        out[split] = ArrayDataset(images, labels, list(classes), f"{dataset}/{split}")
    return out


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> dict[str, ArrayDataset]:
    """MNIST: 60 000 train and 10 000 test grey 28×28 digits, ``uint8 (N, 1, 28, 28)``.

    Looks for the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) in ``<data_dir>/mnist/``,
    ``<data_dir>/MNIST/raw/`` and ``<data_dir>/`` and downloads them into ``<data_dir>/mnist/``
    when absent (see :func:`guided_dml.data.paths.resolve_data_dir` for the default folder).

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        download: fetch missing files from the official mirror (md5-checked).
        progress: show download progress bars.

    Returns:
        ``{"train": ArrayDataset, "test": ArrayDataset}``.

    Raises:
        DataError: files missing (and not downloadable) or corrupt.
    """
    return _load("mnist", MNIST_CLASSES, data_dir, download, progress)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    progress: bool = True,
) -> dict[str, ArrayDataset]:
    """Fashion-MNIST: 60 000 train and 10 000 test grey 28×28 articles, ``uint8 (N, 1, 28, 28)``.

    Same file names and search order as :func:`load_mnist`, with ``fashion-mnist/`` and
    ``FashionMNIST/raw/`` as sub-folders.

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        download: fetch missing files from the official server (md5-checked).
        progress: show download progress bars.

    Returns:
        ``{"train": ArrayDataset, "test": ArrayDataset}``.

    Raises:
        DataError: files missing (and not downloadable) or corrupt.
    """
    return _load("fashion-mnist", FASHION_MNIST_CLASSES, data_dir, download, progress)
