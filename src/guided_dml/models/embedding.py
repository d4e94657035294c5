"""The deployable embedding network: input standardisation folded into the model.

Every network in guided-dml takes images as float tensors scaled to [0, 1] (``uint8 / 255``),
shape ``(N, C, H, W)``, or feature vectors ``(N, F)``. Standardisation with the training set's
per-channel mean and standard deviation lives in buffers of the model itself, so a saved or
exported model needs no separate preprocessing step and training and evaluation can never use
different preprocessing (the authors' code trains on raw pixels and evaluates on normalised
ones: docs/authors_protocol_notes.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Standardize(nn.Module):
    """``(x - mean) / std`` with per-channel (images) or per-feature (vectors) statistics."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float().clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (N, C, H, W): broadcast the (C,) statistics
            return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return (x - self.mean) / self.std


class EmbeddingNet(nn.Module):
    """``backbone(standardize(x))``: maps ``(N, C, H, W)`` in [0, 1] (or ``(N, F)``) to ``(N, d)``.

    ``l2_normalize``: unit-length outputs. Set when the training loss measures distances between
    L2-normalised embeddings (pytorch-metric-learning's default), so that retrieval uses the
    geometry the loss optimised; the raw norm is then unconstrained noise.
    """

    def __init__(
        self, backbone: nn.Module, mean: torch.Tensor, std: torch.Tensor, l2_normalize: bool = False
    ) -> None:
        super().__init__()
        self.standardize = Standardize(mean, std)
        self.backbone = backbone
        self.l2_normalize = l2_normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(self.standardize(x))
        if self.l2_normalize:
            out = torch.nn.functional.normalize(out, dim=1)
        return out


def channel_stats(images: torch.Tensor, max_samples: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``uint8 (N, C, H, W)`` images scaled to [0, 1].

    Feature vectors ``(N, F)`` get per-feature statistics. A deterministic prefix of at most
    ``max_samples`` rows is enough for stable statistics and keeps this cheap on 60 000 images.
    """
    # At most 2^25 values (CIFAR-10's 10 000 x 3 072 stay whole): 10 000 photos of 224 px would
    # be 6 GB of floats.
    per_sample = max(1, math.prod(images.shape[1:]))
    x = images[: max(1, min(max_samples, 2**25 // per_sample))]
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.dim() == 4:
        x = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, N*H*W)
        return x.mean(dim=1), x.std(dim=1)
    return x.mean(dim=0), x.std(dim=0)


class StandardizedTeacher(nn.Module):
    """``teacher(standardize(x), y)`` for a label-conditioned teacher such as GEMINI.

    The paper standardises GEMINI's inputs to zero mean and unit variance (Gonzalez-Zapata et
    al. 2022, Sec. 3.1).
    """

    def __init__(self, teacher: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.standardize = Standardize(mean, std)
        self.teacher = teacher

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.teacher(self.standardize(x), y)
