"""The digits comparison of docs/results.md: a scikit-learn Pipeline of each 2-D map + 1-NN.

``load_digits()`` as it comes (8×8, values 0–16), 70/30 stratified split (``random_state=0``);
each map is fitted on the 70 % (labels passed by the Pipeline) and scored by 1-NN accuracy on
the 30 %. References in the same run: supervised UMAP 2-D and 1-NN on the raw pixels, so the
timings can be read as ratios on a busy machine.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_digits_pipeline.py [--seeds 0 1 2] [--skip-umap]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from guided_dml import GuidedEmbedder


def _score(pipe, xtr, ytr, xte, yte) -> tuple[float, float]:
    t0 = time.perf_counter()
    acc = float(pipe.fit(xtr, ytr).score(xte, yte))
    return acc, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--scale", choices=("as-is", "uint8", "unit"), default="as-is",
                    help="as-is: 0-16 floats; uint8: 0-255; unit: 0-1")
    args = ap.parse_args()
    x, y = load_digits(return_X_y=True)
    if args.scale == "uint8":
        x = np.rint(x * 255 / 16).astype(np.uint8)
    elif args.scale == "unit":
        x = x / 16.0
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    rows = []
    acc, sec = _score(KNeighborsClassifier(1), xtr, ytr, xte, yte)
    rows.append({"map": "raw pixels (64-D)", "seed": None, "accuracy": acc, "seconds": sec})
    for seed in args.seeds:
        if not args.skip_umap:
            import umap

            acc, sec = _score(make_pipeline(umap.UMAP(n_components=2, random_state=seed),
                                            KNeighborsClassifier(1)), xtr, ytr, xte, yte)
            rows.append({"map": "supervised UMAP 2-D", "seed": seed, "accuracy": acc, "seconds": sec})
        acc, sec = _score(make_pipeline(GuidedEmbedder(random_state=seed), KNeighborsClassifier(1)),
                          xtr, ytr, xte, yte)
        rows.append({"map": "GuidedEmbedder 2-D", "seed": seed, "accuracy": acc, "seconds": sec})
    print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"), "scale": args.scale}))
    print("| map | seed | 1-NN accuracy | seconds |\n|---|---:|---:|---:|")
    for r in rows:
        seed = "" if r["seed"] is None else r["seed"]
        print(f"| {r['map']} | {seed} | {r['accuracy']:.3f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
