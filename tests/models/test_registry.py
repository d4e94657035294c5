"""Every registered backbone: output shape, backward pass, a finite gradient for every parameter.

Parametrized over the whole ``BACKBONES`` dict (and both ResNet stems), so a new entry is tested
without writing a new test.
"""

from __future__ import annotations

import pytest
import torch

from guided_dml.errors import ConfigError
from guided_dml.models import BACKBONES, STEMS, build_backbone

CASES = [(name, stem) for name in BACKBONES for stem in (STEMS if name == "resnet18" else ("cifar",))]


@pytest.mark.parametrize(("name", "stem"), CASES)
def test_backbone_forward_backward_every_parameter_gets_gradient(name: str, stem: str) -> None:
    torch.manual_seed(0)
    shape = (3, 16, 16)  # small but deep enough for every stem; "mlp" flattens it
    model = build_backbone(name, 3, 5, stem=stem, input_shape=shape).train()
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 5)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}/{stem}: {pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}/{stem}: {pname} has a non-finite gradient"


@pytest.mark.parametrize(("name", "stem"), CASES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_backbone_image_sizes_in_eval(name: str, stem: str, shape: tuple[int, ...]) -> None:
    model = build_backbone(name, shape[0], 2, stem=stem, input_shape=shape).eval()
    with torch.no_grad():
        assert model(torch.rand(2, *shape)).shape == (2, 2)


def test_mlp_on_feature_vectors() -> None:
    model = build_backbone("mlp", 64, 2, input_shape=(64,))
    assert model(torch.randn(8, 64)).shape == (8, 2)
    assert build_backbone("mlp", 20, 3)(torch.randn(4, 20)).shape == (4, 3)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ConfigError, match="resnet18, smallcnn, mlp"):
        build_backbone("vgg", 3, 2)


def test_bad_stem_and_mismatched_input_shape() -> None:
    with pytest.raises(ConfigError, match="stem"):
        build_backbone("resnet18", 3, 2, stem="big")
    with pytest.raises(ConfigError, match="in_channels"):
        build_backbone("smallcnn", 3, 2, input_shape=(1, 28, 28))
