"""ArrayDataset: validation, subsets and shape helpers."""

from __future__ import annotations

import pytest
import torch

from guided_dml.data import ArrayDataset
from guided_dml.errors import DataError


def _images(n: int = 6) -> ArrayDataset:
    images = torch.arange(n * 2 * 3 * 4, dtype=torch.int64).reshape(n, 2, 3, 4).to(torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 0][:n])
    return ArrayDataset(images, labels, ["a", "b", "c"], "toy")


def test_shape_helpers() -> None:
    ds = _images()
    assert len(ds) == 6
    assert ds.num_classes == 3
    assert ds.input_shape == (2, 3, 4)
    assert ds.class_counts().tolist() == [3, 2, 1]
    image, label = ds[1]
    assert image.shape == (2, 3, 4) and label == 1
    assert "n=6" in repr(ds)


def test_feature_vectors() -> None:
    ds = ArrayDataset(torch.randn(5, 7), torch.zeros(5, dtype=torch.int64), ["only"], "feat")
    assert ds.input_shape == (7,)
    assert ds.class_counts().tolist() == [5]


def test_subset_by_index_and_mask() -> None:
    ds = _images()
    sub = ds.subset(torch.tensor([5, 1]))
    assert sub.labels.tolist() == [0, 1]
    assert torch.equal(sub.images, ds.images[[5, 1]])
    assert sub.classes == ds.classes and sub.name == ds.name
    assert ds.subset([0, 2]).labels.tolist() == [0, 2]
    mask = ds.labels == 0
    assert ds.subset(mask).labels.tolist() == [0, 0, 0]
    assert len(ds.subset([])) == 0
    with pytest.raises(DataError, match="out of range"):
        ds.subset([6])
    with pytest.raises(DataError, match="boolean mask"):
        ds.subset(torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize(
    ("images", "labels", "classes", "message"),
    [
        (torch.zeros(2, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), ["a"], "N×C×H×W"),
        (torch.zeros(2, 3, 3), torch.zeros(2, dtype=torch.int64), ["a"], "N×F"),
        (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.int64), ["a"], "float64"),
        (torch.zeros(2, 4), torch.zeros(2, dtype=torch.int32), ["a"], "int64"),
        (torch.zeros(2, 4), torch.zeros(3, dtype=torch.int64), ["a"], "2 images but 3 labels"),
        (torch.zeros(2, 4), torch.tensor([0, 2]), ["a", "b"], r"\[0, 2\)"),
        (torch.zeros(2, 4), torch.tensor([0, -1]), ["a", "b"], r"\[0, 2\)"),
        (torch.zeros(2, 4), torch.tensor([0, 0]), [], "class list is empty"),
    ],
)
def test_validation(images: torch.Tensor, labels: torch.Tensor, classes: list[str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        ArrayDataset(images, labels, classes, "bad")
