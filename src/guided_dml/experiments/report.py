"""The benchmark report: tables in the paper's layout, figures, and one self-contained HTML page.

Reads the run folders of a benchmark, ``OUT/runs/<dataset>/<method>/seed-<n>/`` (layout in
:mod:`guided_dml.experiments.run`; a folder counts once its ``metrics.json`` exists), and writes
into ``OUT``:

=========================== ==============================================================
``runs.csv``                one row per finished run: every metric (fractions), seed, times,
                            config hash
``summary.csv``             per (data set, method): seeds, mean and 95 % CI of every metric (%)
``summary.md``              the paper's table per data set (R@1, F1, NMI, RP, MAP@R as
                            mean ± CI, best in bold) with the published numbers beside ours;
                            the covariate-shift tables when ``shift.json`` files exist
``summary.tex``             the same tables as booktabs ``tabular``\\ s
``embeddings_<ds>.png``     the 2-D test maps of every method (first seed): Figures 3–5
``curves_<ds>.png``         validation loss per epoch per method (+ GEMINI's for G-DML)
``validation_<ds>.png``     validation MAP@R (the selection criterion) per epoch, all methods
``recall_at_1.png``         Recall@1 with CI error bars, grouped by data set, paper marked
``shift_<ds>.png``          Recall@1 against corruption severity per method (if shift data)
``shift.csv``               Recall@1 per corruption × severity × method (if shift data)
``shift_runs.csv``          the same per run (data set, method, seed, corruption, severity):
                            with ``runs.csv`` the whole record of a grid, small enough to commit
``paired.csv``              seed-by-seed differences: each ``X+mdr`` against ``X``, G-DML
                            against each baseline (mean ± paired CI, per-seed values, wins)
``report.html``             all of the above on one page, figures inlined as data URIs
=========================== ==============================================================

When ``OUT/references.csv`` exists (``gdml benchmark --references``,
:mod:`guided_dml.experiments.references`), every main table ends with the references a learned
map must beat (1-NN on the raw pixels, supervised UMAP 2-D), and a ``Converged`` column counts
the runs whose validation score had stopped improving (:func:`guided_dml.training.trainer.
convergence`).

A grid run in several places (two machines, or sessions whose run folders are gone) is reported
as one: ``include`` names earlier results (a folder with ``runs.csv`` and ``shift_runs.csv``, as
written here), whose rows join the tables and paired comparisons as if their runs were here
(:func:`read_included`). A run present in both counts once, the local folder first.

Confidence intervals are Student-t intervals over seeds (the paper: "mean ± 95 % CI over 10
runs"): ``t_{(1+c)/2, n−1} · s / √n`` with ``s`` the sample standard deviation (Student 1908).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..errors import DataError
from ..methods import METHODS
from ..plotting import class_colors, draw_embedding, plt
from ..training.checkpoint import save_bytes
from .shift import CLEAN, SHIFT_FILE, read_shift, robustness_auc

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- constants

#: Every metric ``evaluate()`` writes into ``metrics.json`` (fractions in [0, 1]).
METRICS = ("precision@1", "recall@1", "f1", "recall@2", "recall@4", "recall@8",
           "r_precision", "map@r", "nmi")
#: The paper's table columns, in its order (its "MAP@1" column is MAP@R).
TABLE_METRICS = ("recall@1", "f1", "nmi", "r_precision", "map@r")
TABLE_HEADERS = ("R@1", "F1", "NMI", "RP", "MAP@R")
#: The metrics of the paired, seed-by-seed comparisons (:func:`paired_comparisons`).
PAIRED_METRICS = ("recall@1", "map@r", "robustness_auc")
PAIRED_HEADERS = ("R@1", "MAP@R", "Robustness AUC")
#: The paper's data sets first, in its order; any other data set follows alphabetically.
DATASET_ORDER = ("mnist", "fashion-mnist", "cifar10")
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "digits": "Digits (scikit-learn)"}
# One colour per base method in every figure (tab10); an +mdr variant keeps its base's colour
# and is drawn dashed / hatched, so "the same loss with and without MDR" reads at a glance.
_EXTRA_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")

#: The paper's published means (G-DML paper, Tables 1-3, mean over 10 runs), in percent:
#: ``PAPER_RESULTS[dataset][method] = (R@1, F1, NMI, RP, MAP@R)``.
PAPER_RESULTS: dict[str, dict[str, tuple[float, float, float, float, float]]] = {
    "mnist": {
        "siamese": (98.27, 98.27, 95.16, 97.88, 97.73),
        "triplet": (97.71, 97.71, 90.98, 96.60, 96.02),
        "margin": (98.81, 98.81, 91.56, 95.08, 96.17),
        "multisim": (98.58, 98.58, 90.54, 91.28, 90.12),
        "gdml": (99.00, 99.00, 92.08, 98.56, 98.38),
    },
    "fashion-mnist": {
        "siamese": (83.96, 82.89, 76.22, 80.77, 75.35),
        "triplet": (83.86, 83.90, 75.64, 78.69, 72.07),
        "margin": (87.75, 87.76, 79.28, 83.40, 79.91),
        "multisim": (90.33, 90.35, 77.30, 80.58, 77.27),
        "gdml": (91.93, 91.91, 79.42, 89.06, 87.93),
    },
    "cifar10": {
        "siamese": (25.32, 25.96, 25.17, 24.22, 11.76),
        "triplet": (41.93, 42.12, 39.43, 36.65, 20.03),
        "margin": (55.71, 55.86, 45.15, 40.90, 24.73),
        "multisim": (56.65, 57.04, 47.51, 47.72, 36.04),
        "gdml": (80.11, 80.09, 61.36, 75.98, 73.93),
    },
}
#: The half widths of the paper's 95 % CIs, same layout as :data:`PAPER_RESULTS`.
PAPER_CI: dict[str, dict[str, tuple[float, float, float, float, float]]] = {
    "mnist": {
        "siamese": (0.10, 0.10, 1.83, 0.16, 0.17),
        "triplet": (0.10, 0.10, 1.40, 0.10, 0.12),
        "margin": (0.25, 0.25, 1.90, 2.88, 1.87),
        "multisim": (0.19, 0.19, 1.96, 1.19, 1.35),
        "gdml": (0.18, 0.18, 1.80, 0.80, 1.00),
    },
    "fashion-mnist": {
        "siamese": (0.36, 2.27, 1.40, 0.53, 0.70),
        "triplet": (0.20, 0.21, 1.05, 0.23, 0.28),
        "margin": (0.77, 0.77, 1.26, 2.66, 3.59),
        "multisim": (0.29, 0.28, 1.24, 1.56, 1.93),
        "gdml": (0.18, 0.17, 1.66, 0.64, 0.66),
    },
    "cifar10": {
        "siamese": (1.53, 1.02, 0.99, 1.07, 4.73),
        "triplet": (0.93, 0.95, 0.71, 0.88, 1.02),
        "margin": (5.81, 5.84, 2.65, 3.00, 3.40),
        "multisim": (6.15, 6.22, 4.98, 5.96, 7.31),
        "gdml": (0.72, 0.72, 2.31, 0.98, 1.03),
    },
}
PAPER_RUNS = 10

#: ``OUT/references.csv``: the rows :func:`guided_dml.experiments.references.run_references`
#: writes; their names as the tables print them.
REFERENCES_FILE = "references.csv"
REFERENCE_NAMES = {"raw-1nn": "1-NN on raw pixels", "umap-2d": "Supervised UMAP 2-D"}

_SEED_DIR = re.compile(r"^seed-(\d+)$")
_IMBALANCED = re.compile(r"^(.+)-imb(\d+(?:\.\d+)?)$")
_UNSEEN = re.compile(r"^(.+)-unseen(?:-([\d_-]+))?$")


# ---------------------------------------------------------------------------- names and order


def method_name(label: str) -> str:
    """Display name of a method label: ``gdml`` → ``G-DML``, ``triplet+mdr`` → ``Triplet + MDR``."""
    base, _, extra = label.partition("+")
    name = METHODS[base].display if base in METHODS else base
    return f"{name} + {extra.upper()}" if extra else name


def split_imbalance(dataset: str) -> tuple[str, float | None]:
    """``fashion-mnist-imb10`` → ``("fashion-mnist", 10.0)``: the long-tailed training variants
    of the sub-population shift experiment (``RunConfig.dataset_label``)."""
    m = _IMBALANCED.match(dataset)
    return (m.group(1), float(m.group(2))) if m else (dataset, None)


def split_unseen(dataset: str) -> tuple[str, str | None]:
    """``fashion-mnist-unseen`` → ``("fashion-mnist", "")``, ``cifar10-unseen-0_2`` →
    ``("cifar10", "0,2")``; ``(dataset, None)`` for the closed-set protocol."""
    m = _UNSEEN.match(dataset)
    return (m.group(1), (m.group(2) or "").replace("_", ",")) if m else (dataset, None)


def dataset_name(dataset: str) -> str:
    """Display name of a data set (``fashion-mnist`` → ``Fashion-MNIST``,
    ``mnist-imb10`` → ``MNIST, long-tailed ×10``, ``mnist-unseen`` → ``MNIST, unseen classes
    (class-disjoint)``)."""
    dataset, seen = split_unseen(dataset)
    base, ratio = split_imbalance(dataset)
    name = DATASET_NAMES.get(base, base)
    name = f"{name}, long-tailed ×{ratio:g}" if ratio is not None else name
    if seen is not None:
        name += (f", unseen classes (trained on classes {seen})" if seen
                 else ", unseen classes (class-disjoint: trained on the first half)")
    return name


def method_key(label: str) -> tuple[int, int, str]:
    """Sort key: base methods in the paper's order, then their ``+mdr`` variants, then the rest."""
    base, plus, _ = label.partition("+")
    order = list(METHODS)  # the registry's: the paper's rows, then registered methods
    rank = order.index(base) if base in METHODS else len(order)
    return (1 if plus else 0, rank, label)


