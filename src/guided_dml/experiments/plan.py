"""The fit plan: training settings sized to the data, for what the user leaves unset.

A preset's numbers are sized for one data set (the ``cpu`` preset: ResNet-18, 6 epochs of batch
128 on 54 000 Fashion-MNIST images, i.e. ~2 500 optimiser steps). On a folder of 100 photos the
same numbers give one SGD step per epoch and a map no better than chance (issue 14). The plan
derives the settings that depend on the amount and shape of the data from three numbers, the
number of training samples, the number of classes and the input shape, so that every run takes
enough optimiser steps for the student *and* for the GEMINI teacher.

Precedence: code defaults < preset < **plan** < config file < flags / estimator parameters: the
plan only fills what the user did not set. It applies to the ``cpu`` preset on data that have no
data-set branch of their own in it (arrays given to :class:`~guided_dml.GuidedEmbedder`, image
folders and archives): ``paper`` is the authors' protocol, ``smoke`` is for tests, and the
MNIST / Fashion-MNIST / CIFAR-10 / digits settings of ``cpu`` are measured per data set
(docs/presets.md). The choices and the validation runs behind them: docs/presets.md, "Fit plan".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..data.names import dataset_key

SMALL_IMAGE = 32  # images smaller than this (either side) get the small CNN
SMALL_DATA = 5_000  # fewer training samples than this: the small CNN, whatever the image size
MIN_STUDENT_STEPS = 4_000  # optimiser steps of the student (Fashion-MNIST cpu runs: ~2 500)
MAX_EPOCHS = 300  # ... but never more epochs than this (tiny folders)
MIN_EPOCHS = 30
MAX_BATCH = 64  # the digits recipe (docs/presets.md); 128 is for throughput on 54 000 images
MIN_BATCH = 8  # BatchNorm needs a few samples per batch
MIN_STEPS_PER_EPOCH = 8
TEACHER_STEPS = 3_600  # GEMINI steps: one epoch is C·(C-1) class-pair steps (Algorithm 1)
MAX_TEACHER_EPOCHS = 200
NEAR_CHANCE = 0.05  # "within a few points of chance"
STUDENT_OPTIMISER = {"schedule": "cosine", "momentum": 0.9, "nesterov": True, "lr": 0.05,
                     "clip_value": None}
TEACHER = {"gemini_inputs": "raw255", "gemini_lr": 1e-3, "gemini_redraw": True}
# Feature vectors get no crop or flip; Gaussian noise of half a standard deviation per feature
# is their augmentation (docs/presets.md: +2 points of validation 1-NN on digits, two splits).
VECTOR_NOISE = 0.5
# ... and keep the last epoch of the cosine schedule (annealed to lr 0) instead of the best on a
# validation split of ~100 vectors, whose pick is noise (docs/presets.md: digits, two splits,
# 3 seeds each, 0.977 / 0.974 -> 0.978 / 0.981).
VECTOR_SELECT_ON = "last"

# The builtin data sets whose `cpu` settings are measured for them (presets.py `_cpu`); the plan
# leaves them alone, so their configs and hashes do not change.
PRESET_DATASETS = ("mnist", "fashion-mnist", "cifar10", "digits")


@dataclass(frozen=True)
class DataSummary:
    """What the plan reads from the data: sizes only, never values."""

    n_samples: int  # labelled training samples, before the validation split
    n_classes: int
    input_shape: tuple[int, ...]  # (C, H, W) images or (F,) feature vectors

    @property
    def is_images(self) -> bool:
        return len(self.input_shape) == 3


def applies(preset: str, dataset: str) -> bool:
    """Whether the plan fills unset settings of a run of ``preset`` on ``dataset``."""
    return preset == "cpu" and dataset_key(dataset) not in PRESET_DATASETS


def _pow2_floor(x: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(x, 1.0))))


def fit_plan(summary: DataSummary, val_fraction: float = 0.1) -> dict[str, Any]:
    """The settings for ``summary``'s data, as RunConfig fields.

    * backbone: the MLP for feature vectors; the small CNN for images under 32 pixels or fewer
      than 5 000 samples (ResNet-18 from scratch over-fits a few hundred photos); else the
      preset's ResNet-18.
    * student batch: at most 64, and small enough for 8 steps per epoch; epochs: enough for
      4 000 optimiser steps (30 to 300).
    * student optimiser: SGD with Nesterov momentum 0.9, lr 0.05, cosine annealing, unclipped
      (issue 13's study found it best for every method; on digits the preset's plateau halving
      from lr 0.1 left the student under-fitted: validation 1-NN 0.91 against 0.955).
    * GEMINI: about 3 600 class-pair steps (its epoch has C·(C-1) of them), on the raw 0-255
      intensities of the canonical scale at lr 1e-3 as the authors run it (a 2-D layout where
      standardised inputs put the classes on a line), triplets redrawn every epoch (drawn
      once, a tiny data set would repeat the same few hundred).
    * input noise for feature vectors: Gaussian, half a standard deviation per feature (the
      MLP student memorised a few hundred digits otherwise: validation 1-NN 0.955 -> 0.976),
      and the last epoch kept (the validation split still gives the curves and the
      near-chance note): the best epoch on ~100 validation vectors was a noisy pick.
    * threads: 1 for the small networks: their matrix products are too small to share, and
      OpenMP's synchronisation cost more than it saved (docs/presets.md).
    """
    n_train = max(1, int(summary.n_samples * (1.0 - val_fraction)))
    plan: dict[str, Any] = {}
    if not summary.is_images:
        plan["backbone"] = "mlp"
        plan["input_noise"] = VECTOR_NOISE
        plan["select_on"] = VECTOR_SELECT_ON
    elif min(summary.input_shape[1:]) < SMALL_IMAGE or summary.n_samples < SMALL_DATA:
        plan["backbone"] = "smallcnn"
    batch = min(MAX_BATCH, max(MIN_BATCH, _pow2_floor(n_train / MIN_STEPS_PER_EPOCH)))
    steps_per_epoch = max(1, n_train // batch)  # the loop drops the last partial batch
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STUDENT_STEPS / steps_per_epoch)))
    pairs = max(1, summary.n_classes * (summary.n_classes - 1))
    plan.update(
        batch_size=batch,
        epochs=epochs,
        **STUDENT_OPTIMISER,
        gemini_epochs=min(MAX_TEACHER_EPOCHS, max(10, math.ceil(TEACHER_STEPS / pairs))),
        **TEACHER,
    )
    if "backbone" in plan:
        plan["threads"] = 1
    return plan


def describe(plan: dict[str, Any], summary: DataSummary) -> str:
    """One line for the user: what the plan chose, and for what data."""
    shape = "×".join(map(str, summary.input_shape))
    # The rest is in config.json.
    shown = ("backbone", "batch_size", "epochs", "gemini_epochs", "input_noise", "select_on")
    chosen = ", ".join(f"{k} {plan[k]}" for k in shown if k in plan)
    return (f"fit plan for {summary.n_samples} samples of {shape} in {summary.n_classes} classes: "
            f"{chosen} (flags and --config win)")


def plan_for(cfg: Any) -> tuple[dict[str, Any], DataSummary, dict[str, Any]]:
    """The fit plan of ``cfg``'s data set (a resolved RunConfig the plan applies to):
    ``(plan, summary, splits)``. The data set is loaded here; the splits can be handed to the
    run so that it is not loaded twice."""
    from ..data import load_dataset
    from ..data.registry import is_builtin

    opts = {"on_error": "skip"} if cfg.skip_bad and not is_builtin(cfg.dataset) else {}
    splits = load_dataset(cfg.dataset, data_dir=cfg.data_dir, **opts)
    train = splits["train"]
    counts = train.class_counts()
    summary = DataSummary(len(train), int((counts > 0).sum()), tuple(train.input_shape))
    return fit_plan(summary, cfg.val_fraction), summary, splits


def planned_config(
    overrides: dict[str, Any], config_file: str | None = None
) -> tuple[Any, dict[str, Any] | None, str | None]:
    """``gdml train``'s config with the fit plan: ``(RunConfig, splits or None, note or None)``.

    When the plan applies, the data set is loaded here (once: the splits are returned for the
    run), before any run folder exists, so a missing or unusable data set leaves nothing behind.
    """
    from .config import resolve_config

    cfg = resolve_config(overrides, config_file)
    if not applies(cfg.preset, cfg.dataset):
        return cfg, None, None
    plan, summary, splits = plan_for(cfg)
    return resolve_config(overrides, config_file, plan=plan), splits, describe(plan, summary)


def chance_score(labels: torch.Tensor, metric: str = "map@r") -> float:
    """Expected validation ``metric`` of an embedding that ignores the images (leave-one-out
    retrieval among ``labels``, as the validation score is computed).

    A query of class c finds one of its R_c = n_c - 1 same-class samples with probability
    h_c = R_c / (N - 1) at every rank. precision@1 and R-Precision are then Σ_c p_c h_c over the
    queries that have a same-class sample (p_c their class shares); recall@1, the 1-NN
    classifier's macro recall over all queries, is the mean of h_c over the classes. MAP@R
    averages precision@i over the relevant ranks i ≤ R_c; drawing without replacement,
    E[precision@i · rel_i] = (h_c + (i - 1) h_c q_c) / i with q_c = (R_c - 1)/(N - 2), so its
    chance is Σ_c p_c (h_c q_c + h_c (1 - q_c) H(R_c) / R_c), H the harmonic number: about
    h_c², 0.01 for ten balanced classes, not precision@1's 0.1.
    """
    counts = torch.bincount(labels).double()
    counts = counts[counts > 0]
    n = float(counts.sum())
    if n < 2:
        return 0.0
    hit = (counts - 1) / (n - 1)
    if metric == "recall@1":
        return float(hit.mean())
    ranked = counts >= 2  # the queries a retrieval score averages over
    if not ranked.any():
        return 0.0
    share, hit, r = counts[ranked] / counts[ranked].sum(), hit[ranked], counts[ranked] - 1
    if metric != "map@r":
        return float((share * hit).sum())  # precision@1, r_precision
    q = (r - 1) / (n - 2) if n > 2 else torch.zeros_like(r)
    harmonic = torch.special.digamma(r + 1) + 0.5772156649015329  # H(R) = ψ(R + 1) + γ
    return float((share * (hit * q + hit * (1 - q) * harmonic / r)).sum())


def near_chance_note(history: list[dict[str, Any]], val_labels: torch.Tensor, name: str,
                     metric: str = "map@r") -> str | None:
    """A one-line note when the best validation ``metric`` (the history's ``val_score``) is
    within a few points of its chance level, else None."""
    scores = [h["val_score"] for h in history if isinstance(h.get("val_score"), float)]
    if not scores or len(val_labels) < 2:
        return None
    best, chance = max(scores), chance_score(val_labels, metric)
    if best > chance + NEAR_CHANCE:
        return None
    return (f"{name}: the map is not better than chance (best validation {metric} {best:.3f}, "
            f"chance {chance:.3f}); try more images per class, more --epochs, --backbone smallcnn "
            "for small images, or a lower --lr")


def warn_if_near_chance(history: list[dict[str, Any]], val_labels: torch.Tensor, name: str,
                        metric: str = "map@r") -> None:
    """:func:`near_chance_note` as a warning (the CLI prints warnings as one-line notes)."""
    note = near_chance_note(history, val_labels, name, metric)
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=2)
