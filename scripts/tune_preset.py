"""Validation-split study of preset settings (never looks at the test set).

Trains every trial of a plan with :func:`train_model` and records, per trial, the validation
score of every epoch (the curve), the selected epoch, whether the fit converged (issue 13's rule:
less than half a point gained over the last third of the epochs) and the wall time. This is how
the ``cpu`` preset's settings are chosen (docs/presets.md).

Two ways to give the trials:

    # a grid: every combination, for every method and seed
    .venv/bin/python scripts/tune_preset.py --dataset digits --methods gdml siamese \\
        --seeds 3 --grid '{"epochs": [30, 60], "lr": [0.1, 0.05]}' --out tune.jsonl

    # a plan: a JSON list of {"name", "method", "settings"} (an equal budget per method is
    # the plan's job; the summary prints the number of trials of each method)
    .venv/bin/python scripts/tune_preset.py --dataset fashion-mnist --data-dir ../shared/datasets \\
        --plan docs/results/study/plan.json --fixed '{"train_subset": 10000}' \\
        --out docs/results/study/trials.jsonl --shard 0/2

Rows are appended to ``--out`` as JSON lines as they finish, so a killed study resumes (trials
already in the file are skipped); ``--shard k/n`` runs every n-th trial, so n processes share a
plan and one output file. A setting given as ``null`` (e.g. ``"clip_value": null``) unsets it.
A trial that fails (the loss diverges) is recorded with its error and a score of 0.
``--winners FILE`` writes each method's best settings for ``gdml benchmark --method-settings``.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from guided_dml.atomic import write_figure
from guided_dml.errors import GdmlError
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.run import prepare_data, train_model
from guided_dml.training.trainer import convergence


def _variants(grid: dict[str, list]) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def _trials(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.plan:
        plan = json.loads(Path(args.plan).read_text())
        return [{"name": t["name"], "method": t["method"], "settings": t.get("settings", {}),
                 "seed": seed} for t in plan for seed in range(args.seeds)]
    return [{"name": json.dumps(v, sort_keys=True), "method": m, "settings": v, "seed": seed}
            for v in _variants(json.loads(args.grid)) for m in args.methods for seed in range(args.seeds)]


def _key(trial: dict[str, Any]) -> str:
    return json.dumps([trial["method"], trial["seed"], trial["name"]], sort_keys=True)


def run_trial(trial: dict[str, Any], args: argparse.Namespace, fixed: dict[str, Any]) -> dict[str, Any]:
    settings = {**fixed, **trial["settings"]}
    unset = {k: None for k, v in settings.items() if v is None}
    cfg = resolve_config({"dataset": args.dataset, "data_dir": args.data_dir, "method": trial["method"],
                          "seed": trial["seed"], "progress": False, **settings})
    cfg = dataclasses.replace(cfg, **unset).validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    row: dict[str, Any] = {"method": trial["method"], "seed": trial["seed"], "name": trial["name"],
                           "settings": trial["settings"], "fixed": fixed,
                           "threads": torch.get_num_threads()}
    start = time.perf_counter()
    try:
        trained = train_model(cfg, prepare_data(cfg))
    except GdmlError as e:
        return {**row, "val_score": 0.0, "error": str(e), "seconds": time.perf_counter() - start}
    hist = trained.result.history
    best = hist[trained.result.best_epoch]
    teacher = trained.phases.get("teacher", [])
    return {
        **row, "val_score": best.get("val_score"), "best_epoch": trained.result.best_epoch + 1,
        "epochs": len(hist), **convergence(hist),
        "curve": [h.get("val_score") for h in hist], "lr_curve": [h["lr"] for h in hist],
        "train_loss": [h["train_loss"] for h in hist],
        "epoch_seconds": [round(h["seconds"], 2) for h in hist],
        "teacher_seconds": round(sum(h["seconds"] for h in teacher), 2),
        "seconds": time.perf_counter() - start, "config_hash": cfg.hash(),
    }


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:  # shards share the file: one locked write per row
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row) + "\n")


def summarize(rows: list[dict[str, Any]]) -> str:
    """Markdown: per method and trial, the mean validation score over seeds, best first."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["name"]), []).append(r)
    lines = ["| method | trial | val score | best epoch / epochs | converged | minutes |",
             "|---|---|---:|---:|:-:|---:|"]
    by_method: dict[str, list[tuple[float, str]]] = {}
    for (method, name), rs in groups.items():
        scores = [r["val_score"] for r in rs]
        mean = statistics.mean(scores)
        sd = f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
        epochs = "; ".join(f"{r.get('best_epoch', '-')}/{r.get('epochs', '-')}" for r in rs)
        conv = "; ".join("err" if "error" in r else {True: "yes", False: "no", None: "-"}[r.get("converged")]
                         for r in rs)
        minutes = statistics.mean(r["seconds"] for r in rs) / 60
        by_method.setdefault(method, []).append((mean, f"| {method} | {name} | {mean:.4f}{sd} | {epochs} | "
                                                       f"{conv} | {minutes:.1f} |"))
    for method in sorted(by_method):
        lines += [line for _, line in sorted(by_method[method], reverse=True)]
    counts = ", ".join(f"{m}: {len(v)}" for m, v in sorted(by_method.items()))
    return "\n".join(lines) + f"\n\nTrials per method: {counts}\n"