def dataset_key(dataset: str) -> tuple[int, str, float]:
    """Sort key: the paper's data sets in its order, then the others alphabetically; a
    long-tailed variant right after its balanced data set, by increasing imbalance."""
    closed, seen = split_unseen(dataset)
    base, ratio = split_imbalance(closed)
    rank = DATASET_ORDER.index(base) if base in DATASET_ORDER else len(DATASET_ORDER)
    # The class-disjoint variant sorts after every closed-set table of its data set.
    return (rank, base, (ratio or 0.0) + (1e9 if seen is not None else 0.0))


def method_color(label: str) -> str:
    """A fixed colour per base method (shared by every figure)."""
    base = label.partition("+")[0]
    if base in METHODS:
        return METHODS[base].color
    return _EXTRA_COLORS[sum(map(ord, base)) % len(_EXTRA_COLORS)]


# ---------------------------------------------------------------------------- statistics


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half width of the Student-t confidence interval of the mean.

    ``half = t.ppf((1 + confidence) / 2, n − 1) · s / √n`` with ``s`` the sample standard
    deviation (ddof = 1): Student's t interval (Student, Biometrika 1908), as used for the paper's
    "mean ± 95 % CI over 10 runs". Non-finite values are left out. The half width is NaN for fewer
    than two values (no spread to estimate); the mean is NaN for none.

    Examples:
        >>> mean, half = mean_ci([1.0, 2.0, 3.0])  # t_{0.975, 2} = 4.303, s = 1
        >>> mean, round(half, 4)
        (2.0, 2.4841)
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan
    s = float(x.std(ddof=1))
    return mean, float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * s / math.sqrt(n))


# ---------------------------------------------------------------------------- reading runs


def collect_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """One row per finished run under ``out_dir/runs`` (a folder with ``metrics.json``).

    A row is the content of ``metrics.json`` plus ``run_dir`` (the folder) and, when the run has a
    ``shift.json``, ``robustness_auc`` (:func:`guided_dml.experiments.shift.robustness_auc`, mean
    over corruptions). ``dataset``, ``method`` and ``seed`` fall back to the folder names.
    Unfinished folders are ignored; an unreadable ``metrics.json`` is skipped with a warning.
    Sorted by data set, method (:func:`method_key`) and seed.
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
        if (run_dir / SHIFT_FILE).is_file():
            try:
                row["robustness_auc"] = robustness_auc(read_shift(run_dir)).get("mean", math.nan)
            except (DataError, KeyError, TypeError, ValueError) as err:
                log.warning("ignoring %s/%s: %s", run_dir, SHIFT_FILE, err)
        rows.append(row)
    rows.sort(key=_run_key)
    return rows


#: Columns of ``runs.csv`` read back as integers (the rest of the numeric ones as floats).
_INT_COLUMNS = ("seed", "best_epoch", "epochs_run", "n_test", "n_train", "n_val", "threads")
#: Text columns of ``runs.csv`` that look like numbers but are not (a hash of digits only).
_TEXT_COLUMNS = ("dataset", "method", "config_hash", "run_dir", "source", "processor", "torch")
SHIFT_RUNS_COLUMNS = ("dataset", "method", "seed", "corruption", "severity", "recall@1",
                      "precision@1")


def _parse_cell(column: str, text: str) -> Any:
    if column in _TEXT_COLUMNS:
        return text
    if text in ("True", "False"):  # how csv writes a bool (``converged``)
        return text == "True"
    try:
        return int(text) if column in _INT_COLUMNS else float(text)
    except ValueError:
        return text


def read_included(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    """Earlier results to report with this grid's: ``(runs, shift_rows, shift_summary)``.

    ``path`` is a folder written by :func:`write_report` (or its ``runs.csv``). ``runs`` are the
    rows of ``runs.csv`` with numbers parsed and ``source`` (where they came from) set unless
    already set; ``shift_rows`` the per-run rows of ``shift_runs.csv`` (as
    :func:`collect_shift` returns them); ``shift_summary`` the rows of ``shift.csv``, used only
    for (data set, method) pairs that have no per-run shift rows at all (results written before
    ``shift_runs.csv`` existed).

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


def _threads_from_config(run_dir: Path) -> dict[str, int]:
    """``{"threads": n}`` from the run's ``config.json`` (empty if it cannot say)."""
    try:
        threads = json.loads((run_dir / "config.json").read_text()).get("threads")
    except (OSError, ValueError, AttributeError):
        return {}
    return {"threads": int(threads)} if isinstance(threads, int) else {}


def _run_key(row: dict[str, Any]) -> tuple:
    return (dataset_key(str(row["dataset"])), method_key(str(row["method"])), int(row["seed"]))


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


# ---------------------------------------------------------------------------- aggregation


