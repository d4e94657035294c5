"""Using a trained model: embeddings of new images or arrays (``gdml embed``) and nearest
training images (``gdml search``).

A model is a run folder, its ``model.pt``, or a file written by ``GuidedEmbedder.save``. Its
file holds the training set's embeddings, labels and file paths (see
:func:`guided_dml.experiments.run.reference_set`), so a search needs no data set; for model files
written before they were stored, the training set is loaded again from the data set named in the
model's config and embedded (``recomputed`` says so).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.arrays import as_model_input, check_input_shape
from ..data.files import list_image_files, read_image_files
from ..errors import DataError, GdmlError
from ..evaluation import knn
from ..experiments.config import RunConfig
from ..experiments.factory import load_model
from ..models.embedding import EmbeddingNet
from ..progress import Progress
from ..training import embed
from .outputs import check_output, write_bytes

EMBED_FORMATS = (".npy", ".csv")


@dataclass
class LoadedModel:
    """A model file's student and what it knows about its training data."""

    model: EmbeddingNet
    config: RunConfig
    input_shape: tuple[int, ...]
    classes: list[str]
    pixel_scale: float | None  # float-image scale of older estimator files, else None
    # (low, high) of an estimator's training values, mapped onto the canonical scale
    # (guided_dml.data.arrays); None for `gdml train` runs (8-bit files are already on it).
    value_range: tuple[float, float] | None
    reference: dict[str, Any] | None  # embeddings, labels, paths, root (None: not stored)
    path: Path
    # (resize, size) of the photos' view a retrieval-benchmark model was trained on
    # (data/streaming.py); new photos are decoded the same way. None: resize to the input.
    input_view: tuple[int, int] | None = None

    @property
    def is_images(self) -> bool:
        return len(self.input_shape) == 3


def _view(value: Any) -> tuple[int, int] | None:
    """A model file's ``input_view``: ``(resize, size)``, or None (older files, other data)."""
    return (int(value[0]), int(value[1])) if value else None


