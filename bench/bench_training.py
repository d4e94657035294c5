"""Training-loop throughput against the backbone's raw forward+backward, and G-DML's cost.

1. **Loop efficiency** (issue target: >= 90 %): images per second of ``Trainer.fit`` on an
   in-memory ``uint8`` data set (batches sliced from tensors, converted to [0, 1], the method's
   loss, gradient clipping, optimiser step, progress bookkeeping) against the backbone's raw
   forward+backward+SGD step on a float tensor that is already in memory, measured in the
   same process, for every method. Validation is left out of both: it is measured separately
   in the run folders (``seconds`` per epoch include it).
2. **G-DML's whole cost vs the triplet baseline** (target: <= 1.15x with the same student
   epochs), read from finished benchmark run folders (``train_seconds`` = teacher + targets +
   student for G-DML, student for the triplet baseline), when ``--results`` is given.

Usage::

    .venv/bin/python bench/bench_training.py                       # 1x28x28, resnet18 imagenet stem
    .venv/bin/python bench/bench_training.py --shape 3 32 32 --steps 20
    .venv/bin/python bench/bench_training.py --results results/cpu   # + G-DML / triplet cost ratio
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from guided_dml.experiments.config import METHODS, resolve_config
from guided_dml.experiments.factory import build_loss, build_student
from guided_dml.training import ArrayBatches, OptimConfig, Trainer


def raw_throughput(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    """Images/s of forward + backward (sum of outputs) + SGD step on a resident float batch."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):  # warm-up: oneDNN primitive caches, allocator
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
    t0 = time.perf_counter()
    for _ in range(steps):
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
    return steps * len(x) / (time.perf_counter() - t0)


def loop_throughput(method: str, shape: tuple[int, ...], batch: int, steps: int) -> tuple[float, float]:
    """(loop images/s, raw images/s) for one method, same network and batch size."""
    cfg = resolve_config({"method": method, "dataset": "fashion-mnist", "preset": "cpu",
                          "batch_size": batch})
    torch.manual_seed(0)
    model = build_student(cfg, shape, torch.zeros(shape[0]), torch.ones(shape[0]))
    loss_fn, _ = build_loss(cfg)
    n = batch * (steps + 3)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8)
    targets = (torch.randn(n, cfg.embedding_dim) if method == "gdml"
               else torch.randint(0, 10, (n,)))

    def step(b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        emb = model(b[0])
        return loss_fn(emb, b[1])

    raw = raw_throughput(model, torch.rand(batch, *shape), steps)
    # One warm-up epoch of 3 batches, then the timed epoch of `steps` batches.
    warm = Trainer(model=model, loss_fn=loss_fn, step=step,
                   train_batches=ArrayBatches(images[: 3 * batch], targets[: 3 * batch], batch),
                   val_batches=None, config=OptimConfig(epochs=1, plateau_factor=None,
                                                        select_best=False), progress=False)
    warm.fit()
    tr = Trainer(model=model, loss_fn=loss_fn, step=step,
                 train_batches=ArrayBatches(images[3 * batch :], targets[3 * batch :], batch),
                 val_batches=None, config=OptimConfig(epochs=1, plateau_factor=None,
                                                      select_best=False), progress=False)
    t0 = time.perf_counter()
    tr.fit()
    loop = steps * batch / (time.perf_counter() - t0)
    return loop, raw


def gdml_cost_ratio(results: Path) -> list[tuple[str, int, float, float, float]]:
    """(dataset, seed, gdml seconds, triplet seconds, ratio) from finished run folders."""
    rows = []
    for g in sorted(results.glob("runs/*/gdml/seed-*/metrics.json")):
        t = g.parents[1].parent / "triplet" / g.parent.name / "metrics.json"
        if not t.exists():
            continue
        mg, mt = json.loads(g.read_text()), json.loads(t.read_text())
        if mg.get("epochs_run") != mt.get("epochs_run"):
            continue  # early stop differed: not the same student epochs
        rows.append((mg["dataset"], mg["seed"], mg["train_seconds"], mt["train_seconds"],
                     mg["train_seconds"] / mt["train_seconds"]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", nargs=3, type=int, default=[1, 28, 28], metavar=("C", "H", "W"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3, help="median over this many measurements")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--results", type=Path, help="benchmark folder for the G-DML / triplet ratio")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    print(f"backbone: cpu preset (resnet18, imagenet stem), input {shape}, batch {args.batch}\n")
    print(f"{'method':<10} {'raw img/s':>10} {'loop img/s':>11} {'loop/raw':>9}")
    for method in args.methods:
        meas = [loop_throughput(method, shape, args.batch, args.steps) for _ in range(args.repeats)]
        loop = statistics.median(m[0] for m in meas)
        raw = statistics.median(m[1] for m in meas)
        print(f"{method:<10} {raw:>10.0f} {loop:>11.0f} {loop / raw:>8.1%}")
    if args.results:
        rows = gdml_cost_ratio(args.results)
        print("\nG-DML whole cost (teacher + targets + student) / triplet (student), same epochs")
        print(f"{'dataset':<16} {'seed':>4} {'gdml s':>8} {'triplet s':>10} {'ratio':>6}")
        for ds, seed, g, t, r in rows:
            print(f"{ds:<16} {seed:>4} {g:>8.0f} {t:>10.0f} {r:>6.3f}")
        if not rows:
            print("(no pair of finished gdml and triplet runs with equal epochs)")


if __name__ == "__main__":
    main()
