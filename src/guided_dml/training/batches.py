"""Mini-batches sliced from in-memory tensors (no per-sample Python in the hot path).

A batch source is a callable ``source(generator) -> Iterator[batch]``: the trainer hands it a
``torch.Generator`` seeded from (run seed, epoch), so an epoch's batches are the same whether the
run went straight through or was resumed from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..errors import DataError


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels to float32 in [0, 1]; float inputs (feature vectors) pass through."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation, vectorised over the batch: pad-and-crop plus horizontal flip.

    ``x``: (B, C, H, W) float. One random offset per sample, applied with a single gather
    (an ``unfold``-free index trick) so that augmentation costs a few ms per batch.
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zero padding, as in the usual recipe
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h)).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w)).view(b, 1, 1, w).expand(b, c, h, w)
    cropped = cropped.gather(3, cols)
    flip = torch.rand(b, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(-1)
    return cropped


@dataclass
class ArrayBatches:
    """Shuffled mini-batches of ``(inputs, targets)`` from tensors held in memory.

    ``targets`` are labels (metric-learning baselines) or teacher coordinates (the student).
    """

    images: torch.Tensor  # (N, C, H, W) uint8 or (N, F) float
    targets: torch.Tensor  # (N,) int64 labels or (N, d) float teacher targets
    batch_size: int
    shuffle: bool = True
    drop_last: bool = True  # pair-based losses misbehave on a 1-sample tail batch
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets):
            raise DataError(
                f"{len(self.images)} inputs but {len(self.targets)} targets: they must match"
            )
        if self.batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {self.batch_size}")

    def __len__(self) -> int:
        n = len(self.images)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = to_unit_float(self.images.index_select(0, idx))
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.targets.index_select(0, idx)
