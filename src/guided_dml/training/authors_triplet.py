"""The G-DML authors' triplet baseline: fixed class-pair triplets, three forwards, plain mean.

Their ``G-DML/Triplet-Network`` scripts (``TripletNetwork_{MNIST,Fashion,Cifar10}.py``;
docs/authors_protocol_notes.md §3) do not mine triplets in random image batches, as the
pytorch-metric-learning baselines do. They draw, once, ``B`` triplets for every ordered class
pair exactly as GEMINI's Algorithm 1 does (anchor and positive without replacement from the
first class, a negative from the second; :func:`guided_dml.training.gemini.class_pair_triplets`),
shuffle those ``90·B`` triplets into batches of ``B`` every epoch, push anchors, positives and
negatives through the network in **three separate forwards** (each with its own BatchNorm
statistics), and average ``max(0, ‖a − p‖₂ − ‖a − n‖₂ + m)`` over **every** triplet of the batch,
zeros included, on the raw (not normalised) outputs.

``--triplet-sampling class-pairs`` selects this variant (the ``paper`` preset does); this module
holds its batch source, :func:`guided_dml.training.steps.three_forward_step` its step (also
importable from here) and :class:`guided_dml.losses.triplet.PlainTripletLoss` its loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .batches import to_unit_float
from .gemini import class_pair_triplets, triplet_batch_size
from .steps import three_forward_step

__all__ = ["FixedTripletBatches", "three_forward_step"]


@dataclass
class FixedTripletBatches:
    """Batches of ``B`` triplets drawn once from ``(images, labels)``: ``(x (3B, ...), y (3B,))``.

    ``x`` stacks anchors, positives and negatives (in that order, ``B`` each); ``y`` their
    classes. The triplets are drawn with ``seed`` when the source is built and never again
    (the authors' ``TripletDataset.__init__``); each call shuffles their order with the epoch's
    generator (their ``DataLoader(shuffle=True)``). ``B`` is ``batch_size`` capped at half the
    smallest class, as in Algorithm 1.
    """

    images: Tensor  # (N, C, H, W) uint8 or (N, F) float
    labels: Tensor  # (N,) int64
    batch_size: int
    seed: int = 0
    shuffle: bool = True

    def __post_init__(self) -> None:
        self.b = triplet_batch_size(self.labels, self.batch_size)
        drawn = class_pair_triplets(self.labels, self.batch_size,
                                    torch.Generator().manual_seed(self.seed))
        self.anchors = torch.cat([a for _, _, a, _, _ in drawn])
        self.positives = torch.cat([p for _, _, _, p, _ in drawn])
        self.negatives = torch.cat([n for _, _, _, _, n in drawn])

    def __len__(self) -> int:
        return -(-len(self.anchors) // self.b)

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.anchors)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            sel = order[i * self.b : (i + 1) * self.b]
            idx = torch.cat([self.anchors[sel], self.positives[sel], self.negatives[sel]])
            yield to_unit_float(self.images.index_select(0, idx)), self.labels[idx]
