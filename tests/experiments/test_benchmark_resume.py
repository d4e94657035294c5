"""The benchmark runner survives a kill at any moment: resume gives the uninterrupted results."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

METRICS = ("recall@1", "f1", "nmi", "r_precision", "map@r", "precision@1")


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "guided_dml.cli", "benchmark", "--methods", "triplet", "gdml",
            "--seeds", "1", "--preset", "smoke", "--epochs", "5", "--gemini-epochs", "4",
            "--out", str(out), "--progress", "false", "--threads", "1"]


def _rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    keys = [(r["dataset"], r["method"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate rows in runs.csv"
    return {(r["method"], r["seed"]): r for r in rows}


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # Kill the whole run once a mid-training checkpoint of the second run (gdml) exists: its
    # teacher or student is half-way, the first run (triplet) is finished.
    deadline = time.time() + 240
    gdml_dir = killed / "runs" / "digits" / "gdml" / "seed-0"
    while time.time() < deadline:
        if (gdml_dir / "student.ckpt").exists() or (gdml_dir / "teacher.ckpt").exists():
            break
        if proc.poll() is not None:
            pytest.fail("the benchmark finished before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (gdml_dir / "metrics.json").exists()
    leftovers = [p for p in killed.rglob("*.tmp")]
    # A temp file may exist only if the kill hit a write; it is never mistaken for a result.
    assert all(p.name.startswith(".") for p in leftovers)

    subprocess.run(_cmd(killed), env=env, check=True, capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight), env=env, check=True, capture_output=True)

    a, b = _rows(killed), _rows(straight)
    assert set(a) == set(b) == {("triplet", "0"), ("gdml", "0")}
    for key in a:
        for m in METRICS:
            assert float(a[key][m]) == pytest.approx(float(b[key][m]), abs=1e-9), (key, m)
    # A third invocation has nothing to do and changes nothing.
    before = (killed / "runs.csv").read_text()
    subprocess.run(_cmd(killed), env=env, check=True, capture_output=True)
    assert (killed / "runs.csv").read_text() == before
