"""CIFAR-10 loader on a tiny archive with the official structure, and the JPEG fallback."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from guided_dml.data import load_cifar10, read_cifar10_archive, read_cifar10_folder
from guided_dml.errors import DataError

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
         b"dog", b"frog", b"horse", b"ship", b"truck"]  # fmt: skip
PER_BATCH = 4


def _batch(seed: int) -> dict[bytes, object]:
    """A batch as the original python-2 pickles hold it: bytes keys, uint8 N×3072, list labels."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, PER_BATCH)],
        b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(PER_BATCH)],
    }


def py2_pickle(obj: object) -> bytes:
    """Pickle dicts, lists, bytes and small ints exactly as Python 2's cPickle (protocol 2) did.

    Python 2 ``str`` became SHORT_BINSTRING, which only ``encoding="bytes"`` reads back as bytes.
    """

    def dump(o: object) -> bytes:
        if isinstance(o, bytes):
            return b"U" + bytes([len(o)]) + o  # SHORT_BINSTRING
        if isinstance(o, int):
            return b"J" + struct.pack("<i", o)  # BININT
        if isinstance(o, list):
            return b"](" + b"".join(dump(v) for v in o) + b"e"  # EMPTY_LIST MARK ... APPENDS
        if isinstance(o, dict):
            items = b"".join(dump(k) + dump(v) for k, v in o.items())
            return b"}(" + items + b"u"  # EMPTY_DICT MARK ... SETITEMS
        raise TypeError(type(o))

    return b"\x80\x02" + dump(obj) + b"."


def batch_pickle(batch: dict[bytes, object]) -> bytes:
    """A protocol-2 pickle naming numpy's reconstructor as the original files do."""
    data = pickle.dumps(batch, protocol=2)
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _members() -> dict[str, bytes]:
    members = {f"data_batch_{i}": batch_pickle(_batch(i)) for i in range(1, 6)}
    members["test_batch"] = batch_pickle(_batch(99))
    meta = {b"num_cases_per_batch": PER_BATCH, b"label_names": NAMES, b"num_vis": 3072}
    members["batches.meta"] = py2_pickle(meta)
    members["readme.html"] = b"<html></html>"
    return members


def write_archive(path: Path, members: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (members or _members()).items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, data in _members().items():
        (folder / name).write_bytes(data)
    return folder


def _check(data: dict) -> None:
    train, test = data["train"], data["test"]
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH
    assert train.images.dtype == torch.uint8 and train.input_shape == (3, 32, 32)
    assert train.classes == [n.decode() for n in NAMES]
    first = _batch(1)
    # Row layout: 1024 red values, then green, then blue, each row-major 32×32.
    expected = torch.from_numpy(first[b"data"][0].reshape(3, 32, 32))
    assert torch.equal(train.images[0], expected)
    assert train.labels[:PER_BATCH].tolist() == first[b"labels"]
    assert test.labels.tolist() == _batch(99)[b"labels"]


def test_meta_is_a_python2_pickle() -> None:
    """The fixture really holds Python 2 strings: without encoding="bytes" they fail to load."""
    meta = _members()["batches.meta"]
    assert pickle.loads(meta, encoding="bytes")[b"label_names"] == NAMES
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(meta.replace(b"airplane", b"airpl\xe9ne"), encoding="ascii")


def test_archive_read_without_extracting(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz")
    _check(read_cifar10_archive(archive))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_extracted_folder(tmp_path: Path) -> None:
    _check(read_cifar10_folder(write_folder(tmp_path / "cifar-10-batches-py")))


def test_load_cifar10_finds_archive_or_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_archive(tmp_path / "a" / "cifar-10-python.tar.gz")
    _check(load_cifar10(tmp_path / "a", download=False))
    write_folder(tmp_path / "b" / "cifar10" / "cifar-10-batches-py")
    _check(load_cifar10(tmp_path / "b", download=False))


def test_missing_batch(tmp_path: Path) -> None:
    members = _members()
    del members["data_batch_3"]
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", members)
    with pytest.raises(DataError, match="lacks data_batch_3"):
        read_cifar10_archive(archive)


def test_corrupt_batch(tmp_path: Path) -> None:
    members = _members()
    members["test_batch"] = members["test_batch"][:50]
    with pytest.raises(DataError, match=r"test_batch is corrupt"):
        read_cifar10_archive(write_archive(tmp_path / "c.tar.gz", members))


def test_wrong_shape(tmp_path: Path) -> None:
    members = _members()
    bad = _batch(1)
    bad[b"data"] = np.zeros((PER_BATCH, 100), dtype=np.uint8)
    members["data_batch_1"] = pickle.dumps(bad, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_1: b'data' should be uint8 N×3072"):
        read_cifar10_archive(write_archive(tmp_path / "c.tar.gz", members))


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    members = _members()
    members["batches.meta"] = pickle.dumps({b"label_names": _Evil()}, protocol=2)
    with pytest.raises(DataError, match="not allowed"):
        read_cifar10_archive(write_archive(tmp_path / "c.tar.gz", members))


def test_damaged_archive(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot read CIFAR-10 archive"):
        load_cifar10(tmp_path, download=False)


def test_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz .*cs\.toronto\.edu"):
        load_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("archived", [False, True])
def test_jpeg_folder_fallback(
    tmp_path: Path,
    archived: bool,
    make_image_tree: Callable[..., list[Path]],
    tar_folder: Callable[..., Path],
) -> None:
    spec = {f"{split}/{cls}/{i:04d}.jpg": ((32, 32), "RGB")
            for split in ("train", "test") for cls in ("cat", "dog") for i in range(3)}  # fmt: skip
    make_image_tree(tmp_path / "src", spec)
    root = tmp_path / "data"
    root.mkdir()
    if archived:
        tar_folder(tmp_path / "src", root / "cifar10-jpeg.tar.gz")
    else:
        (tmp_path / "src").rename(root / "cifar10-jpeg")
    data = load_cifar10(root, download=False, cache_dir=tmp_path / "cache", progress=False)
    assert len(data["train"]) == 6 and len(data["test"]) == 6
    assert data["train"].input_shape == (3, 32, 32)
    assert data["train"].classes == ["cat", "dog"]
    assert data["test"].class_counts().tolist() == [3, 3]