def summarize(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per (data set, method): seeds, mean and CI (in %) of every metric, mean times.

    Keys: ``dataset``, ``method``, ``n`` (runs), ``seeds`` (space-separated), for each metric
    ``m`` of :data:`METRICS` (and ``robustness_auc`` when shift results exist) ``m_mean`` and
    ``m_ci`` in percent, the paper's unit; ``wall_seconds_mean``, ``train_seconds_mean``,
    ``eval_seconds_mean``, ``epochs_run_mean``; ``converged`` (runs whose validation score had
    stopped improving) out of ``n_convergence`` (runs that recorded it).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(str(r["dataset"]), str(r["method"]))].append(r)
    with_shift = any("robustness_auc" in r for r in rows)
    out = []
    for (ds, method), runs in sorted(groups.items(),
                                     key=lambda kv: (dataset_key(kv[0][0]), method_key(kv[0][1]))):
        s: dict[str, Any] = {"dataset": ds, "method": method, "n": len(runs),
                             "seeds": " ".join(str(r["seed"]) for r in runs)}
        for m in (*METRICS, "robustness_auc") if with_shift else METRICS:
            mean, ci = mean_ci((100.0 * float(r.get(m, math.nan)) for r in runs), confidence)
            s[f"{m}_mean"], s[f"{m}_ci"] = mean, ci
        for t in ("wall_seconds", "train_seconds", "eval_seconds", "epochs_run"):
            vals = [float(r[t]) for r in runs if r.get(t) is not None]
            s[f"{t}_mean"] = float(np.mean(vals)) if vals else math.nan
        flags = [r["converged"] for r in runs if isinstance(r.get("converged"), bool)]
        s["converged"], s["n_convergence"] = sum(flags), len(flags)
        out.append(s)
    return out


