"""Training loops: one generic trainer, its steps, GEMINI's class-pair batches, batch sources."""

from .batches import (
    ArrayBatches,
    DeviceBatches,
    on_device,
    random_crop_flip,
    random_resized_crop_flip,
    to_unit_float,
)
from .checkpoint import load_torch, save_json, save_torch
from .embed import embed
from .gemini import TripletBatches, class_pair_triplets, standardize_targets, teacher_targets
from .steps import gemini_step, metric_step, three_forward_step
from .trainer import FitResult, OptimConfig, Trainer

__all__ = [
    "ArrayBatches",
    "DeviceBatches",
    "FitResult",
    "OptimConfig",
    "Trainer",
    "TripletBatches",
    "class_pair_triplets",
    "embed",
    "gemini_step",
    "load_torch",
    "metric_step",
    "on_device",
    "random_crop_flip",
    "random_resized_crop_flip",
    "save_json",
    "save_torch",
    "standardize_targets",
    "teacher_targets",
    "three_forward_step",
    "to_unit_float",
]
