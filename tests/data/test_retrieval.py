"""Retrieval benchmarks on tiny replicas of their official file layouts, and the transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from replicas import make_cars, make_cub, make_inshop, make_sop

from guided_dml.data import load_cars196, load_cub200, load_inshop, load_sop
from guided_dml.data.retrieval import RetrievalDataset
from guided_dml.data.transforms import (
    CenterCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    eval_transform,
    to_tensor,
    train_transform,
)
from guided_dml.errors import DataError


def _check_split(ds: RetrievalDataset, n: int, num_classes: int, side: int = 224) -> None:
    assert len(ds) == n and ds.num_classes == num_classes
    assert ds.labels.dtype == torch.int64
    assert int(ds.labels.max()) == num_classes - 1 and int(ds.labels.min()) == 0
    image, label = ds[0]
    assert image.shape == (3, side, side) and image.dtype == torch.float32
    assert isinstance(label, int)


def test_cub(tmp_path: Path) -> None:
    make_cub(tmp_path)
    data = load_cub200(tmp_path)
    _check_split(data["train"], 4, 2)
    _check_split(data["test"], 4, 2)
    assert data["train"].classes == ["001.Bird_1", "002.Bird_2"]
    assert data["test"].classes == ["101.Bird_101", "200.Bird_200"]
    assert not set(data["train"].classes) & set(data["test"].classes)  # class-disjoint
    assert data["train"].class_counts().tolist() == [2, 2]
    grey, _ = data["test"][1]  # a grey image comes out with three channels
    assert grey.shape == (3, 224, 224)


def test_cub_root_is_the_dataset_folder(tmp_path: Path) -> None:
    base = make_cub(tmp_path)
    (base / "classes.txt").unlink()  # names then come from the image folders
    data = load_cub200(base)
    assert data["test"].classes == ["101.Bird_101", "200.Bird_200"]


def test_cub_errors(tmp_path: Path) -> None:
    base = make_cub(tmp_path)
    (base / "images/101.Bird_101/Bird_101_0.jpg").unlink()
    with pytest.raises(
        DataError, match=r"1 image file\(s\) listed in the metadata are missing: .*Bird_101_0\.jpg"
    ):
        load_cub200(tmp_path)
    assert len(load_cub200(tmp_path, check_files=False)["test"]) == 4
    (base / "image_class_labels.txt").write_text("1 1\n2\n")
    with pytest.raises(DataError, match=r"image_class_labels\.txt line 2 has 1 fields"):
        load_cub200(tmp_path)


def test_unreadable_image_is_reported_on_access(tmp_path: Path) -> None:
    base = make_cub(tmp_path)
    (base / "images/001.Bird_1/Bird_1_0.jpg").write_bytes(b"broken")
    data = load_cub200(tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*Bird_1_0\.jpg"):
        data["train"][0]


def test_cars(tmp_path: Path) -> None:
    make_cars(tmp_path / "cars196")
    data = load_cars196(tmp_path)
    _check_split(data["train"], 4, 2)
    _check_split(data["test"], 4, 2)
    assert data["train"].classes == ["Car model 1", "Car model 98"]
    assert data["test"].classes == ["Car model 99", "Car model 196"]
    assert data["train"].labels.tolist() == [0, 0, 1, 1]


def test_cars_damaged_mat(tmp_path: Path) -> None:
    (tmp_path / "cars_annos.mat").write_bytes(b"MATLAB 5.0 MAT-file, damaged")
    with pytest.raises(DataError, match=r"cannot read .*cars_annos\.mat"):
        load_cars196(tmp_path)


def test_sop(tmp_path: Path) -> None:
    make_sop(tmp_path)
    data = load_sop(tmp_path)
    _check_split(data["train"], 3, 2)
    _check_split(data["test"], 3, 2)
    assert data["test"].classes == ["11319", "11320"]
    assert data["test"].labels.tolist() == [0, 0, 1]


def test_inshop(tmp_path: Path) -> None:
    make_inshop(tmp_path / "InShop")
    data = load_inshop(tmp_path)
    assert set(data) == {"train", "query", "gallery"}
    _check_split(data["train"], 3, 2)
    query, gallery = data["query"], data["gallery"]
    assert query.classes == gallery.classes == ["id_00000080", "id_00000091", "id_00000095"]
    assert query.labels.tolist() == [0, 1] and gallery.labels.tolist() == [0, 1, 2]
    assert not set(data["train"].classes) & set(query.classes)
    assert query[0][0].shape == (3, 224, 224)


def test_inshop_count_mismatch(tmp_path: Path) -> None:
    make_inshop(tmp_path)
    part = tmp_path / "Eval" / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("8\n", "9\n", 1))
    with pytest.raises(DataError, match="announces 9 images but lists 8"):
        load_inshop(tmp_path)


def test_custom_transforms(tmp_path: Path) -> None:
    make_sop(tmp_path)
    data = load_sop(tmp_path, train_transform=to_tensor, test_transform=eval_transform(64, 48))
    assert data["train"][0][0].shape == (3, 20, 30)
    assert data["test"][0][0].shape == (3, 48, 48)


# ---------------------------------------------------------------------------------------------
# Transforms


def test_random_resized_crop_sizes_and_determinism() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8))
    crop = RandomResizedCrop(32)
    torch.manual_seed(0)
    a = [crop(img) for _ in range(5)]
    torch.manual_seed(0)
    b = [crop(img) for _ in range(5)]
    assert all(x.size == (32, 32) for x in a)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    for _ in range(50):
        top, left, h, w = crop.params(90, 50)
        assert 0 <= top and top + h <= 50 and 0 <= left and left + w <= 90
    # Impossible ratios fall back to a centred crop of the allowed aspect.
    assert RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0)).params(90, 50) == (0, 20, 50, 50)


def test_flip_resize_and_centre_crop() -> None:
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = Image.fromarray(arr)
    np.testing.assert_array_equal(np.asarray(RandomHorizontalFlip(1.0)(img)), arr[:, ::-1])
    np.testing.assert_array_equal(np.asarray(RandomHorizontalFlip(0.0)(img)), arr)
    assert Resize(256)(Image.new("RGB", (400, 300))).size == (341, 256)  # shorter side 256
    assert Resize(256)(Image.new("RGB", (300, 400))).size == (256, 341)
    small = CenterCrop(4)(Image.new("L", (2, 2), 200))
    assert small.size == (4, 4)
    np.testing.assert_array_equal(np.asarray(small)[1:3, 1:3], 200)  # centred, zero padding
    assert np.asarray(small)[0, 0] == 0


def test_pipelines() -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    x = eval_transform()(img)
    assert x.shape == (3, 224, 224)
    expected = torch.tensor([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225])
    assert torch.allclose(x[:, 100, 100], expected, atol=1e-5)
    y = train_transform(normalize=False)(img)
    assert y.shape == (3, 224, 224) and float(y.min()) >= 0 and float(y.max()) <= 1
    t = to_tensor(Image.new("L", (5, 4), 255))
    assert t.shape == (1, 4, 5) and float(t.max()) == 1.0
