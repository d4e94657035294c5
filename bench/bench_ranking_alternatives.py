"""Designs for the exact R-Precision / MAP@R pass, timed on the same 2-D data.

Each design computes, for Q query rows against N reference points (leave-one-out, 10 classes,
R ~ N / 10), the exact per-query AP@R with the (distance, index) tie rule; the script checks that
all of them agree with the chosen one (``guided_dml.evaluation.ranking.rank_queries``) and prints
the cost per query row, so that one run compares them under the same machine load.

* ``torch topk(k=max R)``: chunked ``torch.topk`` on int64 keys ``(float32 bits << 32) | index``
  with ``k`` = the largest class count -- what a plain chunked top-k (and, with one big table,
  pytorch-metric-learning) does.
* ``torch kthvalue+mask+sort``: queries grouped by class (one ``R`` per group), ``kthvalue`` gives
  the R-th key, a mask keeps exactly ``R`` per row (so it reshapes to ``(Qc, R)``), only those are
  sorted, AP from a cumsum.
* ``numba partition+sort``: per row in a parallel numba kernel, ``np.partition`` of all N keys,
  then ``np.sort`` of the first ``K``.
* ``numba sample+radix (chosen)``: the package kernel (sampled threshold, branch-free
  compaction, stable LSD radix sort of ~1.2 K keys).

``--stages`` instead profiles the chosen kernel on one thread, stage by stage (numba code is
invisible to Python profilers, so each stage is timed by running the row loop up to that stage).

Usage: ``.venv/bin/python bench/bench_ranking_alternatives.py [--n 60000] [--rows 1000] [--stages]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

from bench_evaluate import blobs
from guided_dml.evaluation import ranking
from guided_dml.evaluation.knn import squared_distances
from guided_dml.evaluation.ranking import rank_queries, relevant_counts


def _keys(dist: torch.Tensor, start: int) -> torch.Tensor:
    """(Qc, N) int64 keys with the query's own column set to the maximum (leave-one-out)."""
    keys = dist.view(torch.int32).to(torch.int64)
    keys <<= 32
    keys |= torch.arange(dist.shape[1])
    rows = torch.arange(dist.shape[0])
    keys[rows, start + rows] = torch.iinfo(torch.int64).max
    return keys


def _ap_from_sorted(
    keys: torch.Tensor, labels: torch.Tensor, ref_labels: torch.Tensor, r: torch.Tensor
) -> torch.Tensor:
    """AP@R of rows of sorted keys (Qc, K) with per-row R (Qc,)."""
    rel = ref_labels[keys & 0xFFFFFFFF] == labels[:, None]  # (Qc, K)
    ranks = torch.arange(1, keys.shape[1] + 1)
    rel &= ranks[None, :] <= r[:, None]
    hits = rel.cumsum(1, dtype=torch.float64)
    return ((hits / ranks) * rel).sum(1) / r


def torch_topk(x, y, rows, chunk=256):
    ref, labels = torch.from_numpy(x), torch.from_numpy(y)
    r = torch.from_numpy(relevant_counts(y, y, True))
    k = int(r.max())
    out = torch.empty(rows, dtype=torch.float64)
    for s in range(0, rows, chunk):
        e = min(s + chunk, rows)
        keys = _keys(squared_distances(ref[s:e], ref), s)
        top = torch.topk(keys, k, dim=1, largest=False, sorted=True).values
        out[s:e] = _ap_from_sorted(top, labels[s:e], labels, r[s:e])
    return out.numpy()


def torch_kth_mask_sort(x, y, rows, chunk=256):
    ref, labels = torch.from_numpy(x), torch.from_numpy(y)
    r_all = torch.from_numpy(relevant_counts(y, y, True))
    out = torch.empty(rows, dtype=torch.float64)
    for c in torch.unique(labels[:rows]):
        members = torch.nonzero(labels[:rows] == c).flatten()
        r = int(r_all[members[0]])
        for s in range(0, len(members), chunk):
            idx = members[s : s + chunk]
            keys = squared_distances(ref[idx], ref).view(torch.int32).to(torch.int64)
            keys <<= 32
            keys |= torch.arange(len(ref))
            keys[torch.arange(len(idx)), idx] = torch.iinfo(torch.int64).max
            kth = torch.kthvalue(keys, r, dim=1).values
            kept = keys[keys <= kth[:, None]].view(len(idx), r)  # exactly R per row: keys unique
            kept = torch.sort(kept, dim=1).values
            out[idx] = _ap_from_sorted(kept, labels[idx], labels, torch.full((len(idx),), r))
    return out.numpy()


@numba.njit(parallel=True)
def _partition_sort_kernel(q, ref_t, rlab, qlab, n_relevant, out):
    n = ref_t.shape[1]
    for i in numba.prange(q.shape[0]):
        dist = np.zeros(n, np.float32)
        for t in range(ref_t.shape[0]):
            for j in range(n):
                diff = q[i, t] - ref_t[t, j]
                dist[j] += diff * diff
        bits = dist.view(np.uint32)
        keys = np.empty(n - 1, np.uint64)
        m = 0
        for j in range(n):
            if j != i:
                keys[m] = (np.uint64(bits[j]) << np.uint64(32)) | np.uint64(j)
                m += 1
        r = n_relevant[i]
        top = np.sort(np.partition(keys, r - 1)[:r])
        hits = 0
        total = 0.0
        for t in range(r):
            if rlab[np.int64(top[t] & np.uint64(0xFFFFFFFF))] == qlab[i]:
                hits += 1
                total += hits / (t + 1.0)
        out[i] = total / r


