"""The one ``evaluate()``: every number the paper's tables report, from embeddings and labels.

Protocol (G-DML paper, Section "Evaluation"; metric definitions from K. Musgrave, S. Belongie,
S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020, https://arxiv.org/abs/2003.08505):

* with a ``reference`` (the paper: test queries, training reference), every query is searched in
  the reference;
* without one, every query is searched among the other queries (leave-one-out: the query's own
  index is excluded; an exact duplicate of it at another index is a neighbour at distance 0).

Neighbours are ordered by float32 squared Euclidean distance, ties broken by the smaller
reference index; this is faiss ``IndexFlatL2``'s order, so the retrieval metrics equal
pytorch-metric-learning's ``AccuracyCalculator(k="max_bin_count")`` (see :mod:`.knn`).

Which queries count:

* ``precision@1``, ``recall@k``, ``r_precision`` and ``map@r`` average over the queries whose label
  has at least one reference item (in leave-one-out: at least one *other* item). A query of an
  absent class has ``R = 0`` and no possible hit; pytorch-metric-learning leaves such "lone"
  queries out of the averages too.
* ``recall@1`` and ``f1`` score the 1-NN classifier on *all* queries (a query of an absent class
  is simply misclassified).
* ``nmi`` clusters all query embeddings.

Scale: the exact pass holds one chunk of query x reference distances (``memory_budget_mb``) and
per-thread rows of ``O(N)``, never a ``Q x N`` or ``Q x R`` table; 10 000 queries against
1 000 000 references of dimension 128 run exactly in about 1 GB besides the inputs
(docs/benchmarks.md). ``index="ivf"`` searches a faiss IVF index instead and reports how many of
the exact neighbours it found (:mod:`.approximate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import approximate
from .knn import (
    DEFAULT_MEMORY_BUDGET_MB,
    ArrayLike,
    Backend,
    as_embeddings,
    knn,
    resolve_backend,
)
from .metrics import (
    classifier_scores,
    mean_over_queries,
    precision_at_1,
    recall_at_k,
)
from .metrics import (
    nmi as nmi_score,
)
from .ranking import rank_queries, relevant_counts

RECALL_AT: tuple[int, ...] = (2, 4, 8)  # recall@1 is the 1-NN classifier's macro recall instead


@dataclass(frozen=True)
class Retrieved:
    """What every retrieval metric is computed from (one exact or IVF pass).

    Attributes:
        neighbour_labels: ``(Q, k)`` class ids of each query's nearest reference items.
        labels: ``(Q,)`` class ids of the queries.
        ranked: ``(Q,)`` the queries whose class has at least one reference item (``R > 0``).
        r_precision, map_at_r: ``(Q,)`` per-query R-Precision and MAP@R (:mod:`.ranking`).
    """

    neighbour_labels: np.ndarray
    labels: np.ndarray
    ranked: np.ndarray
    r_precision: np.ndarray
    map_at_r: np.ndarray

    @cached_property
    def classifier(self) -> tuple[float, float]:
        """``(macro recall, macro F1)`` of the 1-NN classifier on all queries, computed once for
        both metrics (cached_property writes the instance dict, which a frozen dataclass allows)."""
        return classifier_scores(self.labels, self.neighbour_labels[:, 0])


def _recall_at(k: int) -> Callable[[Retrieved], float]:
    return lambda r: recall_at_k(r.neighbour_labels[r.ranked], r.labels[r.ranked], k)


#: The retrieval metrics, in the order ``evaluate`` returns them: adding one is a function (in
#: :mod:`.metrics`) and one line here. precision@1, recall@k, R-Precision and MAP@R average
#: over the ranked queries; recall@1 and F1 score the 1-NN classifier on all queries.
RETRIEVAL_METRICS: dict[str, Callable[[Retrieved], float]] = {
    "precision@1": lambda r: precision_at_1(r.neighbour_labels[r.ranked], r.labels[r.ranked]),
    "recall@1": lambda r: r.classifier[0],
    "f1": lambda r: r.classifier[1],
    **{f"recall@{k}": _recall_at(k) for k in RECALL_AT},
    "r_precision": lambda r: mean_over_queries(r.r_precision[r.ranked]),
    "map@r": lambda r: mean_over_queries(r.map_at_r[r.ranked]),
}
#: Every key of ``evaluate``'s result: the retrieval metrics, then NMI (k-means on the queries).
METRIC_KEYS: tuple[str, ...] = (*RETRIEVAL_METRICS, "nmi")
ANN_KEYS: tuple[str, ...] = ("ann_recall@1", "ann_recall@8")  # index="ivf" only
INDEXES: tuple[str, ...] = ("exact", "ivf")


def _as_labels(labels: ArrayLike | None, name: str, n: int) -> np.ndarray:
    """Labels as a 1-D numpy array of length ``n`` (any dtype ``np.unique`` can sort)."""
    if labels is None:
        raise DataError(f"{name} is missing")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{name} must be one label per row, got shape {arr.shape}")
    if len(arr) != n:
        raise DataError(f"{name} has {len(arr)} entries but the embeddings have {n} rows")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or inf")
    return arr


def evaluate(
    query: ArrayLike,
    query_labels: ArrayLike,
    reference: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    *,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    backend: Backend = "auto",
    seed: int = 0,
    nmi: bool = True,
    index: str = "exact",
    nlist: int | None = None,
    nprobe: int | None = None,
    ann_sample: int = 200,
) -> dict[str, float]:
    """Retrieval, 1-NN classification and clustering scores of embeddings.

    Args:
        query: ``(Q, d)`` embeddings, numpy array or torch tensor (any device; cast to float32).
        query_labels: ``(Q,)`` labels (integers, or anything ``np.unique`` can sort).
        reference: ``(N, d)`` embeddings to search in; ``None`` for leave-one-out on the queries.
        reference_labels: ``(N,)`` labels; given exactly when ``reference`` is.
        memory_budget_mb: working memory for chunks of the query x reference distances.
        backend: k-NN engine for ``precision@1``, ``recall@k`` and the 1-NN classifier.
            ``"auto"`` / ``"torch"``: the neighbours found by the exact ranking pass that
            computes R-Precision and MAP@R (same distances as ``knn(backend="torch")``, no second
            pass). ``"faiss"``: a faiss ``IndexFlatL2`` search, bit-identical to
            pytorch-metric-learning's k-NN (float32 rounding of near-ties differs from ours).
        seed: k-means seed for ``nmi``.
        nmi: compute NMI (k-means, the slowest part on small inputs); ``False`` leaves the key
            out, e.g. for per-epoch model selection.
        index: ``"exact"``, or ``"ivf"``: neighbours from a faiss ``IndexIVFFlat`` (approximate;
            ``backend`` is then ignored). See :mod:`guided_dml.evaluation.approximate`.
        nlist: IVF cells (default ``sqrt(N)``).
        nprobe: cells scanned per query (default: 2 % of the reference, or twice the largest
            class if that is more).
        ann_sample: queries searched exactly as well to measure the IVF search's recall (200:
            a standard error of about 0.01 on a recall near 0.9, for a few per cent of the IVF's cost at
            N = 1 000 000).

    Returns:
        ``{"precision@1", "recall@1", "f1", "recall@2", "recall@4", "recall@8", "r_precision",
        "map@r", "nmi"}``, each a float in ``[0, 1]``. ``recall@k`` with ``k`` above the number of
        reference items uses all of them. With ``index="ivf"`` also ``"ann_recall@1"`` and
        ``"ann_recall@8"``: the share of the exact 1 and 8 nearest neighbours that the index
        found, on ``ann_sample`` random queries.

    Raises:
        DataError: empty or non-finite embeddings, mismatched lengths or dimensions, fewer than
            two points in leave-one-out, or no query label present in the reference.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]])
        >>> evaluate(x, np.array([0, 0, 1, 1]))["map@r"]
        1.0
    """
    # numba's parallel kernels and threadpoolctl set the OpenMP thread count that torch shares;
    # restore torch's setting so that evaluating (e.g. for model selection between epochs)
    # never changes how training computes afterwards (thread count changes summation order).
    torch_threads = torch.get_num_threads()
    try:
        return _evaluate(query, query_labels, reference, reference_labels,
                         memory_budget_mb=memory_budget_mb, backend=backend, seed=seed, nmi=nmi,
                         index=index, nlist=nlist, nprobe=nprobe, ann_sample=ann_sample)
    finally:
        torch.set_num_threads(torch_threads)


def _evaluate(
    query: ArrayLike,
    query_labels: ArrayLike,
    reference: ArrayLike | None,
    reference_labels: ArrayLike | None,
    *,
    memory_budget_mb: float,
    backend: Backend,
    seed: int,
    nmi: bool,
    index: str,
    nlist: int | None,
    nprobe: int | None,
    ann_sample: int,
) -> dict[str, float]:
    q = as_embeddings(query, "query")
    resolve_backend(backend, q.shape[1])  # ConfigError for an unknown or missing backend
    if index not in INDEXES:
        raise ConfigError(f"index must be one of {INDEXES}, got {index!r}")
    q_labels = _as_labels(query_labels, "query_labels", len(q))
    leave_one_out = reference is None
    if leave_one_out:
        if reference_labels is not None:
            raise DataError("reference_labels given without reference embeddings")
        ref, r_labels = q, q_labels
        if len(q) < 2:
            raise DataError("leave-one-out evaluation needs at least 2 queries, got 1")
    else:
        ref = as_embeddings(reference, "reference")
        r_labels = _as_labels(reference_labels, "reference_labels", len(ref))
        if ref.shape[1] != q.shape[1]:
            raise DataError(f"query and reference dimensions differ: {q.shape[1]} vs {ref.shape[1]}")

    # Dense int32 class ids shared by query and reference: (Q,), (N,).
    try:
        _, ids = np.unique(np.concatenate([q_labels, r_labels]), return_inverse=True)
    except TypeError as exc:
        raise DataError(f"labels cannot be compared with each other: {exc}") from exc
    q_ids = ids[: len(q)].astype(np.int32)
    r_ids = q_ids if leave_one_out else ids[len(q) :].astype(np.int32)

    k_top = min(max(RECALL_AT), len(ref) - int(leave_one_out))
    ann: dict[str, float] = {}
    if index == "ivf":
        max_r = int(relevant_counts(q_ids, r_ids, leave_one_out).max())
        settings = approximate.ivf_settings(len(ref), nlist, nprobe, max_relevant=max_r)
        ivf = approximate.build_ivf(ref, settings, seed=seed)
        ranking = approximate.rank_queries_ivf(
            q, q_ids, ref, r_ids, exclude_self=leave_one_out, k_top=k_top,
            memory_budget_mb=memory_budget_mb, index=ivf,
        )
        ann = approximate.search_recall(ivf, q, ref, ranking.neighbours, exclude_self=leave_one_out,
                                        sample=ann_sample, seed=seed)
        del ivf  # its copy of the reference
    else:
        ranking = rank_queries(
            q, q_ids, ref, r_ids, exclude_self=leave_one_out, k_top=k_top,
            memory_budget_mb=memory_budget_mb,
        )
    ranked = ranking.n_relevant > 0  # (Q,) queries with at least one possible hit
    if not ranked.any():
        raise DataError(
            "no query label occurs in the reference (in leave-one-out: every class has a single "
            "sample), so no retrieval metric is defined"
        )
    if backend == "faiss" and index == "exact":
        _, neighbours = knn(
            q,
            None if leave_one_out else ref,
            k_top,
            exclude_self=leave_one_out,
            memory_budget_mb=memory_budget_mb,
            backend="faiss",
        )
    else:
        neighbours = ranking.neighbours  # (Q, k_top), same order and tie rule as knn(torch)
    neighbour_labels = r_ids[neighbours]  # (Q, k_top)

    retrieved = Retrieved(neighbour_labels, q_ids, ranked, ranking.r_precision, ranking.map_at_r)
    results = {key: metric(retrieved) for key, metric in RETRIEVAL_METRICS.items()}
    if nmi:
        results["nmi"] = nmi_score(q, q_ids, seed=seed)
    results.update(ann)
    # The registry read now (not METRIC_KEYS, fixed at import): a metric added to it is returned.
    return {key: results[key] for key in (*RETRIEVAL_METRICS, "nmi", *ANN_KEYS) if key in results}
