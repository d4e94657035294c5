"""The performance suite (``make bench``): every measurement, then one table of ratios.

Each ratio compares guided-dml with a reference measured in this same run, on this machine and
under its current load, so ratios stay meaningful on a busy machine where absolute times do not:

1. training-loop throughput against the backbone's raw forward/backward, per method, as the
   median ratio of alternating single steps (``bench_training.loop_throughput``; target >= 90 %);
2. G-DML's whole cost (teacher + targets + student) against the triplet baseline
   (``bench_training.gdml_vs_triplet``; target <= 1.15x);
3. ``evaluate()`` against pytorch-metric-learning's ``AccuracyCalculator``, time and peak memory
   (``bench_evaluate.measure``; target >= 10x on both);
4. data loading: IDX, CIFAR-10 pickles, JPEG folder uncached and cached, each against the
   plainest correct loader (``bench_data.run``);
5. the retrieval sets' memory-mapped batches against in-memory batches, a per-file DataLoader
   and the 224-px network (``bench_streaming.run``; target: data >= 10x the network);
6. ``evaluate()`` from 10 000 to 1 000 000 reference points of dimension 128: time growth and
   memory, exact and IVF (``bench_scale.run``).

Usage::

    .venv/bin/python bench/run_all.py          # quick sizes, about 5 minutes on 2 busy cores
    .venv/bin/python bench/run_all.py --full   # the sizes of docs/benchmarks.md (about 25 minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba
import torch

import bench_data
import bench_evaluate
import bench_scale
import bench_streaming
import bench_training
from guided_dml.methods import METHODS


@dataclass
class Ratio:
    """One line of the final table."""

    what: str
    ours: str
    reference: str
    ratio: str
    target: str
    ok: bool | None  # None: no target


@dataclass
class Settings:
    loop_pairs: int  # alternations of one raw and one loop step, per method
    steps: int  # student / triplet steps per round of the G-DML cost measurement
    repeats: int  # its rounds
    evaluate_sizes: tuple[str, ...]
    jpeg_images: int
    scale_queries: int
    streaming_images: int


QUICK = Settings(loop_pairs=15, steps=3, repeats=5, evaluate_sizes=("20000", "3000x60000"), jpeg_images=5_000,
                 scale_queries=2_000, streaming_images=512)
FULL = Settings(loop_pairs=41, steps=6, repeats=9, evaluate_sizes=bench_evaluate.DEFAULT_SIZES, jpeg_images=0,
                scale_queries=10_000, streaming_images=1024)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def training(s: Settings) -> tuple[list[Ratio], float]:
    section("training loop vs raw forward/backward (cpu preset: resnet18, 1x28x28, batch 128)")
    rows, raws = [], []
    for method in METHODS:
        loop, raw, ratio = bench_training.loop_throughput(method, (1, 28, 28), 128, 1, s.loop_pairs)
        raws.append(raw)
        print(f"  {method:<9} raw {raw:7.0f} img/s, loop {loop:7.0f} img/s: {ratio:.1%}", flush=True)
        rows.append(Ratio(f"training loop, {method}", f"{loop:.0f} img/s", f"raw {raw:.0f} img/s",
                          f"{ratio:.1%}", ">= 90 %", ratio >= 0.9))
    return rows, statistics.median(raws)


def gdml_cost(s: Settings) -> list[Ratio]:
    section("G-DML whole cost vs triplet (cpu preset, Fashion-MNIST size)")
    c = bench_training.gdml_vs_triplet((1, 28, 28), steps=s.steps, rounds=s.repeats)
    print(f"  teacher {c['teacher_epochs']} x {c['teacher_epoch_s']:.1f} s, targets {c['targets_s']:.1f} s, "
          f"validation {c['validation_s']:.1f} s / epoch, student {c['student_epoch_s']:.0f} s / epoch, "
          f"triplet {c['triplet_epoch_s']:.0f} s / epoch, {c['epochs']} epochs", flush=True)
    return [Ratio("G-DML total / triplet", f"{c['gdml_s']:.0f} s", f"{c['triplet_s']:.0f} s",
                  f"{c['ratio']:.3f}x", "<= 1.15x", c["ratio"] <= 1.15)]


def evaluation(s: Settings) -> list[Ratio]:
    section("evaluate() vs pytorch-metric-learning AccuracyCalculator (2-D, 10 classes)")
    limit = min(20.0, max(bench_evaluate.mem_available_gb() - 2.0, 1.0))
    rows = []
    for spec in s.evaluate_sizes:
        r = bench_evaluate.measure(spec, limit)
        bound = ">= " if r.pml_failed else ""
        what = f"evaluate, {bench_evaluate.describe(spec)}"
        rows.append(Ratio(f"{what}: time", f"{r.ours_s:.2f} s", f"{r.pml_s:.1f} s",
                          f"{bound}{r.pml_s / r.ours_s:.1f}x faster", ">= 10x", r.pml_s / r.ours_s >= 10))
        # Below 1 MB our side is within the noise of the idle child: report a bound.
        mem = r.pml_mb / max(r.ours_mb, 1.0)
        small = r.ours_mb < 1.0
        rows.append(Ratio(f"{what}: peak memory", "< 1 MB" if small else f"{r.ours_mb:,.0f} MB",
                          f"{r.pml_mb:,.0f} MB", f"{'>= ' if small else bound}{mem:.0f}x less",
                          ">= 10x", mem >= 10))
    return rows


def data_loading(s: Settings, raw_28: float) -> list[Ratio]:
    """``raw_28``: raw forward/backward images/s of the cpu preset's network on 1x28x28."""
    section(f"data loading (JPEG: {s.jpeg_images or 'all'} images)")
    raw_32 = _raw_rgb32()
    rows = []
    for m in bench_data.run(s.jpeg_images):
        # the share of one training epoch over the same images, at the raw speed of their shape
        epoch = bench_data.epoch_seconds(m.images, raw_28 if m.what.startswith("IDX") else raw_32)
        print(f"  {m.what:<26} {m.images:>6} images {m.ours_s:6.2f} s ({m.images / m.ours_s:,.0f} img/s), "
              f"{m.baseline} {m.baseline_s:.2f} s; {m.ours_s / epoch:.1%} of a training epoch", flush=True)
        rows.append(Ratio(f"load {m.what}", f"{m.images / m.ours_s:,.0f} img/s",
                          f"{m.baseline}: {m.images / m.baseline_s:,.0f} img/s",
                          f"time x{m.ours_s / m.baseline_s:.2f}; {m.ours_s / epoch:.1%} of an epoch",
                          "", None))
    return rows


