"""``gdml plot``: a 2-D map as a PNG and as a self-contained interactive HTML page.

Sources:

* a run folder: its test embeddings (``embeddings.npz``); the thumbnails are the test images,
  loaded again from the data set named in its ``config.json`` (when they cannot be loaded the
  page has no thumbnails and says why);
* a ``.csv`` written by ``gdml embed``: points coloured by the ``label`` column, thumbnails read
  from the files in the ``file`` column (relative paths are tried from the current folder, then
  from the CSV's folder);
* a ``.npz`` with ``embeddings`` (or ``test_embeddings``) and optional ``labels``/``classes``;
* a ``.npy`` of embeddings (one colour, no thumbnails).

The PNG shows every point (up to 20 000); the page shows a random subsample of ``max_points``
(a few thousand keep it light and responsive, with one thumbnail per point).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError, GdmlError
from ..plotting import embedding_png
from ..progress import Progress
from .inference import load_array
from .interactive import embedding_html, thumbnail_uri
from .outputs import check_output, write_all

MAX_HTML_POINTS = 3000


@dataclass
class MapData:
    """Points to draw and, where known, their images."""

    embeddings: np.ndarray  # (N, d)
    labels: np.ndarray  # (N,) indices into classes
    classes: list[str]
    title: str
    images: torch.Tensor | None = None  # uint8 (N, C, H, W), for thumbnails
    files: list[str | None] | None = None  # image file per point, for thumbnails and names
    names: list[str] | None = None  # shown on hover
    notes: list[str] = field(default_factory=list)


def _encode(values: list[str]) -> tuple[np.ndarray, list[str]]:
    names = [v if v != "" else "(no label)" for v in values]
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in names], dtype=np.int64), classes


def _from_run(folder: Path, data_dir: str | None) -> MapData:
    npz, cfg_file = folder / "embeddings.npz", folder / "config.json"
    if not npz.is_file() or not cfg_file.is_file():
        raise DataError(
            f"{folder} is not a finished run folder (no embeddings.npz or config.json); give a run "
            "folder, or an embeddings file (.csv, .npy, .npz)"
        )
    try:
        with np.load(npz, allow_pickle=False) as z:
            emb, labels = z["test_embeddings"], z["test_labels"]
            classes = [str(c) for c in z["classes"]]
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the run folder {folder} ({exc}); it is damaged, run it again") from exc
    method = f"{cfg.get('method', '?')}+mdr" if cfg.get("mdr") else cfg.get("method", "?")
    dataset = str(cfg.get("dataset", "?"))
    if "/" in dataset:  # an image folder or archive: its name, as tables show it
        dataset = Path(dataset.rstrip("/")).name
    out = MapData(emb, labels.astype(np.int64), classes, f"{method} — {dataset} (test)")
    try:
        from ..data import load_dataset

        test = load_dataset(cfg["dataset"], data_dir=data_dir or cfg.get("data_dir"), download=False)["test"]
    except (GdmlError, KeyError) as exc:
        out.notes.append(f"no thumbnails: the test images could not be loaded ({exc})")
        return out
    if len(test) != len(emb) or test.images.dim() != 4:
        out.notes.append("no thumbnails: the data set's test split no longer matches the run")
        return out
    out.images = test.images
    if test.paths is not None:
        out.names = list(test.paths)
    return out


def _from_csv(path: Path) -> MapData:
    try:
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc})") from exc
    if not rows:
        raise DataError(f"{path} is empty; write it with gdml embed --out FILE.csv")
    head = rows[0]
    dims = [i for i, h in enumerate(head) if h.startswith("e") and h[1:].isdigit()]
    if "file" not in head or not dims:
        raise DataError(
            f"{path} has no file and e0, e1, ... columns; write it with gdml embed --out FILE.csv"
        )
    if len(rows) < 2:
        raise DataError(f"{path} holds no rows")
    fcol, lcol = head.index("file"), head.index("label") if "label" in head else None
    try:
        emb = np.array([[float(r[i]) for i in dims] for r in rows[1:]], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path} has a malformed row ({exc}); write it again with gdml embed") from exc
    files = [r[fcol] for r in rows[1:]]
    labels, classes = _encode([r[lcol] if lcol is not None else "" for r in rows[1:]])
    return MapData(emb, labels, classes, path.name, files=list(files), names=files)


def _from_npz(path: Path) -> MapData:
    try:
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in ("embeddings", "test_embeddings") if k in z.files), None)
            if key is None:
                raise DataError(f"{path} has no 'embeddings' array (keys: {', '.join(z.files)})")
            emb = z[key]
            lab_key = next((k for k in ("labels", "test_labels") if k in z.files), None)
            raw = z[lab_key] if lab_key else None
            classes = [str(c) for c in z["classes"]] if "classes" in z.files else None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a NumPy .npz file ({exc})") from exc
    if raw is None:
        labels, classes = np.zeros(len(emb), dtype=np.int64), ["all points"]
    elif (classes is not None and raw.dtype.kind in "iu" and raw.size
          and 0 <= raw.min() <= raw.max() < len(classes)):
        labels = raw.astype(np.int64)  # indices into the stored class names
    else:
        labels, classes = _encode([str(v) for v in raw])
    return MapData(emb, labels, classes, path.name)


def read_map_source(source: str | os.PathLike[str], data_dir: str | None = None) -> MapData:
    """The points of a run folder or an embeddings file (see the module docstring)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{source} does not exist; give a run folder or an embeddings file")
    if path.is_dir():
        data = _from_run(path, data_dir)
    elif path.suffix.lower() == ".csv":
        data = _from_csv(path)
    elif path.suffix.lower() == ".npz":
        data = _from_npz(path)
    elif path.suffix.lower() == ".npy":
        emb = load_array(path)
        data = MapData(emb, np.zeros(len(emb), dtype=np.int64), ["all points"], path.name)
    else:
        raise DataError(f"cannot plot {path.name}: give a run folder or a .csv, .npy or .npz embeddings file")
    emb = np.asarray(data.embeddings)
    if emb.ndim != 2 or len(emb) == 0 or emb.shape[1] == 0 or emb.dtype.kind not in "iuf":
        raise DataError(f"{source} must hold N×d numeric embeddings, got shape {emb.shape} ({emb.dtype})")
    if not np.isfinite(emb).all():
        raise DataError(f"{source} contains NaN or infinite embeddings; re-run gdml embed or retrain")
    if len(data.labels) != len(emb):
        raise DataError(f"{source} has {len(emb)} embeddings but {len(data.labels)} labels")
    data.embeddings = emb.astype(np.float64)
    return data


