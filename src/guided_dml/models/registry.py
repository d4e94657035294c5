"""Backbone registry: one plain dict, read by the CLI's choices, the experiments and the tests.

Every entry is a callable ``(in_channels, out_dim, *, stem, input_shape) -> nn.Module`` mapping
``(N, C, H, W)`` float images (or ``(N, F)`` vectors for ``"mlp"``) to ``(N, out_dim)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from ..errors import ConfigError
from .resnet import STEMS, resnet18
from .small import MLP, SmallCNN

BackboneFactory = Callable[..., nn.Module]


def _resnet18(in_channels: int, out_dim: int, *, stem: str, input_shape: Sequence[int] | None) -> nn.Module:
    return resnet18(in_channels, out_dim, stem=stem)


def _smallcnn(in_channels: int, out_dim: int, *, stem: str, input_shape: Sequence[int] | None) -> nn.Module:
    return SmallCNN(in_channels, out_dim)


def _mlp(in_channels: int, out_dim: int, *, stem: str, input_shape: Sequence[int] | None) -> nn.Module:
    # For vectors in_channels is the feature count F; for images the MLP flattens C·H·W.
    in_features = math.prod(input_shape) if input_shape is not None else in_channels
    return MLP(in_features, out_dim)


BACKBONES: dict[str, BackboneFactory] = {
    "resnet18": _resnet18,  # the paper's student (cifar stem = the authors' code)
    "smallcnn": _smallcnn,  # quick runs and smoke tests
    "mlp": _mlp,  # feature vectors (N, F)
}


def build_backbone(
    name: str,
    in_channels: int,
    out_dim: int,
    *,
    stem: str = "cifar",
    input_shape: Sequence[int] | None = None,
) -> nn.Module:
    """Build the backbone ``name`` mapping inputs to ``(N, out_dim)`` embeddings.

    Args:
        name: a key of :data:`BACKBONES`.
        in_channels: image channels C, or the feature count F for ``"mlp"`` on vectors.
        out_dim: embedding dimension d.
        stem: ``"cifar"`` or ``"imagenet"``; only ``"resnet18"`` uses it (see
            :mod:`guided_dml.models.resnet`).
        input_shape: shape of one sample, ``(C, H, W)`` or ``(F,)``, if known. Its first entry
            must equal ``in_channels``; ``"mlp"`` uses its product as the input size.
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if stem not in STEMS:
        raise ConfigError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
    if input_shape is not None:
        input_shape = tuple(int(s) for s in input_shape)
        if not input_shape or input_shape[0] != in_channels:
            raise ConfigError(f"input_shape {input_shape} does not start with in_channels={in_channels}")
    return BACKBONES[name](in_channels, out_dim, stem=stem, input_shape=input_shape)
