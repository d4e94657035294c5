"""The registry and load_dataset's routing and messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from guided_dml.data import DATASETS, RETRIEVAL_DATASETS, load_dataset, load_retrieval_dataset
from guided_dml.errors import DataError


def test_registry_names() -> None:
    assert list(DATASETS) == ["digits", "mnist", "fashion-mnist", "cifar10",
                              "cub200", "cars196", "sop", "inshop"]
    assert list(RETRIEVAL_DATASETS) == ["cub200", "cars196", "sop", "inshop"]


def test_load_by_name() -> None:
    data = load_dataset("digits", seed=3)
    assert set(data) == {"train", "test"} and data["train"].input_shape == (1, 8, 8)
    assert len(load_dataset("Digits")["test"]) == len(data["test"])


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(
        DataError, match="unknown data set 'imagenet'; choose one of digits, mnist, fashion-mnist, "
        "cifar10, cub200, cars196, sop, inshop"
    ):
        load_dataset("imagenet")


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(DataError, match=r"unknown option 'sead' .* valid options: test_fraction, seed"):
        load_dataset("digits", sead=1)


def test_missing_path() -> None:
    with pytest.raises(DataError, match="no such folder or archive"):
        load_dataset("./nowhere/pets.tar.gz")


def test_path_goes_to_the_image_folder_loader(
    tmp_path: Path, make_image_tree: Callable[..., list[Path]]
) -> None:
    spec = {f"{s}/{c}/{i}.png": ((5, 5), "RGB") for s in ("train", "test") for c in "ab" for i in range(2)}
    make_image_tree(tmp_path / "pets", spec)
    data = load_dataset(tmp_path / "pets", cache_dir=tmp_path / "cache", progress=False)
    assert data["train"].input_shape == (3, 5, 5) and len(data["test"]) == 4
    data = load_dataset(str(tmp_path / "pets"), size=3, cache=False, progress=False)
    assert data["train"].input_shape == (3, 3, 3)
    with pytest.raises(DataError, match="unknown option 'seeed'"):
        load_dataset(tmp_path / "pets", seeed=1)


def test_load_retrieval_dataset_messages(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="choose one of cub200, cars196, sop, inshop"):
        load_retrieval_dataset("birds")
    with pytest.raises(DataError, match=r"CUB-200-2011 not found.*data\.caltech\.edu"):
        load_retrieval_dataset("cub200", data_dir=tmp_path)
