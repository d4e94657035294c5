"""ResNet-18 with torchvision's parameter names, for any input channels and output dimension.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).

Three stems:

- ``"cifar"``: 3×3 stride-1 first convolution and no max-pool. This is the student of the G-DML
  authors (their ``ResNet18`` for MNIST, Fashion-MNIST and CIFAR-10): on 28×28 or 32×32 inputs
  the ImageNet stem would shrink the map to 7×7/8×8 before ``layer1`` and waste most of the network.
- ``"imagenet"``: torchvision's 7×7 stride-2 convolution (padding 3) and 3×3/2 max-pool, for
  larger images (CUB, Cars, SOP) and for loading ImageNet weights.
- ``"stride2"``: a 3×3 stride-2 convolution and no max-pool: ``layer1`` sees 14×14 on a 28×28
  input (cifar: 28×28, imagenet: 7×7), at about a quarter of the cifar stem's cost.

Parameter and buffer names are exactly torchvision's ``resnet18`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``, ..., ``fc``), so a torchvision state dict loads
with :func:`load_pretrained` without renaming, and the initialisation is the same
(Kaiming-normal ``fan_out`` for convolutions, BatchNorm weight 1 and bias 0, PyTorch's default
for the final ``Linear``). torchvision itself is not needed.

The global pool is ``AdaptiveAvgPool2d(1)``: for a 32×32 input with the cifar stem it equals the
authors' ``avg_pool2d(out, 4)``, and unlike it it also works on 28×28 (MNIST) and larger inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError

STEMS: tuple[str, ...] = ("cifar", "imagenet", "stride2")


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    # Bias-free: every convolution is followed by BatchNorm, whose shift makes a bias redundant.
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (torchvision's ``BasicBlock``).

    Shapes: ``(N, in_planes, H, W) -> (N, planes, ceil(H/stride), ceil(W/stride))``.
    ``downsample`` (1×1 convolution + BatchNorm) projects the shortcut when the stride or the
    number of channels changes, and is ``None`` otherwise (so no parameters are registered).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A BasicBlock ResNet mapping ``(N, C, H, W)`` images to ``(N, out_dim)`` embeddings.

    Args:
        layers: number of blocks in each of the four stages; ``(2, 2, 2, 2)`` is ResNet-18.
        in_channels: input channels C (1 for MNIST, 3 for RGB).
        out_dim: output dimension d of the final ``fc`` layer (2 in the G-DML paper).
        stem: ``"cifar"`` (3×3/1 convolution, no max-pool) or ``"imagenet"`` (7×7/2 + max-pool).

    Any input of at least 1×1 pixels works (the global pool is adaptive); the cifar stem keeps
    the full resolution in ``layer1``, so it costs about 16× more than the imagenet stem on the
    same input.

    Examples:
        >>> net = ResNet(in_channels=1, out_dim=2, stem="cifar")
        >>> net(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        in_channels: int = 3,
        out_dim: int = 2,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ConfigError(f"unknown ResNet stem {stem!r}; choose one of {', '.join(STEMS)}")
        if in_channels < 1 or out_dim < 1:
            raise ConfigError(
                f"ResNet needs in_channels >= 1 and out_dim >= 1, got {in_channels} and {out_dim}"
            )
        self.in_channels = in_channels
        self.out_dim = out_dim
        self.stem = stem

        # Modules are created in torchvision's order, so named_modules() lists them alike.
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        elif stem == "stride2":
            # Between the two: 3x3 stride 2, no max-pool, so a 28 px image enters layer1 at
            # 14x14 (cifar: 28x28, imagenet: 7x7); about a quarter of the cifar stem's cost.
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=2, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # Identity keeps the module name "maxpool" (torchvision's structure) without downsampling
        # small images further.
        self.maxpool: nn.Module = (
            nn.Identity()
            if stem in ("cifar", "stride2")
            else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )

        widths = (64, 128, 256, 512)
        in_planes = 64
        stages = []
        for i, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(in_planes, planes, stride)]
            stage += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, out_dim)

        # torchvision's initialisation; nn.Linear keeps PyTorch's default, as in torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.0)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, 512)``: the pooled features before ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, out_dim)``."""
        return self.fc(self.forward_features(x))


