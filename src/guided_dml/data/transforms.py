"""Image transforms for the retrieval benchmarks, with Pillow and torch only (no torchvision).

They follow torchvision's definitions (same sampling in ``RandomResizedCrop``, same rounding in
``Resize`` and ``CenterCrop``) so results compare with the literature's pipelines. Randomness comes
from torch's global generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: the backbones are pretrained there
IMAGENET_STD = (0.229, 0.224, 0.225)


class Compose:
    """Apply transforms one after another."""

    def __init__(self, steps: Sequence[Callable]) -> None:
        self.steps = list(steps)

    def __call__(self, x: Any) -> Any:  # a PIL image in, usually a tensor out
        for step in self.steps:
            x = step(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.steps!r})"


class RandomResizedCrop:
    """Crop a random area and aspect ratio, then resize it to ``size × size`` (bilinear).

    Args:
        size: output side.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
    """

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio

    def params(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(top, left, crop_height, crop_width)``; falls back to a central crop after 10 tries."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = math.exp(torch.empty(1).uniform_(*log_ratio).item())
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,)).item())
                left = int(torch.randint(0, width - w + 1, (1,)).item())
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Image.Image) -> Image.Image:
        top, left, h, w = self.params(*img.size)
        return img.resize(
            (self.size, self.size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
        )

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        if torch.rand(1).item() < self.p:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio (bilinear)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        if short == self.size:
            return img
        new_long = int(self.size * long / short)
        new = (self.size, new_long) if w <= h else (new_long, self.size)
        return img.resize(new, Image.Resampling.BILINEAR)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """Crop the central ``size × size`` square (zero-padded if the image is smaller)."""

    def __init__(self, size: int = 224) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        top = round((h - self.size) / 2.0)
        left = round((w - self.size) / 2.0)
        # PIL's crop fills the outside with zeros, which is the padding we want for small images.
        return img.crop((left, top, left + self.size, top + self.size))

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


def to_tensor(img: Image.Image) -> torch.Tensor:
    """``float32 (C, H, W)`` in ``[0, 1]`` from an 8-bit Pillow image."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class Normalize:
    """Subtract ``mean`` and divide by ``std`` per channel of a ``(C, H, W)`` tensor."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(size: int = 224, *, normalize: bool = True) -> Compose:
    """The usual DML training augmentation: random resized crop to ``size``, horizontal flip."""
    steps: list[Callable] = [RandomResizedCrop(size), RandomHorizontalFlip(0.5), to_tensor]
    return Compose([*steps, Normalize()] if normalize else steps)


def eval_transform(resize: int = 256, size: int = 224, *, normalize: bool = True) -> Compose:
    """The usual DML evaluation transform: shorter side to ``resize``, central ``size`` crop."""
    steps: list[Callable] = [Resize(resize), CenterCrop(size), to_tensor]
    return Compose([*steps, Normalize()] if normalize else steps)