def open_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a run folder, its ``model.pt`` or an estimator's saved file.

    Raises:
        ConfigError: no model there, or not a guided-dml model file.
    """
    model, blob = load_model(path)
    estimator = blob.get("estimator") or {}
    return LoadedModel(
        model=model,
        config=RunConfig(**blob["config"]),
        input_shape=tuple(int(s) for s in blob["input_shape"]),
        classes=[str(c) for c in blob["classes"]],
        pixel_scale=estimator.get("pixel_scale"),
        value_range=tuple(estimator["input_range"]) if estimator.get("input_range") else None,
        reference=blob.get("reference"),
        path=Path(path),
        input_view=_view(blob.get("input_view")),
    )


@dataclass
class Inputs:
    """Network input read from files or an array, with a name (and a folder label) per sample."""

    data: torch.Tensor  # uint8 (N, C, H, W) or float32 (N, F)
    names: list[str]
    labels: list[str]  # the folder an image came from ("" when none)
    notes: list[str] = field(default_factory=list)  # for the user: resized, converted, skipped


def _is_array_file(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(".npy")


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``.npy`` file as an array; a one-line DataError when it is missing or unreadable."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{path} does not exist; check the path")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read {path} as a NumPy .npy array ({reason}); save it with numpy.save"
        ) from exc


_EMBED_CHUNK = 256  # images per model call when progress is reported


def embed_progress(model: EmbeddingNet, data: torch.Tensor, progress: bool | None = None,
                   desc: str = "embedding") -> torch.Tensor:
    """:func:`guided_dml.training.embed` with progress on large inputs (:mod:`guided_dml.progress`)."""
    with Progress(desc, len(data), progress) as bar:
        if bar.bar is None and not bar.lines:
            return embed(model, data)
        parts = []
        for i in range(0, len(data), _EMBED_CHUNK):
            parts.append(embed(model, data[i : i + _EMBED_CHUNK]))
            bar.update(len(parts[-1]))
        return torch.cat(parts) if parts else embed(model, data)


def read_images(files: Sequence[Any], loaded: LoadedModel, *, skip_bad: bool = False,
                progress: bool | None = None,
                desc: str = "decoding") -> tuple[torch.Tensor, list[Any], list[str]]:
    """:func:`guided_dml.data.files.read_image_files` for ``loaded``'s input (and the view of
    its training photos, if it has one), with progress on large inputs."""
    with Progress(desc, len(files), progress) as bar:
        report = bar.update if (bar.bar is not None or bar.lines) else None
        return read_image_files(files, loaded.input_shape, skip_bad=skip_bad, on_decoded=report,
                                view=loaded.input_view)


def read_inputs(loaded: LoadedModel, inputs: Sequence[str | os.PathLike[str]], *,
                skip_bad: bool = False, progress: bool | None = None) -> Inputs:
    """Images (files, folders, archives) or one ``.npy`` array, as ``loaded``'s network input.

    ``progress``: on large inputs, progress of the decoding (:mod:`guided_dml.progress`)."""
    if len(inputs) == 1 and _is_array_file(inputs[0]):
        arr = load_array(inputs[0])
        # Vector models take raw vectors (the estimator folds its map into them).
        value_range = loaded.value_range if loaded.is_images else None
        inp = as_model_input(arr, pixel_scale=loaded.pixel_scale, value_range=value_range,
                             name=os.fspath(inputs[0]))
        check_input_shape(inp.data, loaded.input_shape, name=os.fspath(inputs[0]))
        n = len(inp.data)
        return Inputs(inp.data, [str(i) for i in range(n)], [""] * n)
    if any(_is_array_file(p) for p in inputs):
        raise DataError("give one .npy array, or image files, folders and archives, not both")
    if not loaded.is_images:
        raise DataError(
            f"the model takes feature vectors of {loaded.input_shape[0]} values; give a .npy array "
            "of shape N×F instead of images"
        )
    files = list_image_files(inputs)
    images, kept, notes = read_images(files, loaded, skip_bad=skip_bad, progress=progress)
    # Decoded files are 8-bit intensities: already the canonical scale, whatever range the
    # arrays of an estimator's fit had.
    return Inputs(images, [f.name for f in kept], [f.label for f in kept], notes)


def _check_embeddings(emb: torch.Tensor) -> np.ndarray:
    out = emb.numpy()
    if not np.isfinite(out).all():
        raise GdmlError("the model gives non-finite embeddings for this input; it may be corrupt, retrain it")
    return out


def embed_to_file(
    model_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``gdml embed``: the embeddings of ``inputs`` into ``out`` (``.npy``, or ``.csv`` with names).

    The ``.npy`` file holds ``float32 (N, d)`` rows in input order (folders sorted by path). The
    ``.csv`` file has the columns ``file,label,e0,...``: ``file`` names the image (the row
    number for a ``.npy`` input), ``label`` is the folder that holds it (its class folder, if
    the folder is laid out by class; empty otherwise).

    ``progress``: on large inputs (:mod:`guided_dml.progress`), a bar on a terminal (``None``) or
    always (``True``), lines off a terminal (``None``), nothing (``False``).

    Returns:
        ``{"out", "count", "dim", "notes"}``.
    """
    target = Path(out).expanduser()
    if target.suffix.lower() not in EMBED_FORMATS:
        raise DataError(f"--out must end with .npy or .csv, got {target.name}")
    check_output(target, overwrite)  # before any work: refuse early
    loaded = open_model(model_path)
    inp = read_inputs(loaded, inputs, skip_bad=skip_bad, progress=progress)
    emb = _check_embeddings(embed_progress(loaded.model, inp.data, progress))
    if target.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, emb.astype(np.float32))
        data = buf.getvalue()
    else:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["file", "label", *[f"e{j}" for j in range(emb.shape[1])]])
        for name, label, row in zip(inp.names, inp.labels, emb, strict=True):
            writer.writerow([name, label, *[f"{v:.7g}" for v in row]])
        # A file name that is not UTF-8 keeps its bytes, as the file system has them.
        data = text.getvalue().encode("utf-8", errors="surrogateescape")
    write_bytes(target, data)
    return {"out": str(target), "count": len(emb), "dim": int(emb.shape[1]), "notes": inp.notes}


