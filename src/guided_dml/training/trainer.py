"""One training loop for every model in guided-dml.

The loop knows nothing of the model: it gets a ``step`` that turns a batch into a scalar loss, a
batch source for training and one for validation, and the optimisation settings. It implements
what every method in the paper's protocol shares (Gonzalez-Zapata et al. 2022, Sec. 4, and
the authors' code; docs/authors_protocol_notes.md):

* SGD (optionally with (Nesterov) momentum; or Adam, MDR's recipe) with weight decay and
  gradient clipping by value (the authors') or by global norm;
* a learning-rate schedule: ReduceLROnPlateau on the selection criterion or on the training loss
  (the authors'), a per-step cosine annealing after an optional linear warm-up, or steps at
  given epochs (MDR's);
* the best epoch chosen on the validation split (never the test set), or the last epoch (the
  authors'), early stop after ``early_stop_patience`` epochs without improvement.
  The criterion is the validation loss, or a validation score (higher is better, e.g. MAP@R
  of the validation embeddings) when ``val_score`` is given: losses averaged over their
  non-zero terms (PML's default reducer) *rise* as training succeeds, so their validation
  loss cannot rank epochs, while a retrieval score ranks every method the same way;
* a checkpoint after every epoch (write-then-rename), so a killed run loses at most one epoch,
  and resume from it that reproduces an uninterrupted run exactly (the batches of epoch ``e``
  come from a generator seeded by ``(seed, e)``, not from a global RNG state);
* a clear error when the loss becomes NaN or infinite;
* optional float16 loss scaling (``grad_scaler``; the step runs the forward pass under autocast);
* data-parallel runs (:mod:`.distributed`): every process runs this loop on its slice of each
  global batch; rank 0 alone writes checkpoints, calls ``on_epoch`` and shows progress, computes
  the validation score and hands it to the others, and reads the checkpoint to resume from, so
  that every process takes the same decisions (learning rate, best epoch, early stop).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import TrainingError
from . import distributed as dist
from .checkpoint import load_torch, save_torch

Batch = Any
BatchSource = Callable[[torch.Generator], Iterator[Batch]]
Step = Callable[[Batch], torch.Tensor]


SCHEDULES = ("plateau", "cosine", "step")
OPTIMIZERS = ("sgd", "adam")
PLATEAU_ON = ("criterion", "train_loss")
LOSS_OPTIMIZERS = ("shared", "adam")


@dataclass
class OptimConfig:
    """Optimisation settings shared by all loops (defaults: the authors' student, G-DML Algorithm 2)."""

    epochs: int = 50
    lr: float = 0.1
    momentum: float = 0.0  # the authors use plain SGD
    nesterov: bool = False
    weight_decay: float = 1e-4
    clip_value: float | None = 0.1  # clip gradients by value, as the paper does
    # Clip the global gradient norm instead (or as well). By value, one cap binds per
    # coordinate: on a 2-D regression head with large gradients it changes the direction of
    # the step, on a normalised loss with small gradients it never binds (issue 13).
    clip_norm: float | None = None
    # "sgd" (momentum, nesterov apply) or "adam" (MDR's recipe: Adam with coupled L2 weight
    # decay on every parameter, as its authors' torch.optim.Adam(weight_decay=...)).
    optimizer: str = "sgd"
    # "plateau": ReduceLROnPlateau (``plateau_factor`` None: constant learning rate);
    # "cosine": per-step cosine annealing from ``lr`` to 0 over all epochs;
    # "step": ×``step_gamma`` at each epoch of ``step_milestones`` (MultiStepLR; MDR's recipe).
    schedule: str = "plateau"
    step_milestones: tuple[int, ...] = ()
    step_gamma: float = 0.1
    plateau_factor: float | None = 0.5
    plateau_patience: int = 1
    # What the plateau schedule watches: the selection criterion (validation score or loss)
    # or the training loss (the authors' code: ``scheduler.step(train_loss)``).
    plateau_on: str = "criterion"
    warmup_epochs: float = 0.0  # cosine only: linear warm-up from lr / 100, per step
    early_stop_patience: int | None = None  # None: run all epochs
    # BatchNorm layers stay in eval mode while training (running statistics frozen, affine
    # parameters still learnt): MDR's recipe for a pretrained backbone and small batches.
    freeze_bn: bool = False
    select_best: bool = True  # restore the best epoch on the criterion (False: keep the last)
    # Parameters of the loss (MDR levels, margin beta): "shared" puts them in the model's SGD
    # (without weight decay, clipped with it); "adam" gives them an Adam of their own, never
    # clipped, with ``loss_lr`` (None: ``lr``) and ``loss_weight_decay`` (MDR's official code).
    loss_optimizer: str = "shared"
    loss_lr: float | None = None
    loss_weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name, value, choices in (("schedule", self.schedule, SCHEDULES),
                                     ("plateau_on", self.plateau_on, PLATEAU_ON),
                                     ("loss_optimizer", self.loss_optimizer, LOSS_OPTIMIZERS),
                                     ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.warmup_epochs and self.schedule != "cosine":
            raise ValueError("warmup_epochs needs schedule='cosine'")


@dataclass
class FitResult:
    """What a fit returns: per-epoch history and the chosen epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False


def _generator(seed: int, epoch: int) -> torch.Generator:
    # A distinct, reproducible stream per (seed, epoch); large odd multiplier avoids overlaps.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _progress_enabled(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


class Trainer:
    """Fits ``model`` (and the learnable parts of ``loss_fn``) with :class:`OptimConfig`.

    Args:
        model: the network being trained.
        loss_fn: module whose parameters (e.g. MDR levels, margin-loss beta) are trained too and
            whose buffers (MDR statistics) are checkpointed.
        step: ``batch -> scalar loss``; it calls ``model`` and ``loss_fn`` itself.
        train_batches: batch source for training (reshuffled every epoch).
        val_batches: batch source for validation; it gets the same generator every epoch, so
            the validation loss is comparable across epochs. ``None``: no validation.
        config: optimisation settings.
        seed: seeds batch order and augmentation of every epoch.
        name: used in progress bars and error messages (e.g. ``"triplet on fashion-mnist"``).
        checkpoint_path: where the per-epoch checkpoint lives (``None``: none).
        progress: progress bars; ``None`` shows them only on a terminal.
        on_epoch: called with each epoch's record (used for logging to files).
        num_batches: batches per epoch, for the progress bar (default: ``len(train_batches)``).
        val_score: validation score, higher is better; when given it replaces the validation
            loss as the criterion of the scheduler, best-epoch selection and early stop.
        distributed: whether every process of the process group runs this trainer together
            (the student and baselines); ``None``: when a group is running. ``False`` for work
            done by rank 0 alone (the GEMINI teacher).
        grad_scaler: loss scaler for float16 mixed precision (``None``: no scaling).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        loss_fn: nn.Module,
        step: Step,
        train_batches: BatchSource,
        val_batches: BatchSource | None,
        config: OptimConfig,
        seed: int = 0,
        name: str = "model",
        checkpoint_path: str | Path | None = None,
        progress: bool | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        num_batches: int | None = None,
        val_score: Callable[[], float] | None = None,
        distributed: bool | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        phase: str = "",
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.step = step
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.config = config
        self.seed = seed
        self.name = name
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        # A trainer is collective only while a process group runs (False forces a solo run).
        self.distributed = dist.is_distributed() and distributed is not False
        self.progress = _progress_enabled(progress) and self._writes()  # one bar, not N
        # Not on a terminal (a log file, CI, a pipe): no bars, but one line per epoch on stderr,
        # so a long run is never silent. progress=False silences both.
        self.epoch_lines = progress is None and not sys.stderr.isatty() and self._writes()
        self.phase = phase
        self.grad_scaler = grad_scaler
        self.on_epoch = on_epoch
        self.val_score = val_score
        self.num_batches = num_batches if num_batches is not None else _safe_len(train_batches)
        loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [
            {"params": [p for p in model.parameters() if p.requires_grad]}
        ]
        self.loss_optimizer: torch.optim.Optimizer | None = None
        if loss_params and config.loss_optimizer == "adam":
            self.loss_optimizer = torch.optim.Adam(
                loss_params, lr=config.loss_lr if config.loss_lr is not None else config.lr,
                weight_decay=config.loss_weight_decay,
            )
        elif loss_params:
            # Loss parameters (MDR levels, margin beta) carry their own regularisation.
            groups.append({"params": loss_params, "weight_decay": 0.0})
        # What clipping acts on: the model's SGD groups (a separate loss optimiser is not clipped).
        self.params = [p for g in groups for p in g["params"]]
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                groups, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                nesterov=config.nesterov,
            )
        self._optimizers = [o for o in (self.optimizer, self.loss_optimizer) if o is not None]
        for opt in self._optimizers:
            for g in opt.param_groups:
                g.setdefault("base_lr", g["lr"])
        self.scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        if config.schedule == "plateau" and config.plateau_factor is not None:
            # mode follows the criterion (issue 13): a score is maximised, a loss minimised.
            # Feeding -score to mode="min" with the default *relative* threshold counted a
            # slightly lower score as an improvement (0.7 -> 0.69995 reset the patience).
            score_watched = val_score is not None and config.plateau_on == "criterion"
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode="max" if score_watched else "min",
                factor=config.plateau_factor,
                patience=config.plateau_patience,
            )
        self.result = FitResult()
        self.start_epoch = 0
        self._best_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "loss_fn": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss_optimizer": self.loss_optimizer.state_dict() if self.loss_optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "next_epoch": self.start_epoch,
            "result": asdict(self.result),
            "best_state": self._best_state,
            "config": asdict(self.config),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss_fn"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.loss_optimizer is not None and state.get("loss_optimizer"):
            self.loss_optimizer.load_state_dict(state["loss_optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.grad_scaler is not None and state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.start_epoch = int(state["next_epoch"])
        self.result = FitResult(**state["result"])
        self._best_state = state["best_state"]

    def _writes(self) -> bool:
        """Whether this process writes checkpoints and calls ``on_epoch``."""
        return dist.is_main() or not self.distributed

    def try_resume(self) -> bool:
        """Load the checkpoint if there is one; True when it was loaded.

        In a distributed run rank 0 reads the file and sends its content to every process, so
        all of them continue from the same state (the folder need not be shared).
        """
        path = self.checkpoint_path

        def read() -> dict[str, Any] | None:
            return load_torch(path) if path is not None and path.exists() else None

        try:
            state = dist.on_main(read) if self.distributed else read()
            if state is None:
                return False
            self.load_state_dict(state)
        except Exception as e:  # a foreign or incompatible file: say so, do not guess
            raise TrainingError(
                f"cannot resume from {path}: {e}; delete it (or the run folder) to start afresh"
            ) from e
        return True

    # ------------------------------------------------------------------ the loop
    def _snapshot(self) -> dict[str, Any]:
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "loss_fn": copy.deepcopy(self.loss_fn.state_dict()),
        }

    def _check_finite(self, loss: torch.Tensor, epoch: int) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{self.name}: the loss became {loss.item()} in epoch {epoch + 1}; "
                f"try a lower --lr (now {self.optimizer.param_groups[0]['lr']:g}), a smaller "
                "--clip value, or another --seed"
            )

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        if self.config.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        self.loss_fn.train()
        total, count = 0.0, 0
        batches: Iterable[Batch] = self.train_batches(_generator(self.seed, epoch))
        bar = tqdm(
            batches,
            total=self.num_batches,
            desc=f"{self.name} epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        scaler = self.grad_scaler
        cfg = self.config
        for i, batch in enumerate(bar):
            self._set_lr(epoch, i)
            loss = self.step(batch)
            self._check_finite(loss, epoch)
            for opt in self._optimizers:
                opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                for opt in self._optimizers:
                    scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            if cfg.clip_value is not None:
                torch.nn.utils.clip_grad_value_(self.params, cfg.clip_value)
            if cfg.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_norm)
            for opt in self._optimizers:
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)  # skipped when a gradient overflowed
            if scaler is not None:
                scaler.update()
            total += loss.item()
            count += 1
            if count % 20 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}")
        if count == 0:
            raise TrainingError(f"{self.name}: an epoch had no batch; lower the batch size")
        return total / count

    def _epoch_line(self, record: dict[str, float], elapsed: float, done_here: int) -> str:
        """``gdml: student epoch 3/30  loss 0.1234  val 0.8812  lr 0.1  12 s, ~1 min left``."""
        epochs = self.config.epochs
        left = elapsed / done_here * (epochs - record["epoch"])  # this phase's pace so far
        parts = [f"gdml: {self.phase or self.name} epoch {record['epoch']}/{epochs}",
                 f"loss {record['train_loss']:.4f}"]
        if "val_score" in record:
            parts.append(f"val score {record['val_score']:.4f}")
        elif math.isfinite(record["val_loss"]):
            parts.append(f"val loss {record['val_loss']:.4f}")
        parts += [f"lr {record['lr']:.3g}", f"{_duration(elapsed)}, ~{_duration(left)} left"]
        return "  ".join(parts)

    def _set_lr(self, epoch: int, i: int) -> None:
        """Warm-up and cosine factors of step ``i`` of ``epoch`` (a pure function of both, so a
        resumed run sets the same rates). The plateau schedule sets its rates between epochs."""
        cfg = self.config
        n = self.num_batches or 1
        t = epoch + min(i, n - 1) / n  # epochs done, fractional
        warm = 1.0
        if cfg.warmup_epochs > 0 and t < cfg.warmup_epochs:
            warm = 0.01 + 0.99 * t / cfg.warmup_epochs
        if cfg.schedule == "cosine":
            span = max(cfg.epochs - cfg.warmup_epochs, 1e-12)
            progress = min(max(t - cfg.warmup_epochs, 0.0) / span, 1.0)
            factor = warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif cfg.schedule == "step":  # a pure function of the epoch, like MultiStepLR's
            factor = cfg.step_gamma ** sum(1 for m in cfg.step_milestones if epoch >= m)
        else:
            return
        for opt in self._optimizers:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor

    @torch.no_grad()
    def validate(self) -> float:
        if self.val_batches is None:
            return math.nan
        self.model.eval()
        self.loss_fn.eval()
        total, count = 0.0, 0
        for batch in self.val_batches(_generator(self.seed, -1)):
            total += self.step(batch).item()
            count += 1
        return total / max(count, 1)

    def fit(self, resume: bool = False) -> FitResult:
        """Train until ``epochs`` or early stop; restore the best epoch if asked.

        With ``resume=True`` a checkpoint at ``checkpoint_path`` is continued.
        """
        if resume:
            self.try_resume()
        cfg = self.config
        epochs = range(self.start_epoch, cfg.epochs)
        outer = tqdm(
            epochs,
            total=cfg.epochs,
            initial=self.start_epoch,
            desc=self.name,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        t_fit, done_here = time.perf_counter(), 0
        for epoch in outer:
            if self.result.stopped_early:
                break
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            val_loss = self.validate()
            lr = self.optimizer.param_groups[0]["lr"]
            if not math.isfinite(val_loss) and self.val_batches is not None:
                raise TrainingError(
                    f"{self.name}: the validation loss became {val_loss} in epoch {epoch + 1}; "
                    "try a lower --lr or another --seed"
                )
            record_score: dict[str, float] = {}
            if self.val_score is not None:
                val_score = self.val_score
                # Computed once, by rank 0, so every process takes the same decisions below.
                score = float(dist.on_main(val_score) if self.distributed else val_score())
                record_score["val_score"] = score
                monitored = -score
            else:
                monitored = val_loss if self.val_batches is not None else train_loss
            if not math.isfinite(monitored):
                raise TrainingError(
                    f"{self.name}: the validation criterion became {monitored} in epoch "
                    f"{epoch + 1}; try a lower --lr or another --seed"
                )
            if self.scheduler is not None:
                if cfg.plateau_on == "train_loss":
                    self.scheduler.step(train_loss)
                else:
                    self.scheduler.step(-monitored if self.val_score is not None else monitored)
            improved = monitored < self.result.best_val_loss
            if improved:
                self.result.best_val_loss = monitored
                self.result.best_epoch = epoch
                if cfg.select_best:
                    self._best_state = self._snapshot()
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                **record_score,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
            self.result.history.append(record)
            since_best = epoch - self.result.best_epoch
            if cfg.early_stop_patience is not None and since_best > cfg.early_stop_patience:
                self.result.stopped_early = True
            self.start_epoch = epoch + 1
            if self.checkpoint_path is not None and self._writes():
                save_torch(self.state_dict(), self.checkpoint_path)
            if self.on_epoch is not None and self._writes():
                self.on_epoch(record)
            done_here += 1
            if self.epoch_lines:
                print(self._epoch_line(record, time.perf_counter() - t_fit, done_here),
                      file=sys.stderr, flush=True)
            outer.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        outer.close()
        if not cfg.select_best and self.result.history:
            # The kept epoch is the last one (the criterion still drove early stop).
            self.result.best_epoch = self.result.history[-1]["epoch"] - 1
        if cfg.select_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state["model"])
            self.loss_fn.load_state_dict(self._best_state["loss_fn"])
        return self.result


CONVERGED_GAIN = 0.005  # 0.5 point of a score in [0, 1]


def convergence(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether a fit converged: its validation score gained less than half a point over the
    last third of its epochs (issue 13's rule).

    Returns ``{"val_gain_last_third": best score of the last third minus the best before it,
    "converged": bool}``; both ``None`` when there is no score or fewer than three epochs.
    """
    scores = [h.get("val_score") for h in history]
    if len(scores) < 3 or any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in scores):
        return {"val_gain_last_third": None, "converged": None}
    cut = len(scores) - math.ceil(len(scores) / 3)
    gain = max(scores[cut:]) - max(scores[:cut])
    return {"val_gain_last_third": gain, "converged": bool(gain < CONVERGED_GAIN)}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _safe_len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None
