"""The per-epoch records of a run's training phases, and the ``history.jsonl`` that holds them.

A G-DML run has two phases, the GEMINI teacher (Gonzalez-Zapata et al., CVPR-W 2022,
Algorithm 1) and the student (Algorithm 2); a baseline has the second only. Each phase's
:class:`~.trainer.Trainer` appends one record per epoch (losses, score, learning rate,
seconds); :class:`RunHistory` keeps them in phase order and rewrites the file after every epoch,
so an interrupted run keeps its curves and a resumed one continues them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import save_bytes

if TYPE_CHECKING:
    from .trainer import Trainer

Records = list[dict[str, Any]]


@dataclass
class RunHistory:
    """The records of each phase (``"teacher"``, ``"student"``), in the order they started.

    ``path`` (``history.jsonl``) is rewritten whole by :meth:`write`, after every epoch of a
    phase that :meth:`follow` watches; ``None`` writes nothing (no run folder, or a process other
    than rank 0).
    """

    path: Path | None
    phases: dict[str, Records] = field(default_factory=dict)

    def write(self) -> None:
        """Rewrite ``path``: one JSON line ``{"phase": ..., **record}`` per record (NaN as null)."""
        if self.path is None:
            return
        # NaN (no validation loss) is written as null: NaN is not valid JSON for other tools.
        lines = [
            json.dumps({"phase": phase, **{k: _json_number(v) for k, v in rec.items()}})
            for phase, hist in self.phases.items()
            for rec in hist
        ]
        save_bytes(("\n".join(lines) + "\n").encode() if lines else b"", self.path)

    def follow(self, phase: str, trainer: Trainer) -> None:
        """Start ``phase`` (no records yet) and write the file after each epoch of ``trainer``."""
        self.phases[phase] = []
        trainer.on_epoch = partial(self._epoch_done, phase, trainer)

    def _epoch_done(self, phase: str, trainer: Trainer, _record: dict[str, Any]) -> None:
        """``trainer.on_epoch``: its history so far is ``phase``'s; write the file."""
        self.phases[phase] = trainer.result.history
        self.write()


def _json_number(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v
