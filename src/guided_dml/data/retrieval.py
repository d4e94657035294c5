"""The four deep-metric-learning retrieval benchmarks, read from their official metadata files.

Images are decoded lazily (these sets are large), one per ``__getitem__``, with the usual training
augmentation or evaluation transform (:mod:`guided_dml.data.transforms`). Splits are the standard
class-disjoint ones:

* CUB-200-2011: classes 1-100 train, 101-200 test (``images.txt``, ``image_class_labels.txt``).
* Cars-196: classes 1-98 train, 99-196 test (``cars_annos.mat``; its own ``test`` flag is the
  classification split and is ignored).
* Stanford Online Products: ``Ebay_train.txt`` / ``Ebay_test.txt``.
* In-Shop Clothes: ``list_eval_partition.txt`` with ``train``, ``query`` and ``gallery``.

Labels are re-indexed to ``0..k-1`` within each split; In-Shop query and gallery share one index
so their labels can be compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .paths import resolve_data_dir
from .transforms import eval_transform, to_tensor, train_transform

Transform = Callable[[Image.Image], Any]

_SHOW = 5  # missing files named in a message

SOURCES = {
    "cub200": "CUB_200_2011.tgz from https://data.caltech.edu/records/65de6-vp158",
    "cars196": "car_ims.tgz and cars_annos.mat from http://ai.stanford.edu/~jkrause/cars/car_dataset.html",
    "sop": "Stanford_Online_Products.zip from https://cvgl.stanford.edu/projects/lifted_struct/",
    "inshop": "Img/img.zip and Eval/list_eval_partition.txt from "
    "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html",
}


class RetrievalDataset(Dataset):
    """Image files and labels, decoded on access.

    Args:
        paths: image files.
        labels: class index of each file, in ``[0, len(classes))``.
        classes: class names.
        name: data set and split, for messages (e.g. ``"cub200/train"``).
        transform: PIL RGB image -> sample (default: :func:`~guided_dml.data.transforms.to_tensor`).

    ``dataset[i]`` is ``(transform(image), label)``; ``labels`` is an ``int64`` tensor, so
    samplers and evaluation can read all labels without decoding images.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        classes: Sequence[str],
        name: str,
        transform: Transform | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.classes = [str(c) for c in classes]
        self.name = name
        self.transform = transform
        if self.labels.dim() != 1 or len(self.labels) != len(self.paths):
            raise DataError(f"{name}: {len(self.paths)} files but {self.labels.numel()} labels")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"{name}: labels outside [0, {len(self.classes)})")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")  # a few CUB images are grey or CMYK
        except Exception as exc:  # Pillow raises many types for bad files; all mean unreadable
            raise DataError(f"{self.name}: cannot read image {path} ({exc}); re-extract it") from exc
        sample = self.transform(img) if self.transform is not None else to_tensor(img)
        return sample, int(self.labels[i])

    def __repr__(self) -> str:
        return f"RetrievalDataset(name={self.name!r}, n={len(self)}, num_classes={self.num_classes})"

    @property
    def num_classes(self) -> int:
        """Number of classes in this split."""
        return len(self.classes)

    def class_counts(self) -> torch.Tensor:
        """``int64 (num_classes,)``: number of images of each class."""
        return torch.bincount(self.labels, minlength=self.num_classes)


# ----------------------------------------------------------------------------------------------
# Helpers


def _find_root(
    dataset: str, title: str, data_dir: Any, markers: Sequence[str], subdirs: Sequence[str]
) -> tuple[Path, Path]:
    """The first of ``data_dir`` and ``data_dir/<subdir>`` containing one of ``markers``.

    Returns:
        ``(folder, marker file)``.
    """
    root = resolve_data_dir(data_dir)
    for folder in [root] + [root / s for s in subdirs]:
        for marker in markers:
            if (folder / marker).is_file():
                return folder, folder / marker
    raise DataError(
        f"{title} not found: no {' or '.join(markers)} in {root} or its sub-folders "
        f"{', '.join(subdirs)}; get {SOURCES[dataset]} and extract it into {root}"
    )


def _read_table(path: Path, columns: int, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of at least ``columns`` fields, after ``skip`` header lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[skip:]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}); re-extract the data set") from exc
    rows = []
    for number, line in enumerate(lines, start=skip + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < columns:
            raise DataError(
                f"{path} line {number} has {len(fields)} fields, expected {columns}: {line!r}; "
                f"the file is damaged, re-extract it"
            )
        rows.append(fields)
    return rows


def _int(value: str, path: Path) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}: {value!r} is not an integer id; the file is damaged") from None


def _check_files(paths: Sequence[Path], title: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:_SHOW])
        more = f" and {len(missing) - _SHOW} more" if len(missing) > _SHOW else ""
        raise DataError(
            f"{title}: {len(missing)} image file(s) listed in the metadata are missing: "
            f"{shown}{more}; extract the image archive completely"
        )


