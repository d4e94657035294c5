"""The bundled scikit-learn digits."""

from __future__ import annotations

import torch

from guided_dml.data import load_digits


def test_shapes_values_and_split() -> None:
    data = load_digits()
    train, test = data["train"], data["test"]
    assert len(train) + len(test) == 1797
    assert len(test) == round(0.3 * 1797)
    assert train.images.dtype == torch.uint8 and train.input_shape == (1, 8, 8)
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert train.classes == [str(d) for d in range(10)]
    # Stratified: each class is about 30 % test.
    share = test.class_counts().float() / (train.class_counts() + test.class_counts()).float()
    assert torch.allclose(share, torch.full((10,), 0.3), atol=0.02)


def test_split_is_deterministic() -> None:
    a, b = load_digits(), load_digits()
    assert torch.equal(a["test"].images, b["test"].images)
    assert torch.equal(a["test"].labels, b["test"].labels)
    c = load_digits(seed=1)
    assert not torch.equal(a["test"].images, c["test"].images)