def _open_thumbnail(name: str, base: Path) -> str | None:
    for candidate in (Path(name).expanduser(), base / name):
        if candidate.is_file():
            try:
                with Image.open(candidate) as img:
                    img.load()
                    return thumbnail_uri(img)
            except Exception:  # any unreadable file: the point just has no thumbnail
                return None
    return None


def _outputs(source: Path, out: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    if out is None:
        stem = source / "map" if source.is_dir() else source.with_suffix("")
    else:
        stem = Path(out).expanduser()
        if stem.suffix.lower() in (".png", ".html"):
            stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".html")


def plot_map(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    max_points: int = MAX_HTML_POINTS,
    seed: int = 0,
    data_dir: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write ``OUT.png`` and ``OUT.html`` (default: ``RUN/map.*``, or beside the embeddings file).

    ``progress``: of the thumbnails of a large page (:mod:`guided_dml.progress`).

    Returns:
        ``{"png", "html", "points", "html_points", "thumbnails", "notes"}``.
    """
    if max_points < 1:
        raise DataError(f"--max-points must be at least 1, got {max_points}")
    path = Path(source).expanduser()
    png_path, html_path = _outputs(path, out)
    check_output(png_path, overwrite)  # before any work: refuse early
    check_output(html_path, overwrite)
    data = read_map_source(source, data_dir)
    n = len(data.embeddings)
    png = embedding_png(data.embeddings, data.labels, data.classes, title=data.title)

    keep = np.arange(n)
    if n > max_points:  # a fixed random subsample, in original order
        keep = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    thumbs: list[str | None] | None = None
    if data.images is not None or data.files is not None:
        base = path.parent
        thumbs = []
        with Progress("thumbnails", len(keep), progress) as bar:
            for i in keep:
                if data.images is not None:
                    thumbs.append(thumbnail_uri(data.images[i].numpy()))
                else:
                    thumbs.append(_open_thumbnail(data.files[i], base) if data.files[i] else None)
                bar.update(1)
    if data.images is None and data.files is not None and thumbs is not None:
        missing = sum(t is None for t in thumbs)
        if missing == len(thumbs):
            data.notes.append("no thumbnails: none of the image files could be opened from here")
            thumbs = None
        elif missing:
            data.notes.append(f"{missing} image file(s) could not be opened; their points have no thumbnail")
    names = [data.names[i] for i in keep] if data.names is not None else None
    page = embedding_html(
        data.embeddings[keep], data.labels[keep], data.classes, thumbnails=thumbs, names=names,
        title=data.title, total=n, note="; ".join(data.notes) or None,
    )
    write_all([(png_path, png), (html_path, page.encode("utf-8"))])
    return {
        "png": str(png_path),
        "html": str(html_path),
        "points": n,
        "html_points": len(keep),
        "thumbnails": 0 if thumbs is None else sum(t is not None for t in thumbs),
        "notes": data.notes,
    }
