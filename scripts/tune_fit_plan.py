"""Validation runs behind the fit plan (docs/presets.md, "The fit plan"): never the test split.

``load_digits()`` as it comes; the training part of the 70/30 split (``random_state=0``) is split
again 70/30 (``random_state=1``); ``GuidedEmbedder(**KWARGS)`` is fitted on the first part and
the 1-NN accuracy of its 2-D map is scored on the second. Prints one JSON line per run.

    .venv/bin/python scripts/tune_fit_plan.py '{"random_state": 0}' \
        '{"random_state": 0, "epochs": 354}' '{"random_state": 0, "options": {"lr": 0.1}}'
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from guided_dml import GuidedEmbedder


def run(kwargs: dict) -> dict:
    x, y = load_digits(return_X_y=True)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    xf, xv, yf, yv = train_test_split(x_train, y_train, test_size=0.3, stratify=y_train,
                                      random_state=1)
    t0 = time.perf_counter()
    est = GuidedEmbedder(**kwargs).fit(xf, yf)
    seconds = time.perf_counter() - t0
    ef = est.transform(xf)
    centres = np.stack([ef[yf == k].mean(0) for k in np.unique(yf)])
    sv = np.linalg.svd(centres - centres.mean(0), compute_uv=False)
    h = est.history_
    return {
        "kwargs": kwargs,
        "val_accuracy": round(float(KNeighborsClassifier(1).fit(ef, yf).score(est.transform(xv), yv)), 4),
        "seconds": round(seconds, 1),
        "teacher_seconds": round(sum(r["seconds"] for r in h.get("teacher", [])), 1),
        "student_seconds": round(sum(r["seconds"] for r in h["student"]), 1),
        "best_epoch": est.best_epoch_,
        "layout_ratio": round(float(sv[1] / sv[0]), 3),  # 2-D (≈1) or a line (≈0)
        "config": {k: est.config_[k] for k in ("epochs", "batch_size", "lr", "schedule",
                                               "gemini_epochs", "gemini_inputs", "gemini_lr")},
    }


if __name__ == "__main__":
    for arg in sys.argv[1:] or ['{"random_state": 0}']:
        print(json.dumps(run(json.loads(arg))), flush=True)
