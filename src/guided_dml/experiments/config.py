"""Run configuration: one flat dataclass, presets, and their resolution.

Precedence (lowest first): code defaults < preset < config file < command-line flags. The
resolved config is written beside every result (``config.json``) and hashed, so a benchmark can
tell a finished run of the same settings from a stale one.
"""

from __future__ import annotations

import hashlib
import json
import tomllib  # Python 3.11+ (pyproject.toml: requires-python)
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..data.names import is_class_disjoint, strip_archive_suffix
from ..errors import ConfigError
from ..methods import get_method, method_names, trains_teacher
from ..validation import Rule, check_all
from .presets import PRESETS

SELECT_ON = ("map@r", "r_precision", "precision@1", "recall@1", "loss", "last")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")
TRIPLET_SAMPLING = ("batch", "class-pairs")
SPLITS = ("closed", "classes")
AUGMENT_CROPS = ("pad", "resized")
# Settings that decide where and how fast a run computes, not what it computes (floating-point
# summation order aside, as with `threads`): left out of the config hash, so a run started on
# one machine can be resumed on another.
EXECUTION_ONLY = ("data_dir", "threads", "progress", "device", "channels_last", "nproc")
# Settings added after results were published: hashed only when they differ from their
# default, so the hashes (and finished run folders) of older configs stay valid.
HASHED_IF_SET: dict[str, Any] = {
    "amp": "none", "skip_bad": False, "nesterov": False, "clip_norm": None,
    "schedule": "plateau", "warmup_epochs": 0.0, "plateau_on": "criterion", "gemini_data": "train",
    "loss_optimizer": "shared", "loss_lr": None, "loss_weight_decay": 0.0, "reducer": "default",
    "triplet_sampling": "batch", "split": "closed", "train_classes": None,
    "optimizer": "sgd", "step_milestones": (), "step_gamma": 0.1, "freeze_bn": False,
    "batch_sampler": "random", "samples_per_class": 4, "augment_crop": "pad",
    "input_noise": 0.0, "crop_scale": 0.08, "gemini_restarts": 0,
}
# A preset kept under a new name hashes under its old one, so that the committed runs it made
# keep their hashes (`cpu-v1` is the `cpu` preset of docs/results/history/cpu-v1).
LEGACY_PRESETS = {"cpu-v1": "cpu"}
# MDR as its authors wire it (kakaoenterprise/AAAI2021_MDR; docs/mdr_official_notes.md): the
# raw embedding divided by the batch's mean distance, never L2-normalised, and the levels in an
# unclipped Adam with weight decay 1e-5. Applied when --mdr is on, unless the user set them.
MDR_WIRING: dict[str, Any] = {"normalize_embeddings": False, "loss_optimizer": "adam",
                              "loss_lr": 1e-4, "loss_weight_decay": 1e-5}


def setting(default: Any, help: str) -> Any:
    """A RunConfig field that is also a flag of ``gdml train`` and ``gdml benchmark``: the CLI
    generates ``--name`` from the field (its type, its rule's choices) and this help text, so
    a new setting is one line here (cli.py reads :func:`flag_settings`)."""
    return field(default=default, metadata={"help": help})


