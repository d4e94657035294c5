"""Walking image folders: file names that are not UTF-8, and symlink loops."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guided_dml.data.files import list_image_files
from guided_dml.data.image_folder import load_image_folder
from guided_dml.errors import DataError


def _tree(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), "L").save(root / c / f"{k}.png")
    return root


def test_a_file_name_that_is_not_utf8_loads_and_caches(tmp_path):
    root = _tree(tmp_path / "photos")
    odd = os.path.join(os.fsencode(root / "a"), b"caf\xe9.png")  # Latin-1, not UTF-8
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(odd.decode(errors="surrogateescape"))
    kwargs = {"cache_dir": tmp_path / "cache", "progress": False, "num_workers": 1}
    first = load_image_folder(root, **kwargs)
    again = load_image_folder(root, **kwargs)  # from the decoded cache, keyed by the names
    assert sum(len(s) for s in first.values()) == 13 == sum(len(s) for s in again.values())


def test_a_symlink_loop_is_one_line_naming_the_link(tmp_path):
    root = _tree(tmp_path / "photos")
    os.symlink(root, root / "a" / "loop")
    with pytest.raises(DataError) as info:
        load_image_folder(root, cache_dir=tmp_path / "cache", progress=False, num_workers=1)
    msg = str(info.value)
    assert "symlink loop" in msg and "a/loop" in msg and "remove that link" in msg
    assert "\n" not in msg and len(msg) < 300


def test_embed_lists_the_files_of_a_loop_once_with_a_note(tmp_path):
    root = _tree(tmp_path / "photos")
    os.symlink(root / "a", root / "a" / "again")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = list_image_files([root])
    assert len(files) == 12 and len({f.name for f in files}) == 12
    assert any("symlink loop" in str(w.message) and "a/again" in str(w.message) for w in caught)


def test_a_link_to_a_folder_elsewhere_is_followed(tmp_path):
    elsewhere = _tree(tmp_path / "elsewhere")
    root = tmp_path / "photos"
    root.mkdir()
    for c in ("a", "b"):
        os.symlink(elsewhere / c, root / c)
    splits = load_image_folder(root, cache=False, progress=False, num_workers=1)
    assert sum(len(s) for s in splits.values()) == 12


def test_gdml_train_embed_and_search_take_names_that_are_not_utf8(tmp_path, capsys, monkeypatch):
    from guided_dml.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _tree(tmp_path / "photos", per_class=12)
    odd = os.fsdecode(os.path.join(os.fsencode(root / "a"), b"caf\xe9.png"))
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(odd)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(root), "--preset", "smoke", "--threads", "1",
                 "--select-on", "loss", "--out", str(run)]) == 0
    assert main(["embed", str(run), str(root), "--out", str(tmp_path / "e.csv")]) == 0
    assert b"caf\xe9.png" in (tmp_path / "e.csv").read_bytes()  # the name's own bytes
    assert main(["search", str(run), odd, "--k", "1"]) == 0
    assert "caf\\udce9.png" in capsys.readouterr().out
