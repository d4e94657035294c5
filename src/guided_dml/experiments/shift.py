"""Covariate-shift evaluation: retrieval of corrupted test images against the clean training set.

The paper claims that G-DML generalises better under distributional shift. We measure it the
way CIFAR-10-C / MNIST-C do (Hendrycks & Dietterich 2019; Mu & Gilmer 2019): the trained model
embeds the *clean* reference set once; every corruption of :data:`guided_dml.data.shifts.CORRUPTIONS`
at every severity is applied to the test images, which are embedded and classified by their
nearest clean reference (Recall@1, macro-averaged, and Precision@1, as in the paper's tables).
One number per run summarises the curve: :func:`robustness_auc`, the normalised area under
Recall@1 against severity (0 = clean … 5).

Results live in ``shift.json`` in the run folder (:func:`write_shift`); the benchmark report
reads them.

Examples:
    >>> rows = evaluate_shift(model, ref_x, ref_y, test_x, test_y, max_test=2000)  # doctest: +SKIP
    >>> write_shift(run_dir, rows)  # doctest: +SKIP
    >>> robustness_auc(rows)["mean"]  # doctest: +SKIP
    0.71
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.shifts import CORRUPTIONS, MAX_SEVERITY, SEVERITY_PARAMS, corrupt
from ..data.splits import stratified_split
from ..errors import ConfigError, DataError

SHIFT_FILE = "shift.json"
CLEAN = "clean"  # the corruption name of the severity-0 row


def evaluate_shift(
    model: nn.Module,
    reference_images: torch.Tensor,
    reference_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    max_test: int | None = None,
    seed: int = 0,
    batch_size: int = 512,
) -> list[dict[str, Any]]:
    """Retrieval metrics of ``model`` on the clean and corrupted test set.

    Args:
        model: maps ``float (N, C, H, W)`` images in [0, 1] to ``(N, d)`` embeddings (the student
            or a baseline; GEMINI needs labels and cannot be evaluated this way).
        reference_images, reference_labels: the clean retrieval reference (the training set),
            ``uint8 (M, C, H, W)`` and ``(M,)``.
        test_images, test_labels: the test set to corrupt, ``uint8 (N, C, H, W)`` and ``(N,)``.
        corruptions: names from ``CORRUPTIONS``; all of them by default.
        severities: severities 1..5 to evaluate; the clean test set (severity 0) is always added.
        max_test: evaluate a fixed stratified subset of this many test images (the same subset
            for every corruption), to bound the cost of ``len(corruptions) × len(severities)``
            embeddings; ``None`` uses the whole test set.
        seed: seeds the subset and every corruption's randomness (noise, rotation signs, shift
            directions), so the same call gives the same rows.
        batch_size: embedding batch size.

    Returns:
        One row per (corruption, severity), after a first ``{"corruption": "clean",
        "severity": 0}`` row; each row has ``corruption``, ``severity``, ``n_test`` and every key
        that :func:`guided_dml.evaluation.evaluate` returns (``recall@1``, ``precision@1``, …).
    """
    # Lazy imports: the evaluation and training layers are heavier and not needed to read results.
    from ..evaluation import evaluate
    from ..training import embed

    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f"unknown corruption(s) {', '.join(map(repr, unknown))}; "
                          f"choose from {', '.join(CORRUPTIONS)}")
    levels = sorted({int(s) for s in severities})
    if any(not 1 <= s <= MAX_SEVERITY for s in levels):
        raise ConfigError(f"severities must lie in 1..{MAX_SEVERITY}, got {list(severities)}")
    for what, images in (("reference", reference_images), ("test", test_images)):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(f"evaluate_shift corrupts images: the {what} set must be uint8 "
                            f"N×C×H×W, got {images.dtype} of shape {tuple(images.shape)}")

    if max_test is not None and max_test < len(test_images):
        # Stratified, so that macro-averaged recall sees every class in its usual proportion.
        _, keep = stratified_split(test_labels, max_test / len(test_images), seed=seed)
        test_images, test_labels = test_images[keep], test_labels[keep]

    ref_emb = embed(model, reference_images, batch_size=batch_size)  # (M, d), once

    def row(name: str, severity: int, images: torch.Tensor) -> dict[str, Any]:
        metrics = evaluate(embed(model, images, batch_size=batch_size), test_labels,
                           ref_emb, reference_labels)
        return {"corruption": name, "severity": severity, "n_test": len(images),
                **{k: float(v) for k, v in metrics.items()}}

    rows = [row(CLEAN, 0, test_images)]
    for name in names:
        for severity in levels:
            rows.append(row(name, severity, corrupt(test_images, name, severity, seed=seed)))
    return rows


def _curve_auc(curve: dict[int, float]) -> float:
    """Trapezoid area under ``severity -> value`` divided by the severity range (so in [0, 1])."""
    sev = sorted(curve)
    vals = [curve[s] for s in sev]
    if len(sev) == 1:
        return float(vals[0])
    # Written out rather than np.trapezoid, which numpy < 2 lacks.
    area = sum((a + b) / 2 * (s1 - s0)
               for a, b, s0, s1 in zip(vals, vals[1:], sev, sev[1:], strict=False))
    return float(area / (sev[-1] - sev[0]))


def robustness_auc(rows: Iterable[dict[str, Any]], metric: str = "recall@1") -> dict[str, float]:
    """Normalised area under ``metric`` against severity (0 = clean … 5), trapezoid rule.

    Rows of one data set. When the rows carry a ``method`` key (rows of several runs, as the
    report gathers them) the result has one entry per method: at each severity the metric is
    averaged over corruptions (and seeds), the clean rows giving severity 0. Otherwise (the rows
    of one run, as :func:`evaluate_shift` returns them) it has one entry per corruption, each
    curve starting at the clean value, plus ``"mean"``: the area under the curve averaged over
    corruptions. 1 is a model that keeps perfect recall under every corruption.
    """
    rows = list(rows)
    if not rows:
        return {}
    by_method = all("method" in r for r in rows)
    # group -> severity -> values
    points: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    clean: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        value = float(r[metric])
        if by_method:
            group = str(r["method"])
            if r["corruption"] == CLEAN:
                clean[group].append(value)
            else:
                points[group][int(r["severity"])].append(value)
        elif r["corruption"] == CLEAN:
            clean[""].append(value)
        else:
            points[str(r["corruption"])][int(r["severity"])].append(value)
            points["mean"][int(r["severity"])].append(value)

    out: dict[str, float] = {}
    for group, curve in points.items():
        clean_vals = clean[group if by_method else ""]
        merged = {s: float(np.mean(v)) for s, v in curve.items()}
        if clean_vals:
            merged[0] = float(np.mean(clean_vals))
        out[group] = _curve_auc(merged)
    if "mean" in out:  # last, after the corruptions
        out["mean"] = out.pop("mean")
    return out


def write_shift(run_dir: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` (from :func:`evaluate_shift`) as ``run_dir/shift.json``, atomically.

    The file also holds the severity table used and the per-corruption robustness AUC.
    """
    from ..training.checkpoint import save_json  # write-then-rename

    path = Path(run_dir) / SHIFT_FILE
    used = sorted({r["corruption"] for r in rows} - {CLEAN})
    payload = {
        "rows": list(rows),
        "robustness_auc": robustness_auc(rows),
        "severity_params": {name: list(SEVERITY_PARAMS[name]) for name in used
                            if name in SEVERITY_PARAMS},
    }
    save_json(payload, path)
    return path


def read_shift(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``shift.json`` written by :func:`write_shift` (a run folder or the file)."""
    path = Path(path)
    if path.is_dir():
        path = path / SHIFT_FILE
    try:
        data = json.loads(path.read_text())
        rows = data["rows"] if isinstance(data, dict) else data
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read covariate-shift results from {path}: {err}") from err
    if not isinstance(rows, list):
        raise DataError(f"{path}: 'rows' must be a list of objects")
    return rows