def resnet18(in_channels: int = 3, out_dim: int = 2, *, stem: str = "cifar") -> ResNet:
    """ResNet-18 (BasicBlock, ``[2, 2, 2, 2]``); see :class:`ResNet`."""
    return ResNet((2, 2, 2, 2), in_channels=in_channels, out_dim=out_dim, stem=stem)


def _read_state_dict(path_or_state_dict: str | Path | Mapping[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(path_or_state_dict, Mapping):
        state = dict(path_or_state_dict)
    else:
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise DataError(f"pretrained weights not found: {path}")
        try:
            # weights_only: a state dict needs no pickled code, and refusing it is safer.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt or foreign files
            raise DataError(f"cannot read pretrained weights from {path}: {exc}") from exc
        if not isinstance(state, Mapping):
            raise DataError(f"{path} does not hold a state dict (got {type(state).__name__})")
        # Checkpoints often wrap the weights; accept the two common wrappers.
        for wrapper in ("state_dict", "model"):
            if wrapper in state and isinstance(state[wrapper], Mapping):
                state = state[wrapper]
                break
        state = dict(state)
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError("pretrained weights must map parameter names to tensors")
    return state


def _adapt_conv1(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt RGB filters ``(64, 3, k, k)`` to ``in_channels`` input channels.

    One channel: sum the RGB filters, so a grey image ``g`` gives the response the RGB network
    gives to ``(g, g, g)``. Other counts: repeat the RGB filters cyclically and rescale by
    ``3 / in_channels`` so the activation scale stays that of an RGB input (timm's rule).
    """
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // 3)  # ceil
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3.0 / in_channels)


def load_pretrained(model: ResNet, path_or_state_dict: str | Path | Mapping[str, Tensor]) -> list[str]:
    """Load a torchvision ``resnet18`` state dict into ``model`` and return the skipped keys.

    This reads a file and downloads nothing (``--pretrained imagenet`` fetches torchvision's file
    first): pass a file written by ``torch.save(resnet18(weights=...).state_dict())``
    (optionally wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``) or the dict itself.

    Keys whose shapes differ from the model are handled as follows:

    - ``fc.weight`` / ``fc.bias`` (``out_dim != 1000``): skipped, the fresh head is kept.
    - ``conv1.weight`` with the cifar or stride2 stem (3×3 instead of 7×7): skipped, since a 7×7 filter
      has no faithful 3×3 counterpart.
    - ``conv1.weight`` with the imagenet stem and ``in_channels != 3``: adapted (1 channel: sum
      of the RGB filters; otherwise RGB filters repeated and rescaled by ``3 / in_channels``),
      and loaded, so not reported as skipped.

    Any other mismatch, a missing key or an unexpected key means the file is not a ResNet-18
    state dict and raises :class:`~guided_dml.errors.DataError`.

    Returns:
        The model keys that kept their own initialisation, in model order.
    """
    source = _read_state_dict(path_or_state_dict)
    target = model.state_dict()

    missing = [k for k in target if k not in source]
    unexpected = [k for k in source if k not in target]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise DataError(f"not a torchvision resnet18 state dict ({detail}, ...)")

    merged: dict[str, Tensor] = {}
    skipped: list[str] = []
    for key, own in target.items():
        value = source[key]
        if value.shape == own.shape:
            merged[key] = value
        elif key in ("fc.weight", "fc.bias"):
            skipped.append(key)
            merged[key] = own
        elif key == "conv1.weight" and value.shape[2:] == own.shape[2:]:
            merged[key] = _adapt_conv1(value, own.shape[1])
        elif key == "conv1.weight":
            skipped.append(key)
            merged[key] = own
        else:
            raise DataError(
                f"pretrained {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own.shape)}: not a resnet18 state dict"
            )
    model.load_state_dict(merged, strict=True)
    return skipped