def summarize_shift(shift_rows: Sequence[dict[str, Any]],
                    confidence: float = 0.95) -> list[dict[str, Any]]:
    """Recall@1 and Precision@1 (in %) per (data set, method, corruption, severity), over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in shift_rows:
        groups[(r["dataset"], r["method"], r["corruption"], r["severity"])].append(r)
    out = []
    for (ds, method, corr, sev), rs in groups.items():
        r1, r1_ci = mean_ci((100.0 * r["recall@1"] for r in rs), confidence)
        p1, _ = mean_ci((100.0 * r["precision@1"] for r in rs), confidence)
        out.append({"dataset": ds, "method": method, "corruption": corr, "severity": sev,
                    "n": len(rs), "recall@1_mean": r1, "recall@1_ci": r1_ci,
                    "precision@1_mean": p1})
    corr_rank = {c: i for i, c in enumerate(_corruption_order(shift_rows))}
    out.sort(key=lambda r: (dataset_key(r["dataset"]), method_key(r["method"]),
                            corr_rank[r["corruption"]], r["severity"]))
    return out


def comparison_pairs(methods: Iterable[str]) -> list[tuple[str, str]]:
    """The ``(method, reference)`` pairs the report compares seed by seed: every ``X+mdr``
    against its ``X`` (MDR's effect), then ``gdml`` against every other method without a ``+``
    (the paper's claim). Only pairs whose two labels are both in ``methods``."""
    have = set(methods)
    pairs = [(m, m.partition("+")[0]) for m in sorted(have, key=method_key)
             if "+" in m and m.partition("+")[0] in have]
    if "gdml" in have:
        pairs += [("gdml", m) for m in sorted(have, key=method_key) if "+" not in m and m != "gdml"]
    return pairs


def paired_comparisons(rows: Sequence[dict[str, Any]],
                       confidence: float = 0.95) -> list[dict[str, Any]]:
    """Paired differences between two methods over the seeds both have finished.

    A method and its reference trained with the same seed share the data split, the
    initialisation of the backbone and the batch order, so ``method − reference`` per seed removes
    the seed-to-seed spread that both share: the mean ± Student-t CI of these differences
    (a paired t interval) answers "does MDR help?" or "does G-DML beat Triplet?" with far fewer
    seeds than comparing two independent means (the wide CIs of :func:`summarize`).

    Pairs: :func:`comparison_pairs` per data set. Keys of a row: ``dataset``, ``method``,
    ``reference``, ``n`` and ``seeds`` (the shared seeds), ``wins`` (seeds where the method's
    Recall@1 is higher), and for each metric ``m`` of :data:`PAIRED_METRICS` present in the runs:
    ``m_diff_mean``, ``m_diff_ci`` and ``m_per_seed`` (space-separated differences), in
    percentage points.
    """
    by_key = {(str(r["dataset"]), str(r["method"]), int(r["seed"])): r for r in rows}
    datasets = sorted({k[0] for k in by_key}, key=dataset_key)
    out = []
    for ds in datasets:
        methods = {k[1] for k in by_key if k[0] == ds}
        for method, ref in comparison_pairs(methods):
            seeds = sorted(s for d, m, s in by_key if d == ds and m == method
                           and (ds, ref, s) in by_key)
            if not seeds:
                continue
            row: dict[str, Any] = {"dataset": ds, "method": method, "reference": ref,
                                   "n": len(seeds), "seeds": " ".join(map(str, seeds))}
            for metric in PAIRED_METRICS:
                pairs = [(by_key[(ds, method, s)].get(metric), by_key[(ds, ref, s)].get(metric))
                         for s in seeds]
                if all(a is None or b is None for a, b in pairs):
                    continue  # e.g. robustness AUC without --shift
                diffs = [100.0 * (_float(a) - _float(b)) for a, b in pairs]
                row[f"{metric}_diff_mean"], row[f"{metric}_diff_ci"] = mean_ci(diffs, confidence)
                row[f"{metric}_per_seed"] = " ".join(f"{d:+.2f}" for d in diffs)
            r1 = row.get("recall@1_per_seed", "")
            row["wins"] = sum(1 for d in r1.split() if float(d) > 0)
            out.append(row)
    return out


def _corruption_order(rows: Iterable[dict[str, Any]]) -> list[str]:
    """``clean`` first, then the corruptions in the order of the shifts module's registry."""
    from ..data.shifts import CORRUPTIONS

    names = {r["corruption"] for r in rows}
    known = [c for c in CORRUPTIONS if c in names]
    return ([CLEAN] if CLEAN in names else []) + known + sorted(names - set(known) - {CLEAN})


def _shift_curves(srows: Sequence[dict[str, Any]], dataset: str
                  ) -> tuple[list[str], list[str], list[int], dict[str, dict[str, dict[int, float]]]]:
    """``(methods, corruptions, severities, curve[method][corruption][severity])`` of a data set,
    Recall@1 in %; the clean value is every corruption's severity 0, and corruption ``"mean"``
    averages the corruptions."""
    rows = [r for r in srows if r["dataset"] == dataset]
    methods = sorted({r["method"] for r in rows}, key=method_key)
    corrs = [c for c in _corruption_order(rows) if c != CLEAN]
    sevs = sorted({r["severity"] for r in rows if r["corruption"] != CLEAN})
    curve: dict[str, dict[str, dict[int, float]]] = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        clean = [r["recall@1_mean"] for r in mine if r["corruption"] == CLEAN]
        per: dict[str, dict[int, float]] = {}
        for c in corrs:
            per[c] = {r["severity"]: r["recall@1_mean"] for r in mine if r["corruption"] == c}
            if clean:
                per[c][0] = clean[0]
        per["mean"] = {}
        for s in ([0] if clean else []) + sevs:
            vals = [per[c][s] for c in corrs if s in per[c]]
            if vals:
                per["mean"][s] = float(np.mean(vals))
        curve[m] = per
    return methods, corrs, sevs, curve


# ---------------------------------------------------------------------------- formatting


def _fmt(mean: float, ci: float | None = None, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if math.isfinite(ci) else f"{mean:.{digits}f} ± n/a"


def _fmt_diff(mean: float, ci: float) -> str:
    """A difference with its sign: ``+1.64 ± 0.13``, ``-0.75 ± 16.52``."""
    text = _fmt(mean, ci)
    return f"+{text}" if math.isfinite(mean) and mean > 0 and not text.startswith("0.00 ") else text


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _best(values: Sequence[float]) -> set[int]:
    """Indices of the largest finite value (all of them on a tie at the shown precision); none
    when fewer than two values compete, where bold would say nothing."""
    finite = [round(v, 2) for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return set()
    top = max(finite)
    return {i for i, v in enumerate(values) if math.isfinite(v) and round(v, 2) == top}


def _converged_cell(s: dict[str, Any]) -> str:
    """``k/n``: how many of a method's runs converged (``–`` when no run recorded it)."""
    n = int(s.get("n_convergence", 0))
    return f"{int(s['converged'])}/{n}" if n else "–"


def _table_rows(summary: Sequence[dict[str, Any]], dataset: str,
                references: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The rows of one data set's main table: ours (``bold`` marks the best per column) with the
    paper's row right under the matching method, then the references (:data:`REFERENCE_NAMES`)
    scored on the same test set. ``kind`` is ``ours``, ``paper`` or ``reference``."""
    ours = [s for s in summary if s["dataset"] == dataset]
    paper = PAPER_RESULTS.get(dataset, {})
    labels = sorted({s["method"] for s in ours} | set(paper), key=method_key)
    best = {m: _best([s[f"{m}_mean"] for s in ours]) for m in TABLE_METRICS}
    rows = []
    for label in labels:
        for i, s in enumerate(ours):
            if s["method"] == label:
                rows.append({
                    "label": method_name(label), "paper": False, "kind": "ours", "n": s["n"],
                    "cells": [(s[f"{m}_mean"], s[f"{m}_ci"]) for m in TABLE_METRICS],
                    "bold": [i in best[m] for m in TABLE_METRICS],
                    "time": _fmt_seconds(s["wall_seconds_mean"]),
                    "converged": _converged_cell(s),
                })
        if label in paper:
            rows.append({
                "label": f"{method_name(label)} (paper)", "paper": True, "kind": "paper",
                "n": PAPER_RUNS,
                "cells": list(zip(paper[label], PAPER_CI[dataset][label], strict=True)),
                "bold": [False] * len(TABLE_METRICS), "time": "", "converged": "–",
            })
    for ref in references:
        if ref["dataset"] != dataset:
            continue
        rows.append({
            "label": f"{REFERENCE_NAMES.get(ref['method'], ref['method'])} (reference)",
            "paper": False, "kind": "reference", "n": 1,
            "cells": [(100.0 * _float(ref.get(m)), None) for m in TABLE_METRICS],
            "bold": [False] * len(TABLE_METRICS),
            "time": _fmt_seconds(_float(ref.get("wall_seconds"))), "converged": "–",
        })
    return rows


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


def _shift_tables(srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                  dataset: str) -> tuple[list[str], list[list[str]], list[list[bool]],
                                         list[str], list[list[str]], list[list[bool]]] | None:
    """Two tables of a data set's shift results, as text cells with bold flags:
    (1) per method: clean R@1, mean R@1 at each severity, robustness AUC (mean ± CI over seeds);
    (2) per (corruption, severity): R@1 of each method (mean over seeds)."""
    methods, corrs, sevs, curve = _shift_curves(srows, dataset)
    if not methods:
        return None
    auc = {s["method"]: (s.get("robustness_auc_mean", math.nan), s.get("robustness_auc_ci", math.nan))
           for s in summary if s["dataset"] == dataset}
    head1 = ["Method", "Clean", *[f"Severity {s}" for s in sevs], "Robustness AUC"]
    cols = [[curve[m]["mean"].get(s, math.nan) for m in methods] for s in [0, *sevs]]
    cols.append([auc.get(m, (math.nan, math.nan))[0] for m in methods])
    best_cols = [_best(c) for c in cols]
    body1, bold1 = [], []
    for i, m in enumerate(methods):
        cells = [_fmt(c[i]) for c in cols[:-1]] + [_fmt(*auc.get(m, (math.nan, math.nan)))]
        body1.append([method_name(m), *cells])
        bold1.append([False] + [i in b for b in best_cols])
    head2 = ["Corruption", "Severity", *[method_name(m) for m in methods]]
    body2, bold2 = [], []
    keys: list[tuple[str, int]] = [(CLEAN, 0)] + [(c, s) for c in corrs for s in sevs]
    keys += [("mean", s) for s in sevs]
    for c, s in keys:
        src = "mean" if c == CLEAN else c  # every curve holds the clean value at severity 0
        vals = [curve[m].get(src, {}).get(s, math.nan) for m in methods]
        name = "clean" if c == CLEAN else "mean of all" if c == "mean" else c.replace("_", " ")
        body2.append([name, str(s), *[_fmt(v) for v in vals]])
        bold2.append([False, False] + [i in _best(vals) for i in range(len(vals))])
    return head1, body1, bold1, head2, body2, bold2


def _paired_table(prows: Sequence[dict[str, Any]], dataset: str
                  ) -> tuple[list[str], list[list[str]]] | None:
    """A data set's paired comparisons as text cells: per pair the shared seeds, the seeds won on
    Recall@1, mean ± CI of each metric's difference and the per-seed Recall@1 differences."""
    rows = [r for r in prows if r["dataset"] == dataset]
    if not rows:
        return None
    metrics = [(m, h) for m, h in zip(PAIRED_METRICS, PAIRED_HEADERS, strict=True)
               if any(f"{m}_diff_mean" in r for r in rows)]
    head = ["Comparison", "Seeds", "Wins (R@1)", *[f"Δ {h} (pp)" for _, h in metrics],
            "Δ R@1 per seed"]
    body = [[f"{method_name(r['method'])} vs {method_name(r['reference'])}", r["seeds"],
             f"{r['wins']}/{r['n']}",
             *[_fmt_diff(r.get(f"{m}_diff_mean", math.nan), r.get(f"{m}_diff_ci", math.nan))
               for m, _ in metrics],
             r.get("recall@1_per_seed", "") or "n/a"] for r in rows]
    return head, body


_CONVERGED_NOTE = ("Converged: runs whose validation score gained less than half a point over "
                   "the last third of their epochs.")
_REFERENCES_NOTE = ("Rows marked (reference): what a user gets without a learned map, scored "
                    "by the same evaluation on the same test set (one seed; 1-NN on the raw "
                    "pixels, supervised UMAP 2-D fitted on the training set with its labels, "
                    "test set transformed).")

_PAIRED_NOTE = ("Seed by seed: a method minus its reference trained with the same seed (same "
                "split, initial weights and batch order), in percentage points; mean ± {pct} "
                "Student-t CI of the differences (a paired interval: it excludes 0 when one is "
                "better on every seed by a steady margin, even where the CIs of the two means "
                "above overlap). Wins: seeds where the method has the higher Recall@1.")


def _imbalance_tables(summary: Sequence[dict[str, Any]]
                      ) -> list[tuple[str, list[str], list[list[str]], list[list[bool]]]]:
    """Sub-population shift: per data set with long-tailed variants, Recall@1 of each method
    trained on the balanced and on each long-tailed training set (same balanced test set), and
    the change in percentage points. ``[(base, head, body, bold), ...]``."""
    variants: dict[str, list[float]] = defaultdict(list)
    for ds in _datasets(summary):
        base, ratio = split_imbalance(ds)
        if ratio is not None:
            variants[base].append(ratio)
    out = []
    for base, ratios in variants.items():
        ratio_ds = {r: next(d for d in _datasets(summary) if split_imbalance(d) == (base, r))
                    for r in ratios}
        cell = {(s["dataset"], s["method"]): (s["recall@1_mean"], s["recall@1_ci"]) for s in summary}
        methods = sorted({m for d, m in cell if split_imbalance(d)[0] == base}, key=method_key)
        nan2 = (math.nan, math.nan)
        cols: list[tuple[str, list[tuple[float, float]], bool]] = [
            ("Balanced", [cell.get((base, m), nan2) for m in methods], True)]
        for r in ratios:
            vals = [cell.get((ratio_ds[r], m), nan2) for m in methods]
            cols.append((f"Long-tailed ×{r:g}", vals, True))
            delta = [(v[0] - b[0], math.nan) for v, b in zip(vals, cols[0][1], strict=True)]
            cols.append((f"Δ ×{r:g} (pp)", delta, False))
        head = ["Method", *[c[0] for c in cols]]
        body = [[method_name(m), *[_fmt(c[1][i][0], c[1][i][1] if c[2] else None) for c in cols]]
                for i, m in enumerate(methods)]
        best = [_best([v[0] for v in c[1]]) for c in cols]
        bold = [[False, *[i in b for b in best]] for i in range(len(methods))]
        out.append((base, head, body, bold))
    return out


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]],
              bold: Sequence[Sequence[bool]] | None = None) -> str:
    def cell(text: str, b: bool) -> str:
        return f"**{text}**" if b and text != "n/a" else text

    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for r, row in enumerate(body):
        flags = bold[r] if bold else [False] * len(row)
        lines.append("| " + " | ".join(cell(t, f) for t, f in zip(row, flags, strict=True)) + " |")
    return "\n".join(lines)


def _main_table_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]],
                                                               list[list[bool]]]:
    head = ["Method", "Seeds", *TABLE_HEADERS, "Time / run", "Converged"]
    body = [[r["label"], str(r["n"]), *[_fmt(m, c) for m, c in r["cells"]], r["time"] or "–",
             r["converged"]] for r in rows]
    bold = [[False, False, *r["bold"], False, False] for r in rows]
    return head, body, bold