@dataclass
class RunConfig:
    """Every setting of one run (a data set, a method, a seed).

    The fields made with :func:`setting` are the shared flags of ``gdml train`` and ``gdml
    benchmark``; the others (method, data set, seed, λ, progress, processes) are each
    command's own arguments.
    """

    method: str = "gdml"
    dataset: str = "digits"
    data_dir: str | None = setting(None, "where the data sets are (default: $GDML_DATA or the cache)")
    seed: int = 0
    preset: str = setting("cpu", "paper | cpu | smoke | mdr | cpu-v1 (default: cpu)")
    mdr: float = 0.0  # λ of Multi-level Distance Regularization; 0 disables it

    # Student / baseline network (the same for every method: the paper's fair protocol).
    embedding_dim: int = setting(2, "output dimension d (paper: 2)")
    backbone: str = setting("resnet18", "resnet18 | smallcnn | mlp")
    # ~10x cheaper than "cifar" on 28-32 px inputs; see docs/presets.md
    stem: str = setting("imagenet", "resnet18 stem: cifar (authors) | stride2 | imagenet (10x cheaper)")
    pretrained: str | None = setting(
        None,
        "resnet18 only: imagenet (torchvision's ImageNet weights, fetched once and cached; inputs "
        "get ImageNet's normalisation) or a torchvision resnet18 state-dict file to start from")
    # Only meaningful for natural images.
    augment: bool = setting(False, "pad-crop + flip augmentation (true/false)")
    input_noise: float = setting(
        0.0, "Gaussian noise added to training inputs, in units of each feature's std (0: none; "
        "the fit plan: 0.5 for feature vectors)")
    augment_crop: str = setting(
        "pad", "with --augment: pad (pad-4 crop + flip: CIFAR's) | resized (random-resized crop "
        "+ flip: the recipe of 224-px photos)")
    crop_scale: float = setting(
        0.08, "with --augment-crop resized: the smallest crop, as a share of the image's area "
        "(torchvision's 0.08; MDR's 0.16)")
    # Image folders: leave out unreadable images (with a warning) instead of stopping. It
    # changes the training data, so it is part of the config hash when set.
    skip_bad: bool = setting(
        False, "image folders: leave out unreadable images (with a note) instead of stopping")

    # Optimisation of the student and the baselines (G-DML Algorithm 2 and Sec. 4).
    epochs: int = setting(6, "student / baseline epochs")
    batch_size: int = setting(128, "student / baseline batch size (global: all processes together)")
    lr: float = setting(0.1, "student / baseline learning rate")
    momentum: float = setting(0.0, "SGD momentum (authors: 0)")
    nesterov: bool = setting(False, "Nesterov momentum (true/false)")
    weight_decay: float = setting(1e-4, "SGD weight decay")
    # The authors clip by value; it binds on G-DML's head only (issue 13).
    clip_value: float | None = setting(0.1, "clip gradients by value (authors: 0.1)")
    clip_norm: float | None = setting(None, "clip the global gradient norm")
    optimizer: str = setting("sgd", "sgd | adam (MDR's recipe)")
    schedule: str = setting("plateau", "learning-rate schedule: plateau | cosine (per step) | step")
    step_milestones: tuple[int, ...] = setting(
        (), "schedule step: epochs where the lr is multiplied by --step-gamma, e.g. 40,60,80")
    step_gamma: float = setting(0.1, "schedule step: factor at each milestone (MDR: 0.2)")
    freeze_bn: bool = setting(False, "BatchNorm statistics frozen while training (true/false; MDR's recipe)")
    # "random": shuffled batches; "pk": batch_size // K classes x K samples (MDR's recipe).
    batch_sampler: str = setting("random", "random | pk (batch-size/K classes x K samples; MDR's recipe)")
    samples_per_class: int = setting(4, "batch sampler pk: K (MDR: 4)")
    warmup_epochs: float = setting(0.0, "cosine schedule: epochs of linear warm-up")
    plateau_factor: float | None = setting(0.5, "plateau schedule: factor of each decrease")
    plateau_patience: int = setting(1, "plateau schedule: epochs without improvement before it")
    plateau_on: str = setting("criterion", "what the plateau watches: criterion | train_loss (authors)")
    early_stop_patience: int | None = setting(None, "stop after this many epochs without improvement")
    # 0.1: the authors' 90/10 split of the training set.
    val_fraction: float = setting(0.1, "validation share of the training set")
    # Criterion for the scheduler, the best epoch and early stop: an evaluate() key computed on
    # the validation split (leave-one-out), the same for every method, "loss", or "last" (keep
    # the last epoch, as the authors' code does; the validation MAP@R is still recorded).
    select_on: str = setting(
        "map@r", "validation criterion: map@r | r_precision | precision@1 | recall@1 | loss | last")
    train_subset: int | None = setting(None, "use at most this many training samples (stratified)")
    # "closed": the paper's protocol (test queries of the training classes against the training
    # set); "classes": the field's class-disjoint one (train on the first half of the classes,
    # or --train-classes; the test images of the others are queries and reference, leave-one-out).
    split: str = setting(
        "closed",
        "closed (the paper's: test images of the training classes) | classes (class-disjoint: "
        "train on half the classes, test on the others)")
    train_classes: str | None = setting(None, "with --split classes: the seen classes, e.g. 0-4 or 0,2,5")
    # Sub-population shift: the ratio n_max / n_min of a long-tailed training set.
    imbalance: float | None = setting(None, "long-tailed training set with this max/min class ratio")

    # Baseline losses (pytorch-metric-learning). None: PML's default for that loss.
    margin: float | None = setting(None, "margin of the baseline loss")
    normalize_embeddings: bool | None = setting(
        None, "L2-normalise embeddings inside the baseline losses (true/false)")
    # Learnable parameters of the loss (MDR levels, margin β): "shared" (the model's SGD,
    # clipped with it) or "adam" (their own, unclipped; MDR's default, see MDR_WIRING).
    loss_optimizer: str = setting(
        "shared", "the loss's own parameters (MDR levels): shared | adam (MDR default)")
    # None: --lr.
    loss_lr: float | None = setting(None, "learning rate of --loss-optimizer adam (MDR default 1e-4)")
    loss_weight_decay: float = setting(0.0, "weight decay of --loss-optimizer adam (MDR default 1e-5)")
    # The paper uses no miner.
    miner: str = setting(
        "none", "miner for the baselines: none | multisim | triplet | semihard | distance-weighted (MDR's)")
    # "default": PML's reduction of the loss (triplet: mean over the non-zero triplets);
    # "mean": a plain mean over every pair or triplet, zeros included (the MDR authors' triplet).
    reducer: str = setting("default", "how a baseline loss averages: default (PML's) | mean (MDR's triplet)")
    # Triplet: "batch" (every triplet of a random image batch, PML) or "class-pairs" (the G-DML
    # authors' Triplet-Network: B triplets per ordered class pair drawn once, three forwards,
    # plain mean of the hinge on raw outputs; training/authors_triplet.py).
    triplet_sampling: str = setting(
        "batch", "triplet: batch (all in-batch triplets) | class-pairs (the G-DML authors' network)")

    # GEMINI teacher (Algorithm 1).
    gemini_epochs: int = setting(15, "GEMINI teacher epochs")
    # 1e-3 under-trains with standardised inputs (docs/design.md)
    gemini_lr: float = setting(1e-2, "GEMINI learning rate")
    gemini_beta: float = setting(0.005, "β of Eq. 5")
    gemini_margin: float = setting(3.0, "margin m of Eq. 5")
    gemini_batch: int = setting(64, "triplets per class pair (B)")
    # The authors draw them once.
    gemini_redraw: bool = setting(True, "redraw triplets every epoch")
    # The images GEMINI trains on: "train" (the training part of the split) or "all" (train +
    # validation, as the authors' code does: it splits only for the student).
    gemini_data: str = setting("train", "GEMINI's images: train (the split's training part) | all (authors)")
    gemini_validate: bool = setting(
        False, "GEMINI: per-epoch validation triplets (+1/3 of the teacher's cost; true/false)")
    gemini_inputs: str = setting(
        "standardize", "GEMINI's input scaling: standardize | raw255 (the authors' 0-255 floats)")
    gemini_stream: str = setting("auto", "GEMINI's streams: auto | conv (images) | mlp (vectors)")
    # Not in the paper: a guard against a failed layout (experiments/run.py, teacher_phase).
    gemini_restarts: int = setting(
        0, "more GEMINI trainings from other seeds; one replaces the first only if its final "
        "training loss is below half the first's (a failed layout)")
    # "standardize": centre GEMINI's targets and divide them by one global scale before
    # distillation (a similarity transform: retrieval metrics of the targets are unchanged).
    # Measured on digits it hurts (student R@1 0.76 vs 0.90), so the default is the authors'.
    target_scaling: str = setting("none", "none (default) | standardize: scaling of GEMINI targets")

    # Execution.
    threads: int | None = setting(None, "torch threads")  # None: torch's default
    progress: bool | None = None  # progress bars; None: only on a terminal
    device: str = setting("auto", "auto (cuda > mps > cpu) | cpu | cuda | mps")
    # Mixed precision of the student's / baseline's forward pass: none | bf16 | fp16 (GPU only).
    # It changes the numbers, so it is part of the config hash.
    amp: str = setting("none", "mixed precision of the network: none | bf16 | fp16 (fp16: GPU only)")
    channels_last: bool = setting(
        False, "NHWC image tensors, faster convolutions on recent GPUs (true/false)")
    # Processes of a data-parallel run (torchrun); batch_size stays the global batch. With
    # BatchNorm backbones on CPUs the batch statistics are per process (docs/design.md).
    nproc: int = 1

    def validate(self) -> RunConfig:
        # Types, finite numbers, ranges and choices of every field (validation.Rule), then the
        # combinations of fields below. The choices live with the code that uses them (torch
        # modules): imported here, not at module level, so that the CLI's parser, which reads
        # the fields, does not load torch (`gdml --help`).
        from ..losses.baselines import MINERS, REDUCERS
        from ..training.trainer import LOSS_OPTIMIZERS, OPTIMIZERS, PLATEAU_ON, SCHEDULES

        check_all(self.to_dict(), setting_rules(), flag_name)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("--nesterov needs --momentum > 0 (Nesterov momentum of no momentum)")
        get_method(self.method)  # the registry's error names the choices
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        for name in ("epochs", "batch_size", "embedding_dim", "gemini_epochs", "gemini_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("--val-fraction must be between 0 and 1 (exclusive)")
        if self.lr <= 0 or self.gemini_lr <= 0:
            raise ConfigError("learning rates must be positive")
        if self.weight_decay < 0:
            raise ConfigError("weight decay must not be negative")
        if self.imbalance is not None and self.imbalance < 1:
            raise ConfigError("--imbalance must be at least 1 (the ratio of largest to smallest class)")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"--select-on must be one of {', '.join(SELECT_ON)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}")
        if self.plateau_on not in PLATEAU_ON:
            raise ConfigError(f"--plateau-on must be one of {', '.join(PLATEAU_ON)}")
        if self.warmup_epochs < 0 or (self.warmup_epochs and self.schedule != "cosine"):
            raise ConfigError("--warmup-epochs must be non-negative, and needs --schedule cosine")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs:
            raise ConfigError("--warmup-epochs must be fewer than --epochs")
        for name in ("clip_value", "clip_norm"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive (or unset)")
        if self.loss_optimizer not in LOSS_OPTIMIZERS:
            raise ConfigError(f"--loss-optimizer must be one of {', '.join(LOSS_OPTIMIZERS)}")
        if (self.loss_lr is not None and not self.loss_lr > 0) or not self.loss_weight_decay >= 0:
            raise ConfigError("--loss-lr must be positive and --loss-weight-decay non-negative")
        if self.mdr < 0:
            raise ConfigError("--mdr (λ) must be non-negative")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.batch_sampler not in ("random", "pk"):
            raise ConfigError("--batch-sampler must be 'random' or 'pk'")
        if self.batch_sampler == "pk" and (trains_teacher(self.method) or self.nproc > 1
                                           or self.triplet_sampling != "batch"):
            raise ConfigError("--batch-sampler pk is for the metric-learning baselines on one "
                              "process (G-DML's student regresses targets, not pairs)")
        # Only P×K batches draw K samples per class: a random batch of 2 is fine with K = 4.
        if self.batch_sampler == "pk" and not 1 <= self.samples_per_class <= self.batch_size:
            raise ConfigError("--samples-per-class must lie between 1 and --batch-size")
        self.step_milestones = tuple(int(m) for m in self.step_milestones)
        if self.schedule == "step" and (not self.step_milestones or not 0 < self.step_gamma < 1
                                        or any(m < 1 for m in self.step_milestones)):
            raise ConfigError("--schedule step needs --step-milestones (epochs >= 1, e.g. "
                              "40,60,80) and 0 < --step-gamma < 1")
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}")
        if is_class_disjoint(self.dataset):
            # CUB-200, Cars-196, SOP, In-Shop: their test classes are unseen by construction.
            if self.train_classes is not None:
                raise ConfigError(f"{self.dataset} has its own class-disjoint split (its first "
                                  "half of the classes trains): --train-classes does not apply")
            self.split = "classes"
        if self.train_classes is not None and self.split != "classes":
            raise ConfigError("--train-classes needs --split classes")
        if self.triplet_sampling not in TRIPLET_SAMPLING:
            raise ConfigError(f"--triplet-sampling must be one of {', '.join(TRIPLET_SAMPLING)}")
        if self.triplet_sampling == "class-pairs" and (
                self.method != "triplet" or self.mdr > 0 or self.nproc > 1 or self.miner != "none"):
            raise ConfigError("--triplet-sampling class-pairs is the authors' triplet baseline: "
                              "--method triplet only, without --mdr, --miner or --nproc")
        if self.reducer not in REDUCERS:
            raise ConfigError(f"--reducer must be one of {', '.join(REDUCERS)}")
        if self.miner not in MINERS:
            raise ConfigError(f"--miner must be one of {', '.join(MINERS)}")
        if self.target_scaling not in ("standardize", "none"):
            raise ConfigError("--target-scaling must be 'standardize' or 'none'")
        if self.gemini_data not in ("train", "all"):
            raise ConfigError("--gemini-data must be 'train' or 'all'")
        if self.gemini_inputs not in ("standardize", "raw255"):
            raise ConfigError("--gemini-inputs must be 'standardize' or 'raw255'")
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"--device must be one of {', '.join(DEVICES)}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"--amp must be one of {', '.join(AMP_MODES)}")
        if self.amp == "fp16" and self.device == "cpu":
            raise ConfigError("--amp fp16 needs a GPU; use --amp bf16 on a CPU, or --amp none")
        from ..models.registry import BACKBONES  # the names the networks are built from

        if self.backbone not in BACKBONES:  # before any work (issue 14): not after the teacher
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.nproc < 1:
            raise ConfigError("--nproc must be at least 1")
        if self.batch_size < self.nproc:
            raise ConfigError(f"--batch-size {self.batch_size} is the global batch of all "
                              f"{self.nproc} processes: it must be at least --nproc")
        return self

    @property
    def dataset_label(self) -> str:
        """``fashion-mnist``, ``fashion-mnist-imb10`` ...: the data set as tables name it."""
        from pathlib import Path

        name = self.dataset
        if "/" in name:
            name = strip_archive_suffix(Path(name.rstrip("/")).name)
        if self.imbalance:
            name = f"{name}-imb{self.imbalance:g}"
        if self.split == "classes":
            # The protocol is part of the name every table and run folder shows.
            seen = (self.train_classes or "").replace(" ", "").replace(",", "_")
            name = f"{name}-unseen" + (f"-{seen}" if seen else "")
        return name

    @property
    def method_label(self) -> str:
        """``triplet``, ``gdml+mdr`` ...: the name used in tables and run folders."""
        return f"{self.method}+mdr" if self.mdr > 0 else self.method

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """Hash of the settings that change results (not paths, threads, devices or processes)."""
        d = self.to_dict()
        for k in EXECUTION_ONLY:
            d.pop(k)
        d["preset"] = LEGACY_PRESETS.get(d["preset"], d["preset"])
        for k, default in HASHED_IF_SET.items():
            if d[k] == default:
                d.pop(k)
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- validation
# What each setting accepts beyond its type; the type, and whether it may be unset (None), come
# from the annotation of its RunConfig field. Bounds say what the code can run, not what works
# well: a momentum of 1 is accepted, a negative one is not.
_POSITIVE = {"low": 0.0, "low_open": True}
_NON_NEGATIVE = {"low": 0.0}
_AT_LEAST_1 = {"low": 1}
_OPEN_UNIT = {"low": 0.0, "high": 1.0, "low_open": True, "high_open": True}


