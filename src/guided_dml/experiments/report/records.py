"""Reading the records a report is made of, and writing them back as CSV.

The run folders of a benchmark (``OUT/runs/<dataset>/<method>/seed-<n>/``: ``metrics.json``,
``shift.json``, ``history.jsonl``), the ``runs.csv`` / ``shift_runs.csv`` / ``shift.csv`` of
earlier results that a report includes, and ``references.csv``; the column lists of the CSV
files the report writes, and :func:`csv_bytes`, which writes them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...evaluation import METRIC_KEYS
from ..shift import SHIFT_FILE, read_shift, robustness_auc
from .names import REFERENCE_NAMES, dataset_key, method_key

log = logging.getLogger(__name__)

#: Every metric ``evaluate()`` writes into ``metrics.json`` (fractions in [0, 1]).
METRICS = METRIC_KEYS
#: ``OUT/references.csv``: the rows :func:`guided_dml.experiments.references.run_references`
#: writes (names in :data:`~.names.REFERENCE_NAMES`).
REFERENCES_FILE = "references.csv"
#: Columns of ``shift_runs.csv``: one row per (run, corruption, severity).
SHIFT_RUNS_COLUMNS = ("dataset", "method", "seed", "corruption", "severity", "recall@1",
                      "precision@1")
#: Columns of ``runs.csv`` read back as integers (the rest of the numeric ones as floats).
_INT_COLUMNS = ("seed", "best_epoch", "epochs_run", "n_test", "n_train", "n_val", "threads")
#: Text columns of ``runs.csv`` that look like numbers but are not (a hash of digits only).
_TEXT_COLUMNS = ("dataset", "method", "config_hash", "run_dir", "source", "processor", "torch")

_SEED_DIR = re.compile(r"^seed-(\d+)$")


# ---------------------------------------------------------------------------- run folders


def collect_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """One row per finished run under ``out_dir/runs`` (a folder with ``metrics.json``).

    A row is the content of ``metrics.json`` plus ``run_dir`` (the folder), ``val_score`` (the
    validation criterion of the selected epoch, from ``history.jsonl``: what a comparison of
    protocols reads, never the test numbers) and, when the run has a ``shift.json``,
    ``robustness_auc`` (:func:`guided_dml.experiments.shift.robustness_auc`, mean over
    corruptions). ``dataset``, ``method`` and ``seed`` fall back to the folder names.
    Unfinished folders are ignored; an unreadable ``metrics.json`` is skipped with a warning.
    Sorted by data set, method (:func:`~.names.method_key`) and seed.
    """
    rows = []
    for mfile in Path(out_dir).glob("runs/*/*/seed-*/metrics.json"):
        run_dir = mfile.parent
        match = _SEED_DIR.match(run_dir.name)
        try:
            metrics = json.loads(mfile.read_text())
            if not isinstance(metrics, dict):
                raise ValueError(f"it holds a {type(metrics).__name__}, not an object")
        except (OSError, ValueError) as err:
            # A warning, so that the command line shows it as a one-line note.
            why = " ".join(str(err).split())[:100]
            warnings.warn(f"skipping {run_dir}: its metrics.json is damaged ({why}); delete that "
                          "file to recompute the run", stacklevel=2)
            continue
        row: dict[str, Any] = dict(metrics)
        row.setdefault("dataset", run_dir.parent.parent.name)
        row.setdefault("method", run_dir.parent.name)
        row.setdefault("seed", int(match.group(1)) if match else -1)
        row["run_dir"] = str(run_dir)
        if "threads" not in row:  # runs from before metrics.json recorded it
            row.update(_threads_from_config(run_dir))
        if "val_score" not in row:
            row.update(_selected_val_score(run_dir, row.get("best_epoch")))
        if (run_dir / SHIFT_FILE).is_file():
            try:
                row["robustness_auc"] = robustness_auc(read_shift(run_dir)).get("mean", math.nan)
            except (DataError, KeyError, TypeError, ValueError) as err:
                log.warning("ignoring %s/%s: %s", run_dir, SHIFT_FILE, err)
        rows.append(row)
    rows.sort(key=_run_key)
    return rows


def _selected_val_score(run_dir: Path, best_epoch: Any) -> dict[str, float]:
    """``{"val_score": s}``: the student's validation score at its selected epoch (1-based
    ``best_epoch``), empty when the history does not hold it."""
    for rec in _load_history(run_dir):
        if rec.get("phase", "student") == "student" and rec.get("epoch") == best_epoch:
            score = rec.get("val_score")
            return {"val_score": float(score)} if isinstance(score, int | float) else {}
    return {}


def _threads_from_config(run_dir: Path) -> dict[str, int]:
    """``{"threads": n}`` from the run's ``config.json`` (empty if it cannot say)."""
    try:
        threads = json.loads((run_dir / "config.json").read_text()).get("threads")
    except (OSError, ValueError, AttributeError):
        return {}
    return {"threads": int(threads)} if isinstance(threads, int) else {}


