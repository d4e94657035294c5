"""Algorithm 1's class-pair triplet batches."""

from __future__ import annotations

import pytest
import torch

from guided_dml.errors import DataError
from guided_dml.training import TripletBatches, class_pair_triplets
from guided_dml.training.gemini import triplet_batch_size


def _labels(counts):
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])


def test_every_ordered_pair_once_with_valid_triplets():
    labels = _labels([10, 7, 12, 9])
    trip = class_pair_triplets(labels, batch_size=64, generator=torch.Generator().manual_seed(0))
    pairs = [(c1, c2) for c1, c2, *_ in trip]
    assert sorted(pairs) == [(a, b) for a in range(4) for b in range(4) if a != b]
    b = 7 // 2  # B = min(batch, smallest class // 2)
    for c1, c2, a, p, n in trip:
        assert len(a) == len(p) == len(n) == b
        assert (labels[a] == c1).all() and (labels[p] == c1).all() and (labels[n] == c2).all()
        # anchors and positives are 2B distinct samples
        assert len(set(a.tolist()) | set(p.tolist())) == 2 * b


def test_batch_size_caps_b():
    assert triplet_batch_size(_labels([100, 100]), 8) == 8


def test_refuses_singleton_class_and_single_class():
    with pytest.raises(DataError, match="at least 2 samples"):
        triplet_batch_size(_labels([5, 1, 4]), 8)
    with pytest.raises(DataError, match="at least 2 classes"):
        triplet_batch_size(_labels([5]), 8)


def test_redraw_option():
    labels = _labels([20, 20, 20])
    x = torch.arange(60, dtype=torch.uint8).view(60, 1, 1, 1)
    fixed = TripletBatches(x, labels, 4, redraw=False, seed=1)
    fresh = TripletBatches(x, labels, 4, redraw=True, seed=1)
    e0 = [b[0] for b in fixed(torch.Generator().manual_seed(0))]
    e1 = [b[0] for b in fixed(torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(e0, e1, strict=True))
    f0 = [b[0] for b in fresh(torch.Generator().manual_seed(0))]
    f1 = [b[0] for b in fresh(torch.Generator().manual_seed(1))]
    assert not all(torch.equal(a, b) for a, b in zip(f0, f1, strict=True))
    assert len(fixed) == 6 and len(e0) == 6 and e0[0].shape == (12, 1, 1, 1)
