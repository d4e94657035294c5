"""Time and peak memory of ``guided_dml.evaluation.evaluate`` against pytorch-metric-learning.

The reference is ``AccuracyCalculator(k="max_bin_count")`` (faiss ``IndexFlatL2`` k-NN, faiss
k-means), asked for ``precision_at_1``, ``r_precision``, ``mean_average_precision_at_r`` and
``NMI``. Our side is one ``evaluate()`` call, which computes all nine metrics (the same four plus
the 1-NN classifier's macro recall and F1, and recall@2/4/8; NMI by scikit-learn k-means with 10
restarts), so NMI is included on both sides and our side does strictly more work.

Data: 2-D Gaussian blobs, 10 classes (centres ~ N(0, 4^2), unit noise), a realistic
precision@1 of about 0.74. Sizes: ``N`` means leave-one-out on N points, ``QxN`` means Q queries
against N references (drawn independently from the same blobs).

Every measurement runs in its own subprocess, which first warms up on tiny data (numba loads
its cached kernels, faiss and torch start their thread pools), then times one call. Peak memory
is the child's ``ru_maxrss`` minus that of an idle child that imported the same modules and
built the same data. The pytorch-metric-learning child runs under ``RLIMIT_AS`` (default 20 GB,
lowered to what the machine has free); when it dies, its memory is reported as "> limit" and the
ratios as lower bounds.

Usage::

    .venv/bin/python bench/bench_evaluate.py                      # 30000 60000 10000x60000
    .venv/bin/python bench/bench_evaluate.py --sizes 3000 1000x6000   # quick (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

DEFAULT_SIZES = ("30000", "60000", "10000x60000")
N_CLASSES = 10
PML_INCLUDE = ("precision_at_1", "r_precision", "mean_average_precision_at_r", "NMI")
COMPARED = {  # our key -> pytorch-metric-learning's key; NMI differs by k-means implementation
    "precision@1": "precision_at_1",
    "r_precision": "r_precision",
    "map@r": "mean_average_precision_at_r",
}
GB = 2**30


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 2-D points from 10 Gaussian classes; the class centres do not depend on ``seed``."""
    centres = np.random.default_rng(0).normal(scale=4.0, size=(N_CLASSES, 2))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=n)
    points = centres[labels] + rng.normal(size=(n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


def parse_size(spec: str) -> tuple[int, int | None]:
    """``"N"`` -> (N, None) leave-one-out; ``"QxN"`` -> (Q, N) queries against references."""
    if "x" in spec:
        q, n = spec.split("x")
        return int(q), int(n)
    return int(spec), None


def make_data(spec: str):
    n_query, n_ref = parse_size(spec)
    query, query_labels = blobs(n_query, seed=1)
    if n_ref is None:
        return query, query_labels, None, None
    reference, reference_labels = blobs(n_ref, seed=2)
    return query, query_labels, reference, reference_labels


# ---------------------------------------------------------------- child processes


def child(side: str, spec: str, limit_gb: float) -> None:
    """Run one side on one size; print a JSON line with seconds, maxrss and the metrics."""
    if side == "pml":
        limit = int(limit_gb * GB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import logging

    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from guided_dml.evaluation import evaluate

    logging.getLogger("PML").setLevel(logging.ERROR)
    calculator = AccuracyCalculator(include=PML_INCLUDE, k="max_bin_count", device=torch.device("cpu"))
    query, query_labels, reference, reference_labels = make_data(spec)
    tiny = blobs(200, seed=3)

    def run(q, ql, r=None, rl=None) -> dict[str, float]:
        if side == "ours":
            return evaluate(q, ql, r, rl)
        if r is None:
            return calculator.get_accuracy(q, ql)
        return calculator.get_accuracy(q, ql, r, rl)

    result: dict[str, object] = {}
    if side != "idle":
        t0 = time.perf_counter()
        run(*tiny)
        result["warmup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            result["metrics"] = run(query, query_labels, reference, reference_labels)
        except (MemoryError, RuntimeError) as exc:  # RLIMIT_AS hit inside numpy/torch/faiss
            result["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        result["seconds"] = time.perf_counter() - t0
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(json.dumps(result))


def run_child(side: str, spec: str, limit_gb: float) -> dict[str, object]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", side, spec, "--pml-limit-gb", str(limit_gb)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        # killed (std::bad_alloc aborts, or the OOM killer): no JSON line
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"error": f"exit {proc.returncode}: {tail}", "seconds": time.perf_counter() - t0}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- parent


@dataclass
class Row:
    spec: str
    ours_s: float
    pml_s: float
    ours_mb: float
    pml_mb: float
    pml_failed: bool
    max_abs_diff: float
    ours: dict
    pml: dict


def mem_available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("inf")


def measure(spec: str, limit_gb: float) -> Row:
    """Both sides on one size, each in its own subprocess, and the idle baseline."""
    idle = run_child("idle", spec, limit_gb)
    ours = run_child("ours", spec, limit_gb)
    if "error" in ours:
        raise SystemExit(f"evaluate() failed on {spec}: {ours['error']}")
    pml = run_child("pml", spec, limit_gb)
    base = float(idle["maxrss_mb"])
    failed = "error" in pml
    diff = (
        float("nan")
        if failed
        else max(abs(ours["metrics"][k] - pml["metrics"][v]) for k, v in COMPARED.items())
    )
    pml_note = f"failed: {pml['error']}" if failed else f"{pml['seconds']:.2f} s"
    print(
        f"  {describe(spec)}: ours {ours['seconds']:.2f} s "
        f"(warm-up {ours['warmup_s']:.2f} s), PML {pml_note}",
        flush=True,
    )
    return Row(
        spec,
        ours["seconds"],
        pml["seconds"],
        ours["maxrss_mb"] - base,
        limit_gb * 1024 if failed else pml["maxrss_mb"] - base,
        failed,
        diff,
        ours["metrics"],
        pml.get("metrics", {"error": pml.get("error")}),
    )


def describe(spec: str) -> str:
    n_query, n_ref = parse_size(spec)
    if n_ref is None:
        return f"{n_query:,} leave-one-out"
    return f"{n_query:,} q vs {n_ref:,} ref"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=list(DEFAULT_SIZES),
        help=f"N (leave-one-out) or QxN (queries x references); default: {' '.join(DEFAULT_SIZES)}",
    )
    parser.add_argument(
        "--pml-limit-gb",
        type=float,
        default=20.0,
        help="address-space limit of the pytorch-metric-learning child",
    )
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.pml_limit_gb)
        return

    limit_gb = min(args.pml_limit_gb, max(mem_available_gb() - 2.0, 1.0))
    import numba
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.0f} GB RAM; "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"numba {numba.__version__}; PML child RLIMIT_AS {limit_gb:.1f} GB",
        flush=True,
    )
    rows = [measure(spec, limit_gb) for spec in args.sizes]

    print()
    print(
        "| data (2-D, 10 classes) | evaluate() | AccuracyCalculator | time ratio "
        "| peak MB ours | peak MB PML | memory ratio | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bound = "≥ " if r.pml_failed else ""
        pml_time = f"> {r.pml_s:.1f} s (died)" if r.pml_failed else f"{r.pml_s:.1f} s"
        pml_mem = f"> {r.pml_mb:,.0f} (limit)" if r.pml_failed else f"{r.pml_mb:,.0f}"
        diff = "n/a" if r.pml_failed else f"{r.max_abs_diff:.1e}"
        print(
            f"| {describe(r.spec)} | {r.ours_s:.2f} s | {pml_time} | "
            f"{bound}{r.pml_s / r.ours_s:.1f}x | {r.ours_mb:,.0f} | {pml_mem} | "
            f"{bound}{r.pml_mb / max(r.ours_mb, 1.0):.0f}x | {diff} |"
        )
    print()
    for r in rows:
        ours = ", ".join(f"{k} {v:.4f}" for k, v in r.ours.items())
        print(f"{describe(r.spec)}: ours {{{ours}}}; PML {r.pml}")


if __name__ == "__main__":
    main()
