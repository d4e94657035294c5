"""Image files named on the command line (files, folders, archives), decoded for a trained model.

``gdml embed`` and ``gdml search`` take any mix of image files, folders (searched recursively)
and ``.tar``/``.tar.gz``/``.zip`` archives. Every image is decoded to the model's input: resized
to its size and converted to its mode, as :func:`~guided_dml.data.load_image_folder` did for the
training images, so images of mixed sizes and modes are fine (a note says how many were changed).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import DataError
from .decode import (
    decode_chunk,
    decode_view_chunk,
    default_workers,
    image_suffixes,
    list_archive,
    list_folder,
    probe_chunk,
    run_chunks,
    wanted,
)
from .names import is_archive

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode
_SHOW = 3  # files named in a message


@dataclass(frozen=True)
class ImageFile:
    """One image to decode.

    Attributes:
        name: how the user knows it: ``photos/cat/1.jpg``, or ``photos.tar.gz:cat/1.jpg``.
        label: the folder that holds it inside the given folder or archive (its class folder),
            ``""`` for files given one by one or at the top of a folder.
        source: the file's path, or the archive member's bytes.
    """

    name: str
    label: str
    source: str | bytes


def _folder_label(rel: str) -> str:
    parts = rel.split("/")
    return parts[-2] if len(parts) > 1 else ""


def _list_zip(path: Path) -> list[tuple[str, bytes]]:
    suffixes = image_suffixes()
    try:
        with zipfile.ZipFile(path) as zf:
            out = []
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                parts = tuple(p for p in PurePosixPath(info.filename).parts if p not in ("", "."))
                if info.is_dir() or not parts or ".." in parts or not wanted(parts, suffixes):
                    continue
                out.append(("/".join(parts), zf.read(info)))
            return out
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path} ({exc}); it is damaged, fetch it again") from exc


def list_image_files(inputs: Sequence[str | os.PathLike[str]]) -> list[ImageFile]:
    """Every image in ``inputs`` (files, folders, archives), in the order given, folders sorted.

    Raises:
        DataError: nothing given, a path that does not exist, or a folder or archive without images.
    """
    if not inputs:
        raise DataError("no input given; name image files, folders or archives")
    found: list[ImageFile] = []
    for given in inputs:
        path = Path(given).expanduser()
        shown = os.fspath(given)
        if not path.exists():
            raise DataError(f"{shown} does not exist; check the path")
        if path.is_dir():
            entries = list_folder(path, on_loop="skip")  # a loop: its files once, with a note
            if not entries:
                raise DataError(
                    f"no images found in folder {shown} (looked for {', '.join(_common_suffixes())} "
                    "files, also in subfolders)"
                )
            entries.sort(key=lambda e: e.rel)
            found += [ImageFile(f"{shown.rstrip('/')}/{e.rel}", _folder_label(e.rel), e.source)
                      for e in entries]
        elif is_archive(path):
            if zipfile.is_zipfile(path):
                members = _list_zip(path)
            else:
                members = [(e.rel, e.source) for e in list_archive(path)]  # type: ignore[misc]
            if not members:
                raise DataError(f"archive {shown} holds no images; check that it is the right file")
            members.sort(key=lambda m: m[0])
            found += [ImageFile(f"{shown}:{rel}", _folder_label(rel), data) for rel, data in members]
        else:
            found.append(ImageFile(shown, "", str(path)))
    return found


def _common_suffixes() -> list[str]:
    return [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".webp"]


def read_image_files(
    files: Sequence[ImageFile],
    input_shape: Sequence[int],
    *,
    skip_bad: bool = False,
    num_workers: int | None = None,
    on_decoded: Callable[[int], None] | None = None,
    view: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, list[ImageFile], list[str]]:
    """Decode ``files`` to ``uint8 (N, C, H, W)`` for a model taking ``input_shape`` (C, H, W).

    ``on_decoded(n)``: called after each chunk of ``n`` decoded images (progress reports).
    ``view = (resize, size)``: the model was trained on that view of its photos (shorter side to
    ``resize``, central ``size`` crop: the retrieval benchmarks, :mod:`guided_dml.data.streaming`),
    so new photos get the same one instead of a resize of the whole image to the input size.

    Returns:
        The images, the files they came from (unreadable ones left out with ``skip_bad``), and
        notes for the user (how many images were resized or converted, which were skipped).

    Raises:
        DataError: unreadable images (without ``skip_bad``), none readable, or a model that takes
            feature vectors.
    """
    if len(input_shape) != 3:
        raise DataError(
            f"the model takes feature vectors of {input_shape[0]} values, not images; "
            "give a .npy array of shape N×F"
        )
    channels, height, width = (int(s) for s in input_shape)
    mode = MODES[channels]
    workers = num_workers if num_workers is not None else default_workers()
    sources = [f.source for f in files]
    probes = [p for part in run_chunks(probe_chunk, sources, (), workers, False, "probing") for p in part]
    bad = [(f.name, p) for f, p in zip(files, probes, strict=True) if isinstance(p, str)]
    notes: list[str] = []
    if bad:
        shown = "; ".join(f"{name} ({msg})" for name, msg in bad[:_SHOW])
        more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
        if len(bad) == len(files):
            raise DataError(
                f"none of the images could be read: {shown}{more}; check that they are image files "
                "(PNG, JPEG, ...) and not damaged"
            )
        if not skip_bad:
            raise DataError(f"{len(bad)} unreadable image(s): {shown}{more}; fix or remove them, "
                            "or pass --skip-bad")
        notes.append(f"skipped {len(bad)} unreadable image(s): {shown}{more}")
    keep = [i for i, p in enumerate(probes) if not isinstance(p, str)]
    files = [files[i] for i in keep]
    if view is not None and (mode != "RGB" or (height, width) != (view[1], view[1])):
        raise DataError(f"a model trained on {view[1]}-px RGB views takes 3×{view[1]}×{view[1]} "
                        f"input, but this one takes {tuple(input_shape)}: the model file is damaged")
    if view is not None:
        notes.append(f"decoded {len(files)} image(s) as the model's training data were: shorter "
                     f"side to {view[0]} px, the central {view[1]}×{view[1]} crop")
        decode, extra = decode_view_chunk, (int(view[0]), int(view[1]))
    else:
        resized = sum(1 for i in keep if probes[i][:2] != (width, height))  # type: ignore[index]
        converted = sum(1 for i in keep if probes[i][2] != mode)  # type: ignore[index]
        if resized:
            notes.append(f"resized {resized} of {len(files)} image(s) to {height}×{width}, the "
                         "model's input")
        if converted:
            notes.append(f"converted {converted} of {len(files)} image(s) to {mode}, the model's mode")
        decode, extra = decode_chunk, ((width, height), mode)
    parts = run_chunks(decode, [sources[i] for i in keep], extra, workers, False, "decoding",
                       on_decoded)
    errors = [err for part in parts for err in part[1]]
    if any(err is not None for err in errors):  # a header that read fine but a body that did not
        broken = [(f.name, err) for f, err in zip(files, errors, strict=True) if err is not None]
        shown = "; ".join(f"{name} ({msg})" for name, msg in broken[:_SHOW])
        if not skip_bad or len(broken) == len(files):
            raise DataError(f"{len(broken)} unreadable image(s): {shown}; fix or remove them, or pass "
                            "--skip-bad")
        notes.append(f"skipped {len(broken)} damaged image(s): {shown}")
        files = [f for f, err in zip(files, errors, strict=True) if err is None]
    images = np.concatenate([part[0] for part in parts]) if parts else np.empty((0, height, width, channels))
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), files, notes
