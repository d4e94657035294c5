"""Algorithm 1 of G-DML: class-pair triplet batches for the GEMINI teacher, and its targets.

Every ordered pair of distinct classes ``(c1, c2)`` gives one mini-batch of ``B`` triplets:
anchor and positive from ``c1`` (``2B`` distinct samples, drawn without replacement) and the
negative from ``c2``, with ``B = min(batch_size, smallest class count // 2)``. Only the streams of
``c1`` and ``c2`` are active in a step. One epoch = ``C·(C−1)`` steps (90 for 10 classes).
The teacher's step, :func:`gemini_step` (Eq. 5), lives with the other steps in :mod:`.steps`;
:func:`standardize_targets` is the optional rescaling of the targets for the student.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import DataError
from .batches import to_unit_float
from .steps import gemini_step as gemini_step  # its step, Eq. 5 (re-exported from here)

# (class of anchor/positive, class of negative, anchor idx (B,), positive idx (B,), negative idx (B,))
TripletIndices = tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]


def triplet_batch_size(labels: torch.Tensor, batch_size: int) -> int:
    """``B = min(batch_size, smallest class count // 2)``; refuses classes of fewer than 2."""
    counts = torch.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError(
            "GEMINI needs at least 2 classes (its triplets take the negative from another class); "
            f"the data has {len(present)}"
        )
    smallest = int(present.min())
    if smallest < 2:
        small = (counts == 1).nonzero().flatten().tolist()
        raise DataError(
            f"GEMINI needs at least 2 samples per class (anchor and positive); class(es) {small} "
            "have 1 in the training split: add samples, or drop those classes"
        )
    return max(1, min(batch_size, smallest // 2))


def class_pair_triplets(
    labels: torch.Tensor, batch_size: int, generator: torch.Generator
) -> list[TripletIndices]:
    """The triplets of one epoch of Algorithm 1, one entry per ordered class pair, shuffled."""
    b = triplet_batch_size(labels, batch_size)
    classes = torch.unique(labels).tolist()
    members = {c: (labels == c).nonzero().flatten() for c in classes}
    pairs = [(c1, c2) for c1 in classes for c2 in classes if c1 != c2]
    order = torch.randperm(len(pairs), generator=generator).tolist()
    out: list[TripletIndices] = []
    for k in order:
        c1, c2 = pairs[k]
        own = members[c1][torch.randperm(len(members[c1]), generator=generator)[: 2 * b]]
        other = members[c2][torch.randperm(len(members[c2]), generator=generator)[:b]]
        out.append((c1, c2, own[:b], own[b:], other))
    return out


@dataclass
class TripletBatches:
    """Batch source for GEMINI: yields ``(inputs (3B, ...), classes (3B,))`` per class pair.

    The three parts (anchors, positives, negatives) are concatenated so the teacher runs once per
    step; :func:`gemini_step` splits them again. With ``redraw=False`` the triplets of the first
    epoch are reused in every epoch, as in the authors' code.
    """

    images: torch.Tensor  # (N, C, H, W) uint8 or (N, F) float
    labels: torch.Tensor  # (N,) int64
    batch_size: int
    redraw: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.b = triplet_batch_size(self.labels, self.batch_size)
        n_classes = len(torch.unique(self.labels))
        self._len = n_classes * (n_classes - 1)

    def __len__(self) -> int:
        return self._len

    def __call__(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.redraw:
            generator = torch.Generator().manual_seed(self.seed)
        for c1, c2, a, p, n in class_pair_triplets(self.labels, self.batch_size, generator):
            idx = torch.cat([a, p, n])
            classes = torch.cat(
                [torch.full((2 * len(a),), c1, dtype=torch.long), torch.full((len(n),), c2)]
            )
            yield to_unit_float(self.images.index_select(0, idx)), classes


@torch.no_grad()
def teacher_targets(
    teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """The reduced hypothesis space: ``t_i = G(x_i, y_i)`` for every sample, ``(N, d)`` float32."""
    teacher.eval()
    param = next(teacher.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    parts = []
    for i in range(0, len(images), batch_size):
        x = to_unit_float(images[i : i + batch_size]).to(device)
        out, _ = teacher(x, labels[i : i + batch_size].to(device))
        parts.append(out.cpu())
    return torch.cat(parts).float()


def standardize_targets(train_t: torch.Tensor, val_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GEMINI's targets centred and divided by one isotropic scale (``--target-scaling
    standardize``), both splits with the training targets' centre and scale.

    ``t' = (t − c) / s`` with ``c`` the mean training target and ``s`` the root mean square of
    the centred training targets over all coordinates (one scalar, clamped at 1e-8), so the
    training targets have mean 0 and unit RMS. A translation and one uniform scale are a
    similarity transform: every distance is divided by ``s`` and their order is unchanged, so the
    retrieval metrics of the targets (the reduced hypothesis space of G-DML, Gonzalez-Zapata et
    al., CVPR-W 2022, Algorithm 1) are the same, and only the size of the map that the student
    regresses in Algorithm 2 changes (per-axis scaling would distort it). The paper and the
    authors use the raw targets (the default, ``none``): on digits rescaling measured worse
    (docs/design.md).

    Args:
        train_t: ``(N, d)`` targets of the student's training split.
        val_t: ``(M, d)`` targets of its validation split.

    Returns:
        ``(train targets, val targets)`` rescaled.
    """
    centre = train_t.mean(dim=0)
    scale = (train_t - centre).pow(2).mean().sqrt().clamp_min(1e-8)  # one scalar: isotropic
    return (train_t - centre) / scale, (val_t - centre) / scale