def _limits() -> dict[str, dict[str, Any]]:
    from ..losses.baselines import MINERS, REDUCERS
    from ..models.gemini import STREAMS
    from ..models.registry import BACKBONES
    from ..models.resnet import STEMS
    from ..training.trainer import LOSS_OPTIMIZERS, OPTIMIZERS, PLATEAU_ON, SCHEDULES

    return {
        "method": {"choices": method_names()},
        "preset": {"choices": tuple(PRESETS)},
        "seed": {"low": 0, "high": 2**32 - 1},  # NumPy's seed range
        "mdr": _NON_NEGATIVE,
        "input_noise": _NON_NEGATIVE,
        "crop_scale": {"low": 0.0, "high": 1.0, "low_open": True},
        "embedding_dim": _AT_LEAST_1,
        "backbone": {"choices": tuple(BACKBONES)},
        "stem": {"choices": STEMS},
        "epochs": _AT_LEAST_1,
        "batch_size": _AT_LEAST_1,
        "lr": _POSITIVE,
        "momentum": {"low": 0.0, "high": 1.0},
        "weight_decay": _NON_NEGATIVE,
        "clip_value": _POSITIVE,
        "clip_norm": _POSITIVE,
        "schedule": {"choices": tuple(SCHEDULES)},
        "optimizer": {"choices": tuple(OPTIMIZERS)},
        "step_milestones": _AT_LEAST_1,
        "step_gamma": _OPEN_UNIT,
        "batch_sampler": {"choices": ("random", "pk")},
        "samples_per_class": _AT_LEAST_1,
        "split": {"choices": SPLITS},
        "augment_crop": {"choices": AUGMENT_CROPS},
        "reducer": {"choices": tuple(REDUCERS)},
        "triplet_sampling": {"choices": TRIPLET_SAMPLING},
        "warmup_epochs": _NON_NEGATIVE,
        "plateau_factor": _OPEN_UNIT,
        "plateau_patience": _NON_NEGATIVE,
        "plateau_on": {"choices": tuple(PLATEAU_ON)},
        "early_stop_patience": _NON_NEGATIVE,
        "val_fraction": _OPEN_UNIT,
        "select_on": {"choices": SELECT_ON},
        "train_subset": _AT_LEAST_1,
        "imbalance": {"low": 1.0},
        "margin": _NON_NEGATIVE,
        "loss_optimizer": {"choices": tuple(LOSS_OPTIMIZERS)},
        "loss_lr": _POSITIVE,
        "loss_weight_decay": _NON_NEGATIVE,
        "miner": {"choices": tuple(MINERS)},
        "gemini_epochs": _AT_LEAST_1,
        "gemini_lr": _POSITIVE,
        "gemini_beta": _NON_NEGATIVE,
        "gemini_margin": _NON_NEGATIVE,
        "gemini_batch": _AT_LEAST_1,
        "gemini_restarts": _NON_NEGATIVE,
        "gemini_data": {"choices": ("train", "all")},
        "gemini_inputs": {"choices": ("standardize", "raw255")},
        "gemini_stream": {"choices": ("auto", *STREAMS)},
        "target_scaling": {"choices": ("none", "standardize")},
        "threads": _AT_LEAST_1,
        "amp": {"choices": AMP_MODES},
        "nproc": _AT_LEAST_1,
    }


