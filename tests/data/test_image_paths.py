"""Image folders record each image's file (what `gdml search` shows), through splits and caches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guided_dml.data import ArrayDataset, load_image_folder
from guided_dml.errors import DataError

Tree = Callable[..., list[Path]]


def test_paths_follow_the_images_through_splits_and_the_cache(tmp_path: Path, make_image_tree: Tree):
    spec = {f"{c}/{k}.png": ((6, 6), "L") for c in ("a", "b") for k in range(5)}
    make_image_tree(tmp_path / "root", spec)
    first = load_image_folder(tmp_path / "root", progress=False)
    again = load_image_folder(tmp_path / "root", progress=False)  # from the decoded cache
    for split in ("train", "test"):
        ds = first[split]
        assert ds.paths is not None and len(ds.paths) == len(ds)
        assert again[split].paths == ds.paths
        for path, image, label in zip(ds.paths, ds.images, ds.labels, strict=True):
            assert path.split("/")[0] == ds.classes[int(label)]  # its class folder
            pixels = np.asarray(Image.open(tmp_path / "root" / path))
            assert np.array_equal(pixels, image[0].numpy())
    assert sorted(first["train"].paths + first["test"].paths) == sorted(spec)


def test_split_folders_keep_their_prefix(tmp_path: Path, make_image_tree: Tree):
    spec = {f"{s}/{c}/{k}.png": ((4, 4), "L") for s in ("train", "test") for c in "xy" for k in range(2)}
    make_image_tree(tmp_path / "root", spec)
    data = load_image_folder(tmp_path / "root", progress=False, cache=False)
    assert all(p.startswith("train/") for p in data["train"].paths)
    assert all(p.startswith("test/") for p in data["test"].paths)


def test_subset_carries_paths_and_lengths_are_checked():
    ds = ArrayDataset(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0]), ["a", "b"], "t",
                      paths=["p0", "p1", "p2"])
    assert ds.subset([2, 0]).paths == ["p2", "p0"]
    assert ds.subset(torch.tensor([False, True, True])).paths == ["p1", "p2"]
    no_paths = ArrayDataset(ds.images, ds.labels, ds.classes, "t")
    assert no_paths.subset([1]).paths is None
    with pytest.raises(DataError, match="3 samples but 2 file paths"):
        ArrayDataset(ds.images, ds.labels, ds.classes, "t", paths=["p0", "p1"])


def test_cache_written_before_paths_existed_still_loads(tmp_path: Path, make_image_tree: Tree):
    make_image_tree(tmp_path / "root", {f"{c}/{k}.png": ((4, 4), "L") for c in "ab" for k in range(3)})
    load_image_folder(tmp_path / "root", progress=False)
    (cache,) = (tmp_path / "xdg-cache").rglob("*.npz")
    with np.load(cache) as z:
        old = {k: z[k] for k in z.files if not k.startswith("paths__")}
    np.savez(cache, **old)
    data = load_image_folder(tmp_path / "root", progress=False)
    assert data["train"].paths is None and len(data["train"]) > 0