def render_markdown(summary: Sequence[dict[str, Any]], srows: Sequence[dict[str, Any]],
                    confidence: float = 0.95, prows: Sequence[dict[str, Any]] = (),
                    references: Sequence[dict[str, Any]] = ()) -> str:
    """``summary.md``: per data set the paper's table (with the ``references``,
    :func:`read_references`), the covariate-shift tables, then the paired comparisons
    (:func:`paired_comparisons`, rows ``prows``)."""
    pct = f"{confidence * 100:g} %"
    parts = ["# Benchmark results", "",
             f"Mean ± {pct} Student-t confidence interval over seeds, in percent. "
             "Best of our runs in **bold**; rows marked (paper) are the published numbers "
             f"(mean ± 95 % CI over {PAPER_RUNS} runs). R@1: macro recall of 1-NN against the "
             "training set; F1: macro F1; NMI: k-means on the test embeddings; RP and MAP@R: "
             "Musgrave et al. 2020. " + _CONVERGED_NOTE
             + (" " + _REFERENCES_NOTE if references else ""), ""]
    for ds in _datasets(summary):
        head, body, bold = _main_table_cells(_table_rows(summary, ds, references))
        parts += [f"## {dataset_name(ds)}", "", _md_table(head, body, bold), ""]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, h2, b2, f2 = tables
            parts += [f"### {dataset_name(ds)} under covariate shift", "",
                      "Recall@1 (%) of corrupted test images against the clean training set, "
                      "mean over corruptions and seeds; robustness AUC: normalised area under "
                      "Recall@1 against severity 0–5 (mean ± CI over seeds).", "",
                      _md_table(h1, b1, f1), "",
                      "Recall@1 (%) per corruption and severity (mean over seeds):", "",
                      _md_table(h2, b2, f2), ""]
        paired = _paired_table(prows, ds)
        if paired:
            parts += [f"### {dataset_name(ds)}: paired comparisons (same seeds)", "",
                      _PAIRED_NOTE.format(pct=pct), "", _md_table(*paired), ""]
    for base, head, body, bold in _imbalance_tables(summary):
        parts += [f"## {dataset_name(base)}: sub-population shift", "",
                  "Recall@1 (%) on the usual test set after training on the balanced or on a "
                  "long-tailed training set (class i keeps n·ratio^(−i/(C−1)) samples); Δ: change "
                  "in percentage points.", "", _md_table(head, body, bold), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- LaTeX

_TEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "\\": r"\textbackslash{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in text)


def _tex_cell(text: str, bold: bool) -> str:
    text = _tex(text).replace(" ± ", r" $\pm$ ").replace("–", "--")
    return rf"\textbf{{{text}}}" if bold and text != "n/a" else text


def _tex_tabular(head: Sequence[str], body: Sequence[Sequence[str]],
                 bold: Sequence[Sequence[bool]], italic_rows: Sequence[bool] | None = None,
                 n_text_cols: int = 1) -> list[str]:
    spec = "l" * n_text_cols + "r" * (len(head) - n_text_cols)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_tex(h) for h in head) + r" \\", r"\midrule"]
    for r, row in enumerate(body):
        cells = [_tex_cell(t, f) for t, f in zip(row, bold[r], strict=True)]
        if italic_rows and italic_rows[r]:
            cells = [rf"\textit{{{c}}}" if c else c for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def render_latex(summary: Sequence[dict[str, Any]], srows: Sequence[dict[str, Any]],
                 confidence: float = 0.95, references: Sequence[dict[str, Any]] = ()) -> str:
    """``summary.tex``: booktabs tables (``\\usepackage{booktabs}``), best of ours in bold,
    the paper's rows in italics."""
    pct = f"{confidence * 100:g}\\,\\%"
    out = ["% Generated by guided_dml.experiments.report; needs \\usepackage{booktabs}.", ""]
    for ds in _datasets(summary):
        rows = _table_rows(summary, ds, references)
        head, body, bold = _main_table_cells(rows)
        slug = re.sub(r"[^a-z0-9]+", "-", ds.lower())
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_tex(dataset_name(ds))}: mean $\pm$ {pct} CI over seeds (\%). "
                r"Best of our runs in bold; in italics the published numbers \textit{(paper)} "
                r"and the \textit{(reference)} maps scored on the same test set.}",
                rf"\label{{tab:{slug}}}",
                *_tex_tabular(head, body, bold, [r["kind"] != "ours" for r in rows]),
                r"\end{table}", ""]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, *_ = tables
            out += [r"\begin{table}[t]", r"\centering",
                    rf"\caption{{{_tex(dataset_name(ds))} under covariate shift: Recall@1 (\%) "
                    r"averaged over corruptions and seeds, and the normalised area under "
                    r"Recall@1 against severity.}",
                    rf"\label{{tab:{slug}-shift}}", *_tex_tabular(h1, b1, f1),
                    r"\end{table}", ""]
    for base, head, body, bold in _imbalance_tables(summary):
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower())
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_tex(dataset_name(base))}, sub-population shift: Recall@1 (\%) "
                r"after training on the balanced or a long-tailed training set.}",
                rf"\label{{tab:{slug}-imbalance}}", *_tex_tabular(head, body, bold),
                r"\end{table}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- figures


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _legend_ncol(labels: Sequence[str], width_in: float, fontsize: float = 9.0) -> int:
    """Columns for a one-line legend when it fits the figure width, else as many rows as needed."""
    # ≈ 0.6 em per character plus marker and padding, in inches.
    widths = [len(t) * fontsize * 0.6 / 72 + 0.45 for t in labels]
    per_row = max(1, int(len(labels) * (0.95 * width_in) / max(sum(widths), 1e-9)))
    rows = math.ceil(len(labels) / min(per_row, len(labels)))
    return math.ceil(len(labels) / rows)


