"""stratified_split: determinism, stratification, coverage and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guided_dml.data import stratified_split
from guided_dml.errors import DataError


def _labels(counts: list[int], seed: int = 0) -> torch.Tensor:
    """Shuffled labels with ``counts[k]`` samples of class ``k``."""
    y = np.repeat(np.arange(len(counts)), counts)
    return torch.from_numpy(np.random.default_rng(seed).permutation(y))


@pytest.mark.parametrize("counts", [[50, 30, 20], [3, 3, 3, 3], [1, 9, 2, 40], [7]])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_partition_and_proportions(counts: list[int], fraction: float) -> None:
    labels = _labels(counts)
    train, val = stratified_split(labels, fraction, seed=3)
    n = len(labels)
    assert train.dtype == val.dtype == torch.int64
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(n))  # disjoint and complete
    assert len(val) == max(1, round(fraction * n))
    train_counts = torch.bincount(labels[train], minlength=len(counts))
    val_counts = torch.bincount(labels[val], minlength=len(counts))
    assert (train_counts >= 1).all()  # every class keeps a training sample
    # Stratified: each class's share is within one sample of the exact quota (or capped).
    for k, c in enumerate(counts):
        assert abs(int(val_counts[k]) - fraction * c) <= 1 or int(val_counts[k]) == c - 1


def test_deterministic_and_seed_dependent() -> None:
    labels = _labels([40, 40, 40])
    a = stratified_split(labels, 0.3, seed=7)
    b = stratified_split(labels.numpy(), 0.3, seed=7)
    c = stratified_split(labels.tolist(), 0.3, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_zero_fraction_gives_empty_validation() -> None:
    train, val = stratified_split(torch.tensor([0, 1, 1]), 0.0)
    assert train.tolist() == [0, 1, 2] and val.numel() == 0


def test_non_contiguous_labels() -> None:
    train, val = stratified_split(torch.tensor([5, 5, 9, 9, 9, 9]), 0.5, seed=0)
    assert len(val) == 3 and len(train) == 3


@pytest.mark.parametrize(
    ("labels", "fraction", "message"),
    [
        ([0, 1, 2], 0.5, "keeping one sample of each"),  # singletons: nothing can move
        ([0, 0, 1, 1], 1.0, r"\[0, 1\)"),
        ([0, 0, 1, 1], -0.1, r"\[0, 1\)"),
        ([], 0.2, "non-empty 1-D"),
        ([[0, 1]], 0.2, "non-empty 1-D"),
        ([0.5, 1.0], 0.2, "integer labels"),
    ],
)
def test_impossible_requests(labels: list, fraction: float, message: str) -> None:
    with pytest.raises(DataError, match=message):
        stratified_split(np.asarray(labels), fraction)
