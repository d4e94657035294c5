"""Exact k-NN: brute-force agreement, tie rule, self-exclusion, chunking, faiss == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guided_dml.errors import ConfigError, DataError
from guided_dml.evaluation import knn
from guided_dml.evaluation.knn import faiss_available, resolve_backend
from guided_dml.evaluation.ranking import rank_queries

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")


@pytest.mark.parametrize("dim", [2, 5, 16])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_torch_matches_brute_force_with_ties(blobs, brute_order, dim, exclude_self):
    x, _ = blobs(150, dim, 4, seed=dim, duplicates=0.2)
    query = x if exclude_self else x[:40]
    _, idx = knn(query, x, 12, exclude_self=exclude_self, backend="torch")
    expected = [order[:12] for order in brute_order(query, x, exclude_self)]
    np.testing.assert_array_equal(idx, expected)


def test_ties_go_to_the_smaller_index():
    # Four references at distance 1 of the origin, listed out of order: ties keep index order.
    reference = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [3.0, 3.0]])
    dist, idx = knn(np.zeros((1, 2)), reference, 5, backend="torch")
    assert idx.tolist() == [[0, 1, 2, 3, 4]]
    assert dist.tolist() == [[1.0, 1.0, 1.0, 1.0, 18.0]]


def test_exclude_self_removes_own_index_only():
    # Rows 0, 1, 2 are the same point: each keeps the other two as neighbours at distance 0.
    x = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    dist, idx = knn(x, None, 2, exclude_self=True, backend="torch")
    assert idx.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]
    assert dist[:3].tolist() == [[0.0, 0.0]] * 3


@pytest.mark.parametrize("dim", [2, 16])
def test_chunking_does_not_change_results(blobs, dim):
    x, _ = blobs(300, dim, 5, seed=1, quantize=False, duplicates=0.1)
    full = knn(x, None, 9, exclude_self=True, backend="torch")
    tiny = knn(x, None, 9, exclude_self=True, backend="torch", memory_budget_mb=0.01)  # 1 row
    np.testing.assert_array_equal(full[0], tiny[0])
    np.testing.assert_array_equal(full[1], tiny[1])


@needs_faiss
@pytest.mark.parametrize("dim", [2, 16, 64])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("k", [1, 8, 150])  # 150 > 100: faiss switches to its reservoir handler
def test_faiss_and_torch_identical(blobs, dim, exclude_self, k):
    x, _ = blobs(400, dim, 6, seed=dim + k, duplicates=0.2)
    query = x if exclude_self else x[:120]
    d_t, i_t = knn(query, x, k, exclude_self=exclude_self, backend="torch")
    d_f, i_f = knn(
        query, x, k, exclude_self=exclude_self, backend="faiss", memory_budget_mb=0.05
    )  # chunked faiss search too
    np.testing.assert_array_equal(i_t, i_f)
    np.testing.assert_array_equal(d_t, d_f)


@needs_faiss
def test_faiss_exclude_self_with_more_duplicates_than_k():
    # Six copies of one point and k = 2: the own index may fall outside faiss's k + 1 results,
    # then the last column is dropped (pytorch-metric-learning's rule); same as exact removal.
    x = np.zeros((7, 2), dtype=np.float32)
    x[6] = 5.0
    _, i_f = knn(x, None, 2, exclude_self=True, backend="faiss")
    _, i_t = knn(x, None, 2, exclude_self=True, backend="torch")
    np.testing.assert_array_equal(i_f, i_t)
    assert i_f[5].tolist() == [0, 1]


@pytest.mark.parametrize("dim", [2, 7, 9, 32])
def test_ranking_neighbours_equal_knn_torch(blobs, dim):
    # evaluate() takes precision@1 and recall@k from the ranking pass when backend is torch:
    # same distances (bit for bit), same tie rule, so the same neighbours as knn().
    x, y = blobs(400, dim, 5, seed=3, quantize=False, duplicates=0.05)
    labels = np.unique(y, return_inverse=True)[1].astype(np.int32)
    ranking = rank_queries(x, labels, x, labels, exclude_self=True, k_top=8, memory_budget_mb=64)
    _, idx = knn(x, None, 8, exclude_self=True, backend="torch")
    np.testing.assert_array_equal(ranking.neighbours, idx)


def test_accepts_torch_tensors_and_float64():
    x = torch.randn(30, 3, dtype=torch.float64)
    _, from_tensor = knn(x, x, 3)
    _, from_array = knn(x.numpy(), x.numpy().astype(np.float32), 3)
    np.testing.assert_array_equal(from_tensor, from_array)


def test_auto_backend_rule():
    assert resolve_backend("auto", 2) == "torch"  # exact direct differences in low dimension
    assert resolve_backend("auto", 64) == ("faiss" if faiss_available() else "torch")
    with pytest.raises(ConfigError, match="backend"):
        resolve_backend("annoy", 2)


@pytest.mark.parametrize(
    ("query", "reference", "k", "kwargs", "message"),
    [
        (np.zeros((3, 2)), np.zeros((4, 3)), 1, {}, "dimensions differ"),
        (np.zeros((3, 2)), np.zeros((4, 2)), 5, {}, "k must be in"),
        (np.zeros((3, 2)), None, 3, {"exclude_self": True}, "k must be in"),
        (np.zeros((5, 2)), np.zeros((4, 2)), 1, {"exclude_self": True}, "fewer rows"),
        (np.array([[0.0, np.nan]]), np.zeros((4, 2)), 1, {}, "NaN or inf"),
        (np.zeros((0, 2)), np.zeros((4, 2)), 1, {}, "empty"),
        (np.zeros(3), np.zeros((4, 2)), 1, {}, "shape"),
        (np.full((1, 2), 1e39), np.zeros((4, 2)), 1, {}, "NaN or inf"),  # overflows float32
    ],
)
def test_bad_input_raises_data_error(query, reference, k, kwargs, message):
    with pytest.raises(DataError, match=message):
        knn(query, reference, k, **kwargs)
