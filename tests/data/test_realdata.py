"""The real data sets in ../shared/datasets, in their original formats (skipped when absent)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from guided_dml.data import load_dataset

pytestmark = pytest.mark.realdata

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="session")
def decoded_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decoded-image cache for the session: the CIFAR JPEGs are decoded once."""
    return tmp_path_factory.mktemp("decoded-cache")


def test_mnist(shared_datasets: Path) -> None:
    data = load_dataset("mnist", data_dir=shared_datasets, download=False)
    train, test = data["train"], data["test"]
    assert len(train) == 60000 and len(test) == 10000
    assert train.input_shape == (1, 28, 28) and train.images.dtype == torch.uint8
    assert test.class_counts().tolist() == MNIST_TEST_COUNTS
    assert int(train.images.max()) == 255


def test_fashion_mnist(shared_datasets: Path) -> None:
    data = load_dataset("fashion-mnist", data_dir=shared_datasets, download=False)
    assert len(data["train"]) == 60000 and len(data["test"]) == 10000
    assert data["test"].class_counts().tolist() == [1000] * 10
    assert data["train"].class_counts().tolist() == [6000] * 10


def test_cifar10_jpeg_folder_and_cache(shared_datasets: Path, decoded_cache: Path) -> None:
    start = time.perf_counter()
    first = load_dataset(
        "cifar10", data_dir=shared_datasets, download=False, cache_dir=decoded_cache, progress=False
    )
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = load_dataset(
        "cifar10", data_dir=shared_datasets, download=False, cache_dir=decoded_cache, progress=False
    )
    second_s = time.perf_counter() - start
    print(f"CIFAR-10 JPEG load: first {first_s:.2f} s, cached {second_s:.2f} s")
    train, test = first["train"], first["test"]
    assert len(train) == 50000 and len(test) == 10000
    assert train.input_shape == (3, 32, 32) and train.images.dtype == torch.uint8
    assert test.class_counts().tolist() == [1000] * 10
    assert train.classes[:3] == ["airplane", "automobile", "bird"]
    assert torch.equal(first["test"].images, second["test"].images)
    assert torch.equal(first["train"].labels, second["train"].labels)
    assert second_s < 2.0
