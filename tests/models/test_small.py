"""Small backbones: sizes they accept, parameter budget."""

from __future__ import annotations

import pytest
import torch

from guided_dml.errors import ConfigError
from guided_dml.models import MLP, SmallCNN, resnet18


@pytest.mark.parametrize("size", [1, 8, 28, 32])
def test_smallcnn_any_size(size: int) -> None:
    model = SmallCNN(3, 4).eval()
    assert model(torch.rand(2, 3, size, size)).shape == (2, 4)


def test_smallcnn_is_much_smaller_than_resnet18() -> None:
    small = sum(p.numel() for p in SmallCNN(3, 2).parameters())
    big = sum(p.numel() for p in resnet18(3, 2).parameters())
    assert small * 50 < big


def test_mlp_layers() -> None:
    model = MLP(10, 2, hidden=(8,), batch_norm=False)
    assert [type(m).__name__ for m in model.net] == ["Linear", "ReLU", "Linear"]
    assert model(torch.randn(3, 10)).shape == (3, 2)
    assert MLP(12, 2, hidden=())(torch.randn(3, 3, 2, 2)).shape == (3, 2)


def test_invalid_sizes_raise() -> None:
    with pytest.raises(ConfigError):
        SmallCNN(3, 0)
    with pytest.raises(ConfigError):
        MLP(0, 2)
