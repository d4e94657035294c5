"""Data loading: IDX, CIFAR-10 pickles, JPEG folder (uncached and cached), each against a baseline.

Every loader reads the public file format into ``uint8`` tensors held in memory, so loading
happens once per run and must be small next to training. Measured, each against the simplest
correct way of doing the same thing, in the same run:

* **IDX** (MNIST / Fashion-MNIST ``.gz``): ``load_dataset("fashion-mnist")`` against
  ``gzip.decompress`` + ``np.frombuffer`` of the four files (the lower bound: decompression).
* **CIFAR-10 pickles**: ``read_cifar10_folder`` on a ``cifar-10-batches-py/`` folder written here
  in the official format (the real one is not on these machines) against the CIFAR page's own
  ``pickle.load(f, encoding="bytes")`` loop.
* **JPEG folder, uncached**: ``load_image_folder(archive, cache=False)`` (parallel decoding
  processes) against a sequential Pillow loop over the same archive members.
* **JPEG folder, cached**: the second load (the decoded ``.npz`` cache) against the first.

Also printed: every loader's time as a share of one training epoch over the same images at the
cpu preset's raw forward/backward speed (``bench_training.raw_throughput``): loading should be a
small fraction of *one* epoch.

Usage::

    .venv/bin/python bench/bench_data.py                 # CIFAR JPEG subset of 10 000 images
    .venv/bin/python bench/bench_data.py --jpeg-images 0   # the whole archive (60 000)
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from guided_dml.atomic import write_atomic, write_bytes
from guided_dml.data import load_dataset
from guided_dml.data.cifar import read_cifar10_folder
from guided_dml.data.image_folder import load_image_folder
from guided_dml.errors import DataError

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@dataclass
class Measure:
    """One loader against its baseline on the same data."""

    what: str
    images: int
    ours_s: float
    baseline: str
    baseline_s: float

    @property
    def speedup(self) -> float:
        return self.baseline_s / self.ours_s


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_idx(data_dir: Path) -> Measure:
    # download=False: the benchmark measures loaders, never the network (nor a failed download)
    splits, ours = _timed(lambda: load_dataset("fashion-mnist", data_dir=data_dir, download=False))
    files = sorted((data_dir / "fashion-mnist").glob("*.gz"))

    def baseline() -> int:
        n = 0
        for f in files:
            raw = gzip.decompress(f.read_bytes())
            n += len(np.frombuffer(raw, dtype=np.uint8))
        return n

    _, base = _timed(baseline)
    n = sum(len(s) for s in splits.values())
    return Measure("IDX .gz (Fashion-MNIST)", n, ours, "gzip + frombuffer", base)


def _write_cifar_pickles(folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    """The official ``cifar-10-batches-py`` layout: 5 training batches, a test batch, meta."""
    folder.mkdir(parents=True)
    flat = images.reshape(len(images), -1)
    n_test = len(images) // 6
    parts = np.array_split(np.arange(len(images) - n_test), 5)
    batches = {f"data_batch_{i + 1}": idx for i, idx in enumerate(parts)}
    batches["test_batch"] = np.arange(len(images) - n_test, len(images))
    for name, idx in batches.items():
        batch = {b"data": flat[idx], b"labels": labels[idx].tolist()}
        write_bytes(folder / name, pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in classes]}
    write_bytes(folder / "batches.meta", pickle.dumps(meta, protocol=2))


def bench_cifar_pickles(images: np.ndarray, labels: np.ndarray, classes: list[str], tmp: Path) -> Measure:
    folder = tmp / "cifar-10-batches-py"
    _write_cifar_pickles(folder, images, labels, classes)
    splits, ours = _timed(lambda: read_cifar10_folder(folder))

    def baseline() -> int:  # https://www.cs.toronto.edu/~kriz/cifar.html "unpickle"
        n = 0
        for f in sorted(folder.iterdir()):
            with open(f, "rb") as fo:
                d = pickle.load(fo, encoding="bytes")
            if b"data" in d:
                n += len(np.asarray(d[b"data"]).reshape(-1, 3, 32, 32))
        return n

    _, base = _timed(baseline)
    n = sum(len(s) for s in splits.values())
    return Measure("CIFAR-10 pickles", n, ours, "pickle.load loop", base)


def _subset_archive(source: Path, n_images: int, dest: Path) -> Path:
    """A tar.gz of the first ``n_images`` train/test JPEGs of ``source`` (same layout)."""
    def write(f: BinaryIO) -> None:
        with tarfile.open(source) as src, tarfile.open(fileobj=f, mode="w:gz") as out:
            members = [m for m in src.getmembers() if m.isfile() and m.name.endswith(".jpg")]
            rng = np.random.default_rng(0)
            keep = sorted(rng.choice(len(members), size=min(n_images, len(members)), replace=False))
            for i in keep:
                m = members[i]
                out.addfile(m, src.extractfile(m))

    return write_atomic(dest, write)


def bench_jpeg(archive: Path, tmp: Path) -> tuple[Measure, Measure, tuple[np.ndarray, np.ndarray, list[str]]]:
    cache = tmp / "cache"
    options = {"size": 32, "mode": "RGB", "progress": False, "cache_dir": cache}
    splits, uncached = _timed(lambda: load_image_folder(archive, cache=False, **options))
    load_image_folder(archive, cache=True, **options)  # writes the cache
    _, cached = _timed(lambda: load_image_folder(archive, cache=True, **options))

    def baseline() -> int:  # one process, one image at a time
        n = 0
        with tarfile.open(archive) as tar:
            for m in tar:
                if m.isfile() and m.name.endswith(".jpg"):
                    img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
                    np.asarray(img.resize((32, 32)))
                    n += 1
        return n

    _, base = _timed(baseline)
    n = sum(len(s) for s in splits.values())
    images = np.concatenate([s.images.numpy() for s in splits.values()])
    labels = np.concatenate([s.labels.numpy() for s in splits.values()])
    classes = next(iter(splits.values())).classes
    return (
        Measure("JPEG folder, uncached", n, uncached, "sequential Pillow", base),
        Measure("JPEG folder, cached", n, cached, "uncached (first) load", uncached),
        (images, labels, classes),
    )


def run(jpeg_images: int = 10_000, data_dir: Path = DATASETS) -> list[Measure]:
    """All four measurements (CIFAR pickles are written from the decoded JPEGs).

    A measurement whose data are not on this machine (``../shared/datasets`` on a fresh clone)
    is skipped with a one-line note; nothing is downloaded and no folder is created.
    """
    rows = []
    try:
        rows.append(bench_idx(data_dir))
    except DataError as exc:
        print(f"  skipped IDX: {exc}", flush=True)
    archive = data_dir / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        print(f"  skipped JPEG folder and CIFAR-10 pickles: no {archive} on this machine", flush=True)
        return rows
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if jpeg_images:
            archive = _subset_archive(archive, jpeg_images, tmp / "cifar10-subset.tar.gz")
        uncached, cached, (images, labels, classes) = bench_jpeg(archive, tmp)
        rows.append(bench_cifar_pickles(images, labels, classes, tmp))
        rows += [uncached, cached]
    return rows


def epoch_seconds(images: int, raw_images_per_s: float) -> float:
    """One epoch's forward/backward time over ``images`` at ``raw_images_per_s``."""
    return images / raw_images_per_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jpeg-images", type=int, default=10_000,
                   help="decode a random subset of this many JPEGs (0: the whole archive)")
    p.add_argument("--data-dir", type=Path, default=DATASETS)
    args = p.parse_args()
    rows = run(args.jpeg_images, args.data_dir)
    print(f"{'loader':<26} {'images':>7} {'ours s':>8} {'img/s':>9} {'baseline':<22} {'base s':>8} "
          f"{'speed-up':>8}")
    for r in rows:
        print(f"{r.what:<26} {r.images:>7} {r.ours_s:>8.2f} {r.images / r.ours_s:>9.0f} "
              f"{r.baseline:<22} {r.baseline_s:>8.2f} {r.speedup:>7.1f}x")


if __name__ == "__main__":
    main()