def setting_types() -> dict[str, Rule]:
    """The type of every RunConfig field, by name, as a :class:`~guided_dml.validation.Rule`
    without bounds or choices (what the CLI's parser needs: it loads no torch module)."""
    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    rules = {}
    for f in fields(RunConfig):
        parts = [p.strip() for p in str(f.type).split("|")]  # "float | None", "tuple[int, ...]"
        (kind,) = [p for p in parts if p != "None"]
        if kind.startswith("tuple["):
            typed = {"kind": tuple, "item": kinds[kind.removeprefix("tuple[").split(",")[0].strip()]}
        else:
            typed = {"kind": kinds[kind]}
        rules[f.name] = Rule(**typed, optional="None" in parts)
    return rules


def setting_rules() -> dict[str, Rule]:
    """The :class:`~guided_dml.validation.Rule` of every RunConfig field, by name.

    Built on each call (microseconds), not cached: the choices read the registries
    (``BACKBONES``, ``MINERS``), to which code may add entries at run time.
    """
    limits = _limits()
    return {name: replace(rule, **limits.get(name, {})) for name, rule in setting_types().items()}


def flag_settings() -> dict[str, str]:
    """The RunConfig fields that are command-line flags, with their help text, in field order."""
    return {f.name: f.metadata["help"] for f in fields(RunConfig) if "help" in f.metadata}


