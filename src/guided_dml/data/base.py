"""The in-memory data set every loader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from .mapped import MappedImages


@dataclass(repr=False, eq=False)
class ArrayDataset:
    """Images (or feature vectors) and integer labels held in memory.

    Attributes:
        images: ``uint8 (N, C, H, W)`` images, or ``float32 (N, F)`` feature vectors; or a
            :class:`~guided_dml.data.mapped.MappedImages` of ``uint8`` images on disk (the
            retrieval benchmarks), which indexes like the tensor.
        labels: ``int64 (N,)`` class indices in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` names label ``k``.
        name: data set name and split, for messages and reports (e.g. ``"mnist/train"``).
        paths: the file each sample was read from, relative to the data set's root
            (``"train/cat/0001.jpg"``), for image folders; ``None`` for other sources.

    Examples:
        >>> ds = ArrayDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
        ...                   torch.tensor([0, 1, 1, 0]), ["a", "b"], "toy")
        >>> len(ds), ds.input_shape, ds.class_counts().tolist()
        (4, (1, 8, 8), [2, 2])
    """

    images: torch.Tensor | MappedImages
    labels: torch.Tensor
    classes: list[str]
    name: str
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        where = f"data set {self.name!r}"
        if (not isinstance(self.images, (torch.Tensor, MappedImages))
                or not isinstance(self.labels, torch.Tensor)):
            raise DataError(f"{where}: images and labels must be torch tensors")
        if self.images.dtype == torch.uint8:
            if self.images.dim() != 4:
                raise DataError(
                    f"{where}: uint8 images must be N×C×H×W, got shape {tuple(self.images.shape)}"
                )
        elif self.images.dtype == torch.float32:
            if self.images.dim() != 2:
                raise DataError(
                    f"{where}: float32 features must be N×F, got shape {tuple(self.images.shape)}"
                )
        else:
            raise DataError(f"{where}: images must be uint8 N×C×H×W or float32 N×F, got {self.images.dtype}")
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise DataError(
                f"{where}: labels must be a 1-D int64 tensor, got {self.labels.dtype} "
                f"of shape {tuple(self.labels.shape)}"
            )
        if len(self.labels) != len(self.images):
            raise DataError(f"{where}: {len(self.images)} images but {len(self.labels)} labels")
        if self.paths is not None and len(self.paths) != len(self.labels):
            raise DataError(f"{where}: {len(self.labels)} samples but {len(self.paths)} file paths")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise DataError(f"{where}: the class list is empty")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(
                f"{where}: labels must lie in [0, {len(self.classes)}), got "
                f"[{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """One sample as ``(image, label)``, so the data set also works with a DataLoader."""
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, dtype={self.images.dtype})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``; some may have no sample in this split)."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` for images, ``(F,)`` for feature vectors."""
        return tuple(self.images.shape[1:])

    def class_counts(self) -> torch.Tensor:
        """``int64 (num_classes,)``: number of samples of each class."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> ArrayDataset:
        """The samples at ``idx`` (integer indices or a boolean mask), same classes and name.

        Raises:
            DataError: an index is out of range or the mask has the wrong length.
        """
        index = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise DataError(
                    f"data set {self.name!r}: boolean mask has shape {tuple(index.shape)}, "
                    f"expected ({len(self)},)"
                )
            index = index.nonzero().flatten()
        index = index.long().flatten()
        if len(index) and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise DataError(f"data set {self.name!r}: subset index out of range for {len(self)} samples")
        paths = None if self.paths is None else [self.paths[i] for i in index.tolist()]
        # A mapped set stays on disk: its subset is a view (splitting off validation reads nothing).
        images = self.images.take(index) if isinstance(self.images, MappedImages) else self.images[index]
        return ArrayDataset(images, self.labels[index], list(self.classes), self.name, paths=paths)

    def with_classes(self, keep: Sequence[int]) -> ArrayDataset:
        """Only the samples of classes ``keep`` (indices into :attr:`classes`), relabelled
        ``0..len(keep)-1`` in the order given; ``classes`` lists their names in that order.
        The class-disjoint protocol's seen and unseen parts (:func:`~guided_dml.data.splits.
        class_disjoint_classes`)."""
        keep = [int(k) for k in keep]
        if len(set(keep)) != len(keep) or any(not 0 <= k < self.num_classes for k in keep):
            raise DataError(f"data set {self.name!r}: classes {keep} are not distinct indices "
                            f"in [0, {self.num_classes})")
        new_label = torch.full((self.num_classes,), -1, dtype=torch.int64)
        new_label[torch.tensor(keep, dtype=torch.int64)] = torch.arange(len(keep))
        part = self.subset(new_label[self.labels] >= 0)
        return ArrayDataset(part.images, new_label[part.labels], [self.classes[k] for k in keep],
                            self.name, paths=part.paths)
