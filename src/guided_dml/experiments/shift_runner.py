"""Covariate-shift evaluation of a finished run folder (``gdml benchmark --shift``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .config import RunConfig
from .factory import load_model
from .run import prepare_data
from .shift import SHIFT_FILE, evaluate_shift, write_shift


def shift_for_run(cfg: RunConfig, run_dir: Path, *, max_test: int | None = 2000) -> Path:
    """Evaluate the run's selected model on corrupted test sets; writes ``shift.json``.

    The reference is the run's clean training set (train + validation), exactly as in the
    clean evaluation, and the corrupted queries are a fixed stratified test subset.
    """
    if cfg.split == "classes":
        raise ConfigError("covariate shift needs the closed-set protocol (--split closed)")
    out = run_dir / SHIFT_FILE
    if out.exists():
        return out
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    model, _ = load_model(run_dir / "model.pt")
    data = prepare_data(cfg)
    rows = evaluate_shift(model, data.reference.images, data.reference.labels,
                          data.test.images, data.test.labels, max_test=max_test, seed=cfg.seed)
    return write_shift(run_dir, rows)
