"""Retrieval benchmarks that train: the memory-mapped decoded cache, against the per-file
transforms it replaces, and `gdml train` on a tiny CUB-200 replica (trains, resumes)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from replicas import make_cub, make_inshop

from guided_dml.cli import main
from guided_dml.commands.inference import open_model, read_inputs
from guided_dml.data import ArrayDataset, load_cub200, load_dataset
from guided_dml.data import streaming as streaming_mod
from guided_dml.data.mapped import MappedImages
from guided_dml.data.transforms import eval_transform
from guided_dml.errors import DataError
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.run import prepare_data
from guided_dml.training import embed


def _npy(tmp_path: Path, n: int = 7) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(0).integers(0, 256, (n, 3, 4, 5), dtype=np.uint8)
    file = tmp_path / "x.npy"
    np.save(file, data)
    return file, data


def test_mapped_images_index_like_the_array(tmp_path: Path) -> None:
    file, data = _npy(tmp_path)
    m = MappedImages(file)
    assert len(m) == 7 and m.shape == torch.Size((7, 3, 4, 5)) and m.dtype == torch.uint8
    assert torch.equal(m[2], torch.from_numpy(data[2]))
    assert torch.equal(m[1:6:2], torch.from_numpy(data[1:6:2]))
    idx = torch.tensor([5, 0, 5, 3])  # unsorted, repeated: read in file order, returned as asked
    assert torch.equal(m[idx], torch.from_numpy(data[[5, 0, 5, 3]]))
    assert torch.equal(m.index_select(0, idx), m[idx])
    mask = np.array([True, False, True, False, False, True, True])
    assert torch.equal(m[mask], torch.from_numpy(data[mask]))
    view = m.take([6, 1, 4])  # a lazy view; indexing it composes with its rows
    assert len(view) == 3 and torch.equal(view[1:], torch.from_numpy(data[[1, 4]]))
    again = pickle.loads(pickle.dumps(view))  # workers reopen the file, nothing is copied
    assert torch.equal(again[:], view[:]) and len(pickle.dumps(view)) < 1000
    with pytest.raises(DataError, match="mask"):
        m[np.array([True, False])]


def test_array_dataset_subsets_of_mapped_images_stay_on_disk(tmp_path: Path) -> None:
    file, data = _npy(tmp_path)
    ds = ArrayDataset(MappedImages(file), torch.tensor([0, 1, 2, 0, 1, 2, 0]), list("abc"), "t")
    part = ds.with_classes([2, 0])
    assert isinstance(part.images, MappedImages)
    assert part.labels.tolist() == [1, 0, 1, 0, 1]
    assert torch.equal(part.images[:], torch.from_numpy(data[[0, 2, 3, 5, 6]]))
    assert part.input_shape == (3, 4, 5)


def test_decoded_view_is_the_literature_eval_transform(tmp_path: Path) -> None:
    make_cub(tmp_path)
    listed = load_cub200(tmp_path)
    data = load_dataset("cub200", data_dir=tmp_path, cache_dir=tmp_path / "cache",
                        progress=False, size=16, resize=20)
    train = data["train"]
    assert isinstance(train.images, MappedImages) and train.input_shape == (3, 16, 16)
    assert train.labels.tolist() == listed["train"].labels.tolist()
    assert train.classes == listed["train"].classes and set(data) == {"train", "test"}
    # The reference: retrieval.py's per-file pipeline (Resize, CenterCrop, to_tensor).
    reference = eval_transform(20, 16, normalize=False)
    for i, path in enumerate(listed["test"].paths):
        with Image.open(path) as img:
            expected = (reference(img.convert("RGB")) * 255).round().to(torch.uint8)
        assert torch.equal(data["test"].images[i], expected)
    # A second load reads the cache: nothing is decoded again.
    calls = []
    real = streaming_mod.decode_view
    streaming_mod.decode_view = lambda *a: calls.append(a) or real(*a)
    try:
        load_dataset("cub200", data_dir=tmp_path, cache_dir=tmp_path / "cache",
                     progress=False, size=16, resize=20)
    finally:
        streaming_mod.decode_view = real
    assert calls == []


def test_an_interrupted_decode_resumes_and_bad_files_are_named(tmp_path, monkeypatch) -> None:
    base = make_cub(tmp_path, classes=(1, 2, 3, 101, 102), per_class=2)
    bad = base / "images/003.Bird_3/Bird_3_1.jpg"
    good = bad.read_bytes()
    bad.write_bytes(b"not a jpeg")
    monkeypatch.setattr(streaming_mod, "BLOCK", 2)
    decoded: list[int] = []
    real = streaming_mod.decode_view
    monkeypatch.setattr(streaming_mod, "decode_view",
                        lambda paths, *a: decoded.append(len(paths)) or real(paths, *a))
    opts = {"data_dir": tmp_path, "cache_dir": tmp_path / "cache", "progress": False, "size": 8,
            "resize": 8}
    with pytest.raises(DataError, match=r"1 unreadable image.*Bird_3_1\.jpg.*kept"):
        load_dataset("cub200", **opts)
    assert sum(decoded) == 6 and not list((tmp_path / "cache").glob("*px-*.npy"))
    bad.write_bytes(good)  # fixed: only its block is decoded again
    decoded.clear()
    data = load_dataset("cub200", **opts)
    assert decoded == [2, 2, 2]  # train's last block, then the two of the test split
    alone, errors = real([str(bad)], 8, 8)  # the fixed file decoded on its own
    assert errors == [None] and torch.equal(data["train"].images[5], torch.from_numpy(alone[0]))
    assert not list((tmp_path / "cache").glob("*.partial*"))


def test_cache_off_decodes_into_memory(tmp_path: Path) -> None:
    make_cub(tmp_path)
    data = load_dataset("cub200", data_dir=tmp_path, cache_dir="off", progress=False, size=8,
                        resize=8)
    assert isinstance(data["train"].images, torch.Tensor) and data["train"].input_shape == (3, 8, 8)


def test_inshop_query_and_gallery_are_one_unseen_test_split(tmp_path: Path) -> None:
    make_inshop(tmp_path)
    data = load_dataset("inshop", data_dir=tmp_path, cache_dir=tmp_path / "c", progress=False,
                        size=8, resize=8)
    assert len(data["train"]) == 3 and len(data["test"]) == 5
    assert data["test"].classes == ["id_00000080", "id_00000091", "id_00000095"]
    assert data["test"].labels.tolist() == [0, 1, 0, 1, 2]  # query rows, then gallery rows


def test_retrieval_sets_run_class_disjoint_without_being_cut_again(tmp_path: Path) -> None:
    make_cub(tmp_path, classes=(1, 2, 3, 101, 102, 103), per_class=4)
    cfg = resolve_config({"dataset": "cub200", "preset": "smoke", "data_dir": str(tmp_path)})
    assert cfg.split == "classes" and cfg.dataset_label == "cub200-unseen"
    with pytest.raises(Exception, match="own class-disjoint split"):
        resolve_config({"dataset": "CUB-200", "split": "classes", "train_classes": "0-1"})
    mdr = resolve_config({"dataset": "cub200", "preset": "mdr", "method": "triplet"})
    assert mdr.augment and mdr.augment_crop == "resized" and mdr.embedding_dim == 512
    assert mdr.crop_scale == 0.16  # MDR's RandomResizedCrop(224, scale=(0.16, 1))


def _interrupt_after(monkeypatch, epochs: int) -> None:
    from guided_dml.training.trainer import Trainer

    real = Trainer.train_epoch
    seen = {"n": 0}

    def stop(self, epoch):
        if seen["n"] == epochs:
            raise KeyboardInterrupt
        seen["n"] += 1
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", stop)


def test_gdml_train_on_cub200_trains_and_resumes(tmp_path, monkeypatch) -> None:
    make_cub(tmp_path, classes=(1, 2, 3, 101, 102, 103), per_class=6)
    monkeypatch.setenv("GDML_CACHE", str(tmp_path / "cache"))
    args = ["train", "--dataset", "cub200", "--data-dir", str(tmp_path), "--method", "triplet",
            "--preset", "smoke", "--epochs", "3", "--augment", "true", "--augment-crop",
            "resized", "--val-fraction", "0.34", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert straight["dataset"] == "cub200-unseen" and straight["n_test"] == 18
    emb = np.load(tmp_path / "straight" / "embeddings.npz")
    assert set(emb["classes"].tolist()) == {"101.Bird_101", "102.Bird_102", "103.Bird_103"}
    # Interrupted after its first epoch, then resumed: the same run as the straight one.
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        main([*args, "--out", str(tmp_path / "resumed")])
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    assert main([*args, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    for key in ("recall@1", "map@r", "best_epoch"):
        assert resumed[key] == pytest.approx(straight[key], abs=1e-6)
    # A new photo is embedded through the view its training photos were stored as: a test
    # image given as a file gets the embedding the run computed for it.
    loaded = open_model(tmp_path / "straight")
    assert loaded.input_view == (256, 224)
    first = load_cub200(tmp_path)["test"].paths[0]
    inputs = read_inputs(loaded, [str(first)])
    assert any("central 224×224 crop" in note for note in inputs.notes)
    np.testing.assert_allclose(embed(loaded.model, inputs.data).numpy(),
                               emb["test_embeddings"][:1], rtol=1e-5, atol=1e-6)
    cfg = resolve_config({"dataset": "cub200", "preset": "smoke", "data_dir": str(tmp_path),
                          "val_fraction": 0.34})
    data = prepare_data(cfg)  # the validation split is a view of the same file
    assert isinstance(data.val.images, MappedImages) and len(data.train) + len(data.val) == 18


def _load_in_child(root: str, cache: str) -> None:
    load_dataset("cub200", data_dir=root, cache_dir=cache, progress=False, size=8, resize=8,
                 num_workers=1)


def test_two_processes_decoding_one_split_wait_for_each_other(tmp_path: Path) -> None:
    import multiprocessing

    make_cub(tmp_path, classes=(1, 2, 101, 102), per_class=3)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_load_in_child, args=(str(tmp_path), str(tmp_path / "c")))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    shared = load_dataset("cub200", data_dir=tmp_path, cache_dir=tmp_path / "c", progress=False,
                          size=8, resize=8)
    alone = load_dataset("cub200", data_dir=tmp_path, cache_dir="off", progress=False, size=8,
                         resize=8)
    for split in ("train", "test"):
        assert torch.equal(shared[split].images[:], alone[split].images)


def test_a_decode_the_disk_cannot_hold_is_refused_before_writing(tmp_path, monkeypatch) -> None:
    import collections

    make_cub(tmp_path)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(streaming_mod.shutil, "disk_usage", lambda p: usage(10**6, 10**6, 100))
    with pytest.raises(DataError, match=r"needs 0\.0 GB .* 0\.0 GB free; point GDML_CACHE"):
        load_dataset("cub200", data_dir=tmp_path, cache_dir=tmp_path / "c", progress=False,
                     size=8, resize=8)
    assert not list((tmp_path / "c").glob("*.partial"))


def test_an_unwritable_cache_folder_is_a_one_line_error(tmp_path: Path) -> None:
    make_cub(tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match=r"cannot write the decoded images .* GDML_CACHE=off"):
        load_dataset("cub200", data_dir=tmp_path, cache_dir=blocker / "cache", progress=False,
                     size=8, resize=8)
