"""evaluate(): equality with pytorch-metric-learning's AccuracyCalculator, invariances, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from guided_dml.errors import ConfigError, DataError
from guided_dml.evaluation import METRIC_KEYS, evaluate
from guided_dml.evaluation.knn import faiss_available

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
logging.getLogger("PML").setLevel(logging.ERROR)  # its "lone query" warnings are expected here

PML_KEYS = {
    "precision@1": "precision_at_1",
    "r_precision": "r_precision",
    "map@r": "mean_average_precision_at_r",
}


def pml(query, query_labels, reference=None, reference_labels=None) -> dict[str, float]:
    calculator = AccuracyCalculator(
        include=tuple(PML_KEYS.values()), k="max_bin_count", device=torch.device("cpu")
    )
    if reference is None:
        out = calculator.get_accuracy(query, query_labels)
    else:
        out = calculator.get_accuracy(query, query_labels, reference, reference_labels)
    return {ours: out[theirs] for ours, theirs in PML_KEYS.items()}


def assert_matches_pml(ours: dict[str, float], theirs: dict[str, float], atol: float) -> None:
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=atol), key


CASES = [
    # (n, dim, classes, imbalance, duplicates)
    (100, 2, 3, False, 0.0),
    (400, 2, 10, False, 0.2),
    (500, 2, 25, True, 0.1),
    (300, 3, 7, True, 0.3),
    (300, 8, 5, False, 0.2),
    (250, 16, 4, False, 0.2),
    (300, 64, 12, True, 0.1),
]


@pytest.mark.parametrize(("n", "dim", "n_classes", "imbalance", "duplicates"), CASES)
@pytest.mark.parametrize("leave_one_out", [True, False])
def test_equals_pml_with_ties_and_duplicates(blobs, n, dim, n_classes, imbalance, duplicates, leave_one_out):
    # Grid coordinates (exact float32 arithmetic everywhere): many true ties, some between
    # different labels, and duplicated points. Equality needs the same tie and self rules.
    x, y = blobs(n, dim, n_classes, seed=n + dim, duplicates=duplicates, imbalance=imbalance)
    if leave_one_out:
        ours, theirs = evaluate(x, y), pml(x, y)
    else:
        split = n // 3
        ours = evaluate(x[:split], y[:split], x[split:], y[split:])
        theirs = pml(x[:split], y[:split], x[split:], y[split:])
    assert_matches_pml(ours, theirs, atol=1e-9)


@pytest.mark.parametrize(("n", "dim", "n_classes"), [(600, 2, 10), (400, 2, 4), (500, 5, 8)])
@pytest.mark.parametrize("leave_one_out", [True, False])
def test_equals_pml_on_continuous_low_dim(blobs, n, dim, n_classes, leave_one_out):
    # Plain float embeddings: our direct differences and faiss's expansion round differently,
    # but near-ties that straddle a label change are rare enough at these sizes.
    x, y = blobs(n, dim, n_classes, seed=11 * dim + n_classes, quantize=False, duplicates=0.05)
    if leave_one_out:
        ours, theirs = evaluate(x, y), pml(x, y)
    else:
        ours = evaluate(x[:150], y[:150], x[150:], y[150:])
        theirs = pml(x[:150], y[:150], x[150:], y[150:])
    assert_matches_pml(ours, theirs, atol=1e-6)


@needs_faiss
@pytest.mark.parametrize("dim", [16, 64])
def test_close_to_pml_on_continuous_high_dim(blobs, dim):
    # In high dimension both sides use the expansion |q|^2 + |r|^2 - 2 q.r, with different BLAS
    # summation orders: neighbours closer than float32 rounding may swap. With backend="faiss"
    # the k-NN metrics use faiss's own distances and precision@1 is bit-identical.
    x, y = blobs(500, dim, 6, seed=dim, quantize=False, duplicates=0.1)
    ours, theirs = evaluate(x, y, backend="faiss"), pml(x, y)
    assert ours["precision@1"] == theirs["precision@1"]
    assert_matches_pml(ours, theirs, atol=1e-4)


def test_queries_of_classes_absent_from_reference_are_excluded(blobs):
    x, y = blobs(400, 2, 6, seed=5, duplicates=0.1)
    query, query_labels = x[:150], y[:150]
    keep = y[150:] != 0  # class 0 has no reference items
    reference, reference_labels = x[150:][keep], y[150:][keep]
    ours = evaluate(query, query_labels, reference, reference_labels)
    assert_matches_pml(ours, pml(query, query_labels, reference, reference_labels), atol=1e-9)
    # ... and recall@1 (the classifier) still counts them, as misclassified.
    assert ours["recall@1"] < ours["precision@1"]


def test_singleton_classes_in_leave_one_out(blobs):
    x, y = blobs(200, 2, 4, seed=9, duplicates=0.1)
    y[:3] = [10, 11, 12]  # three classes of one sample: no other item to retrieve
    assert_matches_pml(evaluate(x, y), pml(x, y), atol=1e-9)


@pytest.mark.parametrize("dim", [2, 12])
def test_tiny_memory_budget_gives_identical_results(blobs, dim):
    x, y = blobs(300, dim, 5, seed=2, quantize=False, duplicates=0.1)
    full = evaluate(x[:100], y[:100], x[100:], y[100:], backend="torch")
    tiny = evaluate(x[:100], y[:100], x[100:], y[100:], backend="torch", memory_budget_mb=0.001)
    assert full == tiny


@needs_faiss
@pytest.mark.parametrize("dim", [2, 16])
@pytest.mark.parametrize("leave_one_out", [True, False])
def test_faiss_and_torch_backends_identical(blobs, dim, leave_one_out):
    x, y = blobs(300, dim, 6, seed=dim, duplicates=0.2)
    args = (x, y) if leave_one_out else (x[:100], y[:100], x[100:], y[100:])
    assert evaluate(*args, backend="faiss") == evaluate(*args, backend="torch")


def test_self_excluded_but_duplicates_kept():
    # Two copies of each point, with the same label: leave-one-out finds the copy first.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 2)).astype(np.float32)
    labels = np.arange(20) % 4
    x, y = np.concatenate([base, base]), np.concatenate([labels, labels])
    scores = evaluate(x, y)
    assert scores["precision@1"] == 1.0
    assert scores["recall@1"] == 1.0
    assert_matches_pml(scores, pml(x, y), atol=1e-12)


def test_keys_order_and_range(blobs):
    x, y = blobs(200, 2, 5, seed=1, quantize=False)
    scores = evaluate(x, y)
    assert tuple(scores) == METRIC_KEYS
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())
    assert scores["recall@2"] <= scores["recall@4"] <= scores["recall@8"]
    assert scores["precision@1"] <= scores["recall@2"]


def test_inputs_as_tensors_and_string_labels(blobs):
    x, y = blobs(150, 3, 4, seed=4, quantize=False)
    names = np.array(["cat", "dog", "eel", "fox"])[y]
    as_arrays = evaluate(x[:50], y[:50], x[50:], y[50:])
    as_tensors = evaluate(
        torch.from_numpy(x[:50]).double(),
        torch.from_numpy(y[:50]),
        torch.from_numpy(x[50:]),
        torch.from_numpy(y[50:]),
    )
    as_names = evaluate(x[:50], names[:50], x[50:], names[50:])
    assert as_arrays == as_tensors == as_names


def test_reference_smaller_than_eight():
    query = np.array([[0.0, 0.0], [5.0, 5.0]])
    reference = np.array([[0.1, 0.0], [5.0, 5.1], [9.0, 9.0]])
    scores = evaluate(query, np.array([0, 1]), reference, np.array([0, 1, 2]))
    assert scores["recall@8"] == scores["recall@4"] == 1.0  # all 3 reference items
    assert scores["map@r"] == 1.0


def test_docstring_example():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]])
    scores = evaluate(x, np.array([0, 0, 1, 1]))
    assert scores["map@r"] == scores["precision@1"] == scores["nmi"] == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((3, 2)), np.zeros(4)), {}, "query_labels has 4 entries"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros((4, 2)), np.zeros(5)), {}, "reference_labels"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros((4, 2))), {}, "reference_labels is missing"),
        ((np.zeros((3, 2)), np.zeros(3)), {"reference_labels": np.zeros(3)}, "without reference"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros((4, 5)), np.zeros(4)), {}, "dimensions"),
        ((np.array([[np.inf, 0.0]] * 3), np.zeros(3)), {}, "NaN or inf"),
        ((np.zeros((0, 2)), np.zeros(0)), {}, "empty"),
        ((np.zeros((1, 2)), np.zeros(1)), {}, "at least 2"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {}, "one label per row"),
        ((np.zeros((3, 2)), np.array([0.0, np.nan, 1.0])), {}, "NaN"),
        ((np.zeros((3, 2)), np.array([0, 1, 2])), {}, "no query label occurs"),
        ((np.zeros((3, 2)), np.zeros(3), np.zeros((4, 2)), np.ones(4)), {}, "no query label"),
    ],
)
def test_bad_input_raises_data_error(args, kwargs, message):
    with pytest.raises(DataError, match=message):
        evaluate(*args, **kwargs)


def test_unknown_backend_raises_config_error():
    with pytest.raises(ConfigError, match="backend"):
        evaluate(np.zeros((4, 2)), np.array([0, 0, 1, 1]), backend="annoy")


def test_a_metric_is_one_registry_line(monkeypatch) -> None:
    """Adding a retrieval metric: one function and one RETRIEVAL_METRICS entry."""
    from guided_dml.evaluation import evaluate as evaluate_fn
    from guided_dml.evaluation.evaluate import METRIC_KEYS, RETRIEVAL_METRICS
    from guided_dml.evaluation.metrics import recall_at_k

    assert METRIC_KEYS == ("precision@1", "recall@1", "f1", "recall@2", "recall@4", "recall@8",
                           "r_precision", "map@r", "nmi")
    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(60, 2)), rng.integers(0, 3, 60)
    before = evaluate_fn(emb, labels, nmi=False)
    monkeypatch.setitem(RETRIEVAL_METRICS, "hit@3",
                        lambda r: recall_at_k(r.neighbour_labels[r.ranked], r.labels[r.ranked], 3))
    after = evaluate_fn(emb, labels, nmi=False)
    assert list(after) == [*before, "hit@3"]
    assert {k: after[k] for k in before} == before
    assert before["recall@2"] <= after["hit@3"] <= before["recall@4"]
