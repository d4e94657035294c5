"""Image folders and archives of them: layouts, resizing, unreadable files, the decoded cache."""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guided_dml.data import decode, image_folder, load_image_folder
from guided_dml.errors import DataError

Tree = Callable[..., list[Path]]
Pack = Callable[..., Path]


def _split_tree(root: Path, make_image_tree: Tree) -> list[Path]:
    """train/test × cat/dog, mostly 6×4 RGB, with odd sizes and modes mixed in."""
    spec = {
        f"{split}/{cls}/{i}.png": ((6, 4), "RGB")
        for split in ("train", "test")
        for cls in ("cat", "dog")
        for i in range(3)
    }
    spec["train/cat/big.png"] = ((12, 9), "RGB")
    spec["train/dog/grey.png"] = ((6, 4), "L")
    spec["test/dog/palette.gif"] = ((5, 5), "P")
    spec["test/cat/alpha.png"] = ((6, 4), "RGBA")
    return make_image_tree(root, spec)


def test_folder_defaults_to_most_common_size_and_mode(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    (tmp_path / "pets" / "train" / "notes.txt").write_text("not an image, ignored")
    (tmp_path / "pets" / "train" / "cat" / ".hidden.png").write_bytes(b"ignored")
    data = load_image_folder(tmp_path / "pets", cache=False, progress=False)
    assert set(data) == {"train", "test"}
    train, test = data["train"], data["test"]
    assert train.classes == test.classes == ["cat", "dog"]
    assert len(train) == 8 and len(test) == 8
    assert train.input_shape == (3, 4, 6) and train.images.dtype == torch.uint8
    assert train.class_counts().tolist() == [4, 4]
    assert train.name == "pets/train"
    # Files are taken in sorted order: train/cat/0.png first, identical pixels (PNG is lossless).
    first = np.array(Image.open(tmp_path / "pets/train/cat/0.png").convert("RGB"))
    assert torch.equal(train.images[0], torch.from_numpy(first).permute(2, 0, 1))


def test_explicit_size_and_mode(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    data = load_image_folder(tmp_path / "pets", size=(3, 5), mode="L", cache=False, progress=False)
    assert data["train"].input_shape == (1, 3, 5)
    square = load_image_folder(tmp_path / "pets", size=7, mode="RGBA", cache=False, progress=False)
    assert square["test"].input_shape == (4, 7, 7)


def test_sixteen_bit_images_are_scaled(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(2):
            arr = np.full((4, 4), 65535 if cls == "b" else 0, dtype=np.uint16)
            Image.fromarray(arr).save(tmp_path / "d" / cls / f"{i}.png")
    data = load_image_folder(tmp_path / "d", test_fraction=0.5, cache=False, progress=False)
    images = torch.cat([data["train"].images, data["test"].images])
    labels = torch.cat([data["train"].labels, data["test"].labels])
    assert images.shape[1] == 1
    assert images[labels == 1].min() == 255 and images[labels == 0].max() == 0


@pytest.mark.parametrize("top", [None, "pets-v1"])
def test_archive(tmp_path: Path, make_image_tree: Tree, tar_folder: Pack, top: str | None) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    archive = tar_folder(tmp_path / "pets", tmp_path / "pets.tar.gz", top)
    from_tar = load_image_folder(archive, cache=False, progress=False)
    from_dir = load_image_folder(tmp_path / "pets", cache=False, progress=False)
    assert from_tar["train"].name == "pets/train"
    for split in ("train", "test"):
        assert torch.equal(from_tar[split].images, from_dir[split].images)
        assert torch.equal(from_tar[split].labels, from_dir[split].labels)


def test_plain_tar_with_class_layout_under_top_folder(
    tmp_path: Path, make_image_tree: Tree, tar_folder: Pack
) -> None:
    spec = {f"{c}/{i}.png": ((4, 4), "RGB") for c in ("x", "y", "z") for i in range(5)}
    make_image_tree(tmp_path / "shapes", spec)
    archive = tar_folder(tmp_path / "shapes", tmp_path / "shapes.tar", "shapes")
    data = load_image_folder(archive, test_fraction=0.4, cache=False, progress=False)
    assert data["train"].classes == ["x", "y", "z"]
    assert data["test"].class_counts().tolist() == [2, 2, 2]


def test_no_split_folder_is_split_deterministically(tmp_path: Path, make_image_tree: Tree) -> None:
    spec = {f"{c}/{i}.png": ((4, 4), "L") for c in ("a", "b") for i in range(10)}
    make_image_tree(tmp_path / "flat", spec)
    a = load_image_folder(tmp_path / "flat", test_fraction=0.3, seed=1, cache=False, progress=False)
    b = load_image_folder(tmp_path / "flat", test_fraction=0.3, seed=1, cache=False, progress=False)
    assert len(a["test"]) == 6 and a["test"].class_counts().tolist() == [3, 3]
    assert torch.equal(a["test"].images, b["test"].images)
    c = load_image_folder(tmp_path / "flat", test_fraction=0.3, seed=2, cache=False, progress=False)
    assert not torch.equal(a["test"].images, c["test"].images)


def test_val_folder_and_aliases(tmp_path: Path, make_image_tree: Tree) -> None:
    spec = {f"{s}/{c}/0.png": ((4, 4), "L") for s in ("training", "validation") for c in "ab"}
    make_image_tree(tmp_path / "tv", spec)
    data = load_image_folder(tmp_path / "tv", cache=False, progress=False)
    assert set(data) == {"train", "test"}  # validation stands in for the missing test split
    spec = {f"{s}/{c}/0.png": ((4, 4), "L") for s in ("train", "val", "test") for c in "ab"}
    make_image_tree(tmp_path / "tvt", spec)
    assert list(load_image_folder(tmp_path / "tvt", cache=False, progress=False)) == [
        "train",
        "test",
        "val",
    ]


def test_unreadable_files_are_listed(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    (tmp_path / "pets/train/cat/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "pets/test/dog/empty.jpg").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path / "pets", cache=False, progress=False)
    message = str(info.value)
    assert message.startswith("2 unreadable image(s)") and "\n" not in message
    assert "train/cat/broken.png" in message and "test/dog/empty.jpg" in message
    assert "on_error='skip'" in message


def test_many_unreadable_files_are_summarised(tmp_path: Path, make_image_tree: Tree) -> None:
    make_image_tree(tmp_path / "d", {"a/ok.png": ((4, 4), "L"), "b/ok.png": ((4, 4), "L")})
    for i in range(8):
        (tmp_path / f"d/a/bad{i}.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"8 unreadable .* and 3 more"):
        load_image_folder(tmp_path / "d", cache=False, progress=False)


def test_truncated_jpeg_is_unreadable(tmp_path: Path, make_image_tree: Tree) -> None:
    spec = {f"{c}/{i}.jpg": ((16, 16), "RGB") for c in ("a", "b") for i in range(3)}
    paths = make_image_tree(tmp_path / "d", spec)
    paths[0].write_bytes(paths[0].read_bytes()[:100])
    with pytest.raises(DataError, match=r"a/0\.jpg"):
        load_image_folder(tmp_path / "d", cache=False, progress=False)


def test_skip_unreadable_with_warning(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    (tmp_path / "pets/train/cat/broken.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable .*train/cat/broken\.png"):
        data = load_image_folder(tmp_path / "pets", on_error="skip", cache=False, progress=False)
    assert len(data["train"]) == 8


def test_cache_hit_returns_identical_tensors_without_decoding(
    tmp_path: Path, make_image_tree: Tree, tar_folder: Pack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    archive = tar_folder(tmp_path / "pets", tmp_path / "pets.tgz")
    cache = tmp_path / "cache"
    first = load_image_folder(archive, cache_dir=cache, progress=False)
    assert len(list(cache.glob("pets.tgz-*.npz"))) == 1
    assert not list(cache.glob("*.tmp"))  # written via a temporary file, then renamed

    def fail(*args: object) -> None:
        raise AssertionError("a cache hit must not read the source")

    monkeypatch.setattr(image_folder, "list_archive", fail)
    monkeypatch.setattr(image_folder, "decode_chunk", fail)
    second = load_image_folder(archive, cache_dir=cache, progress=False)
    for split in first:
        assert torch.equal(first[split].images, second[split].images)
        assert torch.equal(first[split].labels, second[split].labels)
        assert first[split].classes == second[split].classes
        assert first[split].name == second[split].name


def test_cache_key_follows_source_and_options(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    cache = tmp_path / "cache"
    load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)
    load_image_folder(tmp_path / "pets", size=5, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 2  # other options, other entry
    # Changing one file changes the folder's fingerprint: the data are decoded again.
    extra = tmp_path / "pets/train/cat/new.png"
    Image.new("RGB", (6, 4), (255, 0, 0)).save(extra)
    data = load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)
    assert len(data["train"]) == 9
    os.utime(extra, ns=(0, 0))
    load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 4


def test_damaged_cache_is_rebuilt(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    cache = tmp_path / "cache"
    first = load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="ignoring unreadable cache"):
        again = load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)
    assert torch.equal(first["train"].images, again["train"].images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image_folder(tmp_path / "pets", cache_dir=cache, progress=False)  # repaired


def test_skipped_files_are_reported_again_from_cache(tmp_path: Path, make_image_tree: Tree) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    (tmp_path / "pets/train/cat/broken.png").write_bytes(b"garbage")
    cache = tmp_path / "cache"
    kwargs = {"on_error": "skip", "cache_dir": cache, "progress": False}
    with pytest.warns(UserWarning):
        load_image_folder(tmp_path / "pets", **kwargs)
    with pytest.warns(UserWarning, match="cached"):
        load_image_folder(tmp_path / "pets", **kwargs)


def test_parallel_decoding_matches_serial(
    tmp_path: Path, make_image_tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    (tmp_path / "pets/train/cat/broken.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="broken.png"):
        serial = load_image_folder(
            tmp_path / "pets", on_error="skip", num_workers=1, cache=False, progress=False
        )
    monkeypatch.setattr(decode, "MIN_PARALLEL", 0)
    with pytest.warns(UserWarning, match="broken.png"):
        parallel = load_image_folder(
            tmp_path / "pets", on_error="skip", num_workers=2, cache=False, progress=False
        )
    for split in serial:
        assert torch.equal(serial[split].images, parallel[split].images)
        assert torch.equal(serial[split].labels, parallel[split].labels)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a/1.png": ((4, 4), "L"), "train/a/1.png": ((4, 4), "L")}, "mixes folder depths"),
        ({"a/b/c/d/1.png": ((4, 4), "L")}, "unexpected depth"),
        ({"x/a/b/1.png": ((4, 4), "L"), "y/a/b/1.png": ((4, 4), "L")}, "several top folders"),
        ({"test/a/1.png": ((4, 4), "L"), "val/a/1.png": ((4, 4), "L")}, "no 'train'"),
        ({"train/a/1.png": ((4, 4), "L"), "Train/a/2.png": ((4, 4), "L")}, "several folders"),
    ],
)
def test_bad_layouts(tmp_path: Path, make_image_tree: Tree, spec: dict, message: str) -> None:
    make_image_tree(tmp_path / "d", spec)
    with pytest.raises(DataError, match=message):
        load_image_folder(tmp_path / "d", cache=False, progress=False)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path / "empty", cache=False)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder nor a tar"):
        load_image_folder(tmp_path / "file.txt")
    with pytest.raises(DataError, match="on_error"):
        load_image_folder(tmp_path / "empty", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="mode must be one of"):
        load_image_folder(tmp_path / "empty", mode="CMYK")
    with pytest.raises(DataError, match="size must be"):
        load_image_folder(tmp_path / "empty", size=(0, 3))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(DataError, match="cannot read archive"):
        load_image_folder(broken, cache=False)


def test_unsafe_member_names_are_ignored(tmp_path: Path, make_image_tree: Tree) -> None:
    spec = {f"{c}/{i}.png": ((4, 4), "L") for c in "ab" for i in range(2)}
    make_image_tree(tmp_path / "src", spec)
    archive = tmp_path / "x.tar"
    names = ["a/0.png", "a/1.png", "b/0.png", "b/1.png", "a/0.png", "../evil/0.png", "/abs/0.png"]
    with tarfile.open(archive, "w") as tar:
        for name in names:  # a/0.png twice: the later copy wins, as on extraction
            data = (tmp_path / "src" / "a/0.png").read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = load_image_folder(archive, test_fraction=0.5, cache=False, progress=False)
    assert data["train"].classes == ["a", "b"]
    assert len(data["train"]) + len(data["test"]) == 4


def test_cache_folder_from_gdml_cache_and_off(
    tmp_path: Path, make_image_tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    _split_tree(tmp_path / "pets", make_image_tree)
    monkeypatch.setenv("GDML_CACHE", str(tmp_path / "cache"))
    load_image_folder(tmp_path / "pets", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    monkeypatch.setenv("GDML_CACHE", "off")
    load_image_folder(tmp_path / "pets", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # off: nothing new written
    assert not (Path.cwd() / "off").exists()
    load_image_folder(tmp_path / "pets", progress=False, cache_dir=tmp_path / "other")
    assert len(list((tmp_path / "other").glob("*.npz"))) == 1  # an explicit folder wins
    monkeypatch.delenv("GDML_CACHE")
    load_image_folder(tmp_path / "pets", progress=False, cache_dir="off")
    assert not (tmp_path / "off").exists()
