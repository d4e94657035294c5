"""Run configuration: precedence, presets, identity (hash) and validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from guided_dml.errors import ConfigError
from guided_dml.experiments.config import EXECUTION_ONLY, HASHED_IF_SET, RunConfig, resolve_config


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
        ({"lr": 0.0}, r"--lr: expected a finite number > 0, got 0\.0"),
        ({"gemini_lr": -1.0}, "--gemini-lr: expected a finite number > 0"),
        ({"weight_decay": -1.0}, "--weight-decay: expected a finite number >= 0"),
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
    assert replace(base, skip_bad=True).hash() != base.hash()
    assert replace(base, seed=1).hash() != base.hash()


def test_cpu_preset_cifar10_teacher_only_for_gdml():
    """CIFAR-10: G-DML gets the authors' GEMINI (chosen on validation MAP@R, docs/presets.md);
    the baselines, which train no teacher, keep their settings and so their config hashes."""
    gdml = resolve_config({"dataset": "cifar10", "method": "gdml", "preset": "cpu"})
    mdr = resolve_config({"dataset": "cifar10", "method": "gdml", "mdr": 0.2, "preset": "cpu"})
    for cfg in (gdml, mdr):
        assert (cfg.gemini_inputs, cfg.gemini_lr, cfg.gemini_batch, cfg.gemini_epochs,
                cfg.gemini_redraw) == ("raw255", 1e-3, 64, 12, False)
    for method in ("siamese", "triplet", "margin", "multisim"):
        base = resolve_config({"dataset": "cifar10", "method": method, "preset": "cpu"})
        fashion = resolve_config({"dataset": "fashion-mnist", "method": method, "preset": "cpu"})
        assert base.gemini_inputs == fashion.gemini_inputs == "standardize"
        assert base.gemini_lr == fashion.gemini_lr
    assert resolve_config({"dataset": "fashion-mnist", "method": "gdml", "preset": "cpu"}
                          ).gemini_inputs == "standardize"  # Fashion-MNIST keeps the cpu teacher


def test_paper_preset_is_the_authors_protocol():
    # docs/authors_protocol_notes.md: last epoch kept, plateau on the training loss, GEMINI on
    # every training image; the triplet script's own schedule (x0.2, patience 2 / 3 on Fashion).
    from guided_dml.experiments.config import resolve_config

    g = resolve_config({"preset": "paper", "dataset": "fashion-mnist", "method": "gdml"})
    assert (g.select_on, g.plateau_on, g.gemini_data) == ("last", "train_loss", "all")
    assert (g.plateau_factor, g.plateau_patience, g.clip_value, g.stem) == (0.6, 1, 0.1, "cifar")
    t = resolve_config({"preset": "paper", "dataset": "fashion-mnist", "method": "triplet"})
    assert (t.plateau_factor, t.plateau_patience, t.margin) == (0.2, 3, 3.0)
    m = resolve_config({"preset": "paper", "dataset": "mnist", "method": "triplet"})
    assert (m.plateau_patience, m.margin, m.lr) == (2, 10.0, 0.5)


def test_new_settings_leave_old_hashes_alone():
    # Settings added for issue 13 are hashed only when set, so committed run folders of the
    # `cpu` preset keep their hashes; setting one changes the hash.
    from guided_dml.experiments.config import resolve_config

    base = resolve_config({"dataset": "fashion-mnist", "method": "triplet", "preset": "cpu-v1"})
    d = base.to_dict()
    for k in ("nesterov", "clip_norm", "schedule", "warmup_epochs", "plateau_on", "gemini_data"):
        assert k in d
    assert resolve_config({"dataset": "fashion-mnist", "method": "triplet", "schedule": "plateau",
                           "preset": "cpu-v1"}).hash() == base.hash()
    # Nesterov needs a momentum (validation); against the same settings without it:
    momentum = resolve_config({"dataset": "fashion-mnist", "method": "triplet", "momentum": 0.9,
                               "preset": "cpu-v1"})
    assert resolve_config({"dataset": "fashion-mnist", "method": "triplet", "momentum": 0.9,
                           "nesterov": True, "preset": "cpu-v1"}).hash() != momentum.hash()


RECORDS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.mark.parametrize("record, preset, at_least", [("history/cpu-v1", "cpu-v1", 30),
                                                      ("digits", "cpu", 15), ("cpu", "cpu", 4)])
def test_committed_records_keep_their_config_hashes(record: str, preset: str, at_least: int) -> None:
    # Every committed run (data set, method, seed) re-resolves to the hash its row records, so a
    # change to defaults or presets that would silently alter a published config fails here.
    # (+MDR rows predate MDR's wiring, issue 18, which changed their settings on purpose.)
    import csv

    from guided_dml.experiments.config import resolve_config

    with (RECORDS / record / "runs.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if not r["method"].endswith("+mdr")]
    assert len(rows) >= at_least
    for r in rows:
        cfg = resolve_config({"dataset": r["dataset"], "method": r["method"],
                              "seed": int(r["seed"]), "preset": preset})
        assert cfg.hash() == r["config_hash"], (record, r["dataset"], r["method"], r["seed"])


@pytest.mark.parametrize("bad", [{"warmup_epochs": 1}, {"schedule": "linear"}, {"plateau_on": "x"},
                                 {"clip_norm": 0.0}, {"gemini_data": "val"},
                                 {"schedule": "cosine", "warmup_epochs": 9, "epochs": 6}])
def test_bad_schedule_settings_are_config_errors(bad):
    from guided_dml.experiments.config import resolve_config

    with pytest.raises(ConfigError):
        resolve_config({"dataset": "digits", **bad})


def test_mdr_is_wired_as_its_authors_wire_it():
    # docs/mdr_official_notes.md: no L2 normalisation (the mean-distance scaling instead), the
    # levels in their own unclipped Adam with weight decay 1e-5; a user's own choice wins.
    from guided_dml.experiments.factory import build_loss, build_student, loss_normalizes, student_optim
    from guided_dml.losses import WithMDR

    cfg = resolve_config({"dataset": "digits", "method": "triplet", "mdr": 0.2})
    assert cfg.normalize_embeddings is False and not loss_normalizes(cfg)
    opt = student_optim(cfg)
    assert (opt.loss_optimizer, opt.loss_lr, opt.loss_weight_decay) == ("adam", 1e-4, 1e-5)
    loss, _ = build_loss(cfg)
    assert isinstance(loss, WithMDR) and loss.normalize_by_mean_distance
    assert not loss.base_loss.distance.normalize_embeddings
    import torch

    net = build_student(cfg, (1, 8, 8), torch.zeros(1), torch.ones(1))
    assert not net.l2_normalize
    plain = resolve_config({"dataset": "digits", "method": "triplet"})
    assert plain.normalize_embeddings is None and plain.loss_optimizer == "shared"
    own = resolve_config({"dataset": "digits", "method": "triplet", "mdr": 0.2,
                          "normalize_embeddings": True, "loss_optimizer": "shared"})
    assert own.normalize_embeddings is True and own.loss_optimizer == "shared"
    assert cfg.hash() != resolve_config({"dataset": "digits", "method": "triplet", "mdr": 0.2,
                                         **{k: v for k, v in plain.to_dict().items()
                                            if k in ("normalize_embeddings", "loss_optimizer",
                                                     "loss_lr", "loss_weight_decay")}}).hash()


def test_cpu_preset_gives_every_method_the_same_protocol_and_its_own_tuned_settings():
    # Issue 13: one optimiser, schedule, precision, epoch budget and selection rule for all;
    # only what the equal-budget study tuned per method (lr, the loss's margin / geometry).
    from guided_dml.experiments.presets import CPU_METHOD_SETTINGS
    from guided_dml.methods import METHODS

    assert set(CPU_METHOD_SETTINGS) == set(METHODS)
    shared = ("backbone", "stem", "epochs", "batch_size", "momentum", "nesterov", "schedule",
              "warmup_epochs", "clip_value", "clip_norm", "amp", "weight_decay", "select_on",
              "val_fraction", "embedding_dim")
    for ds in ("mnist", "fashion-mnist", "cifar10"):
        cfgs = {m: resolve_config({"dataset": ds, "method": m}) for m in METHODS}
        for key in shared:
            assert len({getattr(c, key) for c in cfgs.values()}) == 1, (ds, key)
        g = cfgs["gdml"]
        assert (g.nesterov, g.schedule, g.clip_value, g.amp) == (True, "cosine", None, "bf16")
        for m, tuned in CPU_METHOD_SETTINGS.items():
            for key, value in tuned.items():
                assert getattr(cfgs[m], key) == value, (ds, m, key)
