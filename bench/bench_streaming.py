"""Retrieval sets that train: batches from the memory-mapped decoded cache, against in memory.

``data/streaming.py`` decodes CUB-200 / Cars-196 / SOP / In-Shop once into a ``uint8`` ``.npy``
(resize 256, centre 224) and training reads batches from it through the page cache. Measured on
a CUB-200 replica written here (the real photos are not on these machines: smooth random
images of CUB's typical 500 x 375 JPEG size, so they compress and decode like photos more than
noise would), in the same run:

* **the one-off decode** (``as_array_dataset``, worker processes) against a sequential Pillow
  loop of the same files with the same transform;
* **a training batch** (128 images, 224 px, random-resized crop + flip) from the mapped file,
  against the same batches from the same pixels held in memory (the in-memory path every other
  data set takes), and against the per-file pipeline the cache replaces (a torch
  ``DataLoader`` of :class:`~guided_dml.data.retrieval.RetrievalDataset` with the literature's
  ``train_transform``, 2 worker processes);
* each as a share of one ResNet-18 training step on the same batch (``bench_training.
  raw_throughput``): what matters is whether data loading can keep up with the network.

Usage::

    .venv/bin/python bench/bench_streaming.py                # 1 024 images
    .venv/bin/python bench/bench_streaming.py --images 4096
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training import raw_throughput
from guided_dml.data.retrieval import load_cub200
from guided_dml.data.streaming import as_array_dataset, decode_view
from guided_dml.data.transforms import train_transform
from guided_dml.models.resnet import resnet18
from guided_dml.training.batches import ArrayBatches, random_resized_crop_flip

BATCH = 128


def write_cub_replica(root: Path, n: int, seed: int = 0) -> Path:
    """``CUB_200_2011/`` with ``n`` smooth random 500 x 375 JPEGs, half of them in classes
    1-100 (train), half in 101-200 (test)."""
    base = root / "CUB_200_2011"
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        c = 1 + (i % 100) + (100 if i >= n // 2 else 0)
        rel = f"{c:03d}.Bird_{c}/Bird_{c}_{i}.jpg"
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)  # upscaled: photo-like entropy
        path = base / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC).save(path, quality=90)
        images.append(f"{i + 1} {rel}")
        labels.append(f"{i + 1} {c}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return base


def _seconds(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def batches_per_second(source, n_batches: int) -> float:
    """Images/s drawing ``n_batches`` batches of ``source`` (a batch source or an iterable)."""
    def endless():  # epoch after epoch, so a small replica gives as many batches as asked
        g = torch.Generator().manual_seed(0)
        while True:
            yield from (source(g) if callable(source) else source)

    it = endless()
    next(it)  # the first batch pays for start-up (workers, page faults): not the steady state
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * BATCH / (time.perf_counter() - t0)


def run(n_images: int, workers: int) -> list[tuple[str, float, str, float]]:
    """``(what, ours, reference, theirs)`` rows, in images/s."""
    if n_images // 2 < BATCH:  # the training half must fill a batch (the DataLoader drops the rest)
        raise SystemExit(f"--images must be at least {2 * BATCH}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cub_replica(root, n_images)
        train = load_cub200(root)["train"]
        paths = [str(p) for p in train.paths]
        # The one-off decode: worker processes into the .npy, against one sequential loop.
        t_ours = _seconds(lambda: as_array_dataset(train, cache_dir=root / "cache",
                                                   num_workers=workers, progress=False))
        t_loop = _seconds(lambda: decode_view(paths, 256, 224))
        rows.append(("decode into the cache (once)", len(train) / t_ours,
                     "sequential Pillow loop", len(train) / t_loop))
        mapped = as_array_dataset(train, cache_dir=root / "cache", progress=False)
        in_memory = mapped.images[:]  # the same pixels as a resident tensor
        n_batches = max(2, len(train) // BATCH - 1)
        ours = batches_per_second(ArrayBatches(mapped.images, mapped.labels, BATCH,
                                               augment=random_resized_crop_flip), n_batches)
        memory = batches_per_second(ArrayBatches(in_memory, mapped.labels, BATCH,
                                                 augment=random_resized_crop_flip), n_batches)
        rows.append(("batch from the mapped cache", ours, "the same from memory", memory))
        train.transform = train_transform()
        loader = torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True,
                                             num_workers=workers, drop_last=True,
                                             persistent_workers=False)
        per_file = batches_per_second(loader, n_batches)
        rows.append(("batch from the mapped cache", ours,
                     f"per-file DataLoader ({workers} workers)", per_file))
    torch.manual_seed(0)
    model = resnet18(in_channels=3, out_dim=128, stem="imagenet")
    net = raw_throughput(model, torch.rand(32, 3, 224, 224), steps=3)
    rows.append(("ResNet-18 train step, 224 px", net, "(the network, for scale)", net))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024, help="replica size (half train)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores, {args.images} images")
    rows = run(args.images, args.workers)
    print(f"{'what':34s} {'img/s':>8s}  {'reference':38s} {'img/s':>8s} {'ratio':>6s}")
    for what, ours, ref, theirs in rows:
        print(f"{what:34s} {ours:8.0f}  {ref:38s} {theirs:8.0f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
