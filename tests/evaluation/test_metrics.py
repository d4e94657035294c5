"""Pure metric functions: hit rates, the 1-NN classifier scores (vs scikit-learn), NMI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score
from sklearn.neighbors import KNeighborsClassifier

from guided_dml.errors import DataError
from guided_dml.evaluation import evaluate
from guided_dml.evaluation.metrics import (
    classifier_scores,
    mean_over_queries,
    nmi,
    precision_at_1,
    recall_at_k,
)


def test_recall_at_k_by_hand():
    neighbour_labels = np.array([[1, 0, 0], [1, 1, 2], [2, 2, 1]])
    labels = np.array([0, 2, 1])
    assert recall_at_k(neighbour_labels, labels, 1) == 0.0
    assert recall_at_k(neighbour_labels, labels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(neighbour_labels, labels, 3) == 1.0
    assert recall_at_k(neighbour_labels, labels, 8) == 1.0  # k beyond the columns: all of them
    assert precision_at_1(neighbour_labels, np.array([1, 1, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(("dim", "n_classes"), [(2, 3), (2, 10), (6, 4), (32, 7)])
def test_1nn_scores_match_sklearn_classifier(blobs, dim, n_classes):
    # Continuous embeddings: no distance ties, so sklearn's 1-NN (whose tie order differs from
    # ours) predicts the same labels.
    x, y = blobs(500, dim, n_classes, seed=dim * n_classes, quantize=False)
    q, ql, r, rl = x[:150], y[:150], x[150:], y[150:]
    predicted = KNeighborsClassifier(n_neighbors=1).fit(r, rl).predict(q)
    scores = evaluate(q, ql, r, rl, backend="torch")
    assert scores["recall@1"] == pytest.approx(recall_score(ql, predicted, average="macro"), abs=1e-12)
    assert scores["f1"] == pytest.approx(f1_score(ql, predicted, average="macro"), abs=1e-12)


def test_classifier_scores_with_a_class_never_true():
    # Class 2 is predicted but absent from the truth: it scores 0 in the macro averages,
    # as scikit-learn's default (without its warning).
    recall, f1 = classifier_scores(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]))
    assert recall == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert f1 == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_nmi_perfect_and_seeded(blobs):
    x, y = blobs(300, 2, 3, seed=0, quantize=False)
    separated = x + 100.0 * y[:, None]  # far-apart clusters
    assert nmi(separated, y) == pytest.approx(1.0)
    assert nmi(x, y, seed=3) == nmi(x, y, seed=3)


def test_nmi_single_class_is_one():
    x = np.random.default_rng(0).normal(size=(20, 2))
    assert nmi(x, np.zeros(20, dtype=int)) == 1.0


def test_nmi_fewer_distinct_points_than_classes():
    x = np.zeros((4, 2))  # one distinct point, two classes: defined (k-means leaves a cluster empty)
    assert nmi(x, np.array([0, 0, 1, 1])) == 0.0


def test_nmi_rejects_more_clusters_than_points():
    with pytest.raises(DataError, match="clusters"):
        nmi(np.zeros((3, 2)), np.array([0, 1, 2]), n_clusters=5)
    with pytest.raises(DataError, match="labels"):
        nmi(np.zeros((3, 2)), np.array([0, 1]))


def test_mean_over_zero_queries_raises():
    with pytest.raises(DataError):
        mean_over_queries(np.array([]))
