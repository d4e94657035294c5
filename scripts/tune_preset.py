"""Validation-split study of preset settings (never looks at the test set).

Trains every (variant, method, seed) of a grid with :func:`train_model` and reports the
validation score of the selected epoch (``select_on``, MAP@R by default) as mean ± std over
seeds. This is how the ``cpu`` preset's settings were chosen (docs/presets.md).

    .venv/bin/python scripts/tune_preset.py --dataset digits --methods gdml siamese \
        --seeds 3 --grid '{"epochs": [30, 60], "lr": [0.1, 0.05]}' --out tune.jsonl

Rows are appended to ``--out`` as JSON lines as they finish, so a killed study resumes: the
variants already in the file are skipped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.run import prepare_data, train_model


def _variants(grid: dict[str, list]) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--methods", nargs="+", default=["gdml"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--grid", default="{}", help="JSON: setting -> list of values")
    ap.add_argument("--fixed", default="{}", help="JSON: settings for every variant")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done.add(json.dumps([row["method"], row["seed"], row["variant"]], sort_keys=True))
    fixed = json.loads(args.fixed)
    for variant in _variants(json.loads(args.grid)):
        for method in args.methods:
            for seed in range(args.seeds):
                key = json.dumps([method, seed, variant], sort_keys=True)
                if key in done:
                    continue
                cfg = resolve_config({
                    "dataset": args.dataset, "data_dir": args.data_dir, "method": method,
                    "seed": seed, "progress": False, **fixed, **variant,
                })
                start = time.perf_counter()
                trained = train_model(cfg, prepare_data(cfg))
                hist = trained.result.history
                best = next(h for h in hist if h.get("epoch") == trained.result.best_epoch)
                row = {
                    "method": method, "seed": seed, "variant": variant, "fixed": fixed,
                    "val_score": best.get("val_score"), "best_epoch": trained.result.best_epoch,
                    "seconds": time.perf_counter() - start,
                }
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)

    # Summary: mean ± std of the validation score over seeds, per variant and method.
    rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    groups: dict[str, list[float]] = {}
    for r in rows:
        name = f"{r['method']:9s} {json.dumps(r['variant'], sort_keys=True)}"
        groups.setdefault(name, []).append(r["val_score"])
    for name, scores in sorted(groups.items()):
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"{name}  val {statistics.mean(scores):.4f} ± {sd:.4f}  (n={len(scores)})")


if __name__ == "__main__":
    main()