def _split(
    paths: Sequence[Path],
    keys: Sequence[Any],
    names: dict[Any, str],
    name: str,
    transform: Transform | None,
    check_files: bool,
    title: str,
    key_order: Sequence[Any] | None = None,
) -> RetrievalDataset:
    """A split whose labels index the sorted distinct ``keys`` (or ``key_order``)."""
    order = sorted(set(keys)) if key_order is None else list(key_order)
    index = {k: i for i, k in enumerate(order)}
    if check_files:
        _check_files(paths, title)
    return RetrievalDataset(
        paths, [index[k] for k in keys], [names.get(k, str(k)) for k in order], name, transform
    )


def _transforms(train: Transform | None, test: Transform | None) -> tuple[Transform, Transform]:
    return (
        train if train is not None else train_transform(),
        test if test is not None else eval_transform(),
    )


# ----------------------------------------------------------------------------------------------
# The four data sets


def load_cub200(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_transform: Transform | None = None,
    test_transform: Transform | None = None,
    check_files: bool = True,
) -> dict[str, RetrievalDataset]:
    """CUB-200-2011: 5 864 train images of classes 1-100, 5 924 test images of classes 101-200.

    Expects the extracted ``CUB_200_2011/`` (``images.txt``, ``image_class_labels.txt``,
    ``classes.txt``, ``images/``) in ``data_dir`` or ``data_dir`` itself being that folder.

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        train_transform: transform of training images (default: random resized crop 224 + flip).
        test_transform: transform of test images (default: resize 256, centre crop 224).
        check_files: verify now that every listed image file exists.

    Returns:
        ``{"train": RetrievalDataset, "test": RetrievalDataset}``.

    Raises:
        DataError: metadata missing or damaged, or listed images missing.
    """
    title = "CUB-200-2011"
    root, _ = _find_root("cub200", title, data_dir, ["images.txt"], ("CUB_200_2011", "cub200"))
    images = {_int(r[0], root / "images.txt"): r[1] for r in _read_table(root / "images.txt", 2)}
    labels_file = root / "image_class_labels.txt"
    labels = {_int(r[0], labels_file): _int(r[1], labels_file) for r in _read_table(labels_file, 2)}
    if set(images) != set(labels):
        raise DataError(
            f"{root}: images.txt and image_class_labels.txt list different image ids; re-extract the data set"
        )
    names: dict[Any, str] = {}
    if (root / "classes.txt").is_file():
        names = {_int(r[0], root / "classes.txt"): r[1] for r in _read_table(root / "classes.txt", 2)}
    else:  # the class folder of each image is its name (e.g. 001.Black_footed_Albatross)
        names = {labels[i]: images[i].split("/")[0] for i in images}
    ids = sorted(images)
    tr_tf, te_tf = _transforms(train_transform, test_transform)
    out = {}
    for split, keep, tf in (
        ("train", lambda c: c <= 100, tr_tf),
        ("test", lambda c: c > 100, te_tf),
    ):
        chosen = [i for i in ids if keep(labels[i])]
        out[split] = _split(
            [root / "images" / images[i] for i in chosen],
            [labels[i] for i in chosen],
            names,
            f"cub200/{split}",
            tf,
            check_files,
            title,
        )
    return out


def _mat_text(value: Any) -> str:
    """A MATLAB char array (as loadmat returns it, nested in object arrays) as a str."""
    arr = np.asarray(value)
    while arr.dtype == object and arr.size == 1:
        arr = np.asarray(arr.item())
    return str(arr.item() if arr.size == 1 else "".join(arr.ravel().tolist()))


def _mat_int(value: Any) -> int:
    arr = np.asarray(value)
    while arr.dtype == object and arr.size == 1:
        arr = np.asarray(arr.item())
    return int(arr.item())


def load_cars196(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_transform: Transform | None = None,
    test_transform: Transform | None = None,
    check_files: bool = True,
) -> dict[str, RetrievalDataset]:
    """Cars-196: 8 054 train images of classes 1-98, 8 131 test images of classes 99-196.

    Expects ``cars_annos.mat`` and ``car_ims/`` in ``data_dir`` or in ``data_dir/cars196``.

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        train_transform: transform of training images (default: random resized crop 224 + flip).
        test_transform: transform of test images (default: resize 256, centre crop 224).
        check_files: verify now that every listed image file exists.

    Returns:
        ``{"train": RetrievalDataset, "test": RetrievalDataset}``.

    Raises:
        DataError: metadata missing or damaged, or listed images missing.
    """
    import scipy.io  # local: only this loader needs it

    title = "Cars-196"
    root, mat_file = _find_root(
        "cars196",
        title,
        data_dir,
        ["cars_annos.mat"],
        ("cars196", "Cars196", "stanford_cars", "cars"),
    )
    try:
        mat = scipy.io.loadmat(mat_file)
        annotations = np.asarray(mat["annotations"]).ravel()
        rel_paths = [_mat_text(a["relative_im_path"]) for a in annotations]
        classes = [_mat_int(a["class"]) for a in annotations]
        names = {k + 1: _mat_text(n) for k, n in enumerate(np.asarray(mat.get("class_names", [])).ravel())}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"cannot read {mat_file} ({exc}); it is damaged, download it again") from exc
    tr_tf, te_tf = _transforms(train_transform, test_transform)
    out = {}
    for split, keep, tf in (("train", lambda c: c <= 98, tr_tf), ("test", lambda c: c > 98, te_tf)):
        chosen = [i for i, c in enumerate(classes) if keep(c)]
        out[split] = _split(
            [root / rel_paths[i] for i in chosen],
            [classes[i] for i in chosen],
            names,
            f"cars196/{split}",
            tf,
            check_files,
            title,
        )
    return out


