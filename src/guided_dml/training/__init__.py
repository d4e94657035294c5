"""Training loops: one generic trainer, GEMINI's class-pair batches, batch sources."""

# The submodule class_pair_triplets.py shares its name with the function below: import it
# first, so that a later `import guided_dml.training.class_pair_triplets` (run.py does) finds it
# loaded and leaves the package's `class_pair_triplets` the function (else it becomes the module,
# depending on import order).
from . import class_pair_triplets as _class_pair_triplets_module  # noqa: F401
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
