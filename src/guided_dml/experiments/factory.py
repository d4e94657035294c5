"""Turns a resolved :class:`RunConfig` into objects: networks, losses, optimiser settings.

This is the only place that reads a config to build things (constructors below it take explicit
arguments), so the CLI, the benchmark runner and the estimator all build the same models.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pytorch_metric_learning.reducers import MeanReducer
from torch import nn

from ..errors import ConfigError
from ..losses import DistillationLoss, GeminiLoss, WithMDR, build_metric_loss, build_miner
from ..losses.triplet import PlainTripletLoss
from ..methods import get_method
from ..models import Gemini, build_backbone, load_pretrained
from ..models.embedding import EmbeddingNet, StandardizedTeacher, channel_stats
from ..models.pretrained import IMAGENET, imagenet_stats, resolve_pretrained
from ..training import OptimConfig
from ..training.batches import AUGMENTATIONS, Chain, GaussianNoise
from ..training.checkpoint import load_torch, save_torch
from .config import RunConfig

VECTOR_BACKBONES = ("mlp",)


def pick_backbone(cfg: RunConfig, input_shape: tuple[int, ...]) -> str:
    """Feature vectors (``input_shape == (F,)``) need the MLP; images need a CNN."""
    if len(input_shape) == 1:
        return "mlp"
    if cfg.backbone in VECTOR_BACKBONES:
        raise ConfigError(f"backbone {cfg.backbone!r} takes feature vectors, but the data are images")
    return cfg.backbone


def build_student(
    cfg: RunConfig, input_shape: tuple[int, ...], mean: torch.Tensor, std: torch.Tensor, *,
    load_weights: bool = True,
) -> EmbeddingNet:
    """The student / baseline network: standardisation + backbone, output ``embedding_dim``.

    ``load_weights``: start from ``cfg.pretrained`` (False when a saved state dict replaces the
    weights anyway: a saved model does not need the pretrained file any more).
    """
    name = pick_backbone(cfg, input_shape)
    backbone = build_backbone(
        name, input_shape[0], cfg.embedding_dim, stem=cfg.stem, input_shape=input_shape
    )
    if cfg.pretrained:
        if name != "resnet18":
            raise ConfigError("--pretrained takes a torchvision resnet18 file (or imagenet); use "
                              "--backbone resnet18")
        if load_weights:
            skipped = load_pretrained(backbone, resolve_pretrained(cfg.pretrained))  # type: ignore[arg-type]
            if "conv1.weight" in skipped:
                warnings.warn(f"the {cfg.stem} stem's 3×3 conv1 has no counterpart in the "
                              "pretrained 7×7 one: it starts from scratch (--stem imagenet "
                              "keeps it)", stacklevel=2)
    return EmbeddingNet(backbone, mean, std, l2_normalize=loss_normalizes(cfg))


def student_stats(
    cfg: RunConfig, input_shape: tuple[int, ...], mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's input standardisation: the training data's ``mean``/``std``, or ImageNet's
    for ``--pretrained imagenet`` (the normalisation those weights were trained with)."""
    if cfg.pretrained == IMAGENET and len(input_shape) == 3:
        return imagenet_stats(input_shape[0])
    return mean, std


def loss_normalizes(cfg: RunConfig) -> bool:
    """Whether the method's loss compares L2-normalised embeddings (PML's default geometry)."""
    method = get_method(cfg.method)
    if method.teacher:
        return False  # regression onto GEMINI's coordinates: the scale is the point
    if cfg.normalize_embeddings is not None:
        return cfg.normalize_embeddings
    return method.normalizes


def build_teacher(
    cfg: RunConfig,
    num_classes: int,
    input_shape: tuple[int, ...],
    mean: torch.Tensor,
    std: torch.Tensor,
) -> StandardizedTeacher:
    """GEMINI (Gonzalez-Zapata et al. 2022, Sec. 3.1, Eq. 2) behind the input scaling the config asks for."""
    stream = cfg.gemini_stream
    if stream == "auto":
        stream = "mlp" if len(input_shape) == 1 else "conv"
    gemini = Gemini(num_classes, input_shape, out_dim=cfg.embedding_dim, stream=stream)
    if cfg.gemini_inputs == "raw255":
        # The authors feed raw 0-255 floats: (x - 0) / (1/255) turns [0, 1] back into [0, 255].
        mean = torch.zeros_like(mean)
        std = torch.full_like(std, 1.0 / 255.0)
    return StandardizedTeacher(gemini, mean, std)


def build_augmentation(cfg: RunConfig, images: Any) -> Any:
    """The training batches' augmentation: ``--augment``'s crop and flip, then
    ``--input-noise`` (scaled by the inputs' per-feature std, so it is ``sigma`` in the
    network's standardised input space); None for neither."""
    steps: list[Any] = []
    if cfg.augment:
        crop = AUGMENTATIONS[cfg.augment_crop]
        if cfg.augment_crop == "resized":
            crop = partial(crop, scale=(cfg.crop_scale, 1.0))
        steps.append(crop)
    if cfg.input_noise > 0:
        _, std = channel_stats(images)
        steps.append(GaussianNoise(cfg.input_noise, std.view(-1, *[1] * (images.dim() - 2))))
    return None if not steps else steps[0] if len(steps) == 1 else Chain(tuple(steps))