def numba_partition_sort(x, y, rows):
    out = np.empty(rows)
    _partition_sort_kernel(
        x[:rows], np.ascontiguousarray(x.T), y, y[:rows], relevant_counts(y, y, True)[:rows], out
    )
    return out


def numba_chosen(x, y, rows):
    ids = y.astype(np.int32)
    return rank_queries(
        x[:rows], ids[:rows], x, ids, exclude_self=True, k_top=8, memory_budget_mb=512
    ).map_at_r


@numba.njit
def _stages(q, ref_t, rlab, qlab, n_relevant, upto):
    """The chosen kernel's row loop (leave-one-out), single-threaded, stopped after stage
    ``upto`` (0 distances, 1 selection, 2 radix sort, 3 scan / AP). Returns the kept/K ratio."""
    n = ref_t.shape[1]
    dist = np.empty(n, np.float32)
    keys = np.empty(n, np.uint64)
    tmp = np.empty(n, np.uint64)
    sample = np.empty(min(2048, n), np.uint32)
    hist = np.empty(4096, np.int64)
    count = np.empty((3, 2048), np.int64)
    inverse_rank = 1.0 / np.arange(1, n + 1)
    neighbours = np.empty(8, np.int64)
    kept = 0
    wanted = 0
    for i in range(q.shape[0]):
        dist[:] = 0.0
        for t in range(ref_t.shape[0]):
            for j in range(n):
                diff = q[i, t] - ref_t[t, j]
                dist[j] += diff * diff
        bits = dist.view(np.uint32)
        bits[i] = np.uint32(0xFFFFFFFF)
        k = max(n_relevant[i], 8)
        if upto == 1 or upto == 2:
            m = ranking._select(bits, rlab, qlab[i], k, keys, tmp.view(np.uint32), sample, hist)
            kept += m
            wanted += k
            if upto == 2:
                ranking._radix_sort(keys, m, tmp, count)
        elif upto == 3:
            ranking._score_row(
                bits,
                rlab,
                qlab[i],
                n_relevant[i],
                8,
                inverse_rank,
                keys,
                tmp,
                sample,
                hist,
                count,
                neighbours,
            )
    return kept / max(wanted, 1)


def stages(n: int, rows: int) -> None:
    x, y = blobs(n, seed=1)
    ids = y.astype(np.int32)
    ref_t = np.ascontiguousarray(x.T)
    r = relevant_counts(ids, ids, True)
    previous = 0.0
    for upto, name in enumerate(["distances", "selection", "radix sort", "scan / AP"]):
        _stages(x[:4], ref_t, ids, ids[:4], r[:4], upto)  # compile
        best = float("inf")
        for _ in range(3):
            cpu = time.process_time()
            ratio = _stages(x[:rows], ref_t, ids, ids[:rows], r[:rows], upto)
            best = min(best, time.process_time() - cpu)
        note = f" (kept {ratio:.2f} K)" if upto == 1 else ""
        print(f"| {n:,} | {name} | {(best - previous) / rows * 1e6:.0f}{note} |", flush=True)
        previous = best
    print(f"| {n:,} | total | {previous / rows * 1e6:.0f} |")


DESIGNS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "torch topk(k=max R)": torch_topk,
    "torch kthvalue+mask+sort": torch_kth_mask_sort,
    "numba partition+sort": numba_partition_sort,
    "numba sample+radix (chosen)": numba_chosen,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[30000, 60000])
    parser.add_argument("--rows", type=int, default=1000, help="query rows timed per design")
    parser.add_argument(
        "--stages", action="store_true", help="profile the chosen kernel's stages on one thread instead"
    )
    args = parser.parse_args()
    if args.stages:
        print("| N | stage (1 thread) | CPU us / query |")
        print("|---|---|---|")
        for n in args.n:
            stages(n, min(args.rows, n))
        return
    print(f"{numba.get_num_threads()} numba threads, {torch.get_num_threads()} torch threads")
    print("| N (R ~ N/10) | design | wall us / query | CPU us / query | max |AP diff| |")
    print("|---|---|---|---|---|")
    for n in args.n:
        x, y = blobs(n, seed=1)
        rows = min(args.rows, n)
        want = numba_chosen(x, y, rows)
        for name, fn in DESIGNS.items():
            fn(x, y, min(rows, 8))  # compile / warm up
            wall, cpu = time.perf_counter(), time.process_time()
            got = fn(x, y, rows)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(
                f"| {n:,} | {name} | {wall / rows * 1e6:,.0f} | {cpu / rows * 1e6:,.0f} | "
                f"{np.max(np.abs(got - want)):.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
