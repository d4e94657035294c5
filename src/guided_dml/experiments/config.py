"""Run configuration: one flat dataclass, presets, and their resolution.

Precedence (lowest first): code defaults < preset < config file < command-line flags. The
resolved config is written beside every result (``config.json``) and hashed, so a benchmark can
tell a finished run of the same settings from a stale one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from ..errors import ConfigError
from ..training.trainer import LOSS_OPTIMIZERS, PLATEAU_ON, SCHEDULES

METHODS = ("gdml", "siamese", "triplet", "margin", "multisim")
SELECT_ON = ("map@r", "r_precision", "precision@1", "recall@1", "loss", "last")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")
# Settings that decide where and how fast a run computes, not what it computes (floating-point
# summation order aside, as with `threads`): left out of the config hash, so a run started on
# one machine can be resumed on another.
EXECUTION_ONLY = ("data_dir", "threads", "progress", "device", "channels_last", "nproc")
# Settings added after results were published: hashed only when they differ from their
# default, so the hashes (and finished run folders) of older configs stay valid.
HASHED_IF_SET: dict[str, Any] = {
    "amp": "none", "skip_bad": False, "nesterov": False, "clip_norm": None,
    "schedule": "plateau", "warmup_epochs": 0.0, "plateau_on": "criterion", "gemini_data": "train",
    "loss_optimizer": "shared", "loss_lr": None, "loss_weight_decay": 0.0,
}
# MDR as its authors wire it (kakaoenterprise/AAAI2021_MDR; docs/mdr_official_notes.md): the
# raw embedding divided by the batch's mean distance, never L2-normalised, and the levels in an
# unclipped Adam with weight decay 1e-5. Applied when --mdr is on, unless the user set them.
MDR_WIRING: dict[str, Any] = {"normalize_embeddings": False, "loss_optimizer": "adam",
                              "loss_lr": 1e-4, "loss_weight_decay": 1e-5}


@dataclass
class RunConfig:
    """Every setting of one run (a data set, a method, a seed)."""

    method: str = "gdml"
    dataset: str = "digits"
    data_dir: str | None = None  # None: $GDML_DATA, else the per-user cache folder
    seed: int = 0
    preset: str = "cpu"
    mdr: float = 0.0  # λ of Multi-level Distance Regularization; 0 disables it

    # Student / baseline network (the same for every method: the paper's fair protocol).
    embedding_dim: int = 2  # the paper's d: 2-D maps for every method
    backbone: str = "resnet18"
    stem: str = "imagenet"  # ~10x cheaper than "cifar" on 28-32 px inputs; see docs/presets.md
    pretrained: str | None = None  # torchvision resnet18 state-dict file (never fetched)
    augment: bool = False  # pad-crop + flip; only meaningful for natural images
    # Image folders: leave out unreadable images (with a warning) instead of stopping. It
    # changes the training data, so it is part of the config hash when set.
    skip_bad: bool = False

    # Optimisation of the student and the baselines (METHODS.md §1.3-1.4).
    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.0  # the authors use plain SGD
    nesterov: bool = False
    weight_decay: float = 1e-4
    clip_value: float | None = 0.1  # by value (the authors'); binds on G-DML's head only
    clip_norm: float | None = None  # by global norm
    schedule: str = "plateau"  # or "cosine" (per step, after `warmup_epochs` of linear warm-up)
    warmup_epochs: float = 0.0
    plateau_factor: float | None = 0.5
    plateau_patience: int = 1
    plateau_on: str = "criterion"  # or "train_loss" (the authors' code)
    early_stop_patience: int | None = None
    val_fraction: float = 0.1  # the authors' 90/10 split of the training set
    # Criterion for the scheduler, the best epoch and early stop: an evaluate() key computed on
    # the validation split (leave-one-out), the same for every method, "loss", or "last" (keep
    # the last epoch, as the authors' code does; the validation MAP@R is still recorded).
    select_on: str = "map@r"
    train_subset: int | None = None  # keep at most this many training samples (stratified)
    imbalance: float | None = None  # sub-population shift: long-tailed training set, n_max/n_min

    # Baseline losses (pytorch-metric-learning). None: PML's default for that loss.
    margin: float | None = None
    normalize_embeddings: bool | None = None
    # Learnable parameters of the loss (MDR levels, margin β): "shared" (the model's SGD,
    # clipped with it) or "adam" (their own, unclipped; MDR's default, see MDR_WIRING).
    loss_optimizer: str = "shared"
    loss_lr: float | None = None  # None: --lr
    loss_weight_decay: float = 0.0
    miner: str = "none"  # the paper uses no miner

    # GEMINI teacher (Algorithm 1).
    gemini_epochs: int = 15
    gemini_lr: float = 1e-2  # 1e-3 under-trains with standardised inputs (METHODS.md §1.2)
    gemini_beta: float = 0.005
    gemini_margin: float = 3.0
    gemini_batch: int = 64
    gemini_redraw: bool = True  # fresh triplets every epoch (authors: drawn once)
    # The images GEMINI trains on: "train" (the training part of the split) or "all" (train +
    # validation, as the authors' code does: it splits only for the student).
    gemini_data: str = "train"
    gemini_validate: bool = False  # per-epoch validation triplets (+1/3 of the teacher's cost)
    gemini_inputs: str = "standardize"  # or "raw255": the authors' 0-255 floats
    gemini_stream: str = "auto"  # "conv" for images, "mlp" for vectors
    # "standardize": centre GEMINI's targets and divide them by one global scale before
    # distillation (a similarity transform: retrieval metrics of the targets are unchanged).
    # Measured on digits it hurts (student R@1 0.76 vs 0.90), so the default is the authors'.
    target_scaling: str = "none"

    # Execution.
    threads: int | None = None  # torch intra-op threads; None: torch's default
    progress: bool | None = None  # progress bars; None: only on a terminal
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | mps
    # Mixed precision of the student's / baseline's forward pass: none | bf16 | fp16 (GPU only).
    # It changes the numbers, so it is part of the config hash.
    amp: str = "none"
    channels_last: bool = False  # NHWC image tensors (faster convolutions on recent GPUs)
    # Processes of a data-parallel run (torchrun); batch_size stays the global batch. With
    # BatchNorm backbones on CPUs the batch statistics are per process (docs/design.md).
    nproc: int = 1

    def validate(self) -> RunConfig:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
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
            name = Path(name.rstrip("/")).name
            for ext in (".tar.gz", ".tgz", ".tar"):
                name = name.removesuffix(ext)
        return f"{name}-imb{self.imbalance:g}" if self.imbalance else name

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
        for k, default in HASHED_IF_SET.items():
            if d[k] == default:
                d.pop(k)
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- presets
def _dataset_key(dataset: str) -> str:
    d = dataset.lower().replace("_", "-")
    return {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10"}.get(d, d)


def _paper(dataset: str, method: str) -> dict[str, Any]:
    """The authors' code (METHODS.md §1.2-1.4): CIFAR-stem ResNet-18, 50 epochs, for a GPU."""
    ds = _dataset_key(dataset)
    p: dict[str, Any] = {
        "backbone": "resnet18",
        "stem": "cifar",
        "epochs": 50,
        "lr": 0.1,
        "momentum": 0.0,
        "weight_decay": 1e-4,
        "clip_value": 0.1,
        "val_fraction": 0.1,
        "gemini_lr": 1e-3,
        "gemini_margin": 3.0,
        "gemini_redraw": False,
        "gemini_inputs": "raw255",
        "gemini_data": "all",
        # The authors keep the last epoch and step the plateau on the mean training loss
        # (MyModel_*.py; docs/authors_protocol_notes.md); the validation MAP@R is recorded.
        "select_on": "last",
        "plateau_on": "train_loss",
    }
    student = {
        "mnist": {"batch_size": 128, "plateau_factor": 0.8, "plateau_patience": 1},
        "fashion-mnist": {"batch_size": 32, "plateau_factor": 0.6, "plateau_patience": 1},
        "cifar10": {"batch_size": 32, "plateau_factor": 0.2, "plateau_patience": 3},
    }.get(ds, {"batch_size": 32, "plateau_factor": 0.6, "plateau_patience": 1})
    gemini = {
        "mnist": {"gemini_beta": 0.005, "gemini_batch": 32, "gemini_epochs": 10},
        "fashion-mnist": {"gemini_beta": 0.005, "gemini_batch": 64, "gemini_epochs": 10},
        "cifar10": {"gemini_beta": 0.003, "gemini_batch": 64, "gemini_epochs": 12},
    }.get(ds, {"gemini_beta": 0.005, "gemini_batch": 64, "gemini_epochs": 10})
    p.update(student)
    p.update(gemini)
    if method != "gdml":
        # The authors' triplet baseline: 512-sample batches, margin 3 (MNIST: 10, lr 0.5) on
        # raw Euclidean embeddings, 20 % validation split.
        p.update({"batch_size": 512, "val_fraction": 0.2})
        # Their triplet script's own schedule: x0.2, patience 2 (Fashion-MNIST: 3).
        p.update({"plateau_factor": 0.2, "plateau_patience": 3 if ds == "fashion-mnist" else 2})
        if method == "triplet":
            p.update({"margin": 10.0 if ds == "mnist" else 3.0, "normalize_embeddings": False})
            if ds == "mnist":
                p["lr"] = 0.5
    return p


