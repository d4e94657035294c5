"""Small, fast backbones for quick runs, smoke tests and feature-vector data.

- :class:`SmallCNN`: three ``Conv3×3 → BatchNorm → ReLU → MaxPool2`` blocks, a global average
  pool and a linear head. About 0.1 M parameters with the default widths, roughly 20–50× cheaper
  than ResNet-18 with the cifar stem; works on any image of at least 1×1 pixels (8×8 digits,
  28×28 MNIST, 32×32 CIFAR).
- :class:`MLP`: ``Linear → BatchNorm1d → ReLU`` blocks and a linear head, for ``(N, F)``
  feature vectors (it flattens any other input, so images work too).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError


class SmallCNN(nn.Module):
    """A three-block CNN mapping ``(N, C, H, W)`` to ``(N, out_dim)``.

    Args:
        in_channels: input channels C.
        out_dim: embedding dimension d.
        widths: output channels of the three convolution blocks.

    The max-pools use ``ceil_mode=True`` so a 1×1 map stays 1×1 instead of vanishing: 8×8 inputs
    go 8 → 4 → 2 → 1, 28×28 go 28 → 14 → 7 → 4, 32×32 go 32 → 16 → 8 → 4.

    Examples:
        >>> SmallCNN(1, 2)(torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_channels: int, out_dim: int, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if in_channels < 1 or out_dim < 1 or not widths or min(widths) < 1:
            raise ConfigError(
                f"SmallCNN needs positive in_channels, out_dim and widths, got "
                f"{in_channels}, {out_dim}, {tuple(widths)}"
            )
        blocks: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            blocks += [
                # Bias-free: the BatchNorm shift that follows makes a bias redundant.
                nn.Conv2d(prev, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            prev = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, out_dim)
        self.in_channels = in_channels
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, out_dim)``."""
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class MLP(nn.Module):
    """A multi-layer perceptron mapping ``(N, F)`` (or any ``(N, ...)``, flattened) to ``(N, d)``.

    Args:
        in_features: input features F (the product of the non-batch dimensions).
        out_dim: embedding dimension d.
        hidden: widths of the hidden layers; ``()`` gives a linear map.
        batch_norm: add ``BatchNorm1d`` after each hidden linear layer. On by default because
            feature vectors are often unscaled (e.g. the 0–16 pixel counts of the bundled
            digits); it needs batches of at least 2 samples in training mode.

    Examples:
        >>> MLP(64, 2)(torch.zeros(5, 64)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ConfigError(
                f"MLP needs positive in_features, out_dim and hidden widths, got "
                f"{in_features}, {out_dim}, {tuple(hidden)}"
            )
        layers: list[nn.Module] = []
        prev = in_features
        for width in hidden:
            # The BatchNorm shift makes the linear bias redundant.
            layers.append(nn.Linear(prev, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            prev = width
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """``(N, F)`` or ``(N, C, H, W)`` (flattened to ``(N, C·H·W)``) ``-> (N, out_dim)``."""
        return self.net(torch.flatten(x, 1))
