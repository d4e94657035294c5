"""One place names data sets and archives: the registry, the config and the loaders agree."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from guided_dml.data.names import dataset_key, has_archive_suffix, is_archive, strip_archive_suffix
from guided_dml.data.registry import check_dataset, is_builtin
from guided_dml.experiments.config import RunConfig
from guided_dml.experiments.plan import applies


@pytest.mark.parametrize("name", ["fashion-mnist", "Fashion_MNIST", " fashion ", "FMNIST"])
def test_fashion_spellings_share_one_key(name: str) -> None:
    assert dataset_key(name) == "fashion-mnist"
    # The registry and the fit plan read the name the same way the presets do.
    assert is_builtin(name)
    check_dataset(name)
    assert not applies("cpu", name)


def test_other_names_are_only_case_normalised() -> None:
    assert dataset_key("CIFAR-10") == "cifar10"
    assert dataset_key("My_Photos") == "my-photos"
    assert not is_builtin("my-photos")


@pytest.mark.parametrize(
    ("name", "stem"),
    [("photos.tar.gz", "photos"), ("photos.TGZ", "photos"), ("a.b.tar.bz2", "a.b"),
     ("x.txz", "x"), ("shots.zip", "shots"), ("photos", "photos"), ("tar.gz.d", "tar.gz.d")],
)
def test_strip_archive_suffix(name: str, stem: str) -> None:
    assert strip_archive_suffix(name) == stem


def test_zip_is_an_archive_only_where_zips_are_read(tmp_path: Path) -> None:
    zpath = tmp_path / "shots.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a/1.txt", "x")
    assert is_archive(zpath)
    assert not is_archive(zpath, zip_ok=False)
    assert has_archive_suffix("shots.zip") and not has_archive_suffix("shots.zip", zip_ok=False)


def test_archive_found_by_content_without_suffix(tmp_path: Path) -> None:
    tpath = tmp_path / "photos.bin"
    with tarfile.open(tpath, "w") as tf:
        info = tarfile.TarInfo("a/1.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    assert is_archive(tpath, zip_ok=False)
    assert not is_archive(tmp_path)  # a folder is not an archive
    assert not is_archive(tmp_path / "missing.tar")


def test_run_label_strips_every_archive_suffix() -> None:
    assert RunConfig(dataset="data/photos.tar.bz2").dataset_label == "photos"
    assert RunConfig(dataset="data/photos.zip/").dataset_label == "photos"