def _cpu(dataset: str, method: str) -> dict[str, Any]:
    """Best results on 2 CPU cores in about 10 minutes per run (docs/presets.md says why)."""
    ds = _dataset_key(dataset)
    p: dict[str, Any] = {
        "backbone": "resnet18",
        "stem": "imagenet",
        "epochs": 6,
        "batch_size": 128,
        "lr": 0.1,
        "plateau_factor": 0.5,
        "plateau_patience": 1,
        # GEMINI: B = 32 halves the cost of B = 64 and converges as far in 10 epochs at lr 2e-2
        # (Fashion-MNIST: final triplet loss 0.032 vs 0.036 after 15 epochs at B = 64, lr 1e-2).
        "gemini_epochs": 10,
        "gemini_batch": 32,
        "gemini_lr": 2e-2,
        "gemini_redraw": True,
        "gemini_inputs": "standardize",
    }
    if ds == "cifar10":
        # GEMINI as the authors run it on CIFAR-10 (raw 0-255 inputs, lr 1e-3, B = 64,
        # 12 epochs, triplets drawn once): the settings above lay the ten classes out along a
        # line (student embedding singular-value ratio 0.004-0.05), these in 2-D (0.78-0.81),
        # and the student's best validation MAP@R doubles (seeds 1, 2: 0.139, 0.123 -> 0.273,
        # 0.273) for 2.2x the teacher's cost, ~8 % of a run (docs/presets.md). Only G-DML's
        # config carries them: the baselines' settings (and config hashes) stay as they were.
        p.update({"gemini_beta": 0.003, "augment": True})
        if method.startswith("gdml"):
            p.update({"gemini_inputs": "raw255", "gemini_lr": 1e-3, "gemini_batch": 64,
                      "gemini_epochs": 12, "gemini_redraw": False})
    if ds == "digits":
        # 1 257 training images of 8x8: the small CNN learns them in seconds. GEMINI as the
        # authors run it (raw 0-255 inputs, lr 1e-3, triplets drawn once): on digits it lays the
        # classes out in 2-D where the settings above put them on a line, and the student's
        # validation MAP@R rises from 0.67 to 0.89 (mean of 3 seeds; docs/presets.md).
        p.update({"backbone": "smallcnn", "epochs": 30, "batch_size": 64, "gemini_epochs": 10,
                  "gemini_inputs": "raw255", "gemini_lr": 1e-3, "gemini_redraw": False})
    return p


