"""Training-loop throughput against the backbone's raw forward+backward, and G-DML's cost.

1. **Loop efficiency** (issue target: >= 90 %): images per second of the training loop
   (``Trainer.train_epoch`` on an in-memory ``uint8`` data set: batches sliced from tensors,
   converted to [0, 1], the method's loss, gradient clipping, optimiser step, bookkeeping)
   against the backbone's raw forward+backward+SGD step on a float tensor already in memory,
   for every method. The two alternate, ``--repeats`` times, and their medians are compared,
   so both see the same machine load. Validation is left out of both (it is measured in 2.).
2. **G-DML's whole cost vs the triplet baseline** (target: <= 1.15x with the same student
   epochs), measured in the same run (:func:`gdml_vs_triplet`): a GEMINI epoch, student and
   triplet steps, target computation and a validation pass alternate; their medians, scaled to
   the cpu preset on Fashion-MNIST (54 000 training images, 10 + 6 epochs), give
   ``(teacher + targets + E x (student epoch + validation)) / (E x (triplet epoch +
   validation))``. With ``--results``, also the ratio of finished benchmark run folders
   (``train_seconds`` = teacher + targets + student for G-DML, student for the triplet
   baseline; measured at different times, so machine load changes it).

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

from guided_dml.evaluation import evaluate
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.factory import (
    build_loss,
    build_student,
    build_teacher,
    gemini_loss,
    teacher_optim,
)
from guided_dml.methods import METHODS
from guided_dml.training import (
    ArrayBatches,
    OptimConfig,
    Trainer,
    TripletBatches,
    embed,
    gemini_step,
    teacher_targets,
)


def raw_throughput(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    """Images/s of forward + backward (sum of outputs) + SGD step on a resident float batch."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):  # warm-up: oneDNN primitive caches, allocator
        _raw_steps(model, opt, x, 1)
    return steps * len(x) / _raw_steps(model, opt, x, steps)


