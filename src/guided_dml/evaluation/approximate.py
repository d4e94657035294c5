"""Approximate retrieval metrics with a faiss inverted-file index (IVF), and their accuracy.

For reference sets where even the exact chunked pass of :mod:`.ranking` takes too long,
``evaluate(..., index="ivf")`` searches a faiss ``IndexIVFFlat`` instead (H. Jégou, M. Douze,
C. Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011, Section IV-A; J.
Johnson, M. Douze, H. Jégou, "Billion-scale similarity search with GPUs", 2017): k-means splits
the reference into ``nlist`` cells, and a query compares itself with the items of its ``nprobe``
nearest cells only, about ``nprobe / nlist`` of the reference.

Every metric of the exact path is computed from the neighbours the index returns: precision@1,
recall@k and the 1-NN classifier from the first ``k_top``; R-Precision and MAP@R from the first
``R`` (the query's class count), where an item the index missed counts as a miss. How good the
approximation is gets measured, not assumed: ``ann_recall@1`` and ``ann_recall@k`` are the
fractions of the exact 1 and ``k`` nearest neighbours the index finds, on a random sample of
queries searched exactly as well (faiss ``IndexFlatL2``).

Defaults: ``nlist = sqrt(N)`` (faiss's guidance is 4-16 sqrt(N) for large N; fewer cells keep the
k-means training and the assignment of N items cheap on a CPU) and ``nprobe`` = the cells that
hold 2 % of the reference, or twice the largest class if that is more: MAP@R looks at the ``R``
nearest items, which an index scanning fewer than ``R`` items cannot return. The k-means runs
on at most ``TRAIN_POINTS_PER_LIST`` items per cell, sampled by faiss with a fixed seed, so
results are repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .knn import chunk_rows, faiss
from .ranking import Ranking, relevant_counts

TRAIN_POINTS_PER_LIST = 64  # faiss warns below 39; its default (256) makes k-means 4x dearer
SCAN_FRACTION = 0.02  # default nprobe / nlist


@dataclass(frozen=True)
class IvfSettings:
    """Resolved IVF parameters (what the results were computed with)."""

    nlist: int
    nprobe: int


def ivf_settings(
    n_reference: int, nlist: int | None, nprobe: int | None, max_relevant: int = 0
) -> IvfSettings:
    """Defaults filled in and checked: ``1 <= nprobe <= nlist <= N``.

    ``max_relevant``: the largest class count ``R`` among the queries (for the default nprobe).
    """
    if nlist is None:
        nlist = max(1, round(math.sqrt(n_reference)))
    if nprobe is None:
        fraction = max(SCAN_FRACTION, 2 * max_relevant / n_reference)
        nprobe = min(nlist, max(1, math.ceil(nlist * fraction)))
    if not 1 <= nlist <= n_reference:
        raise ConfigError(f"nlist must be between 1 and the reference size {n_reference}, got {nlist}")
    if not 1 <= nprobe <= nlist:
        raise ConfigError(f"nprobe must be between 1 and nlist = {nlist}, got {nprobe}")
    return IvfSettings(nlist, nprobe)


def build_ivf(reference: np.ndarray, settings: IvfSettings, seed: int = 0) -> Any:
    """A trained and filled ``faiss.IndexIVFFlat`` over ``reference`` ``(N, d)`` float32."""
    if faiss is None:
        raise ConfigError("index='ivf' needs faiss: pip install 'guided-dml[faiss]'")
    dim = reference.shape[1]
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, settings.nlist)
    index.cp.seed = seed
    index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    index.cp.min_points_per_centroid = 1  # tiny references: no warning, training still works
    index.train(reference)
    index.add(reference)
    index.nprobe = settings.nprobe
    return index


def _search(
    index: Any, query: np.ndarray, start: int, k: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(dist, idx)`` of the ``k`` nearest found, ``(Qc, k)``; ``-1`` where fewer were found.

    Leave-one-out searches one more and drops the query's own index (or the last column),
    pytorch-metric-learning's rule (see :mod:`.knn`).
    """
    dist, idx = index.search(query, k + int(exclude_self))
    if exclude_self:
        own = idx == np.arange(start, start + len(query))[:, None]
        own[~own.any(axis=1), -1] = True
        dist = dist[~own].reshape(len(query), k)
        idx = idx[~own].reshape(len(query), k)
    return dist, idx


