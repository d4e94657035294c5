"""Synthetic embeddings for the evaluation tests, and a brute-force reference ranking."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def make_blobs(
    n: int,
    dim: int,
    n_classes: int,
    seed: int,
    *,
    quantize: bool = True,
    duplicates: float = 0.0,
    imbalance: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class blobs ``(n, dim)`` float32 and int64 labels.

    ``quantize`` rounds coordinates to multiples of 1/8 in [-32, 32]: every squared norm, dot
    product and squared distance is then a multiple of 1/64 below 2**16, exact in float32 in any
    summation order, so faiss, BLAS and direct differences agree bit for bit and every tie is a
    real tie (many exist on such a grid). ``duplicates`` copies that fraction of rows onto other
    rows (half of them keep their own label: equal points with different labels). ``imbalance``
    draws classes with geometric frequencies (rare classes, possibly singletons).
    """
    rng = np.random.default_rng(seed)
    if imbalance:
        p = 0.6 ** np.arange(n_classes)
        labels = rng.choice(n_classes, size=n, p=p / p.sum())
    else:
        labels = rng.integers(0, n_classes, size=n)
    centers = rng.normal(scale=1.5, size=(n_classes, dim))
    x = centers[labels] + rng.normal(size=(n, dim))
    if quantize:
        x = np.clip(np.round(x * 8), -256, 256) / 8
    n_dup = int(duplicates * n)
    if n_dup:
        src = rng.integers(0, n, size=n_dup)
        dst = rng.integers(0, n, size=n_dup)
        x[dst] = x[src]
        same = dst[: n_dup // 2]
        labels[same] = labels[src[: n_dup // 2]]
    return x.astype(np.float32), labels.astype(np.int64)


def brute_force_order(query: np.ndarray, reference: np.ndarray, exclude_self: bool) -> list:
    """For each query, reference indices sorted by (squared distance, index), by plain Python
    sorting of float64 distances (exact on quantized data)."""
    orders = []
    for i, q in enumerate(query.astype(np.float64)):
        dist = ((reference.astype(np.float64) - q) ** 2).sum(axis=1)
        order = sorted(range(len(reference)), key=lambda j: (dist[j], j))
        if exclude_self:
            order.remove(i)
        orders.append(order)
    return orders


def brute_force_scores(
    query: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    exclude_self: bool,
) -> dict[str, np.ndarray]:
    """Per-query AP@R, R-Precision, first-neighbour hit and hit@k, by the textbook definitions
    (Musgrave et al. 2020), with loops; NaN where R = 0."""
    orders = brute_force_order(query, reference, exclude_self)
    out: dict[str, list] = {
        "map_at_r": [],
        "r_precision": [],
        "hit@1": [],
        "hit@2": [],
        "hit@4": [],
        "hit@8": [],
        "R": [],
    }
    for i, order in enumerate(orders):
        rel = [reference_labels[j] == query_labels[i] for j in order]
        r = sum(rel)
        out["R"].append(r)
        for k in (1, 2, 4, 8):
            out[f"hit@{k}"].append(float(any(rel[:k])))
        if r == 0:
            out["map_at_r"].append(np.nan)
            out["r_precision"].append(np.nan)
            continue
        precision_sum, hits = 0.0, 0
        for t in range(r):
            if rel[t]:
                hits += 1
                precision_sum += hits / (t + 1)
        out["map_at_r"].append(precision_sum / r)
        out["r_precision"].append(hits / r)
    return {key: np.array(val) for key, val in out.items()}


@pytest.fixture
def blobs() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_blobs


@pytest.fixture
def brute_force() -> Callable[..., dict[str, np.ndarray]]:
    return brute_force_scores


@pytest.fixture
def brute_order() -> Callable[..., list]:
    return brute_force_order
