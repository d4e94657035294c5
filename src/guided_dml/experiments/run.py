"""One run: a data set, a method, a seed → a run folder with everything a reader needs.

Run folder layout::

    config.json        the fully resolved config (+ its hash)
    history.jsonl      one line per epoch and phase (teacher, student)
    teacher.ckpt       GEMINI's per-epoch checkpoint       (deleted when the run finishes)
    targets.pt         GEMINI's 2-D targets of train + val (deleted when the run finishes)
    student.ckpt       the student's per-epoch checkpoint  (deleted when the run finishes)
    model.pt           the selected student, loadable without training data, with the training
                       set's embeddings, labels and file paths (what `gdml search` looks in)
    .gdml-run.json     the manifest: what the folder may hold (the only files --overwrite removes)
    metrics.json       evaluate() on the test set, training set as reference; written last,
                       so its presence means the run is complete
    embeddings.npz     test embeddings, labels, class names
    embedding.png      the 2-D test map coloured by class
    curves.png         training curves

Length (about 600 lines, over the project's ~500): the module is orchestration only (the steps,
the history writer, DDP and target scaling live in ``training/``), but it holds the three
stages that read and write the run folder above (preparing the data, the teacher and student
phases, the evaluation), which are easier to follow side by side than split across files.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_atomic
from ..data import ArrayDataset, load_dataset, stratified_split
from ..data.names import is_class_disjoint
from ..data.registry import check_dataset, ensure_available, is_builtin
from ..data.shifts import imbalanced_subset
from ..data.splits import class_disjoint_splits
from ..data.streaming import VIEW
from ..errors import ConfigError, DataError
from ..evaluation import evaluate
from ..methods import trains_teacher
from ..models.embedding import EmbeddingNet, channel_stats
from ..models.pretrained import resolve_pretrained
from ..plotting import plot_embedding, plot_history
from ..training import (
    ArrayBatches,
    FitResult,
    Trainer,
    TripletBatches,
    accelerator,
    embed,
    gemini_step,
    metric_step,
    on_device,
    standardize_targets,
    teacher_targets,
)
from ..training import distributed as dist
from ..training.authors_triplet import FixedTripletBatches
from ..training.batches import ClassBalancedBatches
from ..training.checkpoint import load_run_file, save_json, save_torch
from ..training.history import RunHistory
from ..training.trainer import BatchSource, convergence
from .config import RunConfig
from .factory import (
    build_augmentation,
    build_loss,
    build_student,
    build_teacher,
    gemini_loss,
    save_model,
    student_optim,
    student_stats,
    teacher_optim,
)
from .plan import warn_if_near_chance
from .run_folder import (
    MANIFEST,
    check_inputs_apart,
    clear_run_folder,
    is_run_folder,
    remove_leftovers,
    write_manifest,
)

log = logging.getLogger(__name__)

COMPLETE_MARKER = "metrics.json"


@dataclass
class PreparedData:
    """The splits of one run: ``train``/``val`` from the training set, ``test`` untouched."""

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    reference: ArrayDataset  # train + val: the paper's retrieval reference (the training set)


def val_scorable(data: PreparedData) -> bool:
    """Whether a retrieval score (``--select-on map@r`` etc.) can rank epochs on ``data.val``:
    leave-one-out among the validation samples needs some class with two of them."""
    counts = data.val.class_counts()
    return len(counts) > 0 and int(counts.max()) >= 2


def prepare_data(cfg: RunConfig, splits: dict[str, ArrayDataset] | None = None) -> PreparedData:
    """Load (or take) the data set, subsample if asked, and split off validation by ``seed``."""
    if splits is None:
        opts = {"on_error": "skip"} if cfg.skip_bad and not is_builtin(cfg.dataset) else {}
        splits = load_dataset(cfg.dataset, data_dir=cfg.data_dir, **opts)
    train_full, test = splits["train"], splits["test"]
    if cfg.split == "classes":
        # The class-disjoint protocol: the seen classes' training images train and validate;
        # the unseen classes' test images are queries and reference (leave-one-out).
        train_full, test = class_disjoint_splits(train_full, test, cfg.dataset, cfg.train_classes)
    check_classes(train_full)
    if cfg.imbalance:
        # Sub-population shift: a long-tailed training set, the balanced test set untouched.
        train_full = train_full.subset(imbalanced_subset(train_full.labels, cfg.imbalance, seed=cfg.seed))
    if cfg.train_subset is not None and cfg.train_subset < len(train_full):
        keep_frac = cfg.train_subset / len(train_full)
        _, keep = stratified_split(train_full.labels, keep_frac, seed=cfg.seed)
        train_full = train_full.subset(keep)
    train_idx, val_idx = stratified_split(train_full.labels, cfg.val_fraction, seed=cfg.seed)
    return PreparedData(
        train=train_full.subset(train_idx),
        val=train_full.subset(val_idx),
        test=test,
        reference=train_full,
    )


def check_classes(train: ArrayDataset) -> None:
    """Refuse training data that metric learning cannot use, naming the classes at fault.

    Every method needs two classes (a negative) and two samples of each class (a positive pair;
    GEMINI's anchor and positive).
    """
    counts = train.class_counts()
    present = [train.classes[k] for k in range(len(counts)) if counts[k] > 0]
    if len(present) < 2:
        only = f" ({present[0]!r})" if present else ""
        raise DataError(
            f"the training data of {train.name} have a single class{only}; metric learning needs "
            "at least 2 classes (for an image folder: one sub-folder per class)"
        )
    lonely = [train.classes[k] for k in range(len(counts)) if counts[k] == 1]
    if lonely:
        more = f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
        shown = ", ".join(repr(c) for c in lonely[:5]) + more
        raise DataError(
            f"class(es) {shown} of {train.name} have a single training sample; every class needs at "
            "least 2 (add images or remove those classes)"
        )


def _check_run_dir(run_dir: Path, cfg: RunConfig, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: nothing in an existing folder is lost unless the user asks, and
    ``overwrite`` removes only what the folder's manifest lists (:mod:`.run_folder`)."""
    check_inputs_apart(cfg, run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file; give the path of a run folder")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if overwrite:
        left = clear_run_folder(run_dir)
        if left:
            shown = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
            warnings.warn(f"--overwrite kept what is not the run's own in {run_dir}: {shown}",
                          stacklevel=2)  # a note on the command line
        return
    if not is_run_folder(run_dir):
        raise ConfigError(
            f"{run_dir} exists and is not a guided-dml run folder; choose another --out"
        )
    remove_leftovers(run_dir)  # temporary files of a writer killed by SIGKILL
    cfg_file = run_dir / "config.json"
    if not cfg_file.is_file():
        return  # the manifest alone: a start that stopped before its config was written
    old_hash = load_run_file(cfg_file).get("hash")
    if old_hash != cfg.hash():
        raise ConfigError(
            f"{run_dir} holds a run with other settings (config hash {old_hash}, now "
            f"{cfg.hash()}); choose another --out or pass --overwrite"
        )
    if {p.name for p in run_dir.iterdir()} <= {"config.json", MANIFEST}:
        return  # a start that failed before its first epoch (bad data): nothing to resume or lose
    if not resume and not (run_dir / COMPLETE_MARKER).exists():
        raise ConfigError(
            f"{run_dir} holds an unfinished run of these settings; pass --resume to continue "
            "it or --overwrite to start again"
        )


def run_experiment(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    splits: dict[str, ArrayDataset] | None = None,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train ``cfg.method`` and evaluate it; returns the metrics (also in ``metrics.json``).

    A finished run folder of the same config is returned as it is (nothing recomputed).
    ``resume`` continues an interrupted one from its last epoch.

    Launched by torchrun (``WORLD_SIZE > 1``), every process calls this: they join one process
    group and train data-parallel; rank 0 alone reads and writes ``run_dir`` and evaluates, and
    every process returns the same metrics.
    """
    cfg.validate()
    device = accelerator.resolve_device(cfg.device)
    cfg = _with_world_size(cfg)
    dist.init_from_env(device)
    run_dir = Path(run_dir)
    done = run_dir / COMPLETE_MARKER

    def open_run_dir() -> dict[str, Any] | None:
        if splits is None:
            check_dataset(cfg.dataset)  # a typo: one line, and no run folder for it
        _check_run_dir(run_dir, cfg, resume, overwrite)
        if done.exists():
            return load_run_file(done)
        if splits is None:
            # Missing files (fetched now if they can be): one line, and no run folder either.
            ensure_available(cfg.dataset, cfg.data_dir)
        resolve_pretrained(cfg.pretrained)  # missing weights: no run folder either
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / MANIFEST).exists():
            write_manifest(run_dir)  # first: from now on the folder is recognisably ours
        save_json({**cfg.to_dict(), "hash": cfg.hash()}, run_dir / "config.json")
        return None

    finished = dist.on_main(open_run_dir)
    if finished is not None:
        return finished

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Flush denormals to zero from the start. Some libraries set this CPU flag when they are
    # first loaded (faiss, numba kernels built with fast-math), which would make a resumed run
    # differ from an uninterrupted one in the 7th digit; fixing it here makes runs repeatable.
    torch.set_flush_denormal(True)
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()

    # Rank 0 first: it may have to download the data set, which the others then find.
    data = dist.main_first(lambda: prepare_data(cfg, splits))
    trained = train_model(cfg, data, run_dir, resume=resume, device=device)
    return dist.on_main(lambda: _evaluate_run(cfg, data, trained, run_dir, t_start, keep_checkpoints))


def _with_world_size(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``nproc`` = the processes torchrun started (checked against ``--nproc``)."""
    world = dist.env_world_size() if dist.launched_by_torchrun() else 1
    if world == 1 and cfg.nproc > 1:
        raise ConfigError(
            f"nproc = {cfg.nproc} needs one process per rank: run `gdml train --nproc "
            f"{cfg.nproc} ...` (it starts torchrun) or `torchrun --nproc_per_node {cfg.nproc} "
            "$(which gdml) train ...`"
        )
    if world > 1 and cfg.nproc not in (1, world):
        raise ConfigError(f"--nproc {cfg.nproc} but torchrun started {world} processes")
    return replace(cfg, nproc=world).validate() if world != cfg.nproc else cfg


def _evaluate_run(
    cfg: RunConfig,
    data: PreparedData,
    trained: TrainedModel,
    run_dir: Path,
    t_start: float,
    keep_checkpoints: bool,
) -> dict[str, Any]:
    """Evaluate the trained model and write the rest of the run folder (rank 0 only)."""
    done = run_dir / COMPLETE_MARKER
    model, result, phases = trained.model, trained.result, trained.phases
    input_shape, name = trained.input_shape, trained.name
    train_seconds = sum(r["seconds"] for hist in phases.values() for r in hist)

    # ---- evaluation: test queries against the training set (G-DML Sec. 4: the training set is the reference)
    t_eval = time.perf_counter()
    ref_emb = embed(model, data.reference.images)
    test_emb = embed(model, data.test.images)
    if not torch.isfinite(test_emb).all() or not torch.isfinite(ref_emb).all():
        raise DataError(f"{name}: the trained model gives non-finite embeddings; try a lower --lr")
    if cfg.split == "classes":  # unseen classes: each test image against the other ones
        metrics = evaluate(test_emb, data.test.labels)
    else:
        metrics = evaluate(test_emb, data.test.labels, ref_emb, data.reference.labels)
    eval_seconds = time.perf_counter() - t_eval

    # A retrieval benchmark's photos were stored as one view (data/streaming.py): new photos
    # must be decoded the same way to be embedded as the training ones were.
    view = {"input_view": list(VIEW)} if is_class_disjoint(cfg.dataset) else None
    save_model(run_dir / "model.pt", model, cfg, input_shape, data.reference.classes,
               reference=reference_set(cfg, data.reference, ref_emb), extra=view)
    write_atomic(run_dir / "embeddings.npz", lambda f: np.savez_compressed(
        f,
        test_embeddings=test_emb.numpy(),
        test_labels=data.test.labels.numpy(),
        classes=np.array(data.test.classes),
    ))
    plot_embedding(test_emb.numpy(), data.test.labels.numpy(), data.test.classes,
                   run_dir / "embedding.png", title=f"{cfg.method_label} — {cfg.dataset_label} (test)")
    plot_history([{"phase": p, **r} for p, h in phases.items() for r in h],
                 run_dir / "curves.png", title=name)

    out = {
        **{k: float(v) for k, v in metrics.items()},
        "method": cfg.method_label,
        "dataset": cfg.dataset_label,
        "seed": cfg.seed,
        "config_hash": cfg.hash(),
        # Not in the hash, yet it changes the numbers (summation order): see docs/results.md.
        # The count in use, also when cfg.threads is None (torch's default).
        "threads": torch.get_num_threads(),
        # Likewise the processor and the torch build (their kernels round differently).
        "processor": accelerator.processor_name(accelerator.resolve_device(cfg.device)),
        "torch": torch.__version__,
        "best_epoch": result.best_epoch + 1,
        "epochs_run": len(result.history),
        **convergence(result.history),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": time.perf_counter() - t_start,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
    }
    save_json(out, done)  # last: the completion marker
    if not keep_checkpoints:
        for f in ("student.ckpt", "teacher.ckpt", "targets.pt"):
            (run_dir / f).unlink(missing_ok=True)
    return out


def reference_set(cfg: RunConfig, reference: ArrayDataset, embeddings: torch.Tensor) -> dict[str, Any]:
    """What ``gdml search`` needs in ``model.pt``: the training set's embeddings, labels, files.

    ``root`` is the absolute path of an image folder or archive data set (the file paths are
    relative to it), else None.
    """
    root = Path(cfg.dataset).expanduser()
    return {
        "embeddings": embeddings.detach().cpu().float(),
        "labels": reference.labels.clone(),
        "paths": list(reference.paths) if reference.paths is not None else None,
        "root": str(root.resolve()) if reference.paths is not None and root.exists() else None,
    }


@dataclass
class TrainedModel:
    """What :func:`train_model` returns."""

    model: EmbeddingNet  # the selected student (G-DML) or baseline network, on the CPU
    input_shape: tuple[int, ...]  # (C, H, W) or (F,)
    result: FitResult  # the student's fit: history, best epoch
    phases: dict[str, list[dict[str, Any]]]  # per-epoch records: "teacher" (G-DML), "student"
    name: str  # "gdml+mdr on digits": for messages


@dataclass
class RunContext:
    """What every phase of one training run shares."""

    cfg: RunConfig
    data: PreparedData
    run_dir: Path | None  # checkpoints and targets.pt go here; None: nothing is written
    device: torch.device  # where the networks and batches live
    name: str  # "gdml+mdr on digits": for messages and progress bars
    resume: bool  # continue from the checkpoints in run_dir
    history: RunHistory

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` or ``(F,)`` of one training input."""
        return tuple(self.data.train.images.shape[1:])


@dataclass
class TeacherPhase:
    """What :func:`teacher_phase` returns: GEMINI's targets and its per-epoch records."""

    train_targets: torch.Tensor  # (N_train, d) float32: t_i = G(x_i, y_i) of data.train
    val_targets: torch.Tensor  # (N_val, d) of data.val
    history: list[dict[str, Any]]  # the teacher's epochs (targets' cost booked on the last)


def train_model(
    cfg: RunConfig,
    data: PreparedData,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Train ``cfg.method`` on ``data.train`` (selecting epochs on ``data.val``); no evaluation.

    With a ``run_dir``, the history and per-epoch checkpoints are written there (and ``resume``
    continues from them); without one nothing is written, as the estimator wants. ``device``
    is where the networks and batches live; the returned model is on the CPU.

    Inside a process group (torchrun) every process calls this with the same arguments: each
    trains on its slice of every global batch of ``cfg.batch_size`` under
    DistributedDataParallel, the losses see the gathered global batch, and rank 0 alone trains
    GEMINI and writes the history and checkpoints (:mod:`guided_dml.training.distributed`).
    """
    if cfg.select_on not in ("loss", "last") and not val_scorable(data):
        # Say so now rather than after the first epoch (the estimator falls back to the loss).
        raise ConfigError(
            f"the validation split has {len(data.val)} image(s) (--val-fraction "
            f"{cfg.val_fraction} of {len(data.reference)}) and no class with two, so --select-on "
            f"{cfg.select_on} cannot score it; raise --val-fraction, add images, or pass "
            "--select-on loss"
        )
    # The pretrained weights before any training (--pretrained imagenet: fetched, rank 0 first).
    dist.main_first(lambda: resolve_pretrained(cfg.pretrained))
    mean, std = channel_stats(data.train.images)
    writes = run_dir is not None and dist.is_main()
    history = RunHistory(run_dir / "history.jsonl" if writes else None)
    name = f"{cfg.method_label} on {cfg.dataset_label}"
    ctx = RunContext(cfg, data, run_dir, torch.device(device), name, resume, history)

    # ---- Algorithm 1: the GEMINI teacher and its targets (G-DML only)
    targets: tuple[torch.Tensor, torch.Tensor] | None = None
    if trains_teacher(cfg.method):
        # GEMINI is cheap next to the student: rank 0 trains it and sends its targets to all.
        teacher = dist.on_main(lambda: teacher_phase(ctx, mean, std))
        targets = teacher.train_targets, teacher.val_targets
        if cfg.target_scaling == "standardize":
            targets = standardize_targets(*targets)
    train_source, val_source = _batch_sources(ctx, targets)

    # ---- Algorithm 2 (student) or a baseline: the same network and loop for every method
    model, result = student_phase(ctx, mean, std, train_source, val_source)
    if dist.is_main():
        warn_if_near_chance(result.history, data.val.labels, name, score_key(cfg))
    return TrainedModel(model.cpu().eval(), ctx.input_shape, result, history.phases, name)


#: A GEMINI restart replaces the kept teacher only when its final training loss is below this
#: fraction of the kept one's: the guard is for failed layouts (Fashion-MNIST seed 4 of the
#: `cpu` grid ended at 0.128 against 0.031-0.034 with its classes on a line), not for the
#: seed-to-seed noise of good ones, which would change a run for no gain.
RESTART_FACTOR = 0.5


def teacher_phase(ctx: RunContext, mean: torch.Tensor, std: torch.Tensor) -> TeacherPhase:
    """Train GEMINI (G-DML Algorithm 1) and compute its targets of ``data.train`` and ``data.val``.

    ``mean``/``std``: the training images' channel statistics (GEMINI's input
    standardisation). Every epoch is recorded as ``"teacher"`` in ``ctx.history`` (written after
    each one) and checkpointed in ``teacher.ckpt``; the finished targets and records are saved in
    ``targets.pt``. With ``ctx.resume`` a saved ``targets.pt`` is returned as it is, else
    training continues from ``teacher.ckpt``. Rank 0 alone runs this.

    ``cfg.gemini_restarts`` (not in the paper; default 0) trains that many more teachers, restart
    ``r`` from seed ``seed + 1000 r`` on the same images, recorded as phase
    ``"teacher-restart-r"``; one replaces the kept teacher only if its final training loss (Eq. 5,
    no test or validation data) is below ``RESTART_FACTOR`` times the kept one's. When none does,
    the targets, and so the whole run, are those of the run without restarts. Restarts are not
    checkpointed (about a minute each): an interrupted one trains again on resume.
    """
    cfg, data, run_dir = ctx.cfg, ctx.data, ctx.run_dir
    targets_file = run_dir / "targets.pt" if run_dir is not None else None
    if ctx.resume and targets_file is not None and targets_file.exists():
        saved = load_run_file(targets_file)
        if not {"train", "val", "history"} <= set(saved):
            raise DataError(f"run folder file {targets_file} is damaged (it lacks the teacher's "
                            "targets); delete that file to recompute it, or pass --overwrite")
        ctx.history.phases.update(saved.get("phases") or {"teacher": saved["history"]})
        return TeacherPhase(saved["train"], saved["val"], saved["history"])
    teacher, records = _fit_gemini(ctx, mean, std, cfg.seed, "teacher",
                                   run_dir / "teacher.ckpt" if run_dir is not None else None)
    for r in range(1, cfg.gemini_restarts + 1):
        phase = f"teacher-restart-{r}"
        other, other_records = _fit_gemini(ctx, mean, std, cfg.seed + 1000 * r, phase, None)
        better = other_records[-1]["train_loss"] < RESTART_FACTOR * records[-1]["train_loss"]
        if better:
            log.info("%s: GEMINI restart %d ends at loss %.4g against %.4g: its targets are kept",
                     ctx.name, r, other_records[-1]["train_loss"], records[-1]["train_loss"])
            teacher, records = other, other_records
    if cfg.gemini_restarts:
        for phase, recs in ctx.history.phases.items():
            if phase.startswith("teacher"):
                recs[-1]["kept"] = recs is records
    t0 = time.perf_counter()
    train_t = teacher_targets(teacher, data.train.images, data.train.labels)
    val_t = teacher_targets(teacher, data.val.images, data.val.labels)
    if not (torch.isfinite(train_t).all() and torch.isfinite(val_t).all()):
        raise DataError(f"{ctx.name}: GEMINI produced non-finite targets; try a lower --gemini-lr")
    # Target computation is part of G-DML's cost: book it on the kept teacher's last epoch.
    records[-1]["seconds"] += time.perf_counter() - t0
    if targets_file is not None:
        phases = {k: v for k, v in ctx.history.phases.items() if k.startswith("teacher")}
        save_torch({"train": train_t, "val": val_t, "history": records, "phases": phases},
                   targets_file)
    ctx.history.write()
    return TeacherPhase(train_t, val_t, records)


def _fit_gemini(
    ctx: RunContext, mean: torch.Tensor, std: torch.Tensor, seed: int, phase: str,
    checkpoint: Path | None,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """One GEMINI training from ``seed`` (Algorithm 1), recorded as ``phase``: the trained
    teacher and its per-epoch records."""
    cfg, data, device, name = ctx.cfg, ctx.data, ctx.device, ctx.name
    torch.manual_seed(seed)
    num_classes = len(data.reference.classes)
    teacher = build_teacher(cfg, num_classes, ctx.input_shape, mean, std).to(device)
    # The authors train GEMINI on every training image ("all"); by default only on the
    # student's training part, so the validation split stays unseen by the whole pipeline.
    fit_on = data.reference if cfg.gemini_data == "all" else data.train
    train_source = TripletBatches(fit_on.images, fit_on.labels, cfg.gemini_batch,
                                  redraw=cfg.gemini_redraw, seed=seed)
    # The authors train GEMINI for a fixed number of epochs and keep the last one; the student's
    # validation loss (on GEMINI's targets of the validation split) still guards the pipeline.
    val_source: TripletBatches | None = None
    if cfg.gemini_validate:
        if int(torch.bincount(data.val.labels, minlength=num_classes).min()) >= 2:
            val_source = TripletBatches(data.val.images, data.val.labels, cfg.gemini_batch,
                                        redraw=False, seed=seed)
        else:
            # A rare class (long-tailed or tiny data) has < 2 validation samples: no triplet
            # can be formed for it, so GEMINI is monitored on its training loss instead.
            log.warning("GEMINI: a class has fewer than 2 validation samples; "
                        "monitoring the training loss instead of a validation loss")
    loss_fn = gemini_loss(cfg)
    trainer = Trainer(
        model=teacher, loss_fn=loss_fn, step=partial(gemini_step, teacher, loss_fn),
        train_batches=on_device(train_source, device),
        val_batches=on_device(val_source, device) if val_source is not None else None,
        config=teacher_optim(cfg), seed=seed, name=f"GEMINI teacher ({cfg.dataset})",
        checkpoint_path=checkpoint, progress=cfg.progress, distributed=False,  # rank 0 alone
        phase=f"{name}: {phase}",
    )
    ctx.history.follow(phase, trainer)
    if ctx.resume:
        trainer.try_resume()
    records = ctx.history.phases[phase] = trainer.fit().history
    return teacher, records


def _batch_sources(
    ctx: RunContext, targets: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[BatchSource, BatchSource]:
    """The student's (or baseline's) training and validation batches, this process's part.

    ``targets``: GEMINI's ``(train, val)`` targets, the student's regression targets (G-DML
    Algorithm 2); None for a baseline, which trains on the labels.
    """
    cfg, data = ctx.cfg, ctx.data
    part = (dist.rank(), dist.world_size())  # this process's slice of every global batch
    augment = build_augmentation(cfg, data.train.images)
    if targets is not None:
        train_t, val_t = targets
        return (ArrayBatches(data.train.images, train_t, cfg.batch_size, augment=augment, part=part),
                ArrayBatches(data.val.images, val_t, 512, shuffle=False, drop_last=False, part=part))
    if cfg.triplet_sampling == "class-pairs":
        # The authors' triplet network: triplets drawn once per split (the validation ones
        # score the validation loss the same way).
        return (FixedTripletBatches(data.train.images, data.train.labels, cfg.batch_size,
                                    seed=cfg.seed),
                FixedTripletBatches(data.val.images, data.val.labels, cfg.batch_size,
                                    seed=cfg.seed + 1, shuffle=False))
    train_source: BatchSource
    if cfg.batch_sampler == "pk":
        train_source = ClassBalancedBatches(data.train.images, data.train.labels, cfg.batch_size,
                                            k=cfg.samples_per_class, augment=augment)
    else:
        train_source = ArrayBatches(data.train.images, data.train.labels, cfg.batch_size,
                                    augment=augment, part=part)
    # Validation batches as large as training ones: pair losses depend on batch size.
    val_source = ArrayBatches(data.val.images, data.val.labels, cfg.batch_size,
                              shuffle=True, drop_last=len(data.val) >= cfg.batch_size, part=part)
    return train_source, val_source


def score_key(cfg: RunConfig) -> str:
    """The ``evaluate`` key of the history's ``val_score``: the ``--select-on`` criterion;
    "last" keeps the last epoch (the authors') and still records the validation MAP@R, so
    every run has a validation curve ("loss" records no score and ranks on the loss)."""
    return "map@r" if cfg.select_on in ("last", "loss") else cfg.select_on


def student_phase(
    ctx: RunContext,
    mean: torch.Tensor,
    std: torch.Tensor,
    train_source: BatchSource,
    val_source: BatchSource,
) -> tuple[EmbeddingNet, FitResult]:
    """Train the student (G-DML Algorithm 2) or a baseline network; returns it and its fit.

    ``mean``/``std``: the training images' channel statistics (the network's input
    standardisation). Every epoch is recorded as ``"student"`` in ``ctx.history`` (written after
    each one) and checkpointed in ``student.ckpt``; ``ctx.resume`` continues from it.
    """
    cfg, data, dev, name = ctx.cfg, ctx.data, ctx.device, ctx.name
    torch.manual_seed(cfg.seed)
    layout = accelerator.memory_format(cfg.channels_last, ctx.input_shape)
    model = build_student(cfg, ctx.input_shape, *student_stats(cfg, ctx.input_shape, mean, std)).to(
        dev, memory_format=layout)
    loss_fn, miner = build_loss(cfg)
    loss_fn.to(dev)
    net = dist.data_parallel(model, dev, cfg.batch_size)  # DDP averages gradients in backward
    amp = accelerator.amp_dtype(cfg.amp, dev)
    step = partial(metric_step, net, loss_fn, miner=miner, layout=layout,
                   autocast=partial(accelerator.autocast, dev, amp),
                   three_forwards=cfg.triplet_sampling == "class-pairs")

    key = score_key(cfg)

    def val_score() -> float:
        # Leave-one-out retrieval among the validation embeddings: the same criterion for
        # every method, whatever the scale or reducer of its loss.
        return evaluate(embed(model, data.val.images), data.val.labels, nmi=False)[key]

    scored = cfg.select_on != "loss" and (cfg.select_on != "last" or val_scorable(data))

    trainer = Trainer(
        model=model, loss_fn=loss_fn, step=step, train_batches=on_device(train_source, dev),
        val_batches=on_device(val_source, dev), config=student_optim(cfg), seed=cfg.seed,
        name=name, checkpoint_path=ctx.run_dir / "student.ckpt" if ctx.run_dir is not None else None,
        progress=cfg.progress, val_score=val_score if scored else None,
        grad_scaler=accelerator.grad_scaler(dev, amp),
        phase=f"{name}: student" if trains_teacher(cfg.method) else name,
    )
    ctx.history.follow("student", trainer)
    if ctx.resume:
        trainer.try_resume()
        ctx.history.phases["student"] = trainer.result.history
    result = trainer.fit()
    ctx.history.phases["student"] = result.history
    ctx.history.write()
    return model, result
