"""`gdml train` on a folder of labelled photos that metric learning cannot use: one-line errors."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest


def _subset(photos, root, counts):
    """``root/<class>/``: the first ``counts[class]`` images of each class of ``photos``."""
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for f in sorted((photos / cls).glob("*.png"))[:n]:
            shutil.copy(f, root / cls / f.name)
    return root


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(lambda p, d: _subset(p, d / "one", {"circle": 10}),
                     ["single class ('circle')", "at least 2 classes"], id="single-class"),
        pytest.param(lambda p, d: _subset(p, d / "lonely", {"circle": 10, "cross": 10, "stripes": 1}),
                     ["'stripes'", "single training sample"], id="class-with-one-image"),
        pytest.param(lambda p, d: _broken(_subset(p, d / "broken", {"circle": 6, "cross": 6})),
                     ["1 unreadable image(s)", "bad.png", "--skip-bad"], id="corrupt-image"),
        pytest.param(lambda p, d: _empty_tar(d), ["no images found"], id="archive-without-images"),
        pytest.param(lambda p, d: d / "nowhere/", ["no such folder or archive"], id="missing"),
    ],
)
def test_bad_photo_folders(gdml, error, photos, tmp_path, make, fragments):
    source = make(photos, tmp_path)
    out = tmp_path / "run"
    error(gdml("train", "--dataset", f"{source}", "--preset", "smoke", "--out", out), *fragments)
    assert not (out / "model.pt").exists()
    # After fixing the data, the same command starts afresh (no "unfinished run" in the way).
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == [".gdml-run.json", "config.json"]


def test_a_failed_start_does_not_block_the_next_one(gdml, error, photos, tmp_path):
    data = _subset(photos, tmp_path / "d", {"circle": 20, "cross": 20, "stripes": 1})
    out = tmp_path / "run"
    args = ("train", "--dataset", f"{data}/", "--preset", "smoke", "--out", out)
    error(gdml(*args), "single training sample")
    for f in sorted((photos / "stripes").glob("*.png"))[1:20]:
        shutil.copy(f, data / "stripes" / f.name)
    rc, _, err = gdml(*args)
    assert rc == 0, err
    assert (out / "model.pt").is_file()


def test_skip_bad_trains_without_the_unreadable_image(gdml, photos, tmp_path):
    data = _broken(_subset(photos, tmp_path / "broken", {"circle": 24, "cross": 24}))
    out = tmp_path / "run"
    rc, _, err = gdml("train", "--dataset", f"{data}/", "--preset", "smoke", "--skip-bad", "--out", out)
    assert rc == 0, err
    assert "bad.png" in err  # the note names what was left out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["skip_bad"] is True
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["n_train"] + meta["n_val"] + meta["n_test"] == 48  # 49 files, one unreadable


def test_too_small_a_validation_split_is_a_clear_error(gdml, error, photos, tmp_path):
    data = _subset(photos, tmp_path / "small", {"circle": 12, "cross": 12})
    error(gdml("train", "--dataset", f"{data}/", "--preset", "smoke", "--out", tmp_path / "run"),
          "validation split has 2 image(s)", "--select-on loss")
    rc, _, err = gdml("train", "--dataset", f"{data}/", "--preset", "smoke", "--select-on", "loss",
                      "--out", tmp_path / "run2")
    assert rc == 0, err


def _broken(root):
    (root / "cross" / "bad.png").write_bytes(b"not an image")
    return root


def _empty_tar(d):
    (d / "readme.txt").write_text("nothing")
    path = d / "photos.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        t.add(d / "readme.txt", arcname="photos/readme.txt")
    return path
