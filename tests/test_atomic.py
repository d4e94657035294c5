"""The one atomic writer: whole files or none, no temporaries, one line naming the file."""

from __future__ import annotations

import errno
import os

import matplotlib.pyplot as plt
import pytest
import torch

from guided_dml import atomic
from guided_dml.atomic import WriteError, remove_temporaries, write_atomic, write_bytes, write_figure
from guided_dml.errors import OutputError


def _full(*_args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_bytes(path, b"old")
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, ValueError])
def test_an_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, exc):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        raise exc()

    with pytest.raises(exc):
        write_atomic(path, write)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_full_disk_names_the_file_and_the_space(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", _full)
    with pytest.raises(WriteError) as info:
        write_bytes(tmp_path / "big.npz", b"x" * 5000)
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path / "big.npz") in msg
    assert "no space left" in msg and "4.9 KB to write" in msg and "free" in msg
    assert isinstance(info.value, OutputError) and isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_torch_checkpoints_on_a_full_disk_give_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", _full)
    with pytest.raises(WriteError, match=r"cannot write .*student\.ckpt: no space left"):
        atomic.write_torch(tmp_path / "student.ckpt", {"w": torch.zeros(100)})
    assert list(tmp_path.iterdir()) == []


def test_figures_are_written_whole(tmp_path, monkeypatch):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    write_figure(tmp_path / "f.png", fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(atomic.os, "fsync", _full)
    with pytest.raises(WriteError, match=r"f\.png"):
        write_figure(tmp_path / "f.png", fig)
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the old one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_remove_temporaries_only_of_the_named_files(tmp_path):
    for name in (".a.json.x1.tmp", ".b.png.y2.tmp", ".mine.tmp", "a.json"):
        (tmp_path / name).write_bytes(b"")
    removed = remove_temporaries(tmp_path, ["a.json", "b.png"])
    assert sorted(p.name for p in removed) == [".a.json.x1.tmp", ".b.png.y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mine.tmp", "a.json"]
