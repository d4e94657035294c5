"""Mini-batches sliced from in-memory tensors (no per-sample Python in the hot path).

A batch source is a callable ``source(generator) -> Iterator[batch]``: the trainer hands it a
``torch.Generator`` seeded from (run seed, epoch), so an epoch's batches are the same whether the
run went straight through or was resumed from a checkpoint.

In a distributed run every process builds the same source with its ``part = (rank, world
size)``: all draw the same global order from the same generator and each yields its contiguous
slice of every global batch, so the slices in rank order are the single-process batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError
from .distributed import split_bounds


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels to float32 in [0, 1]; float inputs (feature vectors) pass through."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def random_crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    pad: int = 4,
    part: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """Standard CIFAR augmentation, vectorised over the batch: pad-and-crop plus horizontal flip.

    ``x``: (B, C, H, W) float. One random offset per sample, applied with a single gather
    (an ``unfold``-free index trick) so that augmentation costs a few ms per batch.

    ``part = (start, stop, total)``: ``x`` holds rows ``[start, stop)`` of a global batch of
    ``total`` rows (one process's slice in a distributed run). The random numbers are drawn for
    all ``total`` rows, so every process consumes the generator exactly as one process would,
    and those of the own rows are applied.
    """
    b, c, h, w = x.shape
    start, stop, total = part if part is not None else (0, b, b)
    rows_kept = slice(start, stop)
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows_kept].to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[rows_kept].to(x.device)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zero padding, as in the usual recipe
    arange_h = torch.arange(h, device=x.device)
    arange_w = torch.arange(w, device=x.device)
    rows = (dy.view(b, 1) + arange_h.view(1, h)).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx.view(b, 1) + arange_w.view(1, w)).view(b, 1, 1, w).expand(b, c, h, w)
    cropped = cropped.gather(3, cols)
    flip = (torch.rand(total, generator=generator) < 0.5)[rows_kept].to(x.device)
    cropped[flip] = cropped[flip].flip(-1)
    return cropped


def resized_crop_boxes(
    total: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[torch.Tensor, ...]:
    """``total`` random crops as ``(left, top, crop width, crop height, flip)``, the first four
    as fractions of the image's width and height.

    The sampling of :class:`~guided_dml.data.transforms.RandomResizedCrop` (torchvision's): an
    area (``scale`` of the image's) and an aspect ratio (``ratio``, log-uniform), ten tries per
    sample, the first that fits is kept, else the whole image; the corner is continuous rather
    than a whole pixel. ``flip``: a horizontal flip with probability 1/2.
    """
    tries = 10
    area = torch.empty(total, tries).uniform_(*scale, generator=generator)
    log_r = torch.empty(total, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                               generator=generator)
    aspect = log_r.exp() * (height / width)  # width/height in pixels -> in image fractions
    cw, ch = (area * aspect).sqrt(), (area / aspect).sqrt()
    fits = (cw <= 1) & (ch <= 1)
    first = fits.float().argmax(dim=1)  # the first try that fits (0 if none: replaced below)
    pick = torch.arange(total)
    cw, ch, ok = cw[pick, first], ch[pick, first], fits.any(dim=1)
    cw, ch = torch.where(ok, cw, torch.ones_like(cw)), torch.where(ok, ch, torch.ones_like(ch))
    left = torch.rand(total, generator=generator) * (1 - cw)
    top = torch.rand(total, generator=generator) * (1 - ch)
    flip = torch.rand(total, generator=generator) < 0.5
    return left, top, cw, ch, flip


def crop_resize(x: torch.Tensor, left: torch.Tensor, top: torch.Tensor, cw: torch.Tensor,
                ch: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Each image's box (fractions, as :func:`resized_crop_boxes` gives) resized back to the
    input's size, bilinear, mirrored where ``flip``: one ``grid_sample`` for the whole batch
    (Pillow's ``resize(box=...)`` per image, up to its 8-bit rounding)."""
    b = x.shape[0]
    # The box's centre and half-size in grid_sample's [-1, 1] coordinates; a flip mirrors x.
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = torch.where(flip, -cw, cw), 2 * left + cw - 1
    theta[:, 1, 1], theta[:, 1, 2] = ch, 2 * top + ch - 1
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def random_resized_crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    part: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """The DML recipe's augmentation of photos, vectorised over the batch: a random-resized
    crop (:func:`resized_crop_boxes`) back to the input's size, then a horizontal flip with
    probability 1/2. ``part``: as in :func:`random_crop_flip` (draws for the global batch)."""
    b, _, h, w = x.shape
    start, stop, total = part if part is not None else (0, b, b)
    boxes = resized_crop_boxes(total, h, w, generator, scale, ratio)
    return crop_resize(x, *(t[start:stop] for t in boxes))


@dataclass
class GaussianNoise:
    """``x + sigma * scale * N(0, 1)``: Gaussian noise of standard deviation ``sigma`` in the
    network's standardised input space, when ``scale`` is the per-feature (or per-channel)
    standard deviation the network divides by (:func:`~guided_dml.models.embedding.
    channel_stats`). A constant feature (a border pixel of every digit) gets none.

    For feature vectors, where no crop or flip applies, this is the student's augmentation
    (``--input-noise``; the fit plan's default for vectors, docs/presets.md): it keeps a
    small MLP from memorising a few hundred training vectors. ``part``: as in
    :func:`random_crop_flip` (draws for the global batch).
    """

    sigma: float
    scale: torch.Tensor  # broadcastable to one sample: (F,) or (C, 1, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator,
                 part: tuple[int, int, int] | None = None) -> torch.Tensor:
        start, stop, total = part if part is not None else (0, len(x), len(x))
        noise = torch.randn((total, *x.shape[1:]), generator=generator)[start:stop]
        return x + (self.sigma * self.scale).to(x) * noise.to(x)


@dataclass
class Chain:
    """Augmentations applied one after the other (a crop, then noise)."""

    steps: tuple[Callable[..., torch.Tensor], ...]

    def __call__(self, x: torch.Tensor, generator: torch.Generator,
                 part: tuple[int, int, int] | None = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator) if part is None else step(x, generator, part=part)
        return x


#: ``--augment-crop``: the augmentation of each kind of image (config.AUGMENT_CROPS).
AUGMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "pad": random_crop_flip,
    "resized": random_resized_crop_flip,
}


@dataclass
class DeviceBatches:
    """A batch source whose tensors are moved to ``device`` (a GPU) as they are drawn.

    The wrapped source keeps its tensors on the CPU and draws its batches there, so the batch
    order of a seed is the same on every device.
    """

    source: Callable[[torch.Generator], Iterator[tuple[torch.Tensor, ...]]]
    device: torch.device

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.source(generator):
            yield tuple(t.to(self.device, non_blocking=True) for t in batch)


def on_device(source: Any, device: torch.device | str) -> Any:
    """``source`` itself on the CPU (nothing to move), else a :class:`DeviceBatches` around it."""
    device = torch.device(device)
    return source if device.type == "cpu" else DeviceBatches(source, device)


@dataclass
class ArrayBatches:
    """Shuffled mini-batches of ``(inputs, targets)`` from tensors held in memory.

    ``targets`` are labels (metric-learning baselines) or teacher coordinates (the student).
    ``batch_size`` is the global batch; with ``part = (rank, world_size)`` this source yields
    the process's contiguous slice of each global batch (``batch_size / world_size`` rows, the
    first ``batch_size % world_size`` processes one more). ``augment(x, generator)`` is then
    called as ``augment(x, generator, part=(start, stop, global size))`` and must draw its random
    numbers for the whole global batch (see :func:`random_crop_flip`). :func:`on_device` moves
    the batches to a GPU.
    """

    images: torch.Tensor  # (N, C, H, W) uint8 or (N, F) float
    targets: torch.Tensor  # (N,) int64 labels or (N, d) float teacher targets
    batch_size: int
    shuffle: bool = True
    drop_last: bool = True  # pair-based losses misbehave on a 1-sample tail batch
    augment: Callable[..., torch.Tensor] | None = None
    part: tuple[int, int] = (0, 1)  # (rank, world size)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets):
            raise DataError(
                f"{len(self.images)} inputs but {len(self.targets)} targets: they must match"
            )
        if self.batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {self.batch_size}")
        rank, world = self.part
        if not 0 <= rank < world:
            raise DataError(f"part must be (rank, world size) with 0 <= rank < world, got {self.part}")
        if self.drop_last and self.batch_size < world:
            raise DataError(
                f"a global batch of {self.batch_size} cannot be split over {world} processes; "
                f"use --batch-size {world} or more (it is the batch of all processes together)"
            )

    def __len__(self) -> int:
        n = len(self.images)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        rank, world = self.part
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            batch = order[i * self.batch_size : (i + 1) * self.batch_size]  # the global batch
            start, stop = split_bounds(len(batch), world, rank)
            idx = batch[start:stop]
            x = to_unit_float(self.images.index_select(0, idx))
            y = self.targets.index_select(0, idx)
            if self.augment is not None:
                if world > 1:
                    x = self.augment(x, generator, part=(start, stop, len(batch)))
                else:
                    x = self.augment(x, generator)
            yield x, y


@dataclass
class ClassBalancedBatches:
    """P × K batches: ``batch_size // k`` classes per batch, ``k`` samples of each.

    The sampler of the MDR authors' ``metric/batchsampler.py`` (and of most of the field since
    Hermans et al. 2017): every epoch the classes are visited in a random order, each gives ``k``
    samples drawn without replacement from those it has not yet given this epoch (all of them
    again once it runs out), until the batch holds ``batch_size`` samples. ``len(self)`` is
    ``N // batch_size`` batches, one epoch's worth of samples. A class with fewer than ``k``
    samples gives what it has. One process only (``part`` is not supported).
    """

    images: torch.Tensor  # (N, C, H, W) uint8 or (N, F) float
    labels: torch.Tensor  # (N,) int64
    batch_size: int
    k: int = 4
    augment: Callable[..., torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} inputs but {len(self.labels)} labels")
        if not 1 <= self.k <= self.batch_size:
            raise DataError(f"--samples-per-class {self.k} must lie in 1..batch size "
                            f"({self.batch_size})")
        self.classes = torch.unique(self.labels)
        if len(self.classes) * self.k < self.batch_size // 2:
            raise DataError(f"{len(self.classes)} classes x {self.k} samples cannot fill a batch "
                            f"of {self.batch_size}: lower --batch-size or raise "
                            "--samples-per-class")
        self.members = [(self.labels == c).nonzero().flatten() for c in self.classes.tolist()]

    def __len__(self) -> int:
        return max(1, len(self.labels) // self.batch_size)

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        queues = [m[torch.randperm(len(m), generator=generator)] for m in self.members]
        pos = [0] * len(queues)
        order: list[int] = []
        for _ in range(len(self)):
            idx: list[torch.Tensor] = []
            filled = 0
            while filled < self.batch_size:
                if not order:  # a fresh random class order whenever the last one is used up
                    order = torch.randperm(len(queues), generator=generator).tolist()
                c = order.pop()
                if pos[c] + self.k > len(queues[c]):  # this class ran out: reshuffle it
                    queues[c] = self.members[c][torch.randperm(len(self.members[c]),
                                                               generator=generator)]
                    pos[c] = 0
                take = queues[c][pos[c] : pos[c] + min(self.k, self.batch_size - filled)]
                pos[c] += len(take)
                idx.append(take)
                filled += len(take)
            sel = torch.cat(idx)
            x = to_unit_float(self.images.index_select(0, sel))
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.labels.index_select(0, sel)
