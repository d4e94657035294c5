"""Run folders: --overwrite removes only what the manifest lists, inputs stay apart from outputs,
damaged files get one line, and temporaries left by a SIGKILL are cleaned on the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guided_dml.cli import main
from guided_dml.experiments.run_folder import MANIFEST, RUN_FILES

SMOKE = ("--preset", "smoke", "--threads", "1")


def _photos(root: Path, per_class: int = 12) -> Path:
    """A tiny image folder (two classes of 8×8 PNGs) and a README: the user's data."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for k in range(per_class):
            img = rng.integers(0, 255, (8, 8), dtype=np.uint8) // (2 if c == "a" else 1)
            Image.fromarray(img, "L").save(root / c / f"{k}.png")
    (root / "README").write_text("my data\n")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("gdml: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished G-DML run on digits (kept as a template; tests copy it)."""
    out = tmp_path_factory.mktemp("runs") / "gdml"
    assert main(["train", "--dataset", "digits", *SMOKE, "--out", str(out)]) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_out_never_equals_contains_or_lies_inside_the_data(tmp_path, capsys, where):
    data = _photos(tmp_path / "photos")
    out = {"same": data, "inside": data / "run", "parent": tmp_path}[where]
    before = _snapshot(tmp_path)
    rc = main(["train", "--dataset", str(data), *SMOKE, "--out", str(out), "--overwrite"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "the data set" in line and "choose another --out" in line
    assert _snapshot(tmp_path) == before, "nothing of the user's is removed or added"
    assert not (data / "run").exists()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    rc = main(["train", "--dataset", "digits", *SMOKE, "--out", str(folder), "--overwrite"])
    assert rc == 2
    assert "not a guided-dml run folder" in _one_error_line(capsys.readouterr().err)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_overwrite_removes_only_what_the_manifest_lists(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    manifest = json.loads((run / MANIFEST).read_text())
    assert set(manifest["files"]) == set(RUN_FILES)
    assert {p.name for p in run.iterdir()} - {MANIFEST} <= set(manifest["files"])
    (run / "notes.txt").write_text("mine")
    (run / "extra").mkdir()
    (run / "extra" / "model.pt").write_text("also mine")
    old = (run / "metrics.json").read_bytes()
    assert main(["train", "--dataset", "digits", *SMOKE, "--out", str(run), "--lr", "0.05",
                 "--overwrite"]) == 0
    assert "note: --overwrite kept what is not the run's own" in capsys.readouterr().err
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "extra" / "model.pt").read_text() == "also mine"
    assert (run / "metrics.json").read_bytes() != old
    assert json.loads((run / "config.json").read_text())["lr"] == 0.05


def test_a_damaged_manifest_stops_overwrite(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path)
    (run / MANIFEST).write_text(json.dumps({"format": "guided-dml run folder", "files": ["../x"]}))
    assert main(["train", "--dataset", "digits", *SMOKE, "--out", str(run), "--overwrite"]) == 2
    assert "is damaged" in _one_error_line(capsys.readouterr().err)
    assert (run / "model.pt").exists()


def test_temporaries_of_a_killed_writer_are_removed_on_the_next_run(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / ".student.ckpt.k1ll3d.tmp").write_bytes(b"")  # what a SIGKILL mid-write leaves
    (run / ".metrics.json.x9.tmp").write_bytes(b"{")
    (run / ".my-own.tmp").write_bytes(b"not ours")  # not a temporary of a listed file: kept
    assert main(["train", "--dataset", "digits", *SMOKE, "--out", str(run)]) == 0
    assert sorted(p.name for p in run.glob(".*.tmp")) == [".my-own.tmp"]


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x93garbage{")


def _a_list(path: Path) -> None:
    path.write_text("[1, 2]")


@pytest.mark.parametrize("damage", [_garbage, _a_list], ids=["garbage", "list"])
@pytest.mark.parametrize("name", ["config.json", "metrics.json", "targets.pt"])
def test_damaged_run_files_get_one_line(finished, tmp_path, capsys, name, damage):
    run = _copy(finished, tmp_path)
    if name == "targets.pt":  # an interrupted run whose teacher had finished
        (run / "metrics.json").unlink()
    damage(run / name)
    rc = main(["train", "--dataset", "digits", *SMOKE, "--out", str(run), "--resume"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(run / name) in line and "damaged" in line
    assert "delete that file" in line and "--overwrite" in line


# ------------------------------------------------------------------ faults at every write
def _check_complete(run: Path) -> None:
    """Every file of the folder is whole (parses), and no temporary file is left."""
    import torch

    assert not [p.name for p in run.glob(".*.tmp")], "no temporary file may remain"
    for p in run.iterdir():
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".jsonl":
            [json.loads(line) for line in p.read_text().splitlines()]
        elif p.suffix == ".png":
            with Image.open(p) as img:
                img.load()
        elif p.suffix in (".pt", ".ckpt"):
            torch.load(p, map_location="cpu", weights_only=False)
        elif p.suffix == ".npz":
            with np.load(p) as z:
                [z[k] for k in z.files]


@pytest.mark.parametrize("fault", ["disk-full", "ctrl-c"])
def test_a_fault_at_every_write_of_a_run_leaves_whole_files(tmp_path, monkeypatch, capsys, fault):
    """Each file of a G-DML run fails once at its first write (ENOSPC, or Ctrl-C while it is
    written); after each failure every file is whole and none is temporary, and ``--resume``
    goes on until the run completes."""
    import errno
    import os

    from guided_dml import atomic

    real_fsync, faulted = os.fsync, []

    def fsync(fd: int) -> None:  # the data are in the temporary file; the disk fills now
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        target = name[1:].rsplit(".", 2)[0]  # ".NAME.XXXXXX.tmp" -> NAME
        if target not in faulted:
            faulted.append(target)
            if fault == "ctrl-c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    run = tmp_path / "run"
    args = ["train", "--dataset", "digits", *SMOKE, "--out", str(run), "--resume"]
    for _ in range(20):
        rc = main(args)
        err = capsys.readouterr().err
        if rc == 0:
            break
        if fault == "ctrl-c":
            assert rc == 130 and "interrupted" in err
        else:
            line = _one_error_line(err)
            assert rc == 2 and f"cannot write {run / faulted[-1]}: no space left" in line
            assert "to write" in line and "free" in line
        if run.exists():
            _check_complete(run)
    assert rc == 0
    _check_complete(run)
    expected = {MANIFEST, "config.json", "history.jsonl", "teacher.ckpt", "targets.pt",
                "student.ckpt", "model.pt", "embeddings.npz", "embedding.png", "curves.png",
                "metrics.json"}
    assert set(faulted) == expected


@pytest.mark.parametrize("content", ["[1, 2]", "\x00garbage"], ids=["list", "garbage"])
def test_the_report_skips_a_damaged_metrics_file_with_a_note(tmp_path, content):
    from guided_dml.experiments.report import collect_runs

    run = tmp_path / "runs" / "digits" / "triplet" / "seed-0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(content)
    with pytest.warns(UserWarning, match=r"metrics\.json is damaged .*delete that file to recompute"):
        assert collect_runs(tmp_path) == []
