"""Two-process data-parallel training (gloo, CPU) reproduces the single-process run and resumes.

Every process is started by torchrun, as users do. The network is an MLP without BatchNorm
(torch has no CPU SyncBatchNorm; with BatchNorm each process would normalise its half of the
batch with its own statistics). What may differ from one process is only floating-point
summation order: the gradient is summed over two half-batches and all-reduced instead of over
one batch (differences of 1e-7 relative, measured after the first step). Tolerance: 1e-5
relative on every loss of the history, 1e-4 absolute on the metrics; measured: losses agree to
the printed digit (~1e-7), metrics exactly.

The methods are G-DML with MDR (GEMINI on rank 0, distillation + MDR's pairwise distances on
the gathered batch) and multi-similarity (a pytorch-metric-learning pair loss on the gathered
batch). Triplet and contrastive training are not compared beyond the first step: at lr 0.1 on
2-D embeddings they amplify a 1e-7 perturbation of the weights to 1e-2 of the loss within 8
steps even in one process (docs/design.md, "Distributed training"), so no tolerance tighter
than run-to-run variation could hold for them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guided_dml.cli import main
from guided_dml.models.registry import BACKBONES
from guided_dml.training.distributed import launch_command

sys.path.insert(0, str(Path(__file__).parent))
from torchrun_worker import NOBN_BACKBONE, nobn_mlp

WORKER = Path(__file__).with_name("torchrun_worker.py")
METRICS = ("precision@1", "recall@1", "f1", "r_precision", "map@r", "nmi")
LOSS_RTOL = 1e-5
METRIC_ATOL = 1e-4


def _args(method: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--method", method, "--dataset", "digits", "--preset", "smoke",
            "--backbone", NOBN_BACKBONE, "--epochs", "3", "--gemini-epochs", "1",
            "--batch-size", "32", "--threads", "1", "--seed", "3", "--out", str(out), *extra]


def _torchrun(jobs: list[dict], tmp: Path, name: str) -> subprocess.CompletedProcess:
    """The jobs in 2 processes, launched the way ``gdml train --nproc 2`` launches them."""
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps(jobs))
    path = os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cmd = launch_command(2, [str(spec)], module=WORKER.stem)
    # 600 s: a guard against a hung collective only (the launches take 10-30 s; a loaded CI
    # machine can make that several times longer).
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _failure(proc: subprocess.CompletedProcess) -> str:
    """Both streams of a failed launch: torchrun reports a worker's traceback on stdout or stderr."""
    return (f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-3000:]}")


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-process references (in this process) and two-process runs (two torchrun launches)."""
    tmp = tmp_path_factory.mktemp("ddp")
    out = {name: tmp / name for name in ("multisim1", "multisim2", "gdml1", "gdml2", "gdml2r")}
    mp = pytest.MonkeyPatch()
    mp.setitem(BACKBONES, NOBN_BACKBONE, nobn_mlp)
    try:
        assert main(_args("multisim", out["multisim1"])) == 0
        assert main(_args("gdml", out["gdml1"], "--mdr", "0.2")) == 0
    finally:
        mp.undo()
    first = _torchrun([
        {"argv": _args("multisim", out["multisim2"])},
        {"argv": _args("gdml", out["gdml2"], "--mdr", "0.2")},
        # killed after the checkpoint of epoch 2 of 3 ...
        {"argv": _args("gdml", out["gdml2r"], "--mdr", "0.2"), "stop_before_epoch": 2},
    ], tmp, "first")
    assert first.returncode == 0, _failure(first)
    assert not (out["gdml2r"] / "metrics.json").exists()
    assert (out["gdml2r"] / "student.ckpt").exists()
    # ... and resumed by a fresh pair of processes
    second = _torchrun([{"argv": _args("gdml", out["gdml2r"], "--mdr", "0.2", "--resume")}],
                       tmp, "second")
    assert second.returncode == 0, _failure(second)
    return out


@pytest.mark.parametrize("method", ["multisim", "gdml"])
def test_two_processes_match_one_process_with_the_same_global_batch(runs, method):
    one, two = runs[f"{method}1"], runs[f"{method}2"]
    h1, h2 = _history(one), _history(two)
    assert [(h["phase"], h["epoch"]) for h in h1] == [(h["phase"], h["epoch"]) for h in h2]
    for a, b in zip(h1, h2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=LOSS_RTOL), (a, b)
        if a["val_loss"] is not None:
            assert b["val_loss"] == pytest.approx(a["val_loss"], rel=LOSS_RTOL), (a, b)
        if "val_score" in a:
            assert b["val_score"] == pytest.approx(a["val_score"], abs=METRIC_ATOL), (a, b)
    m1, m2 = _metrics(one), _metrics(two)
    for key in METRICS:
        assert m2[key] == pytest.approx(m1[key], abs=METRIC_ATOL), key
    assert json.loads((two / "config.json").read_text())["nproc"] == 2


def test_resumed_two_process_run_equals_the_uninterrupted_one(runs):
    straight, resumed = runs["gdml2"], runs["gdml2r"]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in _history(straight)]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in _history(resumed)] == strip
    m_straight, m_resumed = _metrics(straight), _metrics(resumed)
    for key in METRICS:
        assert m_resumed[key] == m_straight[key], key


def test_only_rank_zero_writes_the_run_folder(runs):
    run = runs["multisim2"]
    names = sorted(p.name for p in run.iterdir())
    assert names == [".gdml-run.json", "config.json", "curves.png", "embedding.png", "embeddings.npz",
                     "history.jsonl", "metrics.json", "model.pt"]
    # One line per epoch: a second writer would have duplicated them.
    assert [h["epoch"] for h in _history(run)] == [1, 2, 3]