def load_sop(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_transform: Transform | None = None,
    test_transform: Transform | None = None,
    check_files: bool = True,
) -> dict[str, RetrievalDataset]:
    """Stanford Online Products: 59 551 train images (11 318 products), 60 502 test (11 316).

    Expects ``Stanford_Online_Products/`` (``Ebay_train.txt``, ``Ebay_test.txt`` with the header
    ``image_id class_id super_class_id path``, and the ``<category>_final/`` folders).

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        train_transform: transform of training images (default: random resized crop 224 + flip).
        test_transform: transform of test images (default: resize 256, centre crop 224).
        check_files: verify now that every listed image file exists.

    Returns:
        ``{"train": RetrievalDataset, "test": RetrievalDataset}``.

    Raises:
        DataError: metadata missing or damaged, or listed images missing.
    """
    title = "Stanford Online Products"
    root, _ = _find_root(
        "sop", title, data_dir, ["Ebay_train.txt"], ("Stanford_Online_Products", "sop", "SOP")
    )
    tr_tf, te_tf = _transforms(train_transform, test_transform)
    out = {}
    for split, file, tf in (("train", "Ebay_train.txt", tr_tf), ("test", "Ebay_test.txt", te_tf)):
        path = root / file
        if not path.is_file():
            raise DataError(f"{title}: {path} is missing; re-extract {SOURCES['sop']}")
        rows = _read_table(path, 4, skip=1)  # header: image_id class_id super_class_id path
        keys = [_int(r[1], path) for r in rows]
        out[split] = _split([root / r[3] for r in rows], keys, {}, f"sop/{split}", tf, check_files, title)
    return out


def load_inshop(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_transform: Transform | None = None,
    test_transform: Transform | None = None,
    check_files: bool = True,
) -> dict[str, RetrievalDataset]:
    """In-Shop Clothes Retrieval: 25 882 train images (3 997 items); query 14 218 and gallery
    12 612 images of 3 985 other items.

    Expects ``list_eval_partition.txt`` (first line: count, second: the header ``image_name
    item_id evaluation_status``) in the root or its ``Eval/`` folder, and the ``img/`` folder in
    the root or its ``Img/`` folder.

    Args:
        data_dir: data folder; default ``$GDML_DATA`` or the per-user cache folder.
        train_transform: transform of training images (default: random resized crop 224 + flip).
        test_transform: transform of query and gallery images (default: resize 256, crop 224).
        check_files: verify now that every listed image file exists.

    Returns:
        ``{"train", "query", "gallery"}`` data sets; query and gallery share class indices.

    Raises:
        DataError: metadata missing or damaged, or listed images missing.
    """
    title = "In-Shop Clothes"
    subdirs = (
        "InShop",
        "inshop",
        "In-shop",
        "Inshop_Clothes",
        "In-shop Clothes Retrieval Benchmark",
    )
    root, part_file = _find_root(
        "inshop",
        title,
        data_dir,
        ["list_eval_partition.txt", "Eval/list_eval_partition.txt"],
        subdirs,
    )
    lines = _read_table(part_file, 1)
    if not lines or len(lines[0]) != 1:
        raise DataError(f"{part_file} should start with the number of images; re-extract it")
    count = _int(lines[0][0], part_file)
    rows = lines[2:]  # after the count and the header line
    if any(len(r) < 3 for r in rows):
        raise DataError(f"{part_file}: every row needs image_name item_id evaluation_status")
    if count != len(rows):
        raise DataError(f"{part_file} announces {count} images but lists {len(rows)}; re-extract it")
    image_base = next((b for b in (root, root / "Img") if rows and (b / rows[0][0]).is_file()), root)
    by_status: dict[str, list[list[str]]] = {"train": [], "query": [], "gallery": []}
    for r in rows:
        if r[2] not in by_status:
            raise DataError(
                f"{part_file}: unknown evaluation_status {r[2]!r}; expected train, query or gallery"
            )
        by_status[r[2]].append(r)
    tr_tf, te_tf = _transforms(train_transform, test_transform)
    test_items = sorted({r[1] for s in ("query", "gallery") for r in by_status[s]})
    out = {
        "train": _split(
            [image_base / r[0] for r in by_status["train"]],
            [r[1] for r in by_status["train"]],
            {},
            "inshop/train",
            tr_tf,
            check_files,
            title,
        )
    }
    for split in ("query", "gallery"):
        out[split] = _split(
            [image_base / r[0] for r in by_status[split]],
            [r[1] for r in by_status[split]],
            {},
            f"inshop/{split}",
            te_tf,
            check_files,
            title,
            key_order=test_items,
        )
    return out
