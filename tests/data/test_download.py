"""Download helper: file:// URLs, md5 checks, atomic writes, and the offline messages."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from guided_dml.data import download, load_cifar10, load_mnist, write_idx
from guided_dml.data.download import RemoteFile, download_url, fetch_files, md5sum
from guided_dml.errors import DataError


def _payload(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "remote" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17))  # several chunks
    return src, hashlib.md5(src.read_bytes()).hexdigest()


def test_download_file_url_with_md5(tmp_path: Path) -> None:
    src, md5 = _payload(tmp_path)
    dest = download_url(src.as_uri(), tmp_path / "out" / "blob.bin", md5, progress=False)
    assert dest.read_bytes() == src.read_bytes()
    assert md5sum(dest) == md5
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]  # no temp file left


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    src, _ = _payload(tmp_path)
    dest = tmp_path / "out" / "blob.bin"
    with pytest.raises(DataError, match=r"checksum mismatch .* expected 0+") as info:
        download_url(src.as_uri(), dest, "0" * 32, progress=False)
    assert "\n" not in str(info.value)
    assert not dest.exists() and not dest.parent.exists(), "a failed download creates no folder"


def test_mismatch_keeps_an_existing_good_file(tmp_path: Path) -> None:
    src, _ = _payload(tmp_path)
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(DataError):
        download_url(src.as_uri(), dest, "0" * 32, progress=False)
    assert dest.read_bytes() == b"previous"


def test_unreachable_url(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"could not download .*save it as"):
        download_url((tmp_path / "absent.bin").as_uri(), tmp_path / "x.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def _offline(*args: object, **kwargs: object) -> None:
    raise urllib.error.URLError("no network")


def test_offline_message_names_files_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "urlopen", _offline)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=True, progress=False)
    message = str(info.value)
    assert "no network" in message and "\n" not in message
    assert str(tmp_path / "mnist") in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message


def test_cifar_offline_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "urlopen", _offline)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz"):
        load_cifar10(tmp_path, progress=False)


def test_fetch_files_without_download(tmp_path: Path) -> None:
    files = [RemoteFile("a.gz", "https://example.org/data/a.gz", "0" * 32)]
    with pytest.raises(DataError, match=r"toy needs a\.gz in .*https://example\.org/data/.*download=True"):
        fetch_files("toy", tmp_path, files, download=False)


def test_mnist_is_downloaded_from_a_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: missing files are fetched (md5-checked) into <data_dir>/mnist and loaded."""
    mirror = tmp_path / "mirror"
    rng = np.random.default_rng(0)
    remote = []
    for prefix, n in (("train", 6), ("t10k", 3)):
        images = write_idx(
            mirror / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 5, 5), dtype=np.uint8)
        )
        labels = write_idx(mirror / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
        remote += [RemoteFile(p.name, p.as_uri(), md5sum(p)) for p in (images, labels)]
    monkeypatch.setitem(download.REMOTE_FILES, "mnist", tuple(remote))
    data = load_mnist(tmp_path / "data", progress=False)
    assert len(data["train"]) == 6 and data["test"].input_shape == (1, 5, 5)
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(f.name for f in remote)


def test_official_table() -> None:
    """The built-in sources point at the official servers with 32-digit md5s."""
    for files in download.REMOTE_FILES.values():
        for f in files:
            assert f.url.endswith("/" + f.name) and len(f.md5) == 32
    (cifar,) = download.REMOTE_FILES["cifar10"]
    assert cifar.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar.md5 == "c58f30108f718f92721af3b95e74349a"
