"""Statistics and aggregation: confidence intervals, per-method summaries, paired comparisons.

Confidence intervals are Student-t intervals over seeds (the paper: "mean ± 95 % CI over 10
runs"): ``t_{(1+c)/2, n−1} · s / √n`` with ``s`` the sample standard deviation (Student 1908).
Summaries are in percent, the paper's unit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ..shift import CLEAN
from .names import dataset_key, method_key
from .records import METRICS, _float

#: The metrics of the paired, seed-by-seed comparisons (:func:`paired_comparisons`).
PAIRED_METRICS = ("recall@1", "map@r", "robustness_auc")


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


def error_extent(mean: float, ci: float) -> tuple[float, float]:
    """Lengths of an error bar below and above ``mean`` on the 0–100 scale.

    Clipped to the scale (with two seeds t = 12.7 and the interval leaves it); NaN for one seed,
    which has no interval, so that matplotlib draws no bar rather than a zero-width one.
    """
    if not math.isfinite(ci):
        return math.nan, math.nan
    return min(ci, mean), min(ci, 100.0 - mean)


def summarize(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per (data set, method): seeds, mean and CI (in %) of every metric, mean times.

    Keys: ``dataset``, ``method``, ``n`` (runs), ``seeds`` (space-separated), for each metric
    ``m`` of :data:`~.records.METRICS` (and ``robustness_auc`` when shift results exist)
    ``m_mean`` and ``m_ci`` in percent, the paper's unit; ``wall_seconds_mean``,
    ``train_seconds_mean``, ``eval_seconds_mean``, ``epochs_run_mean``; ``converged`` (runs whose
    validation score had stopped improving) out of ``n_convergence`` (runs that recorded it).
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


def _datasets(summary: Sequence[dict[str, Any]]) -> list[str]:
    """The data sets of a summary, in the report's order (:func:`~.names.dataset_key`)."""
    return sorted({s["dataset"] for s in summary}, key=dataset_key)


# ---------------------------------------------------------------------------- covariate shift


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


def _corruption_order(rows: Iterable[dict[str, Any]]) -> list[str]:
    """``clean`` first, then the corruptions in the order of the shifts module's registry."""
    from ...data.shifts import CORRUPTIONS

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


# ---------------------------------------------------------------------------- paired comparisons


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


def _paired_columns(prows: Sequence[dict[str, Any]]) -> list[str]:
    """Columns of ``paired.csv`` (rows of :func:`paired_comparisons`)."""
    cols = ["dataset", "method", "reference", "n", "seeds", "wins"]
    return cols + [f"{m}_{k}" for m in PAIRED_METRICS for k in ("diff_mean", "diff_ci", "per_seed")
                   if any(f"{m}_{k}" in r for r in prows)]
