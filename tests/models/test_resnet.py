"""ResNet-18: torchvision-compatible names, shapes and initialisation; load_pretrained."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guided_dml.errors import ConfigError, DataError
from guided_dml.models import ResNet, load_pretrained, resnet18

# torchvision.models.resnet18().state_dict(): every key and shape, in order (written out by hand
# so the test does not need torchvision).
TORCHVISION_RESNET18: list[tuple[str, tuple[int, ...]]] = [
    ("conv1.weight", (64, 3, 7, 7)),
    ("bn1.weight", (64,)),
    ("bn1.bias", (64,)),
    ("bn1.running_mean", (64,)),
    ("bn1.running_var", (64,)),
    ("bn1.num_batches_tracked", ()),
    ("layer1.0.conv1.weight", (64, 64, 3, 3)),
    ("layer1.0.bn1.weight", (64,)),
    ("layer1.0.bn1.bias", (64,)),
    ("layer1.0.bn1.running_mean", (64,)),
    ("layer1.0.bn1.running_var", (64,)),
    ("layer1.0.bn1.num_batches_tracked", ()),
    ("layer1.0.conv2.weight", (64, 64, 3, 3)),
    ("layer1.0.bn2.weight", (64,)),
    ("layer1.0.bn2.bias", (64,)),
    ("layer1.0.bn2.running_mean", (64,)),
    ("layer1.0.bn2.running_var", (64,)),
    ("layer1.0.bn2.num_batches_tracked", ()),
    ("layer1.1.conv1.weight", (64, 64, 3, 3)),
    ("layer1.1.bn1.weight", (64,)),
    ("layer1.1.bn1.bias", (64,)),
    ("layer1.1.bn1.running_mean", (64,)),
    ("layer1.1.bn1.running_var", (64,)),
    ("layer1.1.bn1.num_batches_tracked", ()),
    ("layer1.1.conv2.weight", (64, 64, 3, 3)),
    ("layer1.1.bn2.weight", (64,)),
    ("layer1.1.bn2.bias", (64,)),
    ("layer1.1.bn2.running_mean", (64,)),
    ("layer1.1.bn2.running_var", (64,)),
    ("layer1.1.bn2.num_batches_tracked", ()),
    ("layer2.0.conv1.weight", (128, 64, 3, 3)),
    ("layer2.0.bn1.weight", (128,)),
    ("layer2.0.bn1.bias", (128,)),
    ("layer2.0.bn1.running_mean", (128,)),
    ("layer2.0.bn1.running_var", (128,)),
    ("layer2.0.bn1.num_batches_tracked", ()),
    ("layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("layer2.0.bn2.weight", (128,)),
    ("layer2.0.bn2.bias", (128,)),
    ("layer2.0.bn2.running_mean", (128,)),
    ("layer2.0.bn2.running_var", (128,)),
    ("layer2.0.bn2.num_batches_tracked", ()),
    ("layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("layer2.0.downsample.1.weight", (128,)),
    ("layer2.0.downsample.1.bias", (128,)),
    ("layer2.0.downsample.1.running_mean", (128,)),
    ("layer2.0.downsample.1.running_var", (128,)),
    ("layer2.0.downsample.1.num_batches_tracked", ()),
    ("layer2.1.conv1.weight", (128, 128, 3, 3)),
    ("layer2.1.bn1.weight", (128,)),
    ("layer2.1.bn1.bias", (128,)),
    ("layer2.1.bn1.running_mean", (128,)),
    ("layer2.1.bn1.running_var", (128,)),
    ("layer2.1.bn1.num_batches_tracked", ()),
    ("layer2.1.conv2.weight", (128, 128, 3, 3)),
    ("layer2.1.bn2.weight", (128,)),
    ("layer2.1.bn2.bias", (128,)),
    ("layer2.1.bn2.running_mean", (128,)),
    ("layer2.1.bn2.running_var", (128,)),
    ("layer2.1.bn2.num_batches_tracked", ()),
    ("layer3.0.conv1.weight", (256, 128, 3, 3)),
    ("layer3.0.bn1.weight", (256,)),
    ("layer3.0.bn1.bias", (256,)),
    ("layer3.0.bn1.running_mean", (256,)),
    ("layer3.0.bn1.running_var", (256,)),
    ("layer3.0.bn1.num_batches_tracked", ()),
    ("layer3.0.conv2.weight", (256, 256, 3, 3)),
    ("layer3.0.bn2.weight", (256,)),
    ("layer3.0.bn2.bias", (256,)),
    ("layer3.0.bn2.running_mean", (256,)),
    ("layer3.0.bn2.running_var", (256,)),
    ("layer3.0.bn2.num_batches_tracked", ()),
    ("layer3.0.downsample.0.weight", (256, 128, 1, 1)),
    ("layer3.0.downsample.1.weight", (256,)),
    ("layer3.0.downsample.1.bias", (256,)),
    ("layer3.0.downsample.1.running_mean", (256,)),
    ("layer3.0.downsample.1.running_var", (256,)),
    ("layer3.0.downsample.1.num_batches_tracked", ()),
    ("layer3.1.conv1.weight", (256, 256, 3, 3)),
    ("layer3.1.bn1.weight", (256,)),
    ("layer3.1.bn1.bias", (256,)),
    ("layer3.1.bn1.running_mean", (256,)),
    ("layer3.1.bn1.running_var", (256,)),
    ("layer3.1.bn1.num_batches_tracked", ()),
    ("layer3.1.conv2.weight", (256, 256, 3, 3)),
    ("layer3.1.bn2.weight", (256,)),
    ("layer3.1.bn2.bias", (256,)),
    ("layer3.1.bn2.running_mean", (256,)),
    ("layer3.1.bn2.running_var", (256,)),
    ("layer3.1.bn2.num_batches_tracked", ()),
    ("layer4.0.conv1.weight", (512, 256, 3, 3)),
    ("layer4.0.bn1.weight", (512,)),
    ("layer4.0.bn1.bias", (512,)),
    ("layer4.0.bn1.running_mean", (512,)),
    ("layer4.0.bn1.running_var", (512,)),
    ("layer4.0.bn1.num_batches_tracked", ()),
    ("layer4.0.conv2.weight", (512, 512, 3, 3)),
    ("layer4.0.bn2.weight", (512,)),
    ("layer4.0.bn2.bias", (512,)),
    ("layer4.0.bn2.running_mean", (512,)),
    ("layer4.0.bn2.running_var", (512,)),
    ("layer4.0.bn2.num_batches_tracked", ()),
    ("layer4.0.downsample.0.weight", (512, 256, 1, 1)),
    ("layer4.0.downsample.1.weight", (512,)),
    ("layer4.0.downsample.1.bias", (512,)),
    ("layer4.0.downsample.1.running_mean", (512,)),
    ("layer4.0.downsample.1.running_var", (512,)),
    ("layer4.0.downsample.1.num_batches_tracked", ()),
    ("layer4.1.conv1.weight", (512, 512, 3, 3)),
    ("layer4.1.bn1.weight", (512,)),
    ("layer4.1.bn1.bias", (512,)),
    ("layer4.1.bn1.running_mean", (512,)),
    ("layer4.1.bn1.running_var", (512,)),
    ("layer4.1.bn1.num_batches_tracked", ()),
    ("layer4.1.conv2.weight", (512, 512, 3, 3)),
    ("layer4.1.bn2.weight", (512,)),
    ("layer4.1.bn2.bias", (512,)),
    ("layer4.1.bn2.running_mean", (512,)),
    ("layer4.1.bn2.running_var", (512,)),
    ("layer4.1.bn2.num_batches_tracked", ()),
    ("fc.weight", (1000, 512)),
    ("fc.bias", (1000,)),
]


def synthetic_torchvision_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision resnet18's keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in TORCHVISION_RESNET18:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def test_reference_list_is_complete() -> None:
    assert len(TORCHVISION_RESNET18) == 122
    assert len({k for k, _ in TORCHVISION_RESNET18}) == 122


def test_imagenet_stem_matches_torchvision_keys_shapes_and_order() -> None:
    model = resnet18(3, 1000, stem="imagenet")
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == TORCHVISION_RESNET18


@pytest.mark.parametrize("in_channels", [1, 3])
def test_cifar_stem_differs_only_in_conv1_and_fc(in_channels: int) -> None:
    model = resnet18(in_channels, 2, stem="cifar")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == [k for k, _ in TORCHVISION_RESNET18]
    expected = dict(TORCHVISION_RESNET18)
    expected.update({"conv1.weight": (64, in_channels, 3, 3), "fc.weight": (2, 512), "fc.bias": (2,)})
    assert got == expected
    assert isinstance(model.maxpool, nn.Identity)
    assert model.conv1.stride == (1, 1)


def test_structure_and_init_follow_torchvision() -> None:
    torch.manual_seed(0)
    model = resnet18(3, 10, stem="imagenet")
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert model.conv1.padding == (3, 3)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    assert model.layer1[0].downsample is None and model.layer2[0].downsample is not None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
            # kaiming_normal_(fan_out, relu): std = sqrt(2 / (out_channels · k · k))
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            expected = (2.0 / fan_out) ** 0.5
            assert m.weight.std().item() == pytest.approx(expected, rel=0.15)
        elif isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


@pytest.mark.parametrize(("stem", "size", "spatial"), [("cifar", 32, 4), ("imagenet", 32, 1)])
def test_layer4_resolution(stem: str, size: int, spatial: int) -> None:
    # cifar stem: 32 → 32 → 16 → 8 → 4 (the authors' 4×4 average pool); imagenet: 32 → 8 → ... → 1
    model = resnet18(3, 2, stem=stem).eval()
    x = torch.zeros(1, 3, size, size)
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    assert x.shape == (1, 512, spatial, spatial)


def test_bad_stem_and_sizes_raise() -> None:
    with pytest.raises(ConfigError, match="stem"):
        ResNet(stem="tiny")
    with pytest.raises(ConfigError):
        resnet18(0, 2)


def test_load_pretrained_imagenet_rgb_loads_everything() -> None:
    state = synthetic_torchvision_state()
    model = resnet18(3, 1000, stem="imagenet")
    assert load_pretrained(model, state) == []
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_pretrained_grey_imagenet_sums_rgb_filters_and_skips_fc(tmp_path) -> None:
    state = synthetic_torchvision_state()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = resnet18(1, 2, stem="imagenet")
    fc_before = model.fc.weight.detach().clone()
    assert load_pretrained(model, path) == ["fc.weight", "fc.bias"]
    assert torch.allclose(model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.fc.weight, fc_before)
    assert torch.equal(model.layer3[0].downsample[1].running_var, state["layer3.0.downsample.1.running_var"])


def test_load_pretrained_grey_image_gives_rgb_response() -> None:
    # Summing the RGB filters makes a grey image g respond like the RGB image (g, g, g).
    state = synthetic_torchvision_state()
    grey, rgb = resnet18(1, 1000, stem="imagenet"), resnet18(3, 1000, stem="imagenet")
    load_pretrained(grey, state)
    load_pretrained(rgb, state)
    g = torch.rand(2, 1, 16, 16)
    assert torch.allclose(grey.conv1(g), rgb.conv1(g.expand(-1, 3, -1, -1)), atol=1e-5)


def test_load_pretrained_cifar_stem_skips_conv1() -> None:
    state = synthetic_torchvision_state()
    model = resnet18(3, 2, stem="cifar")
    conv1_before = model.conv1.weight.detach().clone()
    skipped = load_pretrained(model, state)
    assert skipped == ["conv1.weight", "fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, conv1_before)
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_load_pretrained_other_channel_counts_rescale(tmp_path) -> None:
    state = synthetic_torchvision_state()
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state}, path)  # a wrapped checkpoint
    model = resnet18(4, 1000, stem="imagenet")
    assert load_pretrained(model, path) == []
    rgb = state["conv1.weight"]
    expected = torch.cat([rgb, rgb[:, :1]], dim=1) * 0.75
    assert torch.allclose(model.conv1.weight, expected)


def test_load_pretrained_errors(tmp_path) -> None:
    model = resnet18(3, 1000, stem="imagenet")
    with pytest.raises(DataError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pth")
    state = synthetic_torchvision_state()
    del state["layer2.1.bn2.bias"]
    with pytest.raises(DataError, match="missing"):
        load_pretrained(model, state)
    state = synthetic_torchvision_state()
    state["layer2.1.conv1.weight"] = torch.zeros(128, 128, 1, 1)
    with pytest.raises(DataError, match=r"layer2\.1\.conv1\.weight"):
        load_pretrained(model, state)
