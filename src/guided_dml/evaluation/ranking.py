"""Exact R-Precision and MAP@R (Musgrave et al. 2020) without a top-k of size max class count.

R-Precision and MAP@R are defined in K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning
Reality Check", ECCV 2020 (https://arxiv.org/abs/2003.08505), Section 3.2. For a query whose
label has ``R`` reference items (the query itself not counted):

* R-Precision = ``r / R``, with ``r`` the number of same-label items among the ``R`` nearest;
* MAP@R = ``(1 / R) * sum_{i <= R} P(i) * rel(i)``, with ``rel(i) = 1`` when the ``i``-th nearest
  has the query's label and ``P(i)`` the precision among the ``i`` nearest.

Both only need the order of the ``R`` nearest reference items of every query. The usual route
(pytorch-metric-learning's ``AccuracyCalculator(k="max_bin_count")``) materialises a ``Q x k``
neighbour table with ``k`` the largest class count, i.e. ``O(Q * N / C)`` memory, and sorts it.
The kernel here works row by row, in parallel, with ``O(threads * N)`` memory:

1. squared distances of the query to every reference item (direct differences fused into the
   kernel when ``d <= LOW_DIM``; otherwise a BLAS chunk computed by torch);
2. *selection*: a threshold from a strided sample of 2048 distances, taken at the quantile
   three standard deviations above ``K / N`` (``K = max(R, k_top)``), and one branch-free pass
   that keeps the items below it (about ``1.2 K`` of them). If the sample was unlucky and fewer
   than ``K`` pass (about one row in a thousand), a 4096-bin histogram of the distances' top
   bits gives a threshold that always works;
3. the kept items, in index order, packed as ``uint64`` keys ``(float32 bits << 32) | (j << 1) |
   same_label`` and sorted by a stable LSD radix sort on the distance bits (11-bit digits,
   digits shared by all kept items skipped). Stability plus index order is the tie rule below;
4. one scan of the first ``K`` keys gives the top ``k_top`` neighbour indices (for precision@1 and
   recall@k) and the precision sum of MAP@R; the ``same_label`` bit saves a random access to the
   label array per neighbour.

Rules, chosen to equal pytorch-metric-learning (whose k-NN is faiss ``IndexFlatL2``):

* ties (equal float32 squared distances) are broken by the smaller reference index;
* leave-one-out removes the query's own index only; duplicates of it remain (at distance 0);
* a query with ``R = 0`` (its label absent from the reference, or alone in leave-one-out) gets
  ``NaN`` here and is left out of the averages by the caller.

Cost on 2 cores at N = 60 000, R ~ 6 000: about 95 us of one core per query (distances 11,
selection 47, radix sort 33, scan 3); see ``docs/benchmarks.md`` for the designs measured against
it. The first call in a fresh installation compiles the kernels (6 s for the fused one, 4 s for
the other); ``cache=True`` stores the machine code next to this file (or in
``NUMBA_CACHE_DIR``), and later processes load it in 0.3 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import njit, prange

from .knn import LOW_DIM, block_rows, chunk_rows, squared_distances

_EXCLUDED = np.uint32(0xFFFFFFFF)  # above every float32 bit pattern of a distance (inf: 0x7F800000)
_INF_BITS = np.uint32(0x7F800000)
_SAMPLE = 2048  # distances sampled per row to guess the selection threshold
_MARGIN_SIGMAS = 3.0  # the guess falls short (histogram fallback) for ~1e-3 of the rows
_HIST_SHIFT = np.uint32(20)  # top 12 bits of the float32 pattern: sign, exponent, 3 mantissa bits
_HIST_BINS = 4096
_RADIX_BITS = 11
_RADIX_BINS = 1 << _RADIX_BITS
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_ONE = np.uint64(1)
_ROWS_PER_TASK = 8  # rows handed to a thread at a time: classes differ in R, so balance dynamically


@dataclass(frozen=True)
class Ranking:
    """Per-query results of :func:`rank_queries` (all numpy arrays of length ``Q``)."""

    map_at_r: np.ndarray  # float64 (Q,), NaN where n_relevant == 0
    r_precision: np.ndarray  # float64 (Q,), NaN where n_relevant == 0
    neighbours: np.ndarray  # int64 (Q, k_top), reference indices sorted by (distance, index)
    n_relevant: np.ndarray  # int64 (Q,), R of every query


@njit(cache=True, inline="always")
def _select(bits, rlab, lab, k, keys, scratch, sample, hist):
    """Write at least ``k`` candidates (every item whose key is among the ``k`` smallest, in
    index order) as packed keys into ``keys``; return how many were written. ``scratch`` is a
    uint32 buffer of at least ``len(bits)`` entries."""
    n = bits.shape[0]
    n_sample = sample.shape[0]
    stride = n // n_sample
    for s in range(n_sample):
        sample[s] = bits[s * stride]
    p = k / n
    rank = int(n_sample * p + _MARGIN_SIGMAS * np.sqrt(n_sample * p * (1.0 - p))) + 1
    m = 0
    if rank < n_sample:
        limit = min(_quickselect(sample, rank), _INF_BITS) + np.uint32(1)  # keep b < limit
        m = _compact(bits, limit, scratch)
    if m < k:
        # Fallback: the bin of a 4096-bin histogram of the top bits that holds the k-th smallest
        # distance bounds it from above.
        hist[:] = 0
        for j in range(n):
            hist[bits[j] >> _HIST_SHIFT] += 1
        below = 0
        top_bin = 0
        while below + hist[top_bin] < k:
            below += hist[top_bin]
            top_bin += 1
        m = _compact(bits, np.uint32((top_bin + 1) << _HIST_SHIFT), scratch)
    for t in range(m):  # pack the kept items, in index order
        j = scratch[t]
        keys[t] = (np.uint64(bits[j]) << _SHIFT32) | (np.uint64(j) << _ONE) | np.uint64(rlab[j] == lab)
    return m


@njit(cache=True, inline="always")
def _compact(bits, limit, out):
    """Indices ``j`` with ``bits[j] < limit`` into ``out``, in order; return their count.
    Branch-free (always store, advance on a hit): with ~10 % of the items kept, an ``if`` is
    mispredicted often enough to be 1.7x slower."""
    m = 0
    for j in range(bits.shape[0]):
        out[m] = j
        m += bits[j] < limit
    return m


@njit(cache=True)
def _quickselect(a, k):
    """The ``k``-th smallest (0-based) of ``a``, reordering ``a`` in place (Hoare partition,
    median-of-three pivot); no allocation, unlike ``np.partition``."""
    lo = 0
    hi = a.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@njit(cache=True, inline="always")
def _radix_sort(keys, m, tmp, count):
    """Stable LSD radix sort of ``keys[:m]`` by their high 32 bits (the distance), in place.

    ``count`` is ``(3, 2048)``: the three 11-bit digit histograms are filled in one read pass;
    a digit that every key shares (one bin holds all ``m``) needs no scatter pass.
    """
    count[:, :] = 0
    mask = np.uint64(_RADIX_BINS - 1)
    for t in range(m):
        b = keys[t] >> _SHIFT32
        count[0, b & mask] += 1
        count[1, (b >> np.uint64(_RADIX_BITS)) & mask] += 1
        count[2, (b >> np.uint64(2 * _RADIX_BITS)) & mask] += 1
    src = keys
    dst = tmp
    passes = 0
    for digit in range(3):
        shift = np.uint64(_RADIX_BITS * digit) + _SHIFT32
        first = (src[0] >> shift) & mask
        if count[digit, first] == m:
            continue
        total = 0
        for v in range(_RADIX_BINS):  # exclusive prefix sum: where each digit value starts
            c = count[digit, v]
            count[digit, v] = total
            total += c
        for t in range(m):
            key = src[t]
            v = (key >> shift) & mask
            dst[count[digit, v]] = key
            count[digit, v] += 1
        src, dst = dst, src
        passes += 1
    if passes % 2 == 1:  # the sorted keys sit in tmp
        keys[:m] = tmp[:m]


@njit(cache=True, inline="always")
def _score_row(bits, rlab, lab, n_relevant, k_top, inverse_rank, keys, tmp, sample, hist, count, neighbours):
    """Rank one query's distance bits; fill ``neighbours`` and return (AP@R, R-Precision).
    ``inverse_rank[t] = 1 / (t + 1)``: a multiplication instead of a division per item."""
    k = max(n_relevant, k_top)
    m = _select(bits, rlab, lab, k, keys, tmp.view(np.uint32), sample, hist)
    _radix_sort(keys, m, tmp, count)
    for t in range(k_top):
        neighbours[t] = np.int64((keys[t] & _LOW32) >> _ONE)
    if n_relevant == 0:
        return np.nan, np.nan
    hits = 0
    precision_sum = 0.0
    for t in range(n_relevant):  # branch-free: same-label bits are unpredictable
        rel = np.int64(keys[t] & _ONE)
        hits += rel
        precision_sum += (rel * hits) * inverse_rank[t]  # P(t + 1) when item t is relevant
    return precision_sum / n_relevant, hits / n_relevant


@njit(cache=True, parallel=True)
def _rank_lowdim(
    query,
    ref_t,
    qlab,
    rlab,
    n_relevant,
    self_offset,
    k_top,
    inverse_rank,
    map_out,
    rp_out,
    nb_out,
    ws_dist,
    ws_keys,
    ws_tmp,
    ws_sample,
    ws_hist,
    ws_count,
):
    """Fused kernel for ``d <= LOW_DIM``: query (Q, d), ref_t (d, N) transposed so that the
    distance loop runs over contiguous memory and vectorises. Query ``i`` is reference
    ``self_offset + i`` when ``self_offset >= 0``."""
    n_query, dim = query.shape
    n = ref_t.shape[1]
    for i in prange(n_query):
        tid = numba.get_thread_id()  # ws_*[tid]: this thread's scratch rows
        dist = ws_dist[tid]  # (N,) float32
        dist[:] = 0.0
        for t in range(dim):  # same operation order as knn.squared_distances
            qt = query[i, t]
            row = ref_t[t]
            for j in range(n):
                diff = qt - row[j]
                dist[j] += diff * diff
        bits = dist.view(np.uint32)
        if self_offset >= 0:
            bits[self_offset + i] = _EXCLUDED
        map_out[i], rp_out[i] = _score_row(
            bits,
            rlab,
            qlab[i],
            n_relevant[i],
            k_top,
            inverse_rank,
            ws_keys[tid],
            ws_tmp[tid],
            ws_sample[tid],
            ws_hist[tid],
            ws_count[tid],
            nb_out[i],
        )


@njit(cache=True)
def _rank_bits(
    bits2d,
    qlab,
    rlab,
    n_relevant,
    self_offset,
    k_top,
    inverse_rank,
    map_out,
    rp_out,
    nb_out,
    ws_keys,
    ws_tmp,
    ws_sample,
    ws_hist,
    ws_count,
):
    """Kernel on precomputed distance bits ``(Qc, N)`` uint32 (the self entries are
    overwritten). Query ``i`` is reference ``self_offset + i`` when ``self_offset >= 0``.

    Sequential on purpose: it alternates with torch's BLAS calls, whose OpenMP threads then
    compete with numba's spin-waiting workers. On 2 cores, 20 000 x 20 000 at d = 128: BLAS
    part 10.3 s with a parallel kernel vs 3.4 s without (first version of the distance code);
    5.1 + 1.0 s vs 4.3 + 0.8 s with the current one. The BLAS part dominates anyway."""
    tid = 0
    for i in range(bits2d.shape[0]):
        bits = bits2d[i]
        if self_offset >= 0:
            bits[self_offset + i] = _EXCLUDED
        map_out[i], rp_out[i] = _score_row(
            bits,
            rlab,
            qlab[i],
            n_relevant[i],
            k_top,
            inverse_rank,
            ws_keys[tid],
            ws_tmp[tid],
            ws_sample[tid],
            ws_hist[tid],
            ws_count[tid],
            nb_out[i],
        )


def relevant_counts(query_labels: np.ndarray, reference_labels: np.ndarray, exclude_self: bool) -> np.ndarray:
    """``R`` per query: reference items with its label, minus itself in leave-one-out."""
    n_labels = int(max(query_labels.max(), reference_labels.max())) + 1
    per_label = np.bincount(reference_labels, minlength=n_labels)
    return (per_label[query_labels] - int(exclude_self)).astype(np.int64)


def rank_queries(
    query: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    *,
    exclude_self: bool,
    k_top: int,
    memory_budget_mb: float,
) -> Ranking:
    """Per-query MAP@R and R-Precision, plus the ``k_top`` nearest neighbours, exactly.

    Args:
        query: ``(Q, d)`` float32, C-contiguous, finite (see ``knn.as_embeddings``).
        query_labels: ``(Q,)`` int32 class ids in ``[0, C)``.
        reference: ``(N, d)`` float32; with ``exclude_self``, row ``i`` is query ``i``.
        reference_labels: ``(N,)`` int32 class ids in ``[0, C)``.
        exclude_self: leave-one-out (the query's own index is never ranked).
        k_top: neighbours to return, ``1 <= k_top <= N - exclude_self``.
        memory_budget_mb: bound on the distance chunk when ``d > LOW_DIM`` (the fused
            low-dimensional kernel needs only ``O(threads * N)``).

    Returns:
        A :class:`Ranking`; ``map_at_r`` and ``r_precision`` are NaN where ``R = 0``.
    """
    n_query, dim = query.shape
    n_ref = reference.shape[0]
    n_relevant = relevant_counts(query_labels, reference_labels, exclude_self)
    inverse_rank = 1.0 / np.arange(1, n_ref + 1, dtype=np.float64)  # (N,)
    map_at_r = np.empty(n_query, np.float64)
    r_precision = np.empty(n_query, np.float64)
    neighbours = np.empty((n_query, k_top), np.int64)
    fused = dim <= LOW_DIM
    # Scratch rows per thread, O(threads * N) and independent of Q: 16 bytes per reference
    # item, +4 for the fused kernel's distance row.
    threads = numba.get_num_threads() if fused else 1
    ws_keys = np.empty((threads, n_ref), np.uint64)
    ws_tmp = np.empty((threads, n_ref), np.uint64)
    ws_sample = np.empty((threads, min(_SAMPLE, n_ref)), np.uint32)
    ws_hist = np.empty((threads, _HIST_BINS), np.int64)
    ws_count = np.empty((threads, 3, _RADIX_BINS), np.int64)

    if fused:
        ws_dist = np.empty((threads, n_ref), np.float32)
        ref_t = np.ascontiguousarray(reference.T)  # (d, N)
        previous_chunksize = numba.set_parallel_chunksize(_ROWS_PER_TASK)
        try:
            _rank_lowdim(
                query,
                ref_t,
                query_labels,
                reference_labels,
                n_relevant,
                0 if exclude_self else -1,
                k_top,
                inverse_rank,
                map_at_r,
                r_precision,
                neighbours,
                ws_dist,
                ws_keys,
                ws_tmp,
                ws_sample,
                ws_hist,
                ws_count,
            )
        finally:
            numba.set_parallel_chunksize(previous_chunksize)
    else:
        ref = torch.from_numpy(reference)
        ref_sqnorm = ref.square().sum(1)  # (N,), reused by every chunk
        # The chunk holds 4 bytes per (query, reference) pair; squared_distances adds one
        # (block, COLUMN_TILE) buffer. Whole blocks only, at least one.
        rows = chunk_rows(n_ref, 4, memory_budget_mb)
        bsz = block_rows(rows)
        rows = max(bsz, rows - rows % bsz)
        chunk = torch.empty(min(rows, n_query), n_ref, dtype=torch.float32)  # reused
        for start in range(0, n_query, rows):
            stop = min(start + rows, n_query)
            dist = squared_distances(torch.from_numpy(query[start:stop]), ref, ref_sqnorm, bsz,
                                     out=chunk[: stop - start])
            _rank_bits(
                dist.numpy().view(np.uint32),
                query_labels[start:stop],
                reference_labels,
                n_relevant[start:stop],
                start if exclude_self else -1,
                k_top,
                inverse_rank,
                map_at_r[start:stop],
                r_precision[start:stop],
                neighbours[start:stop],
                ws_keys,
                ws_tmp,
                ws_sample,
                ws_hist,
                ws_count,
            )
    return Ranking(map_at_r=map_at_r, r_precision=r_precision, neighbours=neighbours, n_relevant=n_relevant)
