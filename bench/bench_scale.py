"""How ``evaluate()`` grows with the reference set: 10 000 to 1 000 000 points of dimension 128.

Data: Q queries and N references drawn from 100 Gaussian classes in 128-D (centres ~ N(0, 0.5²)
per coordinate, unit noise: precision@1 about 0.85, R = N / 100 same-class items per query).
For each N, in its own subprocess (for a clean peak-memory reading):

* ``exact``: ``evaluate(query, ..., reference, ...)`` with the default 512 MB chunk budget;
* ``ivf``: ``evaluate(..., index="ivf")`` with the default ``nlist``/``nprobe``, and the recall of
  its neighbours against the exact ones that it reports.

Memory: the child's resident-set high-water mark is reset (``/proc/self/clear_refs``) once the
data are built and the kernels warmed up; the peak during the call minus the resident size
before it is what ``evaluate`` itself adds on top of its inputs. Growth is summarised by
the exponent ``b`` in ``time ~ N^b`` between consecutive sizes (``b = 1``: linear in N, as an
exact search must be).

Usage::

    .venv/bin/python bench/bench_scale.py                          # Q = 10 000, N = 1e4, 1e5, 1e6
    .venv/bin/python bench/bench_scale.py --queries 2000 --modes exact   # quicker
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import time

import numpy as np

DIM, CLASSES, CENTRE_SCALE = 128, 100, 0.5
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points of the 100 classes (built in float32: 1e6 x 128 is 512 MB)."""
    centres = np.random.default_rng(0).normal(scale=CENTRE_SCALE, size=(CLASSES, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x += centres[labels]
    return x, labels


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status``, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(n_ref: int, n_query: int, mode: str) -> None:
    """One measurement; prints a JSON line."""
    from guided_dml.evaluation import evaluate

    reference, ref_labels = blobs(n_ref, seed=2)
    query, query_labels = blobs(n_query, seed=1)
    evaluate(query[:200], query_labels[:200], reference[:2000], ref_labels[:2000], nmi=False,
             index=mode)  # numba kernels loaded, faiss and torch thread pools started
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark: data building does not count
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    metrics = evaluate(query, query_labels, reference, ref_labels, nmi=False, index=mode)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "added_mb": peak - before, "peak_mb": peak,
                      "inputs_mb": (reference.nbytes + query.nbytes) / 2**20, "metrics": metrics}))


def measure(n_ref: int, n_query: int, mode: str) -> dict:
    """Run :func:`child` in a subprocess and return its JSON result."""
    proc = subprocess.run([sys.executable, __file__, "--child", str(n_ref), str(n_query), mode],
                          capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"evaluate({mode}, N={n_ref}) failed: {proc.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def run(sizes=DEFAULT_SIZES, n_query: int = 10_000, modes=("exact", "ivf")) -> list[dict]:
    rows = []
    for n in sizes:
        for mode in modes:
            r = measure(n, n_query, mode)
            rows.append({"n_ref": n, "mode": mode, **r})
            print(f"  N = {n:>9,} {mode:<5}: {r['seconds']:7.1f} s, +{r['added_mb']:,.0f} MB "
                  f"(process peak {r['peak_mb']:,.0f} MB)", flush=True)
    return rows


def growth(rows: list[dict], mode: str) -> list[tuple[int, int, float]]:
    """``(N1, N2, b)`` with ``time ~ N^b`` between consecutive sizes of ``mode``."""
    pts = [(r["n_ref"], r["seconds"]) for r in rows if r["mode"] == mode]
    return [(n1, n2, math.log(t2 / t1) / math.log(n2 / n1))
            for (n1, t1), (n2, t2) in itertools.pairwise(pts)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--modes", nargs="+", default=["exact", "ivf"], choices=["exact", "ivf"])
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2])
        return
    rows = run(args.sizes, args.queries, args.modes)
    print("\n| N | mode | seconds | µs / query | added MB | precision@1 | MAP@R | ANN recall@8 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["metrics"]
        ann = f"{m['ann_recall@8']:.3f}" if "ann_recall@8" in m else "exact"
        print(f"| {r['n_ref']:,} | {r['mode']} | {r['seconds']:.1f} | "
              f"{1e6 * r['seconds'] / args.queries:,.0f} | {r['added_mb']:,.0f} | "
              f"{m['precision@1']:.4f} | {m['map@r']:.4f} | {ann} |")
    for mode in args.modes:
        for n1, n2, b in growth(rows, mode):
            print(f"{mode}: time ~ N^{b:.2f} from {n1:,} to {n2:,}")


if __name__ == "__main__":
    main()
