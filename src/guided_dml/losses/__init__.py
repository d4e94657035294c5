"""Losses: GEMINI (G-DML Eq. 5), distillation (G-DML Algorithm 2), MDR, and PML baselines.

Each loss is a small ``nn.Module`` whose docstring names its paper and equation; baselines are
thin adapters over pytorch-metric-learning, listed by :func:`metric_losses` (read from the method
registry, :mod:`guided_dml.methods`).
"""

from .baselines import MINERS, build_metric_loss, build_miner, metric_losses
from .distillation import DistillationLoss
from .gemini import GeminiLoss
from .mdr import MultiLevelDistanceRegularizer, WithMDR, mean_distance_normalize

__all__ = [
    "MINERS",
    "DistillationLoss",
    "GeminiLoss",
    "MultiLevelDistanceRegularizer",
    "WithMDR",
    "build_metric_loss",
    "build_miner",
    "mean_distance_normalize",
    "metric_losses",
]
