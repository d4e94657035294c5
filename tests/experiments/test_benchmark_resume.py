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


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux's /proc/PID/task/PID/children")
    return {int(c) for c in path.read_text().split()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has stopped; only its exit status is left


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_parallel_benchmark_stops_with_its_workers(tmp_path, sig):
    """A signal to the parent alone (kill, a scheduler) stops the grid at once, workers included.

    Before, the executor's exit waited for every queued run, and SIGTERM/SIGKILL left workers
    training on as orphans.
    """
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "guided_dml.cli", "benchmark", "--methods", "triplet", "siamese",
           "margin", "--seeds", "2", "--preset", "smoke", "--epochs", "40", "--out", str(out),
           "--progress", "false", "--workers", "2"]
    # Its own session, so that the clean-up below can take down whatever a failure leaves.
    # stderr goes to a file: a pipe's read would block while an orphaned worker holds it open.
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        # SIGINT as a terminal's Ctrl-C sends it: a suite started in the background by a
        # non-interactive shell (`make test &`) passes SIGINT on ignored, and Python then rightly
        # keeps ignoring it (as `nohup gdml benchmark &` should).
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                preexec_fn=_default_sigint)
    try:
        _signal_and_check(proc, out, sig, log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _signal_and_check(proc: subprocess.Popen, out: Path, sig: int, log: Path) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("runs/*/*/seed-*/*.ckpt")):
        if proc.poll() is not None:
            pytest.fail(f"the benchmark ended before the signal: {log.read_text()}")
        time.sleep(0.05)
    workers = {c for c in _children(proc.pid) if "multiprocessing.spawn" in
               Path(f"/proc/{c}/cmdline").read_text()}
    assert len(workers) == 2
    started = time.time()
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    err = log.read_text()
    if sig != signal.SIGKILL:
        assert rc == 128 + sig, err
        assert "interrupted" in err and "run the same command again" in err
    while any(_alive(w) for w in workers) and time.time() - started < 30:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived the benchmark"
    assert time.time() - started < 30
    assert not list(out.glob("runs/*/*/seed-1/metrics.json")), "queued runs ran on"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.slow
def test_interrupt_stops_only_the_benchmarks_own_workers(tmp_path, monkeypatch):
    """Library use: an interrupted run_benchmark leaves the caller's other child processes alone."""
    import multiprocessing

    from guided_dml.experiments import benchmark

    bystander = multiprocessing.get_context("spawn").Process(target=_sleep, args=(120,))
    bystander.start()
    try:
        def interrupt(out: Path, include=()) -> None:  # the first finished run "presses Ctrl-C"
            raise KeyboardInterrupt

        monkeypatch.setattr(benchmark, "_refresh_tables", interrupt)
        spec = benchmark.BenchmarkSpec(methods=("triplet", "siamese", "margin"), seeds=2,
                                       preset="smoke", out=str(tmp_path), workers=2,
                                       progress=False, overrides={"epochs": 2})
        before = {p.pid for p in multiprocessing.active_children()}  # earlier tests' too
        with pytest.raises(KeyboardInterrupt):
            benchmark.run_benchmark(spec)
        assert bystander.is_alive()
        deadline = time.time() + 15  # a loaded machine may take a moment to reap them
        while (ours := [p for p in multiprocessing.active_children() if p.pid not in before]):
            assert time.time() < deadline, f"workers outlived the interrupt: {ours}"
            time.sleep(0.1)
        assert len(list(tmp_path.glob("runs/*/*/seed-*/metrics.json"))) < 6
    finally:
        bystander.kill()
        bystander.join()
