"""What a run folder holds, and the only way it is ever emptied.

A run folder is ours when it holds the manifest ``.gdml-run.json``: written first, when the
folder is created, it lists every file a run (and the commands that write into a run folder:
``benchmark --shift``, ``plot``) may put there. ``--overwrite`` removes exactly those files
(and the temporary files of their writers), then the folder if it is empty, never anything
else: not the user's own files put there, not a sub-folder, not a folder without a manifest.
Folders written before the manifest existed are recognised by their ``config.json`` (a run
config with its hash) and get the same list.

Inputs are never inside the folder a run writes into: :func:`check_inputs_apart` refuses an
``--out`` that equals or contains the data set, the data folder or the pretrained weights (or,
for an image folder, lies inside it, where the run's PNGs would become training images).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..atomic import remove_temporaries, write_json
from ..errors import ConfigError
from .config import RunConfig

MANIFEST = ".gdml-run.json"
FORMAT = "guided-dml run folder"
# Every file a run folder may hold (see the layout in experiments/run.py).
RUN_FILES = (
    "config.json", "history.jsonl", "teacher.ckpt", "targets.pt", "student.ckpt", "model.pt",
    "metrics.json", "embeddings.npz", "embedding.png", "curves.png", "shift.json", "error.txt",
    "map.png", "map.html",
)


def write_manifest(run_dir: Path, files: Iterable[str] = RUN_FILES) -> None:
    """Mark ``run_dir`` as a run folder of ours, listing the files it may hold."""
    from .. import __version__

    write_json(run_dir / MANIFEST, {"format": FORMAT, "version": __version__, "files": list(files)})


def manifest_files(run_dir: Path) -> list[str] | None:
    """The files the manifest of ``run_dir`` lists; None when the folder is not a run folder.

    A folder without a manifest that holds a run's ``config.json`` (written before manifests
    existed) is a run folder with the standard list.
    """
    manifest = run_dir / MANIFEST
    if manifest.is_file() and not manifest.is_symlink():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        files = data.get("files") if isinstance(data, dict) and data.get("format") == FORMAT else None
        if isinstance(files, list) and all(_plain_name(f) for f in files):
            return files
        raise ConfigError(
            f"{manifest} is damaged, so guided-dml cannot tell which files of {run_dir} are its "
            "own; delete that folder yourself or choose another --out"
        )
    cfg_file = run_dir / "config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(cfg, dict) and "hash" in cfg and "method" in cfg:
            return list(RUN_FILES)
    return None


def _plain_name(name: object) -> bool:
    """A file name of the folder itself: no path, no ``..`` (a manifest cannot point outside)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def is_run_folder(run_dir: Path) -> bool:
    return manifest_files(run_dir) is not None


def clear_run_folder(run_dir: Path) -> list[str]:
    """Remove what the manifest of ``run_dir`` lists (``--overwrite``); returns what is left.

    Raises:
        ConfigError: ``run_dir`` is not a run folder (nothing is removed).
    """
    files = manifest_files(run_dir)
    if files is None:
        raise ConfigError(
            f"{run_dir} is not a guided-dml run folder (it has no {MANIFEST}), so --overwrite "
            "will not delete anything in it; choose another --out"
        )
    for name in files:
        p = run_dir / name
        if p.is_file() or p.is_symlink():  # a symlink itself, never what it points to
            p.unlink(missing_ok=True)
    remove_temporaries(run_dir, [*files, MANIFEST])
    (run_dir / MANIFEST).unlink(missing_ok=True)
    left = sorted(p.name for p in run_dir.iterdir())
    if not left:
        run_dir.rmdir()
    return left


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Temporary files a killed writer (SIGKILL) left in a run folder of ours."""
    files = manifest_files(run_dir) if run_dir.is_dir() else None
    return remove_temporaries(run_dir, [*files, MANIFEST]) if files is not None else []


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_inputs_apart(cfg: RunConfig, run_dir: Path) -> None:
    """Refuse a run folder that equals or contains an input of the run (see module doc).

    Raises:
        ConfigError: one line naming the input and what to do.
    """
    out = _resolved(run_dir)
    inputs: list[tuple[str, Path, bool]] = []  # (what, path, whether out may not lie inside it)
    dataset = Path(cfg.dataset).expanduser()
    if dataset.exists():
        # An image folder: the run's own PNGs inside it would be read as images next time.
        inputs.append((f"the data set {cfg.dataset}", _resolved(dataset), dataset.is_dir()))
    if cfg.data_dir:
        inputs.append((f"the data folder {cfg.data_dir}", _resolved(cfg.data_dir), False))
    if cfg.pretrained and cfg.pretrained != "imagenet":  # imagenet: the user cache's file
        inputs.append((f"the pretrained weights {cfg.pretrained}", _resolved(cfg.pretrained), False))
    for what, path, no_inside in inputs:
        if _within(path, out) or (no_inside and _within(out, path)):
            where = "is" if path == out else ("holds" if _within(path, out) else "lies inside")
            raise ConfigError(
                f"--out {run_dir} {where} {what}; a run folder must be apart from its inputs, "
                "choose another --out"
            )
