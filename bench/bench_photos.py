"""The photo walkthrough of the README ("Your own images") on 3 CIFAR-10 classes × 40 photos.

Extracts the photos from the CIFAR-10 JPEG tarball into a temporary folder (never into the
repository), runs `gdml train --dataset photos/` with no tuning flags, and scores 1-NN on the raw
pixels of the same split (the same ``load_image_folder`` split, the same ``evaluate``) in the same
run, so the two numbers are comparable and the timing can be read as a ratio.

    .venv/bin/python bench/bench_photos.py [--tarball ../shared/datasets/cifar10-jpeg.tar.gz]
        [--classes airplane automobile bird] [--per-class 40] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import time
from pathlib import Path

from guided_dml.cli import main as gdml
from guided_dml.data import load_image_folder
from guided_dml.evaluation import evaluate


def extract(tarball: Path, classes: list[str], per_class: int, root: Path, test_per_class: int = 0) -> Path:
    """``root/photos/<class>/<k>.jpg``: the first ``per_class`` training photos of each class;
    with ``test_per_class``, ``photos/train/<class>`` and the next ones in ``photos/test/<class>``."""
    total = per_class + test_per_class
    wanted = {c: 0 for c in classes}
    with tarfile.open(tarball) as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or parts[1] not in wanted or not member.isfile():
                continue
            if wanted[parts[1]] >= total:
                continue
            split = ("train" if wanted[parts[1]] < per_class else "test") if test_per_class else ""
            wanted[parts[1]] += 1
            out = root / "photos" / split / parts[1] / parts[2]
            out.parent.mkdir(parents=True, exist_ok=True)
            f = tar.extractfile(member)
            assert f is not None
            out.write_bytes(f.read())
            if all(v >= total for v in wanted.values()):
                break
    return root / "photos"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tarball", type=Path, default=Path("../shared/datasets/cifar10-jpeg.tar.gz"))
    ap.add_argument("--classes", nargs="+", default=["airplane", "automobile", "bird"])
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--test-per-class", type=int, default=0,
                    help="photos/train/<class> + photos/test/<class> with this many test photos")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = extract(args.tarball, args.classes, args.per_class, root, args.test_per_class)
        data = load_image_folder(photos, progress=False, cache=False)
        train, test = data["train"], data["test"]
        t0 = time.perf_counter()
        raw = evaluate(test.images.flatten(1).float() / 255, test.labels,
                       train.images.flatten(1).float() / 255, train.labels, nmi=False)
        print(json.dumps({"map": "raw pixels 1-NN", "recall@1": round(raw["recall@1"], 4),
                          "precision@1": round(raw["precision@1"], 4),
                          "seconds": round(time.perf_counter() - t0, 2),
                          "n_train": len(train), "n_test": len(test)}), flush=True)
        for seed in args.seeds:
            out = root / f"run-{seed}"
            t0 = time.perf_counter()
            rc = gdml(["train", "--dataset", f"{photos}/", "--out", str(out), "--seed", str(seed), "-q"])
            assert rc == 0
            m = json.loads((out / "metrics.json").read_text())
            print(json.dumps({"map": "gdml train (README, no flags)", "seed": seed,
                              "recall@1": round(m["recall@1"], 4),
                              "precision@1": round(m["precision@1"], 4),
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
