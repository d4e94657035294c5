"""A grid split across machines or sessions: ``--seeds`` names seeds, ``--include`` counts
earlier results as done (same settings) and reports them with the new runs."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from guided_dml.errors import ConfigError
from guided_dml.experiments.benchmark import BenchmarkSpec, parse_seeds, plan, run_benchmark, seed_list
from guided_dml.experiments.report import collect_runs


@pytest.mark.parametrize(("text", "want"), [
    ("3", 3), (" 1 ", 1), ("1,2", [1, 2]), ("0-4", [0, 1, 2, 3, 4]), ("2,5-6,", [2, 5, 6]),
])
def test_parse_seeds(text: str, want: int | list[int]) -> None:
    assert parse_seeds(text) == want


@pytest.mark.parametrize("text", ["x", "1,b", "3-", ""])
def test_parse_seeds_rejects_garbage(text: str) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


@pytest.mark.parametrize("seeds", [0, -1, [], [-1, 2]])
def test_seed_list_rejects_no_seeds_or_negative_ones(seeds: int | list[int]) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        seed_list(seeds)


def test_explicit_seeds_are_the_same_runs_as_in_the_whole_grid() -> None:
    """Seeds 1 and 2 run on their own are exactly runs of the 3-seed grid: same config, folder."""
    kw = dict(datasets=("digits",), methods=("triplet", "gdml"), preset="smoke", mdr=0.2)
    whole = {str(d): c.hash() for c, d in plan(BenchmarkSpec(seeds=3, **kw))}
    part = [(str(d), c.hash(), c.seed) for c, d in plan(BenchmarkSpec(seeds=[2, 1, 2], **kw))]
    assert len(whole) == 12 and len(part) == 8
    assert all(whole[d] == h for d, h, _ in part)
    # Plain methods first, then the MDR variants, each seed by seed, in the order given.
    assert [s for _, _, s in part] == [2, 2, 1, 1, 2, 2, 1, 1]
    assert all("+mdr" in d for d, _, _ in part[4:])


def test_cli_bad_seeds_is_one_line_exit_2(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "guided_dml.cli", "benchmark", "--seeds", "1,x",
                           "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--seeds" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_cli_bad_include_fails_before_any_training(tmp_path) -> None:
    """A mistyped --include is found at once, not after hours of training."""
    proc = subprocess.run([sys.executable, "-m", "guided_dml.cli", "benchmark", "--preset", "smoke",
                           "--include", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "cannot include" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_included_runs_are_not_run_again_and_are_reported(tmp_path) -> None:
    """Seed 1 ran elsewhere; `--seeds 2 --include ELSEWHERE` runs seed 0 only, reports both.
    A run of other settings (more epochs) is not taken for one of these."""
    kw = dict(datasets=("digits",), methods=("triplet",), preset="smoke", progress=False,
              overrides={"epochs": 1, "train_subset": 150})
    elsewhere = tmp_path / "elsewhere"
    run_benchmark(BenchmarkSpec(seeds=[1], out=str(elsewhere), **kw))
    here = tmp_path / "here"
    res = run_benchmark(BenchmarkSpec(seeds=2, out=str(here), include=[str(elsewhere)], **kw))
    assert (res["runs"], res["ran"]) == (2, 1)
    assert [r["seed"] for r in collect_runs(here)] == [0]  # only seed 0 ran here
    with (here / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["seed"], r["source"]) for r in rows] == [("0", ""), ("1", str(elsewhere / "runs.csv"))]
    summary = (here / "summary.csv").read_text()
    assert ",2,0 1," in summary  # two runs, seeds 0 and 1, in one table

    more = {**kw, "overrides": {**kw["overrides"], "epochs": 2}}
    other = tmp_path / "other"
    res = run_benchmark(BenchmarkSpec(seeds=[1], out=str(other), include=[str(elsewhere)], **more))
    assert res["ran"] == 1  # other settings: run here, and the local run wins in the report
    with (other / "runs.csv").open() as f:
        assert [r.get("source", "") for r in csv.DictReader(f)] == [""]