def rank_queries_ivf(
    query: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    *,
    exclude_self: bool,
    k_top: int,
    memory_budget_mb: float,
    index: Any,
) -> Ranking:
    """:func:`.ranking.rank_queries` from the neighbours an IVF ``index`` over ``reference``
    returns (same arguments and result; see the module docstring for what is approximate)."""
    n_query = len(query)
    n_relevant = relevant_counts(query_labels, reference_labels, exclude_self)
    available = len(reference) - int(exclude_self)
    k = int(min(max(k_top, int(n_relevant.max())), available))
    map_at_r = np.full(n_query, np.nan)
    r_precision = np.full(n_query, np.nan)
    neighbours = np.empty((n_query, k_top), np.int64)
    ranks = np.arange(1, k + 1, dtype=np.float64)  # (k,)
    # per (query, result): faiss's float32 distance + int64 id, then int64 labels, a bool mask,
    # int32 running hit counts and float64 precisions
    rows = chunk_rows(k, 4 + 8 + 8 + 1 + 4 + 8, memory_budget_mb)
    for start in range(0, n_query, rows):
        stop = min(start + rows, n_query)
        _, idx = _search(index, query[start:stop], start, k, exclude_self)  # (Qc, k)
        if (idx[:, :k_top] < 0).any():
            raise DataError(
                f"the IVF index found fewer than {k_top} neighbours for some queries (it scans "
                f"nprobe = {index.nprobe} of {index.nlist} cells); raise nprobe"
            )
        neighbours[start:stop] = idx[:, :k_top]
        r = n_relevant[start:stop]  # (Qc,)
        labels = np.where(idx >= 0, reference_labels[np.maximum(idx, 0)], -1)  # (Qc, k)
        rel = (labels == query_labels[start:stop, None]) & (np.arange(k) < r[:, None])
        hits = np.cumsum(rel, axis=1, dtype=np.int32)  # (Qc, k)
        ok = r > 0
        ap = (rel * hits / ranks).sum(axis=1)
        rp = hits[np.arange(stop - start), np.maximum(r, 1) - 1]
        map_at_r[start:stop][ok] = ap[ok] / r[ok]
        r_precision[start:stop][ok] = rp[ok] / r[ok]
    return Ranking(map_at_r=map_at_r, r_precision=r_precision, neighbours=neighbours,
                   n_relevant=n_relevant)


def search_recall(
    index: Any,
    query: np.ndarray,
    reference: np.ndarray,
    approximate: np.ndarray,
    *,
    exclude_self: bool,
    sample: int,
    seed: int,
) -> dict[str, float]:
    """``ann_recall@1`` and ``ann_recall@k``: the share of the exact 1 and ``k`` nearest
    neighbours (``k = approximate.shape[1]``) among the index's, on ``sample`` random queries.

    ``approximate``: ``(Q, k)`` neighbours the index returned for every query.
    """
    k = approximate.shape[1]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(query), size=min(sample, len(query)), replace=False))
    # faiss.knn: IndexFlatL2's brute-force search without copying the reference into an index
    _, exact_i = faiss.knn(query[rows], reference, k + int(exclude_self))
    if exclude_self:
        own = exact_i == rows[:, None]
        own[~own.any(axis=1), -1] = True
        exact_i = exact_i[~own].reshape(len(rows), k)
    found = approximate[rows]
    at_1 = float(np.mean(found[:, 0] == exact_i[:, 0]))
    at_k = float(np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(found, exact_i, strict=True)]))
    return {"ann_recall@1": at_1, "ann_recall@8": at_k}
