"""``gdml benchmark``: every (data set, method, seed) through the same code as ``gdml train``.

Resumable by construction: each run lives in its own folder ``OUT/runs/DATASET/METHOD/seed-N``
whose ``metrics.json`` (written last, atomically) marks it finished. A second invocation skips
finished runs and resumes interrupted ones from their last epoch; ``runs.csv`` and the report are
rebuilt from the run folders, so a kill at any moment can neither duplicate nor half-write a row.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..atomic import write_text
from ..errors import ConfigError, GdmlError
from ..methods import METHODS, method_names
from .config import RunConfig, resolve_config
from .plan import applies, plan_for

log = logging.getLogger(__name__)

DEFAULT_DATASETS = ("digits",)


@dataclass
class BenchmarkSpec:
    """What to run. ``mdr`` lists λ values; each adds ``METHOD+mdr`` for ``mdr_methods``."""

    datasets: Sequence[str] = DEFAULT_DATASETS
    methods: Sequence[str] = field(default_factory=method_names)  # every registered method
    seeds: int | Sequence[int] = 3  # N: seeds 0..N-1; a sequence: exactly those seeds
    preset: str = "cpu"
    out: str = "results/benchmark"
    mdr: float | None = None
    mdr_methods: Sequence[str] = ("triplet", "gdml")
    workers: int = 1
    shift: bool = False
    shift_max_test: int | None = 2000
    imbalance: Sequence[float] = ()  # extra long-tailed variants of every data set
    # Earlier results (folders or runs.csv of other benchmarks): their runs count as done and
    # are reported with this grid's (report.read_included).
    include: Sequence[str] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    # Per method, settings that beat the preset's (an equal-budget tuning study's winners,
    # `scripts/tune_preset.py --winners`); an +mdr variant takes its base method's. Flags win.
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_file: str | None = None
    progress: bool | None = None


def plan(spec: BenchmarkSpec) -> list[tuple[RunConfig, Path]]:
    """All runs of the grid with their folders (resolved configs, validated before any work)."""
    unknown = [m for m in spec.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    from ..data.registry import check_dataset

    for ds in spec.datasets:  # before any work: a typo must not cost the other data sets' runs
        check_dataset(ds)
    stray = [m for m in spec.method_settings if m not in METHODS]
    if stray:
        raise ConfigError(f"--method-settings names unknown method(s) {stray}; choose from "
                          f"{', '.join(METHODS)}")
    seeds = seed_list(spec.seeds)
    threads = max(1, (os.cpu_count() or 1) // max(1, spec.workers))
    variants: list[tuple[str, float]] = [(m, 0.0) for m in spec.methods]
    mdr_variants = [(m, spec.mdr) for m in spec.methods if spec.mdr and m in spec.mdr_methods]
    datasets = [(ds, None) for ds in spec.datasets]
    datasets += [(ds, r) for ds in spec.datasets for r in spec.imbalance]
    out = []
    plans: dict[tuple[Any, ...], dict[str, Any]] = {}
    # Order: plain methods before MDR variants, and seed by seed, so that a grid cut short
    # (2-core machines, long runs) already compares every method on every data set.
    for group in (variants, mdr_variants):
        for seed in seeds:
            for ds, ratio in datasets:
                for method, lam in group:
                    overrides = {
                        **spec.method_settings.get(method, {}),
                        **spec.overrides,
                        "dataset": ds,
                        "imbalance": ratio,
                        "method": method,
                        "seed": seed,
                        "mdr": lam,
                        "preset": spec.preset,
                        "threads": spec.overrides.get("threads") or threads,
                        "progress": spec.progress if spec.workers == 1 else False,
                    }
                    cfg = resolve_config(overrides, spec.config_file)
                    if applies(cfg.preset, cfg.dataset):
                        # An image folder: settings sized to its data, as `gdml train` sizes
                        # them (experiments/plan.py); the data are read once per data set.
                        key = (cfg.dataset, cfg.data_dir, cfg.skip_bad, cfg.val_fraction)
                        if key not in plans:
                            plans[key] = plan_for(cfg)[0]
                        cfg = resolve_config(overrides, spec.config_file, plan=plans[key])
                    if spec.shift and cfg.split == "classes":
                        raise ConfigError(
                            "--shift measures corrupted queries against the clean training "
                            "classes: it needs --split closed, not classes")
                    run_dir = Path(spec.out) / "runs" / cfg.dataset_label / cfg.method_label / f"seed-{seed}"
                    out.append((cfg, run_dir))
    return out


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``N`` means seeds ``0..N-1`` (the paper's protocol); a sequence names the seeds exactly.

    Explicit seeds let one grid be split across machines or sessions (``--seeds 1,2`` after
    seed 0 ran elsewhere) without renumbering: a seed is the same run wherever it runs.
    """
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError("--seeds must be at least 1")
        return list(range(seeds))
    out = list(dict.fromkeys(int(s) for s in seeds))  # keep the order given, drop repeats
    if not out or min(out) < 0:
        raise ConfigError(f"--seeds: expected seeds >= 0, got {list(seeds)}")
    return out