def plot_embedding_grid(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """The 2-D test map of every method (its first seed), coloured by class: Figures 3–5."""
    first: dict[str, dict[str, Any]] = {}
    for r in runs:  # sorted by seed
        # Included runs (see merge_included) are drawn from their own folder's report.
        if r["dataset"] == dataset and r["method"] not in first and "_shift_rows" not in r:
            first[r["method"]] = r
    if not first:
        return None
    methods = sorted(first, key=method_key)
    nrows = math.ceil(len(methods) / 5)
    ncols = math.ceil(len(methods) / nrows)  # 7 methods: 4 + 3, not 5 + 2
    loaded, classes = {}, None
    for m in methods:
        f = Path(first[m]["run_dir"]) / "embeddings.npz"
        try:
            with np.load(f, allow_pickle=False) as z:
                loaded[m] = (z["test_embeddings"], z["test_labels"])
                classes = classes if classes is not None else [str(c) for c in z["classes"]]
        except (OSError, KeyError, ValueError) as err:
            log.warning("no embedding map for %s: %s", f.parent, err)
    if not loaded or classes is None:
        return None
    many = len(classes) > 20  # a legend of 100 class names is noise; colours still separate
    width = 3.4 * ncols
    ncol = _legend_ncol(classes, width)
    legend_rows = 0 if many else math.ceil(len(classes) / ncol)
    bottom_in = 0.25 + 0.24 * legend_rows
    fig_h = 4.0 * nrows + 0.45 + bottom_in  # square maps 3.4 in wide + a two-line title
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, fig_h), dpi=110, squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, methods, strict=False):
        run = first[m]
        title = f"{method_name(m)}\nR@1 {100 * float(run.get('recall@1', math.nan)):.1f} %" \
                f" · seed {run['seed']}"
        if m not in loaded:
            ax.text(0.5, 0.5, "embeddings.npz missing", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        emb, labels = loaded[m]
        draw_embedding(ax, emb, labels, classes, title=title)
        _robust_limits(ax, emb)
        for spine in ax.spines.values():  # a light frame: the map, not the axes, is the content
            spine.set_color("0.8")
    colors = class_colors(len(classes))
    if not many:
        handles = [plt.Line2D([], [], marker="o", linestyle="", markersize=7, color=colors[c],
                              label=name) for c, name in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
                   handletextpad=0.2, columnspacing=1.0)
    fig.suptitle(f"{dataset_name(dataset)}: 2-D test embeddings", fontsize=12)
    fig.tight_layout(rect=(0, bottom_in / fig_h, 1, 1))
    return _png(fig)


def _robust_limits(ax: Any, emb: np.ndarray) -> None:
    """Frame the central 99.6 % of the points: a handful of stray points would otherwise shrink
    every cluster to a dot. Only for 2-D embeddings (others are drawn as PCA projections)."""
    if emb.ndim != 2 or emb.shape[1] != 2 or len(emb) < 50:
        return
    finite = emb[np.isfinite(emb).all(axis=1)]
    lo, hi = np.percentile(finite, [0.2, 99.8], axis=0)
    half = 0.56 * float((hi - lo).max())  # a square window keeps distances true in x and y
    if half > 0:
        centre = (lo + hi) / 2
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)


def plot_curves(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """Validation loss per epoch, one panel per method (each seed thin, the mean bold, the mean
    training loss dashed), plus a panel for the GEMINI teacher of every G-DML variant."""
    panels: list[tuple[str, str, list[list[dict[str, Any]]]]] = []  # (title, method, histories)
    by_method: dict[str, list[Path]] = defaultdict(list)
    for r in runs:
        if r["dataset"] == dataset:
            by_method[r["method"]].append(Path(r["run_dir"]))
    teacher_panels = []
    for m in sorted(by_method, key=method_key):
        hists = [_load_history(d) for d in by_method[m]]
        student = [[h for h in hist if h.get("phase", "student") == "student"] for hist in hists]
        teacher = [[h for h in hist if h.get("phase") == "teacher"] for hist in hists]
        if any(student):
            panels.append((method_name(m), m, [s for s in student if s]))
        if any(teacher):
            teacher_panels.append((f"{method_name(m)}: GEMINI teacher", m, [t for t in teacher if t]))
    panels += teacher_panels
    if not panels:
        return None
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.8), dpi=110,
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, m, hists) in zip(axes.flat, panels, strict=False):
        color = method_color(m)
        positive = True
        for key, style in (("train_loss", "--"), ("val_loss", "-")):
            series = [(np.array([h["epoch"] for h in hist], float),
                       np.array([_float(h.get(key)) for h in hist])) for hist in hists]
            series = [(e, v) for e, v in series if np.isfinite(v).any()]
            if not series:
                continue
            positive &= all((v[np.isfinite(v)] > 0).all() for _, v in series)
            if key == "val_loss" and len(series) > 1:
                for e, v in series:
                    ax.plot(e, v, style, color=color, lw=0.8, alpha=0.35)
            e_all = np.unique(np.concatenate([e for e, _ in series]))
            mean = np.array([np.nanmean([v[e == x][0] for e, v in series if (e == x).any()])
                             for x in e_all])
            ax.plot(e_all, mean, style, color=color if key == "val_loss" else "0.35",
                    lw=2.0 if key == "val_loss" else 1.3,
                    marker="o" if len(e_all) <= 30 else None, markersize=3.5)
            if positive and np.nanmax(mean) / max(np.nanmin(mean), 1e-12) > 30:
                ax.set_yscale("log")  # distillation losses fall by orders of magnitude
        ax.set_title(f"{title} ({len(hists)} seed{'s' if len(hists) != 1 else ''})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles = [plt.Line2D([], [], color="0.2", lw=2.0, marker="o", markersize=3.5,
                          label="validation loss (mean over seeds)"),
               plt.Line2D([], [], color="0.2", lw=0.8, alpha=0.4, label="validation loss (each seed)"),
               plt.Line2D([], [], color="0.35", lw=1.3, ls="--", label="training loss (mean)")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(f"{dataset_name(dataset)}: training curves", fontsize=12)
    fig.tight_layout(rect=(0, 0.5 / (3.1 * nrows + 0.8), 1, 1))
    return _png(fig)


