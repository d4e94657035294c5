"""scikit-learn's bundled 8×8 digits (1 797 images), as a small offline data set."""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.datasets import load_digits as _sklearn_digits

from .base import ArrayDataset
from .splits import stratified_split

DIGITS_CLASSES = [str(d) for d in range(10)]


def load_digits(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> dict[str, ArrayDataset]:
    """The UCI optical digits shipped with scikit-learn: ``uint8 (N, 1, 8, 8)``, 10 classes.

    Pixel values 0..16 are scaled to 0..255. The test part is a deterministic stratified split.

    Args:
        data_dir: ignored (the data ship with scikit-learn); accepted so that every loader in
            :data:`guided_dml.data.DATASETS` has the same signature.
        download: ignored, likewise.
        test_fraction: share of each class held out for testing.
        seed: seed of the split.

    Returns:
        ``{"train": ArrayDataset, "test": ArrayDataset}`` (1 258 / 539 images by default).
    """
    del data_dir, download  # nothing to fetch
    bunch = _sklearn_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64)  # (N, 8, 8), values 0..16
    images = torch.from_numpy(np.rint(pixels * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    full = ArrayDataset(images, labels, list(DIGITS_CLASSES), "digits")
    return {
        "train": ArrayDataset(images[train_idx], labels[train_idx], full.classes, "digits/train"),
        "test": ArrayDataset(images[test_idx], labels[test_idx], full.classes, "digits/test"),
    }