def parse_seeds(text: str) -> int | list[int]:
    """``--seeds`` on the command line: ``3`` (seeds 0, 1, 2), ``1,2`` or ``1-4`` (those seeds)."""
    text = text.strip()
    try:
        if "," not in text and "-" not in text.lstrip("-"):
            return int(text)
        seeds: list[int] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise ConfigError(f"--seeds: expected a count (3) or seeds (1,2 or 0-4), got {text!r}") from None
    return seeds


def _run_one(cfg_dict: dict[str, Any], run_dir: str, shift: bool,
             shift_max_test: int | None) -> dict[str, Any]:
    """Worker entry point (top level so that it pickles): one run, then its shift evaluation."""
    from .run import run_experiment

    cfg = RunConfig(**cfg_dict)
    try:
        _set_aside_stale(Path(run_dir), cfg)
        metrics = run_experiment(cfg, run_dir, resume=True)
        if shift:
            from .shift_runner import shift_for_run

            shift_for_run(cfg, Path(run_dir), max_test=shift_max_test)
        (Path(run_dir) / "error.txt").unlink(missing_ok=True)
        return {"ok": True, "run_dir": run_dir, "metrics": metrics}
    except (GdmlError, Exception) as e:  # one failed run must not stop the grid
        write_text(Path(run_dir) / "error.txt", traceback.format_exc())
        return {"ok": False, "run_dir": run_dir, "error": f"{type(e).__name__}: {e}"}


