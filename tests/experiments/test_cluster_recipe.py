"""docs/cluster.md: the Slurm array's tasks (scripts/slurm_grid.sh), run here one after the
other, and their folders merged by `gdml report --include`, give the report of one folder that
ran the whole grid."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guided_dml.cli import main

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_grid.sh"
FLAGS = ["--methods", "triplet", "gdml", "--threads", "1"]


def _rows(path: Path, drop: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open() as f:
        rows = [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: tuple(r.values()))


@pytest.mark.skipif(shutil.which("bash") is None, reason="the task script is a bash script")
def test_the_array_tasks_merged_equal_one_folder(tmp_path):
    gdml = Path(sys.executable).with_name("gdml")
    env = {**os.environ, "DATASETS": "digits", "NSEEDS": "2", "PRESET": "smoke",
           "OUT": str(tmp_path / "cluster"), "GDML": str(gdml), "EXTRA": " ".join(FLAGS),
           "OMP_NUM_THREADS": "1"}
    for task in range(2):
        subprocess.run(["bash", str(SCRIPT)], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                       check=True, capture_output=True, cwd=tmp_path)
    out_of_range = subprocess.run(["bash", str(SCRIPT)], env={**env, "SLURM_ARRAY_TASK_ID": "2"},
                                  capture_output=True, text=True, cwd=tmp_path)
    assert out_of_range.returncode == 2 and "only 2 tasks" in out_of_range.stderr
    shards = sorted((tmp_path / "cluster" / "shards").iterdir())
    assert [s.name for s in shards] == ["digits-seed0", "digits-seed1"]

    merged = tmp_path / "cluster" / "all"
    assert main(["report", str(merged), "--include", *map(str, shards)]) == 0
    whole = tmp_path / "whole"
    assert main(["benchmark", "--preset", "smoke", "--seeds", "2", *FLAGS, "--out", str(whole)]) == 0

    # Where each row came from differs; what was measured may not. Timings are not results.
    drop = ("run_dir", "source", "train_seconds", "eval_seconds", "wall_seconds")
    assert _rows(merged / "runs.csv", drop) == _rows(whole / "runs.csv", drop)
    assert len(_rows(whole / "runs.csv", drop)) == 4
    seconds = tuple(k for k in next(csv.DictReader((whole / "summary.csv").open())) if "second" in k)
    assert _rows(merged / "summary.csv", seconds) == _rows(whole / "summary.csv", seconds)
