"""Tiny replicas of the retrieval benchmarks' official file layouts (CUB-200-2011, Cars-196,
SOP, In-Shop), written by the tests that read them: noise JPEGs and the real metadata formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def _jpeg(path: Path, size: tuple[int, int] = (30, 20), seed: int = 0, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def make_cub(root: Path, classes: tuple[int, ...] = (1, 2, 101, 200), per_class: int = 2) -> Path:
    base = root / "CUB_200_2011"
    images, labels, names = [], [], []
    for c in classes:
        folder = f"{c:03d}.Bird_{c}"
        names.append(f"{c} {folder}")
        for k in range(per_class):
            rel = f"{folder}/Bird_{c}_{k}.jpg"
            _jpeg(base / "images" / rel, seed=len(images), mode="L" if k == 1 else "RGB")
            images.append(f"{len(images) + 1} {rel}")
            labels.append(f"{len(labels) + 1} {c}")
    base.mkdir(exist_ok=True)
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "classes.txt").write_text("\n".join(names) + "\n")
    return base


def make_cars(root: Path, classes: tuple[int, ...] = (1, 98, 99, 196)) -> Path:
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, 2 * len(classes)), dtype=[(f, "O") for f in fields])
    for i, c in enumerate(np.repeat(classes, 2)):
        rel = f"car_ims/{i + 1:06d}.jpg"
        _jpeg(root / rel, size=(40, 25), seed=i)
        annotations[0, i] = (rel, 1, 1, 30, 20, np.uint8(c), np.uint8(i % 2))
    class_names = np.empty((1, 196), dtype=object)
    class_names[0, :] = [f"Car model {k}" for k in range(1, 197)]
    scipy.io.savemat(root / "cars_annos.mat", {"annotations": annotations, "class_names": class_names})
    return root


def make_sop(root: Path) -> Path:
    base = root / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path\n"
    train = [
        (1, 1, "bicycle_final/111_0.JPG"),
        (2, 1, "bicycle_final/111_1.JPG"),
        (3, 2, "chair_final/222_0.JPG"),
    ]
    test = [
        (4, 11319, "sofa_final/333_0.JPG"),
        (5, 11319, "sofa_final/333_1.JPG"),
        (6, 11320, "mug_final/444_0.JPG"),
    ]
    for name, rows in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        lines = [f"{i} {c} 1 {p}" for i, c, p in rows]
        for i, _, p in rows:
            _jpeg(base / p, seed=i)
        base.mkdir(exist_ok=True)
        (base / name).write_text(header + "\n".join(lines) + "\n")
    return base


def make_inshop(root: Path) -> Path:
    rows = [
        ("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
        ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
        ("img/MEN/Denim/id_00000003/01_1_front.jpg", "id_00000003", "train"),
        ("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "query"),
        ("img/MEN/Denim/id_00000080/01_2_side.jpg", "id_00000080", "gallery"),
        ("img/WOMEN/Tees/id_00000091/01_1_front.jpg", "id_00000091", "gallery"),
        ("img/WOMEN/Tees/id_00000091/01_2_side.jpg", "id_00000091", "query"),
        ("img/WOMEN/Tees/id_00000095/01_2_side.jpg", "id_00000095", "gallery"),
    ]
    for i, (p, _, _) in enumerate(rows):
        _jpeg(root / "Img" / p, size=(24, 32), seed=i)
    (root / "Eval").mkdir(parents=True)
    text = f"{len(rows)}\nimage_name item_id evaluation_status\n"
    text += "".join(f"{p}    {item}    {status}\n" for p, item, status in rows)
    (root / "Eval" / "list_eval_partition.txt").write_text(text)
    return root
