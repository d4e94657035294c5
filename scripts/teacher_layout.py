"""GEMINI's 2-D target layout under several teacher settings, without training a student.

A cheap screen before the full validation comparison of teacher settings (which trains the
ResNet-18 student, ~20 min per run on 2 cores). For each (setting, seed) the teacher is trained
exactly as inside a G-DML run (Algorithm 1, on the training part of the 90/10 split) and its
targets are measured on the **validation** split only:

* ``sv_ratio``: second / first singular value of the centred training targets. Near 0 the
  classes lie on a line (what the ``cpu`` teacher did on CIFAR-10, where the student's
  validation MAP@R was half that of the authors' teacher); near 1 the map uses both axes.
* ``val_r1`` / ``val_mapr``: Recall@1 and MAP@R of the validation targets searched among the
  training targets. Each sample is mapped by its own class's stream, so this measures how well
  the classes are kept apart in the map (how much the student is asked to separate), not
  retrieval from images.
* ``fisher``: between-class over within-class variance of the validation targets.

    .venv/bin/python scripts/teacher_layout.py --dataset fashion-mnist \
        --data-dir ../shared/datasets --seeds 1 2 \
        --setting cpu '{}' \
        --setting authors '{"gemini_inputs": "raw255", "gemini_lr": 0.001, "gemini_batch": 64,
                            "gemini_epochs": 10, "gemini_redraw": false}' --out layout.jsonl

Rows are appended to ``--out`` as JSON lines as they finish; settings already there are skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from guided_dml.evaluation import evaluate
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.run import RunContext, prepare_data, teacher_phase
from guided_dml.models.embedding import channel_stats
from guided_dml.training.history import RunHistory


def fisher_ratio(points: torch.Tensor, labels: torch.Tensor) -> float:
    """Between-class variance of the class means over the mean within-class variance."""
    centre = points.mean(dim=0)
    between, within = 0.0, 0.0
    for c in labels.unique():
        group = points[labels == c]
        share = len(group) / len(points)
        between += share * float((group.mean(dim=0) - centre).pow(2).sum())
        within += share * float((group - group.mean(dim=0)).pow(2).sum(dim=1).mean())
    return between / max(within, 1e-12)


def measure(setting: dict, dataset: str, data_dir: str | None, seed: int) -> dict:
    cfg = resolve_config({"dataset": dataset, "data_dir": data_dir, "method": "gdml",
                          "seed": seed, "progress": False, **setting})
    data = prepare_data(cfg)
    mean, std = channel_stats(data.train.images)
    start = time.perf_counter()
    ctx = RunContext(cfg, data, None, torch.device("cpu"), f"gemini on {dataset}", False,
                     RunHistory(None))
    teacher = teacher_phase(ctx, mean, std)
    train_t, val_t = teacher.train_targets, teacher.val_targets
    seconds = time.perf_counter() - start
    centred = train_t - train_t.mean(dim=0)
    sv = torch.linalg.svdvals(centred)
    scores = evaluate(val_t, data.val.labels, train_t, data.train.labels, nmi=False)
    return {
        "sv_ratio": float(sv[1] / sv[0]) if len(sv) > 1 else 0.0,
        "val_r1": scores["recall@1"], "val_mapr": scores["map@r"],
        "fisher": fisher_ratio(val_t, data.val.labels),
        "last_loss": teacher.history[-1]["train_loss"], "seconds": round(seconds, 1),
        # With gemini_restarts: every attempt's final loss, and which one was kept.
        "attempts": {phase: recs[-1]["train_loss"] for phase, recs in ctx.history.phases.items()},
        "kept": next((p for p, recs in ctx.history.phases.items() if recs is teacher.history),
                     None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--setting", nargs=2, action="append", metavar=("NAME", "JSON"),
                    help="a named teacher setting over the cpu preset (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    settings = args.setting or [("cpu", "{}")]

    done = set()
    if args.out.exists():
        done = {(r["dataset"], r["setting"], r["seed"])
                for r in map(json.loads, args.out.read_text().splitlines())}
    for name, text in settings:
        for seed in args.seeds:
            if (args.dataset, name, seed) in done:
                continue
            row = {"dataset": args.dataset, "setting": name, "seed": seed,
                   "config": json.loads(text),
                   **measure(json.loads(text), args.dataset, args.data_dir, seed)}
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)


if __name__ == "__main__":
    main()
