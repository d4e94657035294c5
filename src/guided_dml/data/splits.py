"""Deterministic stratified splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .names import is_class_disjoint

if TYPE_CHECKING:
    from .base import ArrayDataset


def stratified_split(
    labels: torch.Tensor | np.ndarray | Sequence[int],
    val_fraction: float,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into train and validation parts with the same class proportions.

    The validation part gets ``max(1, round(val_fraction * N))`` samples, shared among classes in
    proportion to their size (largest remainder, ties to the smaller class index), never taking a
    class's last sample: every class keeps at least one sample on the train side. Which samples
    of a class go to validation is drawn with ``numpy.random.default_rng(seed)``, so the split
    depends only on ``labels``, ``val_fraction`` and ``seed``.

    Args:
        labels: ``(N,)`` integer class labels (any non-negative integers).
        val_fraction: fraction of samples for validation, in ``[0, 1)``; 0 gives an empty part.
        seed: random seed.

    Returns:
        ``(train_idx, val_idx)``: sorted ``int64`` index tensors, disjoint, covering ``0..N-1``.

    Raises:
        DataError: ``val_fraction`` is outside ``[0, 1)``, ``labels`` is not a non-empty 1-D
            integer array, or the request cannot leave one sample of every class for training.

    Examples:
        >>> tr, va = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
        >>> len(tr), len(va)
        (4, 4)
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"stratified_split needs a non-empty 1-D label array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"stratified_split needs integer labels, got dtype {y.dtype}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(y)
    if val_fraction == 0.0:
        return torch.arange(n, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)

    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_val = max(1, round(val_fraction * n))
    capacity = counts - 1  # each class keeps one sample for training
    if n_val > capacity.sum():
        raise DataError(
            f"cannot put {n_val} of {n} samples in validation (val_fraction={val_fraction}) "
            f"while keeping one sample of each of the {len(classes)} classes for training; "
            f"lower val_fraction or use more data"
        )
    quota = val_fraction * counts
    take = np.minimum(np.floor(quota).astype(np.int64), capacity)
    # Largest remainder: hand the leftover samples to the classes that were rounded down most.
    order = np.lexsort((np.arange(len(classes)), -(quota - take)))
    left = n_val - int(take.sum())
    while left > 0:
        for k in order:
            if left == 0:
                break
            if take[k] < capacity[k]:
                take[k] += 1
                left -= 1
    rng = np.random.default_rng(seed)
    # Group indices by class once (stable sort keeps them ascending within a class).
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    val_parts = [rng.permutation(members)[:t] for members, t in zip(by_class, take, strict=True)]
    val_mask = np.zeros(n, dtype=bool)
    val_mask[np.concatenate(val_parts)] = True
    return (
        torch.from_numpy(np.flatnonzero(~val_mask)).long(),
        torch.from_numpy(np.flatnonzero(val_mask)).long(),
    )


def parse_class_list(text: str, num_classes: int) -> list[int]:
    """``"0-4"``, ``"0,2,5"`` or ``"0-2,7"``: sorted, distinct class indices in
    ``[0, num_classes)``.

    Raises:
        DataError: not of that form, an index out of range, or empty.
    """
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise DataError(f"--train-classes {text!r}: expected indices such as 0-4 or 0,2,5"
                            ) from None
        if not 0 <= a <= b < num_classes:
            raise DataError(f"--train-classes {text!r}: {part} is outside 0-{num_classes - 1}")
        out.update(range(a, b + 1))
    if not out:
        raise DataError(f"--train-classes {text!r} names no class")
    return sorted(out)


def class_disjoint_classes(num_classes: int, train_classes: str | None = None
                           ) -> tuple[list[int], list[int]]:
    """``(seen, unseen)`` class indices of the class-disjoint protocol.

    The field's protocol (Oh Song et al. 2016; Musgrave et al. 2020; the MDR paper): the first
    half of the classes, sorted by label, for training and validation, the rest for testing
    only (``ceil(C/2)`` seen when ``C`` is odd). ``train_classes`` (:func:`parse_class_list`)
    chooses the seen ones instead.

    Raises:
        DataError: fewer than 2 seen or 2 unseen classes (retrieval needs a negative).
    """
    seen = (parse_class_list(train_classes, num_classes) if train_classes
            else list(range(-(-num_classes // 2))))
    unseen = [c for c in range(num_classes) if c not in set(seen)]
    if len(seen) < 2 or len(unseen) < 2:
        raise DataError(f"the class-disjoint split needs at least 2 seen and 2 unseen classes; "
                        f"got {len(seen)} seen and {len(unseen)} unseen of {num_classes}")
    return seen, unseen


def class_disjoint_splits(train: ArrayDataset, test: ArrayDataset, dataset: str,
                          train_classes: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The class-disjoint protocol's training set (the seen classes' training images) and test
    set (the unseen classes' test images, queries and reference at once).

    The retrieval benchmarks (:data:`~guided_dml.data.names.CLASS_DISJOINT`) come split that way
    and are returned as they are; any other set is cut by :func:`class_disjoint_classes`.
    """
    if is_class_disjoint(dataset):
        return train, test
    seen, unseen = class_disjoint_classes(train.num_classes, train_classes)
    return train.with_classes(seen), test.with_classes(unseen)