def flag_name(key: str) -> str:
    """How the command line names a setting: ``--batch-size``."""
    return "--" + key.replace("_", "-")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file of RunConfig fields (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        raise ConfigError(f"config file {path}: YAML is not supported; use .json or .toml")
    kind = "TOML" if suffix == ".toml" else "JSON"
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:  # UnicodeDecodeError is a ValueError
        other = "" if suffix in (".json", ".toml") else " (a config file is .json or .toml)"
        raise ConfigError(f"cannot parse config file {path} as {kind}{other}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve_config(
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    *,
    plan: dict[str, Any] | None = None,
    name_of: Callable[[str], str] = flag_name,
) -> RunConfig:
    """Code defaults < preset < ``plan`` < config file < ``overrides`` (flags; ``None`` values
    are unset). ``plan``: settings sized to the data (:func:`guided_dml.experiments.plan.fit_plan`).

    Every value is checked against its rule (:func:`setting_rules`) before anything else, and an
    error names the setting as its source does: ``name_of(key)`` for ``overrides`` (``--lr``
    by default), ``'lr' in config file PATH`` for the file's.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_file = load_config_file(config_file) if config_file else {}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted((set(from_file) | set(overrides)) - known)
    if unknown:
        where = f" in config file {config_file}" if set(unknown) <= set(from_file) else ""
        raise ConfigError(f"unknown setting(s){where}: {', '.join(unknown)} "
                          "(the settings are the names of gdml train's flags, with _ or -)")
    rules = setting_rules()
    from_file = check_all(from_file, rules, lambda k: f"{k!r} in config file {config_file}")
    overrides = check_all(overrides, rules, name_of)
    # Preset, data set and method decide which preset values apply, so read them first.
    head = {**from_file, **overrides}
    cfg = RunConfig()
    preset = head.get("preset", cfg.preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = cfg.to_dict()
    from_preset = PRESETS[preset](head.get("dataset", cfg.dataset), head.get("method", cfg.method))
    values.update(from_preset)
    values.update(plan or {})
    values.update(from_file)
    values.update(overrides)
    if isinstance(values.get("mdr"), (int, float)) and values["mdr"] > 0:
        # What a preset, a file or a flag sets explicitly wins over the default wiring.
        given = set(from_preset) | set(plan or {}) | set(from_file) | set(overrides)
        values.update({k: v for k, v in MDR_WIRING.items() if k not in given})
    return RunConfig(**values).validate()
