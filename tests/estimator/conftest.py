"""Tiny labelled data for the estimator: 3 classes of 8×8 images (or 16-D vectors), 12 each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Seconds per fit: the smoke preset's small networks, few epochs.
FAST = {"preset": "smoke", "epochs": 2, "gemini_epochs": 2, "batch_size": 8}


@pytest.fixture
def fast() -> dict:
    """GuidedEmbedder arguments for a fit of a few seconds."""
    return dict(FAST)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread, above all on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_images(n_per_class: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 8, 8) images: class k is a bright band at rows 2k..2k+2, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, name in enumerate(["cat", "dog", "owl"]):
        base = np.zeros((8, 8))
        base[2 * k : 2 * k + 3] = 200.0
        for _ in range(n_per_class):
            images.append(np.clip(base + rng.normal(0, 25, (8, 8)), 0, 255))
            labels.append(name)
    return np.array(images, dtype=np.uint8), np.array(labels)


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    return make_images()


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray]:
    """float (N, 16) vectors of 3 well-separated classes, integer labels."""
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 3, (3, 16))
    y = np.repeat(np.arange(3), 12)
    return (centres[y] + rng.normal(0, 0.5, (len(y), 16))).astype(np.float64), y


@pytest.fixture(scope="session")
def fitted():
    """One fitted G-DML estimator on the toy images (read-only: shared by the session's tests)."""
    from guided_dml import GuidedEmbedder

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = make_images()
    est = GuidedEmbedder(**FAST).fit(x, y)
    torch.set_num_threads(before)
    return est, x, y