def _run_key(row: dict[str, Any]) -> tuple:
    return (dataset_key(str(row["dataset"])), method_key(str(row["method"])), int(row["seed"]))


def _unfinished(out_dir: Path) -> int:
    """Run folders without ``metrics.json`` (unfinished or failed runs)."""
    return sum(1 for d in out_dir.glob("runs/*/*/seed-*")
               if d.is_dir() and not (d / "metrics.json").exists())


def collect_shift(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The covariate-shift rows of every run that has a ``shift.json``, tagged with its
    ``dataset``, ``method`` and ``seed``: one row per (run, corruption, severity)."""
    out = []
    for run in runs:
        if "_shift_rows" in run:  # an included run: its rows came from shift_runs.csv
            out.extend(run["_shift_rows"])
            continue
        path = Path(run["run_dir"]) / SHIFT_FILE
        if not path.is_file():
            continue
        try:
            rows = [{"dataset": run["dataset"], "method": run["method"], "seed": run["seed"],
                     "corruption": str(r["corruption"]), "severity": int(r["severity"]),
                     "recall@1": float(r["recall@1"]),
                     "precision@1": float(r.get("precision@1", math.nan))}
                    for r in read_shift(path)]
        except (DataError, KeyError, TypeError, ValueError, AttributeError) as err:
            log.warning("ignoring %s: %s", path, err)  # one bad file must not sink the report
            continue
        out.extend(rows)
    return out


def _load_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs of a run's ``history.jsonl`` (``[]`` when it has none)."""
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:  # a torn last line cannot happen (atomic writes), but be lenient
                continue
    return out


# ---------------------------------------------------------------------------- written records


def _parse_cell(column: str, text: str) -> Any:
    if column in _TEXT_COLUMNS:
        return text
    if text in ("True", "False"):  # how csv writes a bool (``converged``)
        return text == "True"
    try:
        return int(text) if column in _INT_COLUMNS else float(text)
    except ValueError:
        return text


def _float(v: Any) -> float:
    """``v`` as a float; NaN when it is missing or not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_included(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    """Earlier results to report with this grid's: ``(runs, shift_rows, shift_summary)``.

    ``path`` is a folder written by :func:`~guided_dml.experiments.report.write_report` (or its
    ``runs.csv``). ``runs`` are the rows of ``runs.csv`` with numbers parsed and ``source``
    (where they came from) set unless already set; ``shift_rows`` the per-run rows of
    ``shift_runs.csv`` (as :func:`collect_shift` returns them); ``shift_summary`` the rows of
    ``shift.csv``, used only for (data set, method) pairs that have no per-run shift rows at all
    (results written before ``shift_runs.csv`` existed).

    Raises:
        DataError: ``path`` has no readable ``runs.csv``, or it lacks the identifying columns.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    runs_csv = folder / "runs.csv" if path.is_dir() else path

    def read(csv_path: Path) -> list[dict[str, Any]]:
        try:
            text = csv_path.read_text()
        except OSError as err:
            raise DataError(f"cannot include {path}: {err}") from err
        # An empty cell is a missing value (NaN when written), not a value.
        return [{k: _parse_cell(k, v) for k, v in row.items() if k and v != ""}
                for row in csv.DictReader(io.StringIO(text))]

    runs = read(runs_csv)
    missing = {"dataset", "method", "seed", "recall@1"} - set().union(*runs) if runs else set()
    if missing or not runs:
        raise DataError(f"cannot include {runs_csv}: "
                        + (f"no column(s) {sorted(missing)}" if runs else "no runs in it")
                        + "; expected the runs.csv of a gdml benchmark")
    for r in runs:
        r.setdefault("source", str(runs_csv))
    shift_rows: list[dict[str, Any]] = []
    if (folder / "shift_runs.csv").is_file():
        shift_rows = [r for r in read(folder / "shift_runs.csv")
                      if {"corruption", "severity", "recall@1"} <= set(r)]
        for r in shift_rows:
            r["severity"] = int(r["severity"])
            r.setdefault("precision@1", math.nan)
    shift_summary: list[dict[str, Any]] = []
    if (folder / "shift.csv").is_file():
        shift_summary = [{**r, "severity": int(r["severity"]), "n": int(r.get("n", 0))}
                         for r in read(folder / "shift.csv")]
    return runs, shift_rows, shift_summary


def merge_included(runs: Sequence[dict[str, Any]], include: Iterable[str | Path]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``runs`` (this grid's) plus the runs of every ``include`` (:func:`read_included`) that
    are not already there: ``(runs, shift_summary_fallback)``.

    A (data set, method, seed) counts once: a local run folder wins over an included row, an
    earlier ``include`` over a later one. An included run carries its per-run shift rows as
    ``_shift_rows`` (never its folder, which is elsewhere). The fallback: rows of included
    ``shift.csv`` summaries for the (data set, method) pairs without per-run shift rows.
    """
    merged = list(runs)
    seen = {(str(r["dataset"]), str(r["method"]), int(r["seed"])) for r in merged}
    fallback: list[dict[str, Any]] = []
    for path in include:
        inc_runs, inc_shift, inc_summary = read_included(path)
        by_run: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in inc_shift:
            by_run[(str(r["dataset"]), str(r["method"]), int(r["seed"]))].append(r)
        for r in inc_runs:
            key = (str(r["dataset"]), str(r["method"]), int(r["seed"]))
            if key in seen:
                continue
            seen.add(key)
            merged.append({**r, "_shift_rows": by_run.get(key, [])})
        fallback += inc_summary
    merged.sort(key=_run_key)
    return merged, fallback


def read_references(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The rows of ``references.csv`` in ``folders`` (the first folder wins for a data set and
    reference), numbers parsed; ``[]`` when there is none."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for folder in folders:
        path = Path(folder)
        path = path / REFERENCES_FILE if path.is_dir() else path.parent / REFERENCES_FILE
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except OSError as err:
            log.warning("ignoring %s: %s", path, err)
            continue
        for r in csv.DictReader(io.StringIO(text)):
            if {"dataset", "method"} <= set(r):
                row = {k: _parse_cell(k, v) for k, v in r.items() if k and v != ""}
                rows.setdefault((str(row["dataset"]), str(row["method"])), row)
    return sorted(rows.values(), key=lambda r: (dataset_key(str(r["dataset"])),
                                                list(REFERENCE_NAMES).index(r["method"])
                                                if r["method"] in REFERENCE_NAMES else 99))


# ---------------------------------------------------------------------------- CSV


def _csv_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return ""  # empty cell: read back as NaN by pandas, not as a string
    return v


def csv_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """``rows`` as CSV with ``columns`` (extra keys ignored, non-finite floats as empty cells)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _csv_value(r.get(c, "")) for c in columns})
    return buf.getvalue().encode()


def _runs_columns(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Columns of ``runs.csv``: identity, metrics, times, then whatever else the runs record."""
    head = ["dataset", "method", "seed", *METRICS]
    if any("robustness_auc" in r for r in runs):
        head.append("robustness_auc")
    head += ["best_epoch", "epochs_run", "train_seconds", "eval_seconds", "wall_seconds",
             "config_hash"]
    extra = sorted({k for r in runs for k, v in r.items()
                    if k not in head and k != "run_dir" and isinstance(v, int | float | str)})
    return [*head, *extra, "run_dir"]


def _summary_columns(summary: Sequence[dict[str, Any]]) -> list[str]:
    """Columns of ``summary.csv`` (rows of :func:`~.stats.summarize`)."""
    stat_cols = [f"{m}_{k}" for m in (*METRICS, "robustness_auc") for k in ("mean", "ci")
                 if f"{m}_{k}" in summary[0]]
    return ["dataset", "method", "n", "seeds", *stat_cols, "wall_seconds_mean",
            "train_seconds_mean", "eval_seconds_mean", "epochs_run_mean", "converged",
            "n_convergence"]
