"""train_model's phases (experiments/run.py): each returns its records; the run keeps them in order."""

from __future__ import annotations

import json

import torch

from guided_dml.experiments import run as run_mod
from guided_dml.experiments.config import resolve_config
from guided_dml.models.embedding import channel_stats
from guided_dml.training.history import RunHistory


def same(a: list[dict], b: list[dict]) -> bool:
    """Equal records (NaN, no validation loss, equals NaN here)."""
    return json.dumps(a) == json.dumps(b)


def tiny(**over):
    return resolve_config({"preset": "smoke", "dataset": "digits", "epochs": 1, "gemini_epochs": 2,
                           "threads": 1, "progress": False, **over})


def test_teacher_phase_returns_targets_and_history_and_records_them(tmp_path) -> None:
    cfg = tiny()
    data = run_mod.prepare_data(cfg)
    history = RunHistory(tmp_path / "history.jsonl")
    ctx = run_mod.RunContext(cfg, data, tmp_path, torch.device("cpu"), "gdml on digits", False,
                             history)
    out = run_mod.teacher_phase(ctx, *channel_stats(data.train.images))
    assert out.train_targets.shape == (len(data.train), 2)
    assert out.val_targets.shape == (len(data.val), 2)
    assert [r["epoch"] for r in out.history] == [1, 2]
    assert history.phases == {"teacher": out.history}
    written = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["epoch"]) for r in written] == [("teacher", 1), ("teacher", 2)]
    saved = torch.load(tmp_path / "targets.pt", weights_only=False)
    assert torch.equal(saved["train"], out.train_targets) and same(saved["history"], out.history)

    # Resumed with targets.pt: returned as saved, nothing retrained.
    again = RunHistory(None)
    ctx = run_mod.RunContext(cfg, data, tmp_path, torch.device("cpu"), "gdml on digits", True, again)
    back = run_mod.teacher_phase(ctx, *channel_stats(data.train.images))
    assert torch.equal(back.val_targets, out.val_targets) and same(back.history, out.history)
    assert list(again.phases) == ["teacher"] and same(again.phases["teacher"], out.history)


def _teacher(cfg, data, run_dir=None, resume=False):
    history = RunHistory(run_dir / "history.jsonl" if run_dir is not None else None)
    ctx = run_mod.RunContext(cfg, data, run_dir, torch.device("cpu"), "gdml on digits", resume,
                             history)
    return run_mod.teacher_phase(ctx, *channel_stats(data.train.images)), history


def test_a_gemini_restart_is_kept_only_when_its_loss_is_below_half(tmp_path, monkeypatch) -> None:
    def quick(**over):  # one teacher epoch: eight teachers are trained below
        return tiny(gemini_epochs=1, **over)

    data = run_mod.prepare_data(quick())
    plain, _ = _teacher(quick(), data)
    # No restart ends below half the first teacher's loss on digits: the targets (and so the
    # whole run) are exactly those of the run without restarts.
    kept, history = _teacher(quick(gemini_restarts=1), data, tmp_path)
    assert torch.equal(kept.train_targets, plain.train_targets)
    assert list(history.phases) == ["teacher", "teacher-restart-1"]
    first, restart = history.phases["teacher"][-1], history.phases["teacher-restart-1"][-1]
    assert first["kept"] is True and restart["kept"] is False
    assert restart["train_loss"] >= run_mod.RESTART_FACTOR * first["train_loss"]

    # The restart is a teacher of its own (seed + 1000): the one a run of that seed trains.
    other, _ = _teacher(quick(seed=1000), data)
    # Made to win (a factor no loss can fail), it replaces the first teacher's targets.
    monkeypatch.setattr(run_mod, "RESTART_FACTOR", 1e9)
    swapped, history = _teacher(quick(gemini_restarts=1), data)
    assert torch.equal(swapped.train_targets, other.train_targets)
    assert not torch.equal(swapped.train_targets, plain.train_targets)
    assert history.phases["teacher-restart-1"][-1]["kept"] is True
    assert swapped.history is history.phases["teacher-restart-1"]

    # Resumed from targets.pt, every attempt's records come back (history.jsonl keeps them).
    _, back = _teacher(quick(gemini_restarts=1), data, tmp_path, resume=True)
    assert list(back.phases) == ["teacher", "teacher-restart-1"]
    assert back.phases["teacher"][-1]["kept"] is True
    assert quick(gemini_restarts=1).hash() != quick().hash()


def test_train_model_keeps_teacher_then_student() -> None:
    cfg = tiny()
    trained = run_mod.train_model(cfg, run_mod.prepare_data(cfg))
    assert list(trained.phases) == ["teacher", "student"]
    assert trained.phases["student"] is trained.result.history
    assert len(trained.phases["teacher"]) == 2 and len(trained.phases["student"]) == 1


def test_the_training_batches_get_the_augmentation_the_config_asks_for() -> None:
    from guided_dml.experiments.factory import build_augmentation
    from guided_dml.training.batches import Chain, GaussianNoise, random_resized_crop_flip

    vectors = torch.rand(50, 6) * torch.arange(6.0)
    assert build_augmentation(resolve_config({"dataset": "digits"}), vectors) is None
    noise = build_augmentation(resolve_config({"dataset": "digits", "input_noise": 0.5}), vectors)
    assert isinstance(noise, GaussianNoise) and noise.sigma == 0.5
    assert torch.allclose(noise.scale, channel_stats(vectors)[1])  # the student's own scaling
    images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    both = build_augmentation(resolve_config({"dataset": "digits", "augment": True,
                                         "augment_crop": "resized", "input_noise": 0.1}), images)
    assert isinstance(both, Chain) and both.steps[0].func is random_resized_crop_flip
    assert both.steps[0].keywords == {"scale": (0.08, 1.0)}  # torchvision's smallest crop
    assert both.steps[1].scale.shape == (3, 1, 1)
