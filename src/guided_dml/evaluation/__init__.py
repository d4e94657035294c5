"""Evaluation: exact chunked k-NN, R-Precision / MAP@R kernel, metrics, and ``evaluate()``.

``evaluate(query, query_labels, reference=None, reference_labels=None)`` returns the paper's
metrics as a dict of floats; ``knn(query, reference, k)`` is the exact neighbour search under it.
"""

from .evaluate import METRIC_KEYS, evaluate
from .knn import BACKENDS, knn

__all__ = ["BACKENDS", "METRIC_KEYS", "evaluate", "knn"]
