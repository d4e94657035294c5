"""What a learned map must beat: the references every results table carries (issue 13).

* ``raw-1nn``: the raw pixels (intensities in [0, 1], flattened) as the embedding: 1-NN and the
  retrieval metrics on the input space itself.
* ``umap-2d``: supervised UMAP (McInnes et al., 2018; umap-learn), fitted on the training set
  with its labels (``UMAP(n_components=2).fit(X_train, y=y_train)``), the test set
  ``transform``-ed: the 2-D map practitioners already have.

Both are scored by the same :func:`~guided_dml.evaluation.evaluate` as every method (test
queries against the training set), with their wall time. Under the class-disjoint protocol
(``split="classes"``) they are fitted on the seen classes' training images and scored as the
methods are: leave-one-out among the unseen classes' test images (UMAP ``transform``-s them onto
the map it learnt from other classes). umap-learn is an optional extra
(``pip install 'guided-dml[umap]'``).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import ArrayDataset, load_dataset
from ..data.splits import class_disjoint_splits
from ..errors import ConfigError, DataError
from ..evaluation import evaluate
from ..training.checkpoint import save_bytes
from .config import RunConfig
from .report import csv_bytes

REFERENCES = ("raw-1nn", "umap-2d")
log = logging.getLogger(__name__)


def _pixels(data: ArrayDataset) -> np.ndarray:
    """Images (uint8) as flattened [0, 1] intensities; feature vectors as they are."""
    # [:] reads a memory-mapped set (data/mapped.py) into memory; a tensor's is a view.
    x = data.images[:].numpy().reshape(len(data.images), -1).astype(np.float32)
    if data.images.dtype == torch.uint8:
        x /= 255.0  # in place: one float copy of the pixels, not two
    return x


def available_memory() -> int:
    """Bytes this machine can give without swapping (Linux's MemAvailable; elsewhere the
    physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_memory(train: ArrayDataset, test: ArrayDataset) -> None:
    """Refuse, before reading a pixel, references whose float pixels exceed the memory (SOP's
    120 000 photos at 224 px would be 72 GB), rather than be killed half-way."""
    need = (len(train) + len(test)) * math.prod(train.input_shape) * 4
    free = available_memory()
    if need > free:
        raise DataError(f"the references of {train.name.split('/')[0]} hold its pixels as floats: "
                        f"{need / 1e9:.1f} GB, and this machine has {free / 1e9:.1f} GB available; "
                        "run without --references (or on a subset)")


def reference_embeddings(name: str, train: ArrayDataset, test: ArrayDataset,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train embeddings, test embeddings)`` of reference ``name``.

    Raises:
        DataError: the pixels as floats would not fit in the available memory.
    """
    _check_memory(train, test)
    x_train, x_test = _pixels(train), _pixels(test)
    if name == "raw-1nn":
        return x_train, x_test
    if name == "umap-2d":
        try:
            import umap
        except ImportError as e:
            raise ConfigError("the umap-2d reference needs umap-learn: pip install "
                              "'guided-dml[umap]' (or umap-learn)") from e
        reducer = umap.UMAP(n_components=2, random_state=seed)
        emb_train = reducer.fit_transform(x_train, y=train.labels.numpy())
        return np.asarray(emb_train, dtype=np.float32), np.asarray(reducer.transform(x_test),
                                                                   dtype=np.float32)
    raise ConfigError(f"unknown reference {name!r}; choose from {', '.join(REFERENCES)}")


def score_reference(name: str, train: ArrayDataset, test: ArrayDataset, *, dataset: str,
                    seed: int = 0, leave_one_out: bool = False) -> dict[str, Any]:
    """One row of ``references.csv``: ``evaluate()``'s metrics of reference ``name`` plus its
    ``wall_seconds`` (fit, transform and evaluation). ``leave_one_out``: the test images are
    queries and reference (the class-disjoint protocol), else the training set is searched."""
    t0 = time.perf_counter()
    emb_train, emb_test = reference_embeddings(name, train, test, seed=seed)
    if leave_one_out:
        metrics = evaluate(emb_test, test.labels, seed=seed)
    else:
        metrics = evaluate(emb_test, test.labels, emb_train, train.labels, seed=seed)
    return {"dataset": dataset, "method": name, "seed": seed,
            **{k: float(v) for k, v in metrics.items()},
            "wall_seconds": time.perf_counter() - t0, "n_train": len(train), "n_test": len(test)}


COLUMNS = ("dataset", "method", "seed", "recall@1", "f1", "precision@1", "r_precision", "map@r",
           "nmi", "wall_seconds", "n_train", "n_test")


def run_references(datasets: list[str], out: str | Path, *, data_dir: str | None = None,
                   names: tuple[str, ...] = REFERENCES, seed: int = 0, split: str = "closed",
                   train_classes: str | None = None) -> Path:
    """Score ``names`` on every data set into ``OUT/references.csv`` (rows already there are
    kept and not recomputed, so an interrupted call resumes). Rows are keyed by the data set's
    label (``fashion-mnist-unseen`` under ``split="classes"``), as the methods' runs are."""
    path = Path(out) / "references.csv"
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with path.open() as f:
            rows = list(csv.DictReader(f))
    done = {(r["dataset"], r["method"], str(r["seed"])) for r in rows}
    for dataset in datasets:
        label = RunConfig(dataset=dataset, split=split, train_classes=train_classes).dataset_label
        todo = [n for n in names if (label, n, str(seed)) not in done]
        if not todo:
            continue
        splits = load_dataset(dataset, data_dir=data_dir)
        train, test = splits["train"], splits["test"]
        if split == "classes":
            train, test = class_disjoint_splits(train, test, dataset, train_classes)
        for name in todo:
            log.info("reference %s on %s ...", name, label)
            rows.append(score_reference(name, train, test, dataset=label, seed=seed,
                                        leave_one_out=split == "classes"))
            path.parent.mkdir(parents=True, exist_ok=True)
            # After each row (write-then-rename): an interrupted call loses nothing finished.
            save_bytes(csv_bytes(rows, COLUMNS), path)
    return path
