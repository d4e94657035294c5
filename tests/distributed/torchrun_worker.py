"""Entry point that torchrun starts in every process of the distributed tests.

Usage: ``torchrun --nproc_per_node=2 torchrun_worker.py JOBS.json``. ``JOBS.json`` is a list of
``{"argv": [gdml arguments], "stop_before_epoch": k or null}``; the jobs run one after the other
in the same process group. ``stop_before_epoch`` interrupts the student on every process as
epoch ``k`` (0-based) starts, as a kill after the checkpoint of epoch ``k - 1`` would, and the
worker goes on with the next job.

The backbone ``nobn-mlp`` (an MLP without BatchNorm) is registered here: torch has no CPU
SyncBatchNorm, so only a BatchNorm-free network can reproduce the single-process run exactly.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from torch import nn

from guided_dml.cli import main
from guided_dml.models.registry import BACKBONES
from guided_dml.models.small import MLP
from guided_dml.training import Trainer

NOBN_BACKBONE = "nobn-mlp"


def nobn_mlp(in_channels: int, out_dim: int, *, stem: str, input_shape) -> nn.Module:
    """A small MLP without BatchNorm: per-sample computation, so batch slicing changes nothing."""
    return MLP(math.prod(input_shape), out_dim, hidden=(64,), batch_norm=False)


class Interrupted(Exception):
    """Raised on every process to simulate a run killed between two epochs."""


def run_jobs(jobs: list[dict]) -> int:
    original = Trainer.train_epoch
    status = 0
    for job in jobs:
        stop = job.get("stop_before_epoch")

        def train_epoch(self: Trainer, epoch: int, stop: int | None = stop) -> float:
            if stop is not None and self.distributed and epoch == stop:
                raise Interrupted(f"interrupted before epoch {epoch + 1}")
            return original(self, epoch)

        Trainer.train_epoch = train_epoch  # type: ignore[method-assign]
        try:
            status |= main(job["argv"])
        except Interrupted:
            pass
        finally:
            Trainer.train_epoch = original  # type: ignore[method-assign]
    return status


if __name__ == "__main__":
    BACKBONES[NOBN_BACKBONE] = nobn_mlp
    sys.exit(run_jobs(json.loads(Path(sys.argv[1]).read_text())))
