"""Training loops: one generic trainer, GEMINI's class-pair batches, batch sources."""

from .batches import ArrayBatches, DeviceBatches, on_device, random_crop_flip, to_unit_float
from .checkpoint import load_torch, save_json, save_torch
from .embed import embed
from .gemini import TripletBatches, class_pair_triplets, gemini_step, teacher_targets
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
    "on_device",
    "random_crop_flip",
    "save_json",
    "save_torch",
    "teacher_targets",
    "to_unit_float",
]
