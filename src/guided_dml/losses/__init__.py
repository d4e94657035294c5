"""Losses: GEMINI (G-DML Eq. 5), distillation (G-DML Algorithm 2), MDR, and PML baselines.

Each loss is a small ``nn.Module`` whose docstring names its paper and equation; baselines are
thin adapters over pytorch-metric-learning, registered in :data:`METRIC_LOSSES`.
"""

from guided_dml.losses.baselines import METRIC_LOSSES, MINERS, build_metric_loss, build_miner
from guided_dml.losses.distillation import DistillationLoss
from guided_dml.losses.gemini import GeminiLoss
from guided_dml.losses.mdr import MultiLevelDistanceRegularizer, WithMDR, mean_distance_normalize

__all__ = [
    "METRIC_LOSSES",
    "MINERS",
    "DistillationLoss",
    "GeminiLoss",
    "MultiLevelDistanceRegularizer",
    "WithMDR",
    "build_metric_loss",
    "build_miner",
    "mean_distance_normalize",
]
