"""Per-method settings for a grid (`gdml benchmark --method-settings`), and the tuning study's
winners (`scripts/tune_preset.py --winners`) that feed it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from guided_dml.cli import main
from guided_dml.errors import ConfigError
from guided_dml.experiments.benchmark import BenchmarkSpec, plan
from guided_dml.experiments.presets import CPU_METHOD_SETTINGS

REPO = Path(__file__).resolve().parents[2]


def test_each_method_gets_its_own_settings_and_flags_still_win(tmp_path: Path) -> None:
    settings = {"triplet": {"lr": 0.005, "margin": 0.3}, "siamese": {"lr": 0.04}}
    spec = BenchmarkSpec(datasets=["digits"], methods=["triplet", "siamese", "gdml"], seeds=1,
                         preset="smoke", out=str(tmp_path), mdr=0.2, mdr_methods=["triplet"],
                         method_settings=settings)
    cfgs = {cfg.method_label: cfg for cfg, _ in plan(spec)}
    assert (cfgs["triplet"].lr, cfgs["triplet"].margin) == (0.005, 0.3)
    assert (cfgs["triplet+mdr"].lr, cfgs["triplet+mdr"].margin) == (0.005, 0.3)  # its base's
    assert cfgs["siamese"].lr == 0.04
    plain = {cfg.method_label: cfg for cfg, _ in plan(BenchmarkSpec(
        datasets=["digits"], methods=["gdml"], seeds=1, preset="smoke", out=str(tmp_path)))}
    assert cfgs["gdml"].hash() == plain["gdml"].hash()  # untouched without an entry
    flagged = BenchmarkSpec(datasets=["digits"], methods=["triplet"], seeds=1, preset="smoke",
                            out=str(tmp_path), method_settings=settings, overrides={"lr": 0.1})
    assert plan(flagged)[0][0].lr == 0.1
    with pytest.raises(ConfigError, match="unknown method"):
        plan(BenchmarkSpec(datasets=["digits"], methods=["triplet"], seeds=1, preset="smoke",
                           out=str(tmp_path), method_settings={"tripplet": {"lr": 0.1}}))


def test_the_cli_reads_the_file_and_refuses_a_bad_one(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"triplet": 0.1}')
    args = ["benchmark", "--datasets", "digits", "--methods", "triplet", "--seeds", "1",
            "--preset", "smoke", "--out", str(tmp_path / "b"), "--method-settings"]
    assert main([*args, str(bad)]) == 2
    assert "expected {method: {setting: value}}" in capsys.readouterr().err
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"triplet": {"lrr": 0.1}}')
    assert main([*args, str(wrong)]) == 2
    assert "lrr" in capsys.readouterr().err
    assert not (tmp_path / "b" / "runs").exists()  # refused before any run


def test_the_study_winners_are_the_cpu_presets_settings() -> None:
    # The committed equal-budget study (docs/results/study/) picks, per method, the settings
    # the `cpu` preset holds: the preset is what its record says.
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import tune_preset
    finally:
        sys.path.pop(0)
    rows = [json.loads(line) for line in
            (REPO / "docs/results/study/fashion_subset_trials.jsonl").read_text().splitlines() if line]
    won = tune_preset.winners(rows)
    assert set(won) == set(CPU_METHOD_SETTINGS)
    for method, chosen in CPU_METHOD_SETTINGS.items():
        assert {k: won[method][k] for k in chosen} == chosen, method
