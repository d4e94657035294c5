"""The R-Precision / MAP@R kernel against a brute-force loop, and its internal steps."""

from __future__ import annotations

import numpy as np
import pytest

from guided_dml.evaluation import ranking
from guided_dml.evaluation.ranking import rank_queries


def _ids(*label_arrays):
    """Dense int32 ids shared by the given label arrays."""
    ids = np.unique(np.concatenate(label_arrays), return_inverse=True)[1].astype(np.int32)
    return np.split(ids, np.cumsum([len(a) for a in label_arrays])[:-1])


@pytest.mark.parametrize(
    ("n", "dim", "n_classes", "imbalance"),
    [(120, 2, 3, False), (200, 2, 12, True), (150, 4, 5, False), (150, 24, 6, True)],
)
@pytest.mark.parametrize("exclude_self", [True, False])
def test_matches_brute_force_with_ties(blobs, brute_force, n, dim, n_classes, imbalance, exclude_self):
    # Quantized coordinates and 20 % duplicates: many exactly equal distances across labels.
    x, y = blobs(n, dim, n_classes, seed=n + dim, duplicates=0.2, imbalance=imbalance)
    if exclude_self:
        q, ql, r, rl = x, y, x, y
    else:
        q, ql, r, rl = x[:50], y[:50], x[50:], y[50:]
    q_ids, r_ids = _ids(ql, rl)
    got = rank_queries(q, q_ids, r, r_ids, exclude_self=exclude_self, k_top=8, memory_budget_mb=1)
    want = brute_force(q, ql, r, rl, exclude_self)
    np.testing.assert_array_equal(got.n_relevant, want["R"])
    np.testing.assert_allclose(got.map_at_r, want["map_at_r"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.r_precision, want["r_precision"], rtol=0, atol=1e-12)
    hit1 = (r_ids[got.neighbours[:, 0]] == q_ids).astype(float)
    np.testing.assert_array_equal(hit1, want["hit@1"])


def test_all_points_equal():
    # Every distance ties (0): the order is the index order, so AP@R follows the label sequence.
    x = np.zeros((6, 2), dtype=np.float32)
    labels = np.array([0, 1, 0, 1, 0, 0], dtype=np.int32)
    got = rank_queries(x, labels, x, labels, exclude_self=True, k_top=3, memory_budget_mb=1)
    # query 0 (label 0, R = 3) ranks 1, 2, 3, 4, 5 -> labels 1, 0, 1, 0, 0: hits at ranks 2
    assert got.r_precision[0] == pytest.approx(1 / 3)
    assert got.map_at_r[0] == pytest.approx((1 / 2) / 3)
    assert got.neighbours[0].tolist() == [1, 2, 3]
    assert got.neighbours[5].tolist() == [0, 1, 2]


def test_lone_queries_get_nan():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    labels = np.array([0, 0, 1], dtype=np.int32)
    got = rank_queries(x, labels, x, labels, exclude_self=True, k_top=2, memory_budget_mb=1)
    assert got.n_relevant.tolist() == [1, 1, 0]
    assert np.isnan(got.map_at_r[2]) and np.isnan(got.r_precision[2])
    assert got.map_at_r[:2].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dim", [2, 20])
def test_chunking_invariance(blobs, dim):
    x, y = blobs(300, dim, 4, seed=7, quantize=False, duplicates=0.1)
    (ids,) = _ids(y)
    big = rank_queries(x, ids, x, ids, exclude_self=True, k_top=8, memory_budget_mb=512)
    tiny = rank_queries(x, ids, x, ids, exclude_self=True, k_top=8, memory_budget_mb=0.001)
    for field in ("map_at_r", "r_precision", "neighbours"):
        np.testing.assert_array_equal(getattr(big, field), getattr(tiny, field))


def test_dominant_class_sorts_almost_everything(blobs, brute_force):
    # R close to N: the threshold sits near the top of the sample and nearly all items are kept.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    y = (rng.random(300) < 0.05).astype(np.int64)  # class 0 holds ~95 %
    (ids,) = _ids(y)
    got = rank_queries(x, ids, x, ids, exclude_self=True, k_top=8, memory_budget_mb=1)
    want = brute_force(x, y, x, y, True)
    np.testing.assert_allclose(got.map_at_r, want["map_at_r"], rtol=0, atol=1e-12)


def test_select_falls_back_to_histogram_when_the_sample_misleads():
    # Sampled (even) positions hold small distances, odd positions large ones: the sample's
    # quantile keeps too few items and the histogram pass must take over.
    n, k = 4096, 3000
    dist = np.where(np.arange(n) % 2 == 0, np.arange(n), 10_000 + np.arange(n)).astype(np.float32)
    bits = dist.view(np.uint32)
    labels = np.zeros(n, dtype=np.int32)
    keys = np.empty(n, np.uint64)
    scratch = np.empty(2 * n, np.uint32)
    m = ranking._select(
        bits, labels, 0, k, keys, scratch, np.empty(2048, np.uint32), np.empty(4096, np.int64)
    )
    kept = (keys[:m] & np.uint64(0xFFFFFFFF)) >> np.uint64(1)
    smallest = np.lexsort((np.arange(n), dist))[:k]
    assert m >= k
    assert set(smallest.tolist()) <= set(kept.tolist())
    assert np.all(np.diff(kept.astype(np.int64)) > 0)  # index order, for the stable sort


@pytest.mark.parametrize("spread", [0, 5, 20, 32])
def test_radix_sort_equals_numpy_sort(spread):
    rng = np.random.default_rng(spread)
    m = 5000
    high = rng.integers(0, 2**spread, size=m, dtype=np.uint64) if spread else np.zeros(m, np.uint64)
    keys = (high << np.uint64(32)) | np.arange(m, dtype=np.uint64)  # index order in the low bits
    want = np.sort(keys)
    tmp = np.empty(m, np.uint64)
    ranking._radix_sort(keys, m, tmp, np.empty((3, 2048), np.int64))
    np.testing.assert_array_equal(keys, want)
