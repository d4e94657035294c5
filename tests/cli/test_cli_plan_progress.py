"""`gdml train` on a folder: the fit plan fills unset settings, progress lines when stderr is not
a terminal, -q / -v, and the note that a finished run was reused (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from guided_dml.experiments.plan import (
    DataSummary,
    chance_score,
    fit_plan,
    near_chance_note,
    planned_config,
)


@pytest.mark.parametrize(
    ("summary", "backbone", "batch", "epochs"),
    [
        pytest.param(DataSummary(96, 3, (3, 32, 32)), "smallcnn", 8, 300, id="96-photos"),
        pytest.param(DataSummary(1257, 10, (64,)), "mlp", 64, 236, id="digits-vectors"),
        pytest.param(DataSummary(1257, 10, (1, 8, 8)), "smallcnn", 64, 236, id="digits-images"),
        pytest.param(DataSummary(50_000, 10, (3, 64, 64)), None, 64, 30, id="large-photos"),
    ],
)
def test_fit_plan_gives_every_run_enough_steps(summary, backbone, batch, epochs):
    plan = fit_plan(summary)
    assert plan.get("backbone") == backbone
    assert plan["batch_size"] == batch and plan["epochs"] == epochs
    # Vectors keep the annealed last epoch; images still select on validation MAP@R.
    assert plan.get("select_on") == ("last" if backbone == "mlp" else None)
    n_train = int(summary.n_samples * 0.9)
    assert n_train // batch >= 8 or batch == 8  # at least 8 steps per epoch when possible
    pairs = summary.n_classes * (summary.n_classes - 1)
    assert plan["gemini_epochs"] * pairs >= 1200  # GEMINI gets its steps too


def test_the_plan_applies_to_folders_under_cpu_only(photos):
    cfg, splits, note = planned_config({"dataset": str(photos)})
    assert splits is not None and note.startswith("fit plan for 58 samples of 1×16×16 in 3 classes")
    assert cfg.backbone == "smallcnn" and cfg.batch_size == 8 and cfg.epochs == 300
    cfg, _, _ = planned_config({"dataset": str(photos), "epochs": 3, "batch_size": 16})
    assert cfg.epochs == 3 and cfg.batch_size == 16  # flags win
    for overrides in ({"dataset": "digits"}, {"dataset": str(photos), "preset": "smoke"}):
        cfg, splits, note = planned_config(overrides)
        assert splits is None and note is None


def test_the_benchmark_plans_a_folder_as_train_does(photos):
    from guided_dml.experiments.benchmark import BenchmarkSpec, plan

    runs = plan(BenchmarkSpec(datasets=[str(photos)], methods=["gdml", "triplet"], seeds=2,
                              overrides={"epochs": 3}))
    assert len(runs) == 4
    for cfg, _ in runs:
        same, _, _ = planned_config({"dataset": str(photos), "method": cfg.method,
                                     "seed": cfg.seed, "epochs": 3, "threads": cfg.threads,
                                     "progress": cfg.progress})
        assert cfg.hash() == same.hash()
        assert cfg.backbone == "smallcnn" and cfg.batch_size == 8 and cfg.epochs == 3  # flags win


def test_a_missing_builtin_data_set_leaves_nothing_behind(gdml, tmp_path, monkeypatch):
    def offline(url, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("guided_dml.data.download.urlopen", offline)
    empty = tmp_path / "data"
    empty.mkdir()
    for args in (("train", "--dataset", "mnist", "--out", tmp_path / "run"),
                 ("benchmark", "--datasets", "mnist", "--seeds", "1", "--out", tmp_path / "grid")):
        rc, _, err = gdml(*args, "--data-dir", empty)
        assert rc == 2 and "train-images-idx3-ubyte.gz" in err and "download" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert not any(empty.iterdir())


def test_near_chance_note():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # Leave-one-out: a query's one other same-class sample is 1 of the 5 others.
    assert chance_score(labels, "precision@1") == pytest.approx(1 / 5)
    # MAP@R with R = 1 is precision@1's value: the one relevant sample at rank 1.
    assert chance_score(labels, "map@r") == pytest.approx(1 / 5)
    note = near_chance_note([{"val_score": 0.22}, {"val_score": 0.2}], labels, "gdml on photos")
    assert note is not None and "not better than chance" in note and "map@r 0.220" in note
    assert near_chance_note([{"val_score": 0.9}], labels, "x") is None
    # Ten balanced classes: MAP@R 0.086 is ~9x its chance (0.01), not "near chance" (the false
    # alarm CIFAR-10's Margin runs raised when MAP@R was compared with precision@1's 0.1).
    ten = torch.arange(10).repeat(500)
    assert near_chance_note([{"val_score": 0.086}], ten, "margin on cifar10") is None
    assert near_chance_note([{"val_score": 0.12}], ten, "x", "precision@1") is not None


@pytest.mark.parametrize("metric", ["map@r", "precision@1", "r_precision", "recall@1"])
def test_chance_score_matches_random_embeddings_scored_by_evaluate(metric):
    """Reference: the mean score, by the real ``evaluate`` (leave-one-out, as the validation
    score), of embeddings drawn at random, on unbalanced classes."""
    from guided_dml.evaluation import evaluate

    labels = torch.tensor([0] * 120 + [1] * 60 + [2] * 20)
    gen = torch.Generator().manual_seed(0)
    scores = [evaluate(torch.randn(len(labels), 2, generator=gen), labels, nmi=False)[metric]
              for _ in range(40)]
    assert float(np.mean(scores)) == pytest.approx(chance_score(labels, metric), abs=0.01)


def test_train_on_a_folder_prints_the_plan_epoch_lines_and_the_reuse_note(gdml, photos, tmp_path):
    out = tmp_path / "run"
    args = ("train", "--dataset", photos, "--out", out, "--epochs", "2", "--gemini-epochs", "2")
    rc, stdout, err = gdml(*args)
    assert rc == 0, err
    assert "gdml: note: fit plan for 58 samples" in err
    lines = [ln for ln in err.splitlines() if " epoch " in ln]
    assert any(": teacher epoch 2/2" in ln for ln in lines), err
    student = [ln for ln in lines if ": student epoch" in ln]
    assert len(student) == 2 and "loss " in student[0] and "lr " in student[0] and "left" in student[0]
    assert json.loads(stdout)["recall@1"] >= 0
    assert json.loads((out / "config.json").read_text())["batch_size"] == 8  # the plan's
    rc, stdout2, err = gdml(*args)
    assert rc == 0 and stdout2 == stdout
    assert "holds a finished run of these settings: nothing was trained" in err
    rc, _, err = gdml(*args, "-q")
    assert rc == 0 and err == ""


def test_every_command_takes_quiet_and_verbose(gdml):
    from guided_dml.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        flags = {s for a in command._actions for s in a.option_strings}
        assert {"-q", "-v"} <= flags, name


def test_an_unknown_backbone_fails_before_any_work(gdml, error, photos, tmp_path):
    out = tmp_path / "run"
    error(gdml("train", "--dataset", photos, "--backbone", "resnet50", "--out", out),
          "unknown backbone 'resnet50'", "resnet18")
    assert not out.exists()
