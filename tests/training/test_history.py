"""RunHistory (training/history.py): the per-epoch records of a run's phases and history.jsonl."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from guided_dml.training.history import RunHistory


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_phases_in_their_order_and_nan_as_null(tmp_path) -> None:
    history = RunHistory(tmp_path / "history.jsonl")
    history.phases["teacher"] = [{"epoch": 1, "train_loss": 2.0, "val_loss": math.nan}]
    history.phases["student"] = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.5}]
    history.write()
    assert lines(tmp_path / "history.jsonl") == [
        {"phase": "teacher", "epoch": 1, "train_loss": 2.0, "val_loss": None},
        {"phase": "student", "epoch": 1, "train_loss": 1.0, "val_loss": 0.5},
    ]


def test_follow_writes_after_every_epoch_of_the_trainer(tmp_path) -> None:
    history = RunHistory(tmp_path / "history.jsonl")
    history.phases["teacher"] = [{"epoch": 1}]
    trainer = SimpleNamespace(result=SimpleNamespace(history=[]), on_epoch=None)
    history.follow("student", trainer)
    assert history.phases["student"] == [] and not (tmp_path / "history.jsonl").exists()
    for epoch in (1, 2):
        record = {"epoch": epoch, "train_loss": 1.0 / epoch}
        trainer.result.history = [*trainer.result.history, record]  # a resumed fit may replace it
        trainer.on_epoch(record)
        assert history.phases["student"] is trainer.result.history
        assert [(r["phase"], r["epoch"]) for r in lines(tmp_path / "history.jsonl")] == [
            ("teacher", 1), *(("student", e) for e in range(1, epoch + 1))]


def test_without_a_path_nothing_is_written(tmp_path) -> None:
    history = RunHistory(None)
    trainer = SimpleNamespace(result=SimpleNamespace(history=[{"epoch": 1}]), on_epoch=None)
    history.follow("student", trainer)
    trainer.on_epoch({"epoch": 1})
    history.write()
    assert history.phases == {"student": [{"epoch": 1}]} and not any(tmp_path.iterdir())