def reference_of(loaded: LoadedModel) -> tuple[dict[str, Any], bool]:
    """The training set to search: the stored one, or (``True``) recomputed from its data set."""
    if loaded.reference is not None:
        return loaded.reference, False
    from ..data import load_dataset  # only for model files that predate stored references
    from ..experiments.run import prepare_data, reference_set

    cfg = loaded.config
    try:
        splits = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    except GdmlError as exc:
        raise DataError(
            f"{loaded.path} holds no training embeddings and its data set {cfg.dataset!r} cannot be "
            f"loaded ({exc}); retrain the model with this version of gdml"
        ) from exc
    data = prepare_data(cfg, splits)
    return reference_set(cfg, data.reference, embed(loaded.model, data.reference.images)), True


def _file_of(reference: dict[str, Any], index: int) -> str | None:
    paths = reference.get("paths")
    if paths is None:
        return None
    root = reference.get("root")
    if root is None:
        return paths[index]
    return f"{root}:{paths[index]}" if Path(root).is_file() else str(Path(root) / paths[index])


def search(
    model_path: str | os.PathLike[str],
    queries: Sequence[str | os.PathLike[str]],
    *,
    k: int = 10,
    skip_bad: bool = False,
    gallery: Sequence[str | os.PathLike[str]] | None = None,
    vote: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``gdml search``: the ``k`` nearest gallery items of each query.

    Args:
        gallery: what to search: None for the model's training set (stored in its file), image
            folders / archives / files (embedded once, then cached), or one CSV written by
            ``gdml embed`` (:func:`guided_dml.commands.gallery.load_gallery`).
        vote: add the label most of the ``k`` neighbours have, with its share (a k-NN
            classifier's answer).
        progress: progress of reading and embedding large queries and galleries (as for
            :func:`embed_to_file`).

    Returns:
        ``{"results": [{"query", "neighbours": [{"rank", "distance", "label", "index", "file"}],
        "vote": {"label", "votes", "k", "share"} (with ``vote``)}], "notes": [...]}``;
        ``distance`` is Euclidean in the embedding, ``file`` is None when the items were not
        image files.
    """
    from .gallery import load_gallery
    from .gallery import vote as vote_of

    if k < 1:
        raise DataError(f"--k must be at least 1, got {k}")
    loaded = open_model(model_path)
    inp = read_inputs(loaded, queries, skip_bad=skip_bad, progress=progress)
    g = load_gallery(loaded, gallery, skip_bad=skip_bad, progress=progress)
    notes = list(inp.notes) + g.notes
    if k > len(g.embeddings):
        notes.append(f"the {g.source} has {len(g.embeddings)} items; showing all of them")
        k = len(g.embeddings)
    q_emb = _check_embeddings(embed_progress(loaded.model, inp.data, progress))
    dist, idx = knn(q_emb, g.embeddings, k)
    results = []
    for qi, name in enumerate(inp.names):
        neighbours = [
            {
                "rank": r + 1,
                "distance": float(np.sqrt(max(float(dist[qi, r]), 0.0))),
                "label": g.labels[int(j)],
                "index": int(j),
                "file": g.files[int(j)],
            }
            for r, j in enumerate(idx[qi])
        ]
        res: dict[str, Any] = {"query": name, "neighbours": neighbours}
        if vote:
            res["vote"] = vote_of([n["label"] for n in neighbours], [n["distance"] for n in neighbours])
        results.append(res)
    return {"results": results, "notes": notes}


def format_search(result: dict[str, Any]) -> str:
    """The human-readable table of :func:`search`'s result."""
    lines = []
    for res in result["results"]:
        lines.append(f"query: {res['query']}")
        if "vote" in res:
            v = res["vote"]
            lines.append(f"  vote: {v['label']} ({v['votes']} of {v['k']} neighbours, "
                         f"share {v['share']:.2f})")
        rows = [(str(n["rank"]), f"{n['distance']:.4f}", n["label"], n["file"] or f"#{n['index']}")
                for n in res["neighbours"]]
        head = ("rank", "distance", "label", "training image")
        widths = [max(len(r[c]) for r in [head, *rows]) for c in range(3)]
        for row in [head, *rows]:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row[:3], widths, strict=True))
                         + "  " + row[3])
    return "\n".join(lines)