def _smoke(dataset: str, method: str) -> dict[str, Any]:
    """Seconds, for tests: a small CNN, 2 epochs on at most 300 samples."""
    return {
        "backbone": "smallcnn",
        "epochs": 2,
        "batch_size": 32,
        "train_subset": 300,
        "gemini_epochs": 2,
        "gemini_batch": 8,
        "progress": False,
    }


PRESETS = {"paper": _paper, "cpu": _cpu, "smoke": _smoke}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file of RunConfig fields (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot parse config file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve_config(
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    plan: dict[str, Any] | None = None,
) -> RunConfig:
    """Code defaults < preset < ``plan`` < config file < ``overrides`` (flags; ``None`` values
    are unset). ``plan``: settings sized to the data (:func:`guided_dml.experiments.plan.fit_plan`)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_file = load_config_file(config_file) if config_file else {}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted((set(from_file) | set(overrides)) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    # Preset, data set and method decide which preset values apply, so read them first.
    head = {**from_file, **overrides}
    cfg = RunConfig()
    preset = head.get("preset", cfg.preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = cfg.to_dict()
    values.update(PRESETS[preset](head.get("dataset", cfg.dataset), head.get("method", cfg.method)))
    values.update(plan or {})
    values.update(from_file)
    values.update(overrides)
    if isinstance(values.get("mdr"), (int, float)) and values["mdr"] > 0:
        given = set(from_file) | set(overrides)
        values.update({k: v for k, v in MDR_WIRING.items() if k not in given})
    return RunConfig(**values).validate()