def streaming(s: Settings) -> list[Ratio]:
    section(f"retrieval sets: batches from the memory-mapped cache ({s.streaming_images} photos, 224 px)")
    rows = bench_streaming.run(s.streaming_images, workers=2)
    out = []
    for what, ours, ref, theirs in rows[:-1]:
        print(f"  {what:<30} {ours:6.0f} img/s; {ref} {theirs:6.0f} img/s", flush=True)
        out.append(Ratio(what, f"{ours:.0f} img/s", f"{ref}: {theirs:.0f} img/s",
                         f"x{ours / theirs:.2f}", "", None))
    net = rows[-1][1]
    print(f"  the 224-px ResNet-18 trains at {net:.0f} img/s", flush=True)
    out.append(Ratio("batch from the mapped cache vs the 224-px network", f"{rows[1][1]:.0f} img/s",
                     f"ResNet-18 training step: {net:.0f} img/s", f"x{rows[1][1] / net:.0f}",
                     ">= 10x", rows[1][1] / net >= 10))
    return out


def scaling(s: Settings) -> list[Ratio]:
    section(f"evaluate() from 10 000 to 1 000 000 references (d = 128, {s.scale_queries:,} queries)")
    rows = bench_scale.run(bench_scale.DEFAULT_SIZES, s.scale_queries)
    out = []
    for mode in ("exact", "ivf"):
        steps = bench_scale.growth(rows, mode)
        for n1, n2, b in steps:
            print(f"  {mode}: time ~ N^{b:.2f} from {n1:,} to {n2:,}")
        # Over the whole range: the small sizes' fixed costs and the load's noise matter less.
        pts = [r for r in rows if r["mode"] == mode]
        b = bench_scale.growth([pts[0], pts[-1]], mode)[0][2]
        each = ", ".join(f"{r['seconds']:.2f}" for r in pts)
        out.append(Ratio(f"evaluate {mode}: time from {pts[0]['n_ref']:,} to {pts[-1]['n_ref']:,} refs",
                         f"{each} s", "linear: time ~ N", f"time ~ N^{b:.2f}",
                         "<= N^1.1" if mode == "exact" else "", b <= 1.1 if mode == "exact" else None))
    big = {r["mode"]: r for r in rows if r["n_ref"] == bench_scale.DEFAULT_SIZES[-1]}
    exact, ivf = big["exact"], big["ivf"]
    # The stated bound: the chunk budget (512 MB), the product buffer (<= 64 MB) and 28 bytes per
    # reference item (two scratch key rows, 1/rank table, squared norms).
    budget = 512 + 64 + 28 * 1_000_000 / 2**20
    out.append(Ratio("evaluate exact, 1,000,000 refs: memory", f"+{exact['added_mb']:,.0f} MB",
                     f"{budget:,.0f} MB budget", f"{exact['added_mb'] / budget:.2f} of budget",
                     "<= 1", exact["added_mb"] <= budget))
    out.append(Ratio("evaluate ivf vs exact, 1,000,000 refs", f"{ivf['seconds']:.1f} s",
                     f"exact {exact['seconds']:.1f} s", f"time x{ivf['seconds'] / exact['seconds']:.2f}, "
                     f"recall@8 {ivf['metrics']['ann_recall@8']:.3f}", "", None))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the sizes of docs/benchmarks.md")
    p.add_argument("--threads", type=int,
                   help="threads of torch, numba, faiss and BLAS here and in the child processes "
                        "(on a machine shared with other jobs, 1 avoids OpenMP spin-waiting: "
                        "docs/benchmarks.md)")
    args = p.parse_args()
    s = FULL if args.full else QUICK
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)  # inherited by the measuring subprocesses
        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.perf_counter()
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB; python "
          f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {load[0]:.1f} at start", flush=True)
    rows, raw_28 = training(s)
    rows += gdml_cost(s)
    rows += evaluation(s)
    rows += data_loading(s, raw_28)
    rows += streaming(s)
    rows += scaling(s)
    print(f"\n## Ratios measured in this run ({'full' if args.full else 'quick'}, "
          f"{time.perf_counter() - t0:.0f} s, load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f})\n")
    print("| measurement | guided-dml | reference | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        met = "" if r.ok is None else ("yes" if r.ok else "**no**")
        print(f"| {r.what} | {r.ours} | {r.reference} | {r.ratio} | {r.target} | {met} |")
    return 0


def _raw_rgb32() -> float:
    """Raw forward/backward images/s of the cpu preset's CIFAR-10 network (3x32x32)."""
    from guided_dml.experiments.config import resolve_config
    from guided_dml.experiments.factory import build_student

    cfg = resolve_config({"method": "gdml", "dataset": "cifar10", "preset": "cpu"})
    model = build_student(cfg, (3, 32, 32), torch.zeros(3), torch.ones(3))
    return bench_training.raw_throughput(model, torch.rand(cfg.batch_size, 3, 32, 32), 5)


if __name__ == "__main__":
    sys.exit(main())