def build_loss(cfg: RunConfig) -> tuple[nn.Module, Any]:
    """``(loss, miner)`` of the method, wrapped in MDR when ``cfg.mdr > 0``."""
    if get_method(cfg.method).teacher:
        loss: nn.Module = DistillationLoss()
        miner = None
        if cfg.mdr > 0:
            # Targets are fixed coordinates, so the embedding must keep its scale.
            loss = WithMDR(loss, cfg.mdr, normalize_by_mean_distance=False)
        return loss, miner
    if cfg.triplet_sampling == "class-pairs":  # the authors' triplet network
        return PlainTripletLoss(3.0 if cfg.margin is None else cfg.margin), None
    kwargs: dict[str, Any] = {}
    if cfg.margin is not None:
        kwargs["margin"] = cfg.margin
    if cfg.reducer == "mean":
        kwargs["reducer"] = MeanReducer()
    loss = build_metric_loss(cfg.method, normalize_embeddings=cfg.normalize_embeddings, **kwargs)
    miner = build_miner(cfg.miner, normalize_embeddings=cfg.normalize_embeddings)
    if cfg.mdr > 0:
        # The miner goes inside: it must pick pairs on the rescaled embedding the loss sees.
        return WithMDR(loss, cfg.mdr, normalize_by_mean_distance=True, miner=miner), None
    return loss, miner


def gemini_loss(cfg: RunConfig) -> GeminiLoss:
    return GeminiLoss(margin=cfg.gemini_margin, beta=cfg.gemini_beta)


def student_optim(cfg: RunConfig) -> OptimConfig:
    return OptimConfig(
        epochs=cfg.epochs,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        clip_value=cfg.clip_value,
        clip_norm=cfg.clip_norm,
        optimizer=cfg.optimizer,
        schedule=cfg.schedule,
        step_milestones=tuple(cfg.step_milestones),
        step_gamma=cfg.step_gamma,
        freeze_bn=cfg.freeze_bn,
        warmup_epochs=cfg.warmup_epochs,
        plateau_factor=cfg.plateau_factor,
        plateau_patience=cfg.plateau_patience,
        plateau_on=cfg.plateau_on,
        early_stop_patience=cfg.early_stop_patience,
        select_best=cfg.select_on != "last",
        loss_optimizer=cfg.loss_optimizer,
        loss_lr=cfg.loss_lr,
        loss_weight_decay=cfg.loss_weight_decay,
    )


def teacher_optim(cfg: RunConfig) -> OptimConfig:
    # Algorithm 1 as the authors run it: plain SGD, constant lr, no decay, no clipping; the
    # last epoch is kept unless per-epoch validation was asked for.
    return OptimConfig(
        epochs=cfg.gemini_epochs,
        lr=cfg.gemini_lr,
        momentum=0.0,
        weight_decay=0.0,
        clip_value=None,
        plateau_factor=None,
        select_best=cfg.gemini_validate,
    )


# --------------------------------------------------------------------------- saved models
def model_blob(
    model: EmbeddingNet,
    cfg: RunConfig,
    input_shape: tuple[int, ...],
    classes: list[str],
    *,
    reference: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The contents of a model file: everything needed to rebuild the student without data.

    ``reference``: the training set's ``embeddings`` (N, d), ``labels`` (N,), ``paths`` (file
    names or None) and their ``root``, what ``gdml search`` retrieves from. ``extra``: more
    entries (the estimator's parameters). Readers ignore keys they do not know, so both are
    optional and the format stays ``guided-dml-model/1``.
    """
    blob: dict[str, Any] = {
        "format": "guided-dml-model/1",
        "config": cfg.to_dict(),
        "input_shape": list(input_shape),
        "classes": list(classes),
        "state_dict": model.state_dict(),
    }
    if reference is not None:
        blob["reference"] = reference
    blob.update(extra or {})
    return blob


def save_model(
    path: str | Path,
    model: EmbeddingNet,
    cfg: RunConfig,
    input_shape: tuple[int, ...],
    classes: list[str],
    *,
    reference: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """:func:`model_blob` written to ``path`` (write-then-rename)."""
    save_torch(model_blob(model, cfg, input_shape, classes, reference=reference, extra=extra), path)


def load_model(path: str | Path) -> tuple[EmbeddingNet, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model in eval mode, metadata)``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ConfigError(f"no model at {path}: give a run folder or its model.pt")
    try:
        blob = load_torch(path)
    except Exception as e:
        raise ConfigError(f"{path} is not a readable guided-dml model ({e})") from e
    if not isinstance(blob, dict) or blob.get("format") != "guided-dml-model/1":
        raise ConfigError(f"{path} is not a guided-dml model file")
    cfg = RunConfig(**blob["config"])
    shape = tuple(blob["input_shape"])
    sd = blob["state_dict"]
    model = build_student(cfg, shape, sd["standardize.mean"], sd["standardize.std"],
                          load_weights=False)
    model.load_state_dict(sd)
    model.eval()
    return model, blob