def winners(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method, the settings of its best trial (mean validation score over its seeds; a
    ``check:`` trial measures numerics, not settings, and is left out): what ``gdml benchmark
    --method-settings`` reads."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if not r["name"].startswith("check:"):
            groups.setdefault((r["method"], r["name"]), []).append(r)
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for (method, _), rs in groups.items():
        score = statistics.mean(r["val_score"] or 0.0 for r in rs)
        if method not in best or score > best[method][0]:
            best[method] = (score, rs[0]["settings"])
    return {method: settings for method, (_, settings) in sorted(best.items())}


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per method: the validation curve (score per epoch) of each of its trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({r["method"] for r in rows if r.get("curve")})
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        for r in sorted((r for r in rows if r["method"] == method and r.get("curve")),
                        key=lambda r: -(r["val_score"] or 0)):
            curve = r["curve"]
            ax.plot(range(1, len(curve) + 1), curve, marker=".", lw=1.2,
                    ls="--" if r["name"].startswith("check:") else "-",
                    label=f"{r['name']} ({r['val_score']:.3f})")
        ax.set_title(method)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("validation score")
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--methods", nargs="+", default=["gdml"])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--grid", default="{}", help="JSON: setting -> list of values")
    ap.add_argument("--plan", default=None, help="JSON file: a list of trials")
    ap.add_argument("--fixed", default="{}", help="JSON: settings for every trial")
    ap.add_argument("--shard", default="0/1", help="k/n: run every n-th trial, from the k-th")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--summary-only", action="store_true", help="print the summary of --out")
    ap.add_argument("--plot", type=Path, default=None, help="PNG of the validation curves")
    ap.add_argument("--winners", type=Path, default=None,
                    help="JSON: each method's best settings, for gdml benchmark --method-settings")
    args = ap.parse_args()
    k, n = (int(v) for v in args.shard.split("/"))
    fixed = json.loads(args.fixed)

    if not args.summary_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for i, trial in enumerate(_trials(args)):
            if i % n != k:
                continue
            done = set()
            if args.out.exists():  # reread: another shard may have finished this one
                done = {_key(json.loads(line)) for line in args.out.read_text().splitlines() if line}
            if _key(trial) in done:
                continue
            row = run_trial(trial, args, fixed)
            _append(args.out, row)
            print(json.dumps({k2: row.get(k2) for k2 in ("method", "name", "val_score", "best_epoch",
                                                          "converged", "seconds", "error")}), flush=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines() if line]
    print(summarize(rows))
    if args.plot:
        plot_curves(rows, args.plot)
    if args.winners:
        args.winners.write_text(json.dumps(winners(rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
