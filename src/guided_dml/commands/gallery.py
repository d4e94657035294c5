"""What ``gdml search`` searches, and what ``gdml index`` exports: a gallery of embedded items.

A gallery is the model's own training set (stored in its file), a folder or archive of images
(embedded once with the model, then cached), or a CSV written by ``gdml embed`` (already
embedded). Each item has an embedding, a label (its class folder; ``""`` when none) and a file.

The exported index is for use without guided-dml: ``FILE.npz`` (numpy only) or a faiss index
with a JSON file of labels and file names beside it (``FILE`` + ``FILE.json``), both described in
the README ("Your own images").
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.files import list_image_files
from ..data.paths import cache_disabled, decoded_cache_dir
from ..errors import DataError, GdmlError
from .inference import LoadedModel, _file_of, embed_progress, open_model, read_images, reference_of
from .outputs import check_output, write_all

INDEX_FORMAT = "guided-dml-index/1"
GALLERY_CACHE_VERSION = 1


@dataclass
class Gallery:
    """Items to search: ``embeddings float32 (N, d)``, one label and one file name per item."""

    embeddings: np.ndarray
    labels: list[str]
    files: list[str | None]
    notes: list[str]
    source: str  # "training set", or the gallery's path


def training_gallery(loaded: LoadedModel) -> Gallery:
    """The training set stored in the model file (recomputed for older files)."""
    reference, recomputed = reference_of(loaded)
    emb = reference["embeddings"]
    emb = emb.numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
    labels = [loaded.classes[int(c)] for c in np.asarray(reference["labels"])]
    files = [_file_of(reference, i) for i in range(len(labels))]
    notes = ([f"recomputed the training embeddings from data set {loaded.config.dataset!r}"]
             if recomputed else [])
    return Gallery(emb.astype(np.float32), labels, files, notes, "training set")


def _fingerprint(paths: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """What a gallery's cache entry depends on: every file's path, size and modification time."""
    out: list[Any] = []
    for p in paths:
        root = Path(p).expanduser().resolve()
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for f in files:
            st = f.stat()
            out.append([str(f), st.st_size, st.st_mtime_ns])
    return out


def _read_csv_gallery(path: Path, dim: int) -> Gallery:
    """A ``gdml embed --out FILE.csv`` file: columns ``file, label, e0 .. e{d-1}``."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read gallery {path}: {exc}") from exc
    head = rows[0] if rows else []
    want = ["file", "label", *[f"e{j}" for j in range(dim)]]
    if head != want:
        raise DataError(f"gallery {path} must be a CSV from `gdml embed` with columns "
                        f"{', '.join(want[:3])}, ... e{dim - 1} (this model's d = {dim}); got "
                        f"{', '.join(head[:dim + 2]) or 'nothing'}")
    try:
        emb = np.array([[float(v) for v in r[2:]] for r in rows[1:]], dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"gallery {path}: a value is not a number ({exc})") from exc
    if len(emb) == 0:
        raise DataError(f"gallery {path} holds no rows")
    return Gallery(emb.reshape(-1, dim), [r[1] for r in rows[1:]], [r[0] for r in rows[1:]], [],
                   str(path))


