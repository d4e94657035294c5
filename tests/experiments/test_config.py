"""Run configuration: precedence, presets, identity (hash) and validation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from guided_dml.errors import ConfigError
from guided_dml.experiments.config import EXECUTION_ONLY, HASHED_IF_SET, RunConfig, resolve_config
from guided_dml.experiments.factory import build_teacher, gemini_loss, teacher_optim
from guided_dml.training.gemini import TripletBatches, gemini_step
from guided_dml.training.trainer import Trainer


def test_defaults_then_preset_then_file_then_flags(tmp_path):
    default = RunConfig()
    # The cpu preset changes the digits backbone from the code default ...
    preset = resolve_config({"dataset": "digits", "preset": "cpu"})
    assert default.backbone == "resnet18" and preset.backbone == "smallcnn"
    # ... a config file overrides the preset ...
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"backbone": "mlp", "epochs": 7, "lr": 0.3}))
    from_file = resolve_config({"dataset": "digits"}, f)
    assert (from_file.backbone, from_file.epochs, from_file.lr) == ("mlp", 7, 0.3)
    # ... and flags override the file; a flag left unset (None) does not.
    flags = resolve_config({"dataset": "digits", "epochs": 9, "lr": None}, f)
    assert (flags.backbone, flags.epochs, flags.lr) == ("mlp", 9, 0.3)


def test_toml_config_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('method = "triplet"\nembedding_dim = 3\n')
    cfg = resolve_config({}, f)
    assert (cfg.method, cfg.embedding_dim) == ("triplet", 3)


def test_preset_can_come_from_the_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"preset": "smoke"}))
    assert resolve_config({}, f).train_subset == resolve_config({"preset": "smoke"}).train_subset


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"colour": "red"}, "unknown setting"),
        ({"preset": "gpu"}, "unknown preset"),
        ({"lr": 0.0}, "learning rates"),
        ({"gemini_lr": -1.0}, "learning rates"),
        ({"gemini_weight_decay": -1e-4}, "weight decay"),
        ({"weight_decay": -1.0}, "weight decay"),
    ],
)
def test_bad_settings_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(overrides)


def test_execution_settings_do_not_change_the_identity():
    base = RunConfig()
    for name in EXECUTION_ONLY:
        changed = {"threads": 1, "progress": True, "data_dir": "/elsewhere", "device": "cpu",
                   "channels_last": True, "nproc": 2}[name]
        assert replace(base, **{name: changed}).hash() == base.hash(), name


def test_later_settings_change_the_identity_only_when_set():
    base = RunConfig()
    # At their defaults, settings added after results were published leave old hashes alone;
    # set, they make another run.
    for name, default in HASHED_IF_SET.items():
        assert replace(base, **{name: default}).hash() == base.hash()
    assert replace(base, gemini_weight_decay=1e-3).hash() != base.hash()
    assert replace(base, seed=1).hash() != base.hash()


def test_teacher_weight_decay_reaches_the_optimiser_and_shrinks_gemini():
    """GEMINI trained with weight decay ends with smaller weights than without (same seed)."""
    torch.manual_seed(0)
    x = torch.randn(60, 1, 16, 16)
    y = torch.arange(60) % 3
    norms = []
    for wd in (0.0, 0.5):
        cfg = resolve_config({"preset": "smoke", "method": "gdml", "gemini_epochs": 3,
                              "gemini_batch": 8, "gemini_lr": 0.05, "gemini_weight_decay": wd})
        assert teacher_optim(cfg).weight_decay == wd
        torch.manual_seed(0)
        teacher = build_teacher(cfg, 3, (1, 16, 16), torch.zeros(1), torch.ones(1))
        loss_fn = gemini_loss(cfg)
        Trainer(model=teacher, loss_fn=loss_fn, step=lambda b, t=teacher, f=loss_fn: gemini_step(t, f, b),
                train_batches=TripletBatches(x, y, cfg.gemini_batch, redraw=True, seed=0),
                val_batches=None, config=teacher_optim(cfg), seed=0, progress=False,
                distributed=False).fit()
        norms.append(sum(float(p.detach().norm() ** 2) for p in teacher.parameters()) ** 0.5)
    assert norms[1] < 0.9 * norms[0]