def _worker_init(parent_pid: int) -> None:
    """Runs first in every worker process.

    SIGINT is ignored: a Ctrl-C reaches the whole process group, and the parent alone decides
    how the grid stops (it terminates the workers). A daemon thread ends the worker if the
    parent dies without that chance (SIGKILL, OOM killer), so no orphan trains on alone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="gdml-parent-watch", daemon=True).start()


def _stop_workers(ex: ProcessPoolExecutor, others: set[int | None]) -> None:
    """Cancel queued runs and terminate running ones, without waiting for them to finish.

    ``others``: child processes that existed before the pool (a notebook's own), left alone.
    """
    ex.shutdown(wait=False, cancel_futures=True)
    children = [p for p in multiprocessing.active_children() if p.pid not in others]
    for p in children:
        p.terminate()
    for p in children:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(timeout=10)


def _set_aside_stale(run_dir: Path, cfg: RunConfig) -> None:
    """A run folder of other settings (an edited preset) is renamed, never mixed or deleted."""
    cfg_file = run_dir / "config.json"
    if not cfg_file.is_file():
        return
    try:
        old = json.loads(cfg_file.read_text()).get("hash")
    except (ValueError, AttributeError):  # garbage, or JSON that is not an object
        old = "unreadable"
    if old != cfg.hash():
        stale = run_dir.with_name(f"{run_dir.name}.stale-{old}")
        n = 1
        while stale.exists():  # an older stale copy stays too: nothing is deleted here
            n += 1
            stale = run_dir.with_name(f"{run_dir.name}.stale-{old}-{n}")
        log.warning("settings changed for %s: moving the old run to %s", run_dir, stale.name)
        run_dir.rename(stale)


def run_benchmark(
    spec: BenchmarkSpec, runs: list[tuple[RunConfig, Path]] | None = None
) -> dict[str, Any]:
    """Run (or resume) the grid, then write the report. Returns a summary of what happened.

    ``runs``: ``plan(spec)`` when the caller has it already (planning reads every image folder
    once for its fit plan, so it is not done twice)."""
    from ..data.registry import ensure_available

    runs = plan(spec) if runs is None else runs
    included = _included_runs(spec.include, spec.shift)
    out = Path(spec.out)
    todo = [(c, d) for c, d in runs if c.hash() not in included and (
            not (d / "metrics.json").exists() or (spec.shift and not (d / "shift.json").exists()))]
    # Every data set the runs need, fetched (or refused) before anything is written: a missing
    # one must not leave a run folder per run behind, nor fail after hours of other runs.
    for dataset, data_dir in dict.fromkeys((c.dataset, c.data_dir) for c, _ in todo):
        ensure_available(dataset, data_dir)
    out.mkdir(parents=True, exist_ok=True)
    done_before = len(runs) - len(todo)
    failures: list[dict[str, Any]] = []
    bar = tqdm(total=len(runs), initial=done_before, desc="benchmark runs",
               disable=not (spec.progress if spec.progress is not None else _isatty()))

    def finished(res: dict[str, Any]) -> None:
        if not res["ok"]:
            failures.append(res)
            tqdm.write(f"run failed: {res['run_dir']}: {res['error']}")
        bar.update(1)
        _refresh_tables(out, spec.include)

    if spec.workers <= 1:
        for cfg, d in todo:
            bar.set_postfix_str(f"{cfg.dataset}/{cfg.method_label}/seed-{cfg.seed}")
            finished(_run_one(cfg.to_dict(), str(d), spec.shift, spec.shift_max_test))
    else:
        # spawn: a clean interpreter per worker (no forked torch thread pools).
        others = {p.pid for p in multiprocessing.active_children()}  # not ours to stop
        ex = ProcessPoolExecutor(max_workers=spec.workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(os.getpid(),))
        try:
            futs = [ex.submit(_run_one, c.to_dict(), str(d), spec.shift, spec.shift_max_test)
                    for c, d in todo]
            for f in as_completed(futs):
                finished(f.result())
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM via the CLI) or broken: the executor's own exit would
            # wait for every queued run. Stop now instead; each run's checkpoints are written
            # atomically, so a worker killed mid-epoch loses at most that epoch.
            _stop_workers(ex, others)
            raise
        ex.shutdown(wait=True)
    bar.close()
    try:
        report = _write_report(out, spec.include)
    except GdmlError as e:
        if not failures:
            raise
        # Nothing finished, so there is no report: the failures are the news, not its absence.
        first = failures[0]
        raise GdmlError(
            f"{len(failures)} of {len(runs)} run(s) failed and none has finished; the first: "
            f"{first['error']} (run {first['run_dir']}, traceback in error.txt there)"
        ) from e
    return {
        "runs": len(runs),
        "skipped": done_before,
        "ran": len(todo) - len(failures),
        "failed": failures,
        "report": report,
    }


def _included_runs(include: Sequence[str], shift: bool) -> set[str]:
    """Config hashes of the runs that earlier results (``--include``) already hold.

    Such a run is finished: the grid skips it and the report takes its row from there. The hash
    covers every setting that changes results (seed included), so a row of other settings never
    stands in for a run. With ``--shift``, only runs that were evaluated under shift count.
    Reading every include first also makes a bad path a clear error before hours of training.
    """
    from .report import read_included

    done: set[str] = set()
    for path in include:
        rows, _, _ = read_included(path)
        done |= {str(r["config_hash"]) for r in rows
                 if "config_hash" in r and (not shift or "robustness_auc" in r)}
    return done


def _isatty() -> bool:
    import sys

    return sys.stderr.isatty()


def _refresh_tables(out: Path, include: Sequence[str] = ()) -> None:
    """Rewrite the report after every finished run, so a partial grid is already readable."""
    try:
        _write_report(out, include)
    except Exception:  # the tables are a convenience here; the final report reports errors
        log.debug("could not refresh runs.csv", exc_info=True)


def _write_report(out: Path, include: Sequence[str] = ()) -> dict[str, str]:
    from .report import write_report

    paths = write_report(out, include=include)
    return {k: str(v) for k, v in paths.items()}