def load_gallery(
    loaded: LoadedModel, gallery: Sequence[str | os.PathLike[str]] | None, *, skip_bad: bool = False,
    progress: bool | None = None,
) -> Gallery:
    """The gallery to search: the training set (``gallery=None``), a CSV of embeddings, or image
    folders / archives / files, embedded with ``loaded``'s model and cached (``$GDML_CACHE``).

    ``progress``: of decoding and embedding a large gallery (:mod:`guided_dml.progress`)."""
    if not gallery:
        return training_gallery(loaded)
    if len(gallery) == 1 and os.fspath(gallery[0]).lower().endswith(".csv"):
        path = Path(gallery[0]).expanduser()
        if not path.is_file():
            raise DataError(f"gallery {path} does not exist; check the path")
        return _read_csv_gallery(path, loaded.config.embedding_dim)
    missing = [p for p in gallery if not Path(p).expanduser().exists()]
    if missing:
        raise DataError(f"gallery {missing[0]} does not exist; check the path")
    cache_file = None
    if not cache_disabled():
        st = loaded.path.stat() if loaded.path.is_file() else (loaded.path / "model.pt").stat()
        key = json.dumps([GALLERY_CACHE_VERSION, str(loaded.path.resolve()), st.st_size,
                          st.st_mtime_ns, skip_bad, _fingerprint(gallery)])
        cache_file = decoded_cache_dir() / "galleries" / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npz"
        if cache_file.is_file():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    return Gallery(z["embeddings"], z["labels"].tolist(),
                                   [f or None for f in z["files"].tolist()],
                                   [f"gallery embeddings read from the cache {cache_file}"],
                                   ", ".join(map(str, gallery)))
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry: embed again and rewrite it
    if not loaded.is_images:
        raise DataError("this model takes feature vectors: give the gallery as a CSV from `gdml embed`")
    files = list_image_files(gallery)
    images, kept, notes = read_images(files, loaded, skip_bad=skip_bad,
                                      progress=progress, desc="decoding the gallery")
    emb = embed_progress(loaded.model, images, progress, "embedding the gallery").numpy()
    emb = emb.astype(np.float32)
    if not np.isfinite(emb).all():
        raise GdmlError("the model gives non-finite embeddings for the gallery; retrain it")
    out = Gallery(emb, [f.label for f in kept], [f.name for f in kept], notes,
                  ", ".join(map(str, gallery)))
    if cache_file is not None:
        buf = io.BytesIO()
        np.savez(buf, embeddings=emb, labels=np.array(out.labels, dtype=str),
                 files=np.array([f or "" for f in out.files], dtype=str))
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_all([(cache_file, buf.getvalue())])
        except (OSError, GdmlError):
            notes.append(f"could not write the gallery cache {cache_file}")  # searching still works
    return out


def vote(labels: Sequence[str], distances: Sequence[float]) -> dict[str, Any]:
    """The label most of the k neighbours have, and its share; a tie goes to the label whose
    nearest member is nearest (the 1-NN rule)."""
    counts = Counter(labels)
    top = max(counts.values())
    tied = {label for label, c in counts.items() if c == top}
    first = min(range(len(labels)), key=lambda i: (labels[i] not in tied, distances[i]))
    return {"label": labels[first], "votes": top, "k": len(labels), "share": top / len(labels)}


def export_index(
    model_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    gallery: Sequence[str | os.PathLike[str]] | None = None,
    overwrite: bool = False,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``gdml index``: the gallery's embeddings, labels and files as an index for other services.

    ``out`` ending in ``.npz``: numpy arrays ``embeddings float32 (N, d)``, ``labels`` and
    ``files`` (strings), ``format`` and ``metric`` ("l2", squared Euclidean distances).
    Otherwise a faiss ``IndexFlatL2`` (exact; ``faiss.read_index(out)``) with ``out + ".json"``
    beside it: ``{"format", "metric", "dim", "count", "labels": [...], "files": [...]}``, row i
    of the index being item i.

    Returns:
        ``{"out": [written files], "count", "dim", "format": "npz" | "faiss", "notes"}``.
    """
    target = Path(out).expanduser()
    as_npz = target.suffix.lower() == ".npz"
    sidecar = target.with_name(target.name + ".json")
    check_output(target, overwrite)
    if not as_npz:
        check_output(sidecar, overwrite)
        try:
            import faiss
        except ImportError as exc:
            raise DataError("a faiss index needs faiss (pip install faiss-cpu); or give --out "
                            "FILE.npz for a numpy index") from exc
    loaded = open_model(model_path)
    g = load_gallery(loaded, gallery, skip_bad=skip_bad, progress=progress)
    emb = np.ascontiguousarray(g.embeddings, dtype=np.float32)
    meta = {"format": INDEX_FORMAT, "metric": "l2", "dim": int(emb.shape[1]), "count": len(emb),
            "source": g.source}
    if as_npz:
        buf = io.BytesIO()
        np.savez(buf, embeddings=emb, labels=np.array(g.labels, dtype=str),
                 files=np.array([f or "" for f in g.files], dtype=str),
                 format=np.array(INDEX_FORMAT), metric=np.array("l2"))
        written = write_all([(target, buf.getvalue())])
    else:
        index = faiss.IndexFlatL2(emb.shape[1])
        index.add(emb)
        blob = faiss.serialize_index(index).tobytes()
        side = json.dumps({**meta, "labels": g.labels, "files": g.files}, indent=1).encode()
        written = write_all([(target, blob), (sidecar, side)])
    return {"out": [str(p) for p in written], "count": len(emb), "dim": int(emb.shape[1]),
            "format": "npz" if as_npz else "faiss", "notes": g.notes}
