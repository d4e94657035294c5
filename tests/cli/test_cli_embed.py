"""`gdml embed`: images (folder, files, archives) or a .npy array to .npy / .csv, and bad input."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from guided_dml import atomic
from guided_dml.experiments.factory import load_model
from guided_dml.training import embed


def test_folder_to_csv_with_names_and_folder_labels(gdml, run_dir, photos, tmp_path):
    out = tmp_path / "emb.csv"
    rc, _, err = gdml("embed", run_dir, photos, "--out", out)
    assert rc == 0 and "wrote 72 embeddings (d = 2)" in err
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["file", "label", "e0", "e1"]
    assert len(rows) == 73
    assert rows[1][0] == f"{photos}/circle/000.png" and rows[1][1] == "circle"
    assert {r[1] for r in rows[1:]} == {"circle", "cross", "stripes"}
    # The same numbers as the model on the decoded images.
    model, _ = load_model(run_dir)
    x = torch.from_numpy(np.array(Image.open(photos / "circle" / "000.png")))[None, None]
    want = embed(model, x)[0].numpy()
    np.testing.assert_allclose([float(v) for v in rows[1][2:]], want, rtol=1e-5, atol=1e-6)


def test_files_and_archives_to_npy(gdml, run_dir, photos, tmp_path):
    files = sorted((photos / "cross").glob("*.png"))[:3]
    tar = tmp_path / "some.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        for f in files:
            t.add(f, arcname=f"cross/{f.name}")
    zf = tmp_path / "some.zip"
    with zipfile.ZipFile(zf, "w") as z:
        for f in files:
            z.write(f, f"cross/{f.name}")
    outs = {}
    for name, inputs in {"files": files, "tar": [tar], "zip": [zf]}.items():
        outs[name] = tmp_path / f"{name}.npy"
        rc, _, err = gdml("embed", run_dir, *inputs, "--out", outs[name])
        assert rc == 0, err
    a, b, c = (np.load(outs[k]) for k in ("files", "tar", "zip"))
    assert a.shape == (3, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_npy_array_input(gdml, run_dir, photos, tmp_path):
    images = np.stack([np.asarray(Image.open(f)) for f in sorted((photos / "circle").glob("*.png"))[:4]])
    arr = tmp_path / "x.npy"
    np.save(arr, images)  # N×H×W uint8
    out = tmp_path / "e.csv"
    rc, _, _ = gdml("embed", run_dir, arr, "--out", out)
    assert rc == 0
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    np.save(arr, images.astype(np.float32) / 255.0)  # floats in [0, 1]: the same images
    rc, _, _ = gdml("embed", run_dir, arr, "--out", tmp_path / "f.csv")
    assert rc == 0
    rows_f = list(csv.reader((tmp_path / "f.csv").open()))
    np.testing.assert_allclose(np.array(rows_f)[1:, 2:].astype(float), np.array(rows)[1:, 2:].astype(float))


def test_mixed_sizes_and_modes_are_converted_with_a_note(gdml, run_dir, photos, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    src = Image.open(photos / "circle" / "001.png")
    src.save(mixed / "a.png")
    src.resize((40, 30)).save(mixed / "b.png")
    src.convert("RGB").save(mixed / "c.jpg")
    src.convert("RGBA").resize((20, 20)).save(mixed / "d.png")
    rc, _, err = gdml("embed", run_dir, mixed, "--out", tmp_path / "m.npy")
    assert rc == 0
    assert "gdml: note: resized 2 of 4 image(s) to 16×16" in err
    assert "converted 2 of 4 image(s) to L" in err
    emb = np.load(tmp_path / "m.npy")
    assert emb.shape == (4, 2) and np.isfinite(emb).all()


@pytest.mark.parametrize(
    ("setup", "fragments"),
    [
        pytest.param(lambda d: [d / "nope.png"], ["nope.png does not exist"], id="missing-file"),
        pytest.param(lambda d: [d / "nope"], ["does not exist"], id="missing-folder"),
        pytest.param(lambda d: [_corrupt(d)], ["1 unreadable image(s)", "broken.png", "--skip-bad"],
                     id="corrupt-image"),
        pytest.param(lambda d: [_empty_tar(d)], ["holds no images"], id="archive-without-images"),
        pytest.param(lambda d: [_bad_archive(d)], ["cannot read archive", "damaged"], id="damaged-archive"),
        pytest.param(lambda d: [_empty_dir(d)], ["no images found in folder"], id="folder-without-images"),
        pytest.param(lambda d: [_npy(d, np.zeros((3, 5, 16, 16), np.uint8))],
                     ["cannot find the colour channels"], id="npy-five-channels"),
        pytest.param(lambda d: [_npy(d, np.zeros((3, 3, 16, 16), np.uint8))],
                     ["3 channel(s) but the model takes 1"], id="npy-wrong-channels"),
        pytest.param(lambda d: [_npy(d, np.full((2, 16, 16), np.nan, np.float32))],
                     ["NaN or infinite"], id="npy-nan"),
        pytest.param(lambda d: [_npy(d, np.full((2, 16, 16), np.inf, np.float32))],
                     ["NaN or infinite"], id="npy-inf"),
        pytest.param(lambda d: [_npy(d, np.zeros((2, 9, 9), np.uint8))],
                     ["9×9 images but the model takes 16×16"], id="npy-size"),
        pytest.param(lambda d: [_garbage(d, "x.npy")], ["cannot read", "NumPy .npy"], id="npy-unreadable"),
        pytest.param(lambda d: [_npy(d, np.array(["a", "b"]))], ["real numbers"], id="npy-strings"),
    ],
)
def test_bad_input(gdml, error, run_dir, tmp_path, setup, fragments):
    out = tmp_path / "out.npy"
    error(gdml("embed", run_dir, *setup(tmp_path), "--out", out), *fragments)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.npy")], "no temporary file"


def test_skip_bad_leaves_out_unreadable_images(gdml, run_dir, photos, tmp_path):
    folder = tmp_path / "some"
    shutil.copytree(photos / "circle", folder)
    (folder / "broken.png").write_bytes(b"not a png")
    rc, _, err = gdml("embed", run_dir, folder, "--out", tmp_path / "e.csv", "--skip-bad")
    assert rc == 0 and "skipped 1 unreadable image(s)" in err
    rows = list(csv.reader((tmp_path / "e.csv").open()))
    assert len(rows) == 1 + 24 and not any("broken" in r[0] for r in rows)


def test_output_exists_refused_unless_overwrite(gdml, error, run_dir, query, tmp_path):
    out = tmp_path / "e.npy"
    out.write_bytes(b"keep me")
    error(gdml("embed", run_dir, query, "--out", out), "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    rc, _, _ = gdml("embed", run_dir, query, "--out", out, "--overwrite")
    assert rc == 0 and np.load(out).shape == (1, 2)


def test_bad_output_suffix_and_missing_model(gdml, error, run_dir, query, tmp_path):
    error(gdml("embed", run_dir, query, "--out", tmp_path / "e.txt"), "must end with .npy or .csv")
    error(gdml("embed", tmp_path / "nothing", query, "--out", tmp_path / "e.npy"), "no model at")
    bad = tmp_path / "model.pt"
    bad.write_text("this is not a model\nsecond line")
    error(gdml("embed", bad, query, "--out", tmp_path / "e.npy"), "not a readable guided-dml model")


def test_full_disk_leaves_no_partial_file(gdml, error, run_dir, query, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name in ("e.npy", "e.csv"):
        error(gdml("embed", run_dir, query, "--out", out_dir / name), "no space left", "nothing was written")
    assert list(out_dir.iterdir()) == []


def test_debug_shows_the_traceback(run_dir, tmp_path):
    from guided_dml.cli import main
    from guided_dml.errors import DataError

    with pytest.raises(DataError):
        main(["--debug", "embed", str(run_dir), str(tmp_path / "nope.png"), "--out", str(tmp_path / "e.npy")])


def _corrupt(d):
    (d / "imgs").mkdir()
    Image.new("L", (16, 16)).save(d / "imgs" / "fine.png")
    (d / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return d / "imgs"


def _empty_tar(d):
    (d / "notes.txt").write_text("no images here")
    path = d / "empty.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        t.add(d / "notes.txt", arcname="notes.txt")
    return path


def _bad_archive(d):
    path = d / "bad.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data at all")
    return path


def _empty_dir(d):
    (d / "empty").mkdir()
    (d / "empty" / "readme.txt").write_text("x")
    return d / "empty"


def _npy(d, arr):
    path = d / "x.npy"
    np.save(path, arr)
    return path


def _garbage(d, name):
    path = d / name
    path.write_bytes(b"definitely not numpy")
    return path


def test_unexpected_os_error_is_one_line_too(gdml, error, run_dir, query, tmp_path, monkeypatch):
    from guided_dml.commands import inference

    def fail(path):
        raise OSError(errno.EIO, "Input/output error\nwhile reading the model")

    monkeypatch.setattr(inference, "open_model", fail)
    line = error(gdml("embed", run_dir, query, "--out", tmp_path / "e.npy"), "Input/output error")
    assert "--debug" in line
