"""End to end: ``gdml train`` for every method (and MDR) on the bundled digits, smoke preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from guided_dml.cli import main
from guided_dml.methods import METHODS


@pytest.mark.parametrize("method", list(METHODS))
def test_smoke_train_every_method(tmp_path, method, capsys):
    out = tmp_path / method
    rc = main(["train", "--method", method, "--dataset", "digits", "--preset", "smoke",
               "--out", str(out), "--seed", "1"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("recall@1", "f1", "nmi", "r_precision", "map@r", "precision@1"):
        assert 0.0 <= metrics[key] <= 1.0
    # Better than chance (10 classes) even after two smoke epochs on 300 digits.
    assert metrics["precision@1"] > 0.2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == method and cfg["preset"] == "smoke" and cfg["seed"] == 1
    assert metrics["threads"] == (cfg["threads"] or torch.get_num_threads())  # changes numbers
    assert metrics["torch"] == torch.__version__ and metrics["processor"]  # these too
    emb = np.load(out / "embeddings.npz")
    assert emb["test_embeddings"].shape[1] == 2
    assert (out / "embedding.png").stat().st_size > 1000
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    phases = {h["phase"] for h in history}
    assert phases == ({"teacher", "student"} if method == "gdml" else {"student"})
    assert not list(out.glob("*.ckpt")), "checkpoints are removed once the run is complete"
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["recall@1"] == pytest.approx(metrics["recall@1"], abs=1e-4)


@pytest.mark.parametrize("method", ["triplet", "gdml"])
def test_smoke_train_with_mdr(tmp_path, method):
    out = tmp_path / "run"
    assert main(["train", "--method", method, "--mdr", "0.2", "--dataset", "digits",
                 "--preset", "smoke", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == f"{method}+mdr"


def test_same_seed_same_numbers(tmp_path):
    args = ["train", "--method", "gdml", "--dataset", "digits", "--preset", "smoke", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    for key in ("recall@1", "map@r", "r_precision"):
        assert a[key] == b[key]


def test_existing_run_folder_is_protected(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "triplet", "--dataset", "digits", "--preset", "smoke",
            "--out", str(out)]
    assert main(args) == 0
    # Same settings, finished: returns the stored metrics without retraining.
    assert main(args) == 0
    # Other settings into the same folder: refused with a one-line error, nothing lost.
    assert main([*args, "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "Traceback" not in err
    assert (out / "metrics.json").exists()
    assert main([*args, "--lr", "0.01", "--overwrite"]) == 0


def test_bad_flags_give_one_line_errors(tmp_path, capsys):
    assert main(["train", "--method", "nope", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["train", "--dataset", "no-such-set", "--preset", "smoke",
                 "--out", str(tmp_path / "x")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_gemini_data_all_trains_the_teacher_on_train_and_val(monkeypatch):
    # The authors train GEMINI on every training image; the student still splits off validation.
    from guided_dml.experiments import run as run_mod
    from guided_dml.experiments.config import resolve_config

    seen = []
    real = run_mod.TripletBatches

    def spy(images, labels, *a, **k):
        seen.append(len(images))
        return real(images, labels, *a, **k)

    monkeypatch.setattr(run_mod, "TripletBatches", spy)
    for data in ("train", "all"):
        cfg = resolve_config({"preset": "smoke", "dataset": "digits", "gemini_data": data,
                              "epochs": 1, "gemini_epochs": 1, "threads": 1})
        prepared = run_mod.prepare_data(cfg)
        run_mod.train_model(cfg, prepared)
        assert seen[-1] == (len(prepared.reference) if data == "all" else len(prepared.train))
    assert seen[0] < seen[1]