def _raw_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> float:
    """Seconds of ``steps`` raw forward/backward/SGD steps."""
    t0 = time.perf_counter()
    for _ in range(steps):
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def _trainer(method: str, shape: tuple[int, ...], batch: int, n: int, cfg_overrides=None) -> Trainer:
    """The method's network and loss in the real loop, over ``n`` random in-memory images."""
    cfg = resolve_config({"method": method, "dataset": "fashion-mnist", "preset": "cpu",
                          "batch_size": batch, **(cfg_overrides or {})})
    torch.manual_seed(0)
    model = build_student(cfg, shape, torch.zeros(shape[0]), torch.ones(shape[0]))
    loss_fn, _ = build_loss(cfg)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    targets = (torch.randn(n, cfg.embedding_dim, generator=g) if method == "gdml"
               else torch.randint(0, 10, (n,), generator=g))

    def step(b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return loss_fn(model(b[0]), b[1])

    return Trainer(model=model, loss_fn=loss_fn, step=step,
                   train_batches=ArrayBatches(images, targets, batch), val_batches=None,
                   config=OptimConfig(epochs=1, plateau_factor=None, select_best=False),
                   progress=False)


def _timed_epoch(trainer: Trainer, epoch: int) -> float:
    t0 = time.perf_counter()
    trainer.train_epoch(epoch)
    return time.perf_counter() - t0


def loop_throughput(
    method: str, shape: tuple[int, ...], batch: int, steps: int, rounds: int = 3
) -> tuple[float, float, float]:
    """(loop images/s, raw images/s, loop/raw) for one method, same network and batch size.

    ``rounds`` alternations of ``steps`` raw steps and one loop epoch of ``steps`` batches
    (``Trainer.train_epoch``: slicing, conversion, loss, clipping, optimiser, bookkeeping), on
    the same model. The ratio is the median over the rounds of raw time / loop time: each pair
    of neighbouring blocks sees nearly the same machine load, which on a shared machine changes
    faster than a whole measurement takes.
    """
    trainer = _trainer(method, shape, batch, batch * steps)
    model = trainer.model
    x = torch.rand(batch, *shape)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    _raw_steps(model, opt, x, 2)  # warm-up: oneDNN primitive caches, allocator
    raw_s, loop_s = [], []
    for r in range(rounds):
        raw_s.append(_raw_steps(model, opt, x, steps))
        loop_s.append(_timed_epoch(trainer, r))
    images = steps * batch
    ratio = statistics.median(r / lp for r, lp in zip(raw_s, loop_s, strict=True))
    return images / statistics.median(loop_s), images / statistics.median(raw_s), ratio


def gdml_vs_triplet(
    shape: tuple[int, ...] = (1, 28, 28),
    steps: int = 4,
    rounds: int = 2,
    n_train: int = 54_000,
    n_val: int = 6_000,
    n_classes: int = 10,
) -> dict[str, float]:
    """Seconds of each part of a cpu-preset G-DML run and of a triplet run, and their ratio.

    Per round, one after the other: one GEMINI epoch (its ``C(C-1) = 90`` class-pair steps),
    ``steps`` student steps, ``steps`` triplet steps, the targets of ``n_val`` images and one
    validation pass (embedding + leave-one-out MAP@R of ``n_val`` images); medians over the
    rounds, scaled to the preset: ``E_teacher x teacher epoch + targets of n_train + n_val
    images + E x (student epoch + validation)`` against ``E x (triplet epoch + validation)``.
    """
    cfg = resolve_config({"method": "gdml", "dataset": "fashion-mnist", "preset": "cpu"})
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train, *shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(n_train) % n_classes
    mean, std = torch.zeros(shape[0]), torch.ones(shape[0])
    torch.manual_seed(0)
    teacher = build_teacher(cfg, n_classes, shape, mean, std)
    gloss = gemini_loss(cfg)
    one_epoch = teacher_optim(cfg)
    one_epoch.epochs = 1
    teacher_tr = Trainer(model=teacher, loss_fn=gloss, step=lambda b: gemini_step(teacher, gloss, b),
                         train_batches=TripletBatches(images, labels, cfg.gemini_batch),
                         val_batches=None, config=one_epoch, progress=False)
    student_tr = _trainer("gdml", shape, cfg.batch_size, cfg.batch_size * steps)
    triplet_tr = _trainer("triplet", shape, cfg.batch_size, cfg.batch_size * steps)
    val_images, val_labels = images[:n_val], labels[:n_val]
    for tr in (student_tr, triplet_tr):  # warm-up
        _raw_steps(tr.model, torch.optim.SGD(tr.model.parameters(), lr=1e-3),
                   torch.rand(cfg.batch_size, *shape), 1)
    parts: dict[str, list[float]] = {k: [] for k in ("teacher", "student", "triplet", "targets", "val")}
    for r in range(rounds):
        parts["teacher"].append(_timed_epoch(teacher_tr, r))
        parts["student"].append(_timed_epoch(student_tr, r) / steps)
        parts["triplet"].append(_timed_epoch(triplet_tr, r) / steps)
        t0 = time.perf_counter()
        teacher_targets(teacher, val_images, val_labels)
        parts["targets"].append((time.perf_counter() - t0) / n_val)
        t0 = time.perf_counter()  # the per-epoch model selection every method pays
        evaluate(embed(student_tr.model, val_images), val_labels, nmi=False)
        parts["val"].append(time.perf_counter() - t0)
    m = {k: statistics.median(v) for k, v in parts.items()}
    batches = n_train // cfg.batch_size
    teacher_s = cfg.gemini_epochs * m["teacher"]
    targets_s = (n_train + n_val) * m["targets"]
    student_epoch, triplet_epoch = batches * m["student"], batches * m["triplet"]
    gdml = teacher_s + targets_s + cfg.epochs * (student_epoch + m["val"])
    triplet = cfg.epochs * (triplet_epoch + m["val"])
    return {"teacher_epoch_s": m["teacher"], "teacher_epochs": cfg.gemini_epochs,
            "targets_s": targets_s, "validation_s": m["val"], "student_epoch_s": student_epoch,
            "triplet_epoch_s": triplet_epoch, "epochs": cfg.epochs, "gdml_s": gdml,
            "triplet_s": triplet, "ratio": gdml / triplet}


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
    p.add_argument("--repeats", type=int, default=3,
                   help="alternations of raw and loop measurements (medians compared)")
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
        loop, raw, ratio = loop_throughput(method, shape, args.batch, args.steps, args.repeats)
        print(f"{method:<10} {raw:>10.0f} {loop:>11.0f} {ratio:>8.1%}")
    c = gdml_vs_triplet(shape)
    print(f"\nG-DML whole cost vs triplet, cpu preset on {shape} x 54 000 (measured now): "
          f"teacher {c['teacher_epochs']} x {c['teacher_epoch_s']:.1f} s + targets "
          f"{c['targets_s']:.1f} s + {c['epochs']} x (student {c['student_epoch_s']:.0f} s + "
          f"validation {c['validation_s']:.1f} s) = {c['gdml_s']:.0f} s vs {c['epochs']} x "
          f"(triplet {c['triplet_epoch_s']:.0f} s + validation) = {c['triplet_s']:.0f} s: "
          f"{c['ratio']:.3f}x")
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
