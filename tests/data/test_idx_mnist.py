"""IDX reader/writer and the MNIST / Fashion-MNIST loaders, on tiny files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from guided_dml.data import load_fashion_mnist, load_mnist, read_idx, write_idx
from guided_dml.errors import DataError


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> None:
    """Four tiny IDX files with the official names (10 classes, 4×4 images)."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_round_trip(tmp_path: Path, suffix: str, dtype: str) -> None:
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / f"x.idx{suffix}", array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_header_layout(tmp_path: Path) -> None:
    """The bytes follow the published format: magic 0x00000801, big-endian count, data."""
    path = write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is not an IDX file"):
        read_idx(path)


def test_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "odd"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("cut", [2, 9, 30])
def test_truncated_raw(tmp_path: Path, cut: int) -> None:
    path = write_idx(tmp_path / "img", np.zeros((2, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-cut] if cut != 2 else path.read_bytes()[:2])
    with pytest.raises(DataError, match=rf"{path.name} is truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "img", np.zeros((2, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "img.gz", np.arange(600, dtype=np.int32).reshape(20, 30))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"img\.gz is a corrupt or truncated gzip"):
        read_idx(path)


def test_gzip_of_truncated_idx(tmp_path: Path) -> None:
    """A valid gzip whose content is cut short is reported as a truncated IDX file."""
    raw = write_idx(tmp_path / "raw", np.zeros((3, 4, 4), dtype=np.uint8)).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(DataError, match=r"cut\.gz is truncated"):
        read_idx(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "nope")


def test_write_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot write dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("sub", ["mnist", "."])
def test_load_mnist(tmp_path: Path, gz: bool, sub: str) -> None:
    write_mnist(tmp_path / sub, gz=gz)
    data = load_mnist(tmp_path, download=False)
    assert set(data) == {"train", "test"}
    train, test = data["train"], data["test"]
    assert len(train) == 12 and len(test) == 5
    assert train.images.dtype == torch.uint8 and train.input_shape == (1, 4, 4)
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert train.classes == [str(d) for d in range(10)]
    assert train.name == "mnist/train"


def test_load_fashion_mnist(tmp_path: Path) -> None:
    write_mnist(tmp_path / "fashion-mnist")
    data = load_fashion_mnist(tmp_path, download=False)
    assert data["test"].classes[0] == "T-shirt/top" and len(data["test"].classes) == 10
    assert data["test"].name == "fashion-mnist/test"


def test_gdml_data_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path / "env" / "mnist")
    monkeypatch.setenv("GDML_DATA", str(tmp_path / "env"))
    assert len(load_mnist(download=False)["train"]) == 12


def test_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match=r"has 5 images but .*t10k-labels-idx1-ubyte\.gz has 4"):
        load_mnist(tmp_path, download=False)


def test_label_out_of_range(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(12, 10, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz has labels outside"):
        load_mnist(tmp_path, download=False)


def test_swapped_files(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    tmp = tmp_path / "swap"
    images.rename(tmp)
    labels.rename(images)
    tmp.rename(labels)
    with pytest.raises(DataError, match="swapped"):
        load_mnist(tmp_path, download=False)


def test_missing_without_download_says_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "mnist") in message
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in message