def plot_validation(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """The selection criterion per epoch (validation MAP@R, or whatever ``val_score`` the runs
    recorded), every method on one axis: each seed thin, the mean bold. This is where a reader
    sees whether a method had converged when its epochs ran out (issue 13's fairness check)."""
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for r in runs:
        if r["dataset"] != dataset:
            continue
        hist = [h for h in _load_history(Path(r["run_dir"])) if h.get("phase", "student") == "student"
                and h.get("val_score") is not None]
        if hist:
            curves[r["method"]].append((np.array([h["epoch"] for h in hist], float),
                                        np.array([_float(h["val_score"]) for h in hist])))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for m in sorted(curves, key=method_key):
        color, dashed = method_color(m), m.endswith("+mdr")
        for e, v in curves[m]:
            ax.plot(e, v, "--" if dashed else "-", color=color, lw=0.7, alpha=0.3)
        e_all = np.unique(np.concatenate([e for e, _ in curves[m]]))
        mean = np.array([np.nanmean([v[e == x][0] for e, v in curves[m] if (e == x).any()])
                         for x in e_all])
        ax.plot(e_all, mean, "--" if dashed else "-", color=color, lw=2.0, marker="o",
                markersize=3.5, label=f"{method_name(m)} ({len(curves[m])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAP@R")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(frameon=False, fontsize=9, title="method (seeds)", title_fontsize=9,
              loc="lower right")
    ax.set_title(f"{dataset_name(dataset)}: the selection criterion per epoch", fontsize=12)
    fig.tight_layout()
    return _png(fig)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def error_extent(mean: float, ci: float) -> tuple[float, float]:
    """Lengths of an error bar below and above ``mean`` on the 0–100 scale.

    Clipped to the scale (with two seeds t = 12.7 and the interval leaves it); NaN for one seed,
    which has no interval, so that matplotlib draws no bar rather than a zero-width one.
    """
    if not math.isfinite(ci):
        return math.nan, math.nan
    return min(ci, mean), min(ci, 100.0 - mean)


def plot_recall_bars(summary: Sequence[dict[str, Any]], confidence: float = 0.95) -> bytes | None:
    """Recall@1 mean with CI error bars, grouped by data set; the paper's values as ◆ markers."""
    if not summary:
        return None
    datasets = _datasets(summary)
    methods = sorted({s["method"] for s in summary}, key=method_key)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.45 * len(methods) * len(datasets)), 4.6),
                           dpi=110)
    paper_drawn = False
    for j, m in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for i, ds in enumerate(datasets):
            s = next((s for s in summary if s["dataset"] == ds and s["method"] == m), None)
            if s is None:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(s["recall@1_mean"])
            down, up = error_extent(ys[-1], s["recall@1_ci"])
            lo.append(down)
            hi.append(up)
            paper = PAPER_RESULTS.get(ds, {}).get(m)
            if paper is not None:
                ax.plot(xs[-1], paper[0], marker="D", color="black", markersize=5, zorder=5,
                        linestyle="", label="_nolegend_")
                paper_drawn = True
        mdr = "+" in m
        ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=3, color=method_color(m),
               alpha=0.55 if mdr else 0.9, hatch="//" if mdr else None, edgecolor="white",
               error_kw={"elinewidth": 1.0, "ecolor": "0.15"}, label=method_name(m))
    ax.set_xticks(range(len(datasets)), [dataset_name(d).replace(", ", ",\n") for d in datasets])
    ax.set_ylabel("Recall@1 (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    if paper_drawn:
        handles.append(plt.Line2D([], [], marker="D", color="black", linestyle="", markersize=5))
        labels.append("paper")
    # Legend to the right, outside the axes: bars reach the top on MNIST.
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
              fontsize=9)
    ax.set_title(f"Recall@1, mean ± {confidence * 100:g} % CI over seeds "
                 "(clipped to 0–100; none for one seed)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def plot_shift(srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
               dataset: str) -> bytes | None:
    """Recall@1 against severity per method: the mean over corruptions (large panel, AUC in the
    legend) and one small panel per corruption."""
    methods, corrs, _, curve = _shift_curves(srows, dataset)
    if not methods:
        return None
    auc = {s["method"]: s.get("robustness_auc_mean", math.nan)
           for s in summary if s["dataset"] == dataset}
    ncols_small = 3 if len(corrs) > 4 else max(1, min(2, len(corrs)))
    nrows_small = max(1, math.ceil(len(corrs) / ncols_small))
    legend_cols = min(len(methods), 4)
    legend_in = 0.3 + 0.25 * math.ceil(len(methods) / legend_cols)
    fig_w = 5.2 + 2.7 * ncols_small
    fig_h = max(4.6, 2.35 * nrows_small + 1.0) + legend_in
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=110)
    gs = fig.add_gridspec(nrows_small, 2 + ncols_small, width_ratios=[1.0, 0.9] + [1.0] * ncols_small,
                          wspace=0.35, hspace=0.55)
    main = fig.add_subplot(gs[:, :2])
    small = [fig.add_subplot(gs[i // ncols_small, 2 + i % ncols_small]) for i in range(len(corrs))]
    for m in methods:
        style = {"color": method_color(m), "ls": "--" if "+" in m else "-", "marker": "o"}
        pts = sorted(curve[m]["mean"].items())
        a = auc.get(m, math.nan)
        label = f"{method_name(m)} (AUC {a:.1f})" if math.isfinite(a) else method_name(m)
        main.plot([p[0] for p in pts], [p[1] for p in pts], lw=2, markersize=5, label=label,
                  **style)
        for ax, c in zip(small, corrs, strict=True):
            pts = sorted(curve[m][c].items())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.3, markersize=2.5, **style)
    main.set_title("mean over corruptions", fontsize=10)
    main.set_xlabel("severity (0 = clean)")
    main.set_ylabel("Recall@1 (%)")
    for ax, c in zip([main, *small], ["", *corrs], strict=True):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if c:
            ax.set_title(c.replace("_", " "), fontsize=9)
            ax.tick_params(labelsize=8)
    lo = min(min(line.get_ydata()) for ax in [main, *small] for line in ax.get_lines())
    for ax in [main, *small]:  # one y scale, so panels compare at a glance
        ax.set_ylim(max(0.0, lo - 5.0), 100.0 if lo > 5 else 101.0)
    for ax in [main, *small]:
        ax.set_xticks(range(0, 1 + max(int(x) for line in ax.get_lines() for x in line.get_xdata())))
    # Below the panels: inside any panel it would hide the lowest curves.
    fig.legend(*main.get_legend_handles_labels(), loc="lower center", ncol=legend_cols,
               fontsize=9, frameon=False)
    fig.suptitle(f"{dataset_name(dataset)}: Recall@1 under covariate shift "
                 "(mean over seeds; AUC: normalised area under the curve, %)", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.75 / fig_h,
                        bottom=(legend_in + 0.55) / fig_h)
    return _png(fig)


# ---------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1500px;
margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0 18px;font-size:0.92em}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f4f4f4;border-bottom:2px solid #bbb}
td:first-child,th:first-child{text-align:left}
tr.paper td{color:#777;font-style:italic}tr.reference td{color:#35679a;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}
.note{color:#555;font-size:0.92em}details{margin:12px 0}
"""


def _html_table(head: Sequence[str], body: Sequence[Sequence[str]],
                bold: Sequence[Sequence[bool]] | None = None,
                row_classes: Sequence[str] | None = None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r, row in enumerate(body):
        flags = bold[r] if bold else [False] * len(row)
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f"<td><b>{html.escape(t)}</b></td>" if f and t != "n/a"
                        else f"<td>{html.escape(t)}</td>" for t, f in zip(row, flags, strict=True))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(out_dir: Path, runs: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                srows: Sequence[dict[str, Any]], figures: dict[str, bytes],
                unfinished: int, confidence: float = 0.95,
                prows: Sequence[dict[str, Any]] = (), include: Sequence[str | Path] = (),
                references: Sequence[dict[str, Any]] = ()) -> str:
    """``report.html``: one page, no external resources (figures as base64 data URIs)."""
    pct = f"{confidence * 100:g} %"
    n_inc = sum(1 for r in runs if "_shift_rows" in r)
    inc_note = (f" ({n_inc} of them included from "
                + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in include) + ")"
                if n_inc else "")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>guided-dml benchmark report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Guided Deep Metric Learning: benchmark report</h1>",
             f'<p class="note">{len(runs)} finished runs in <code>{html.escape(str(out_dir))}</code>'
             + inc_note
             + (f"; {unfinished} run folder(s) without <code>metrics.json</code> (unfinished or "
                "failed) left out" if unfinished else "")
             + f". Generated {html.escape(time.strftime('%Y-%m-%d %H:%M'))}.</p>",
             f'<p class="note">Mean ± {pct} Student-t confidence interval over seeds, in percent; '
             "best of our runs in <b>bold</b>; grey rows: the paper's published numbers "
             f"(mean ± 95 % CI over {PAPER_RUNS} runs). R@1: macro recall of the 1-nearest-"
             "neighbour classifier against the training set; F1: macro F1; NMI: k-means on the "
             "test embeddings; RP and MAP@R: Musgrave et al. 2020. "
             + html.escape(_CONVERGED_NOTE)
             + (" " + html.escape(_REFERENCES_NOTE) if references else "") + "</p>"]
    if "recall_at_1.png" in figures:
        parts.append(_img(figures["recall_at_1.png"], "Recall@1 per data set and method"))
    for ds in _datasets(summary):
        name = dataset_name(ds)
        rows = _table_rows(summary, ds, references)
        head, body, bold = _main_table_cells(rows)
        parts += [f"<h2>{html.escape(name)}</h2>",
                  _html_table(head, body, bold,
                              ["" if r["kind"] == "ours" else r["kind"] for r in rows]),
                  _img(figures.get(f"embeddings_{ds}.png"), f"{name} embeddings"),
                  _img(figures.get(f"validation_{ds}.png"), f"{name} validation curves"),
                  _img(figures.get(f"curves_{ds}.png"), f"{name} training curves")]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, h2, b2, f2 = tables
            parts += [f"<h3>{html.escape(name)} under covariate shift</h3>",
                      '<p class="note">Corruptions after Hendrycks &amp; Dietterich (ICLR 2019) '
                      "and MNIST-C (Mu &amp; Gilmer 2019), applied to the test images; the "
                      "reference stays clean. Recall@1 (%) averaged over corruptions and seeds; "
                      "robustness AUC: normalised area under Recall@1 against severity 0–5 "
                      f"(mean ± {pct} CI over seeds).</p>",
                      _html_table(h1, b1, f1),
                      _img(figures.get(f"shift_{ds}.png"), f"{name} covariate shift"),
                      "<details><summary>Recall@1 (%) per corruption and severity</summary>",
                      _html_table(h2, b2, f2), "</details>"]
        paired = _paired_table(prows, ds)
        if paired:
            parts += [f"<h3>{html.escape(name)}: paired comparisons (same seeds)</h3>",
                      f'<p class="note">{html.escape(_PAIRED_NOTE.format(pct=pct))}</p>',
                      _html_table(*paired)]
    for base, head, body, bold in _imbalance_tables(summary):
        parts += [f"<h2>{html.escape(dataset_name(base))}: sub-population shift</h2>",
                  '<p class="note">Recall@1 (%) on the usual test set after training on the '
                  "balanced or on a long-tailed training set (class i keeps "
                  "n·ratio<sup>−i/(C−1)</sup> samples); Δ: change in percentage points.</p>",
                  _html_table(head, body, bold)]
    cols = ["dataset", "method", "seed", *METRICS, "wall_seconds"]
    body = [[str(r["dataset"]), str(r["method"]), str(r["seed"]),
             *[_fmt(100 * _float(r.get(m)), digits=2) for m in METRICS],
             _fmt_seconds(_float(r.get("wall_seconds")))] for r in runs]
    parts += ["<h2>All runs</h2>", "<details><summary>one row per run (metrics in %)</summary>",
              _html_table(cols, body), "</details>", "</body></html>"]
    return "\n".join(p for p in parts if p)


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
    head = ["dataset", "method", "seed", *METRICS]
    if any("robustness_auc" in r for r in runs):
        head.append("robustness_auc")
    head += ["best_epoch", "epochs_run", "train_seconds", "eval_seconds", "wall_seconds",
             "config_hash"]
    extra = sorted({k for r in runs for k, v in r.items()
                    if k not in head and k != "run_dir" and isinstance(v, int | float | str)})
    return [*head, *extra, "run_dir"]


# ---------------------------------------------------------------------------- entry point


def _paired_columns(prows: Sequence[dict[str, Any]]) -> list[str]:
    cols = ["dataset", "method", "reference", "n", "seeds", "wins"]
    return cols + [f"{m}_{k}" for m in PAIRED_METRICS for k in ("diff_mean", "diff_ci", "per_seed")
                   if any(f"{m}_{k}" in r for r in prows)]


def _datasets(summary: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({s["dataset"] for s in summary}, key=dataset_key)


def _unfinished(out_dir: Path) -> int:
    return sum(1 for d in out_dir.glob("runs/*/*/seed-*")
               if d.is_dir() and not (d / "metrics.json").exists())


def write_report(out_dir: str | Path, confidence: float = 0.95,
                 include: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Write every table, figure and the HTML page of the benchmark in ``out_dir``.

    ``include``: earlier results reported together with this grid's (:func:`merge_included`);
    their rows are copied into ``runs.csv`` and ``shift_runs.csv`` here (with a ``source``
    column), so the written folder is again a complete record that can itself be included.

    Every file is written atomically (temporary file in ``out_dir``, then ``os.replace``), so a
    reader never sees a half-written report even while the benchmark keeps rewriting it.

    Returns:
        ``{key: path}`` with keys named after the files, dots as underscores (``summary_md``,
        ``report_html``, ``embeddings_mnist_png`` …).

    Raises:
        DataError: no finished run under ``out_dir/runs``.
    """
    out_dir = Path(out_dir)
    runs, shift_fallback = merge_included(collect_runs(out_dir), include)
    if not runs:
        raise DataError(f"no finished runs (run folders with metrics.json) under {out_dir / 'runs'}")
    summary = summarize(runs, confidence)
    shift_rows = collect_shift(runs)
    shift_summary = summarize_shift(shift_rows, confidence)
    have_shift = {(r["dataset"], r["method"]) for r in shift_rows}
    fallback = list({(r["dataset"], r["method"], r["corruption"], r["severity"]): r
                     for r in reversed(shift_fallback)  # the first include wins
                     if (r["dataset"], r["method"]) not in have_shift}.values())
    if fallback:  # summaries of runs whose per-run shift rows were never recorded
        corr_rank = {c: i for i, c in enumerate(_corruption_order([*shift_summary, *fallback]))}
        shift_summary = sorted([*shift_summary, *fallback],
                               key=lambda r: (dataset_key(r["dataset"]), method_key(r["method"]),
                                              corr_rank[r["corruption"]], r["severity"]))
    written: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        path = out_dir / name
        save_bytes(data, path)
        written[name.replace(".", "_")] = path

    # Relative run folders keep runs.csv valid when OUT is moved or copied.
    csv_runs = [r if "_shift_rows" in r else  # included rows keep the folder they name
                {**r, "run_dir": Path(r["run_dir"]).relative_to(out_dir).as_posix()} for r in runs]
    put("runs.csv", csv_bytes(csv_runs, _runs_columns(runs)))
    stat_cols = [f"{m}_{k}" for m in (*METRICS, "robustness_auc") for k in ("mean", "ci")
                 if f"{m}_{k}" in summary[0]]
    put("summary.csv", csv_bytes(summary, ["dataset", "method", "n", "seeds", *stat_cols,
                                            "wall_seconds_mean", "train_seconds_mean",
                                            "eval_seconds_mean", "epochs_run_mean",
                                            "converged", "n_convergence"]))
    if shift_summary:
        put("shift.csv", csv_bytes(shift_summary, list(shift_summary[0])))
    if shift_rows:
        put("shift_runs.csv", csv_bytes(shift_rows, SHIFT_RUNS_COLUMNS))
    paired = paired_comparisons(runs, confidence)
    if paired:
        put("paired.csv", csv_bytes(paired, _paired_columns(paired)))
    references = read_references([out_dir, *include])
    if references:
        put(REFERENCES_FILE, csv_bytes(references, list(dict.fromkeys(
            k for r in references for k in r))))  # every column any row has, in order
    put("summary.md", render_markdown(summary, shift_summary, confidence, paired,
                                      references).encode())
    put("summary.tex", render_latex(summary, shift_summary, confidence, references).encode())

    figures: dict[str, bytes] = {}
    for ds in _datasets(summary):
        for name, png in ((f"embeddings_{ds}.png", plot_embedding_grid(runs, ds)),
                          (f"curves_{ds}.png", plot_curves(runs, ds)),
                          (f"validation_{ds}.png", plot_validation(runs, ds)),
                          (f"shift_{ds}.png", plot_shift(shift_summary, summary, ds))):
            if png is not None:
                figures[name] = png
    bars = plot_recall_bars(summary, confidence)
    if bars is not None:
        figures["recall_at_1.png"] = bars
    for name, png in figures.items():
        put(name, png)
    page = render_html(out_dir, runs, summary, shift_summary, figures, _unfinished(out_dir),
                       confidence, paired, include, references)
    put("report.html", page.encode())
    return written
