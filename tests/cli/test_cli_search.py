"""`gdml search`: nearest training images with distances, labels and files; --json; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from guided_dml.data import load_image_folder
from guided_dml.experiments.factory import load_model
from guided_dml.training import embed
from guided_dml.training.checkpoint import load_torch, save_torch


def test_table_names_the_nearest_training_images(gdml, run_dir, photos, query):
    rc, out, err = gdml("search", run_dir, query, "--k", "3")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"query: {query}"
    assert lines[1].split() == ["rank", "distance", "label", "training", "image"]
    assert len(lines) == 2 + 3
    for rank, line in enumerate(lines[2:], start=1):
        fields = line.split()
        assert fields[0] == str(rank) and float(fields[1]) >= 0
        assert fields[2] in ("circle", "cross", "stripes")
        assert fields[3].startswith(str(photos.resolve())) and fields[3].endswith(".png")


def test_json_matches_a_brute_force_search(gdml, run_dir, photos, query):
    rc, out, _ = gdml("search", run_dir, query, "--k", "5", "--json")
    assert rc == 0
    result = json.loads(out)
    assert len(result) == 1 and result[0]["query"] == str(query)
    got = result[0]["neighbours"]
    assert [n["rank"] for n in got] == [1, 2, 3, 4, 5]

    # Reference: the training split (train + val) of the folder, embedded by the model.
    model, _ = load_model(run_dir)
    train = load_image_folder(photos, progress=False)["train"]
    ref = embed(model, train.images).numpy()
    q = embed(model, torch.from_numpy(np.array(Image.open(query)))[None, None]).numpy()
    dist = np.sqrt(((ref - q) ** 2).sum(1))
    order = np.argsort(dist, kind="stable")[:5]
    np.testing.assert_allclose([n["distance"] for n in got], dist[order], rtol=1e-4, atol=1e-6)
    assert [n["file"] for n in got] == [str(photos.resolve() / train.paths[i]) for i in order]
    assert [n["label"] for n in got] == [train.classes[int(train.labels[i])] for i in order]
    assert got[0]["label"] == "circle"  # a circle's nearest training image is a circle


def test_several_queries_and_k_larger_than_the_training_set(gdml, run_dir, query, tmp_path):
    rc, out, err = gdml("search", run_dir, query, query, "--k", "1000", "--json")
    assert rc == 0
    result = json.loads(out)
    assert len(result) == 2 and len(result[0]["neighbours"]) == len(result[1]["neighbours"]) < 1000
    assert "showing all of them" in err


def test_model_file_without_stored_references_is_recomputed(gdml, run_dir, query, tmp_path):
    blob = load_torch(run_dir / "model.pt")
    del blob["reference"]
    old = tmp_path / "old.pt"
    save_torch(blob, old)
    rc, out, err = gdml("search", old, query, "--k", "3", "--json")
    rc2, out2, _ = gdml("search", run_dir, query, "--k", "3", "--json")
    assert rc == rc2 == 0
    assert "recomputed the training embeddings" in err
    a, b = json.loads(out)[0]["neighbours"], json.loads(out2)[0]["neighbours"]
    assert [n["file"] for n in a] == [n["file"] for n in b]
    np.testing.assert_allclose([n["distance"] for n in a], [n["distance"] for n in b], rtol=1e-5)


def test_estimator_model_lists_training_indices(gdml, tmp_path):
    from guided_dml import GuidedEmbedder

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (30, 6)).astype(np.float32) + np.repeat(np.eye(3, 6) * 5, 10, axis=0)
    y = np.repeat(["a", "b", "c"], 10)
    est = GuidedEmbedder(preset="smoke", epochs=2, gemini_epochs=2, batch_size=8).fit(x, y)
    est.save(tmp_path / "m.pt")
    np.save(tmp_path / "q.npy", x[:2])
    rc, out, _ = gdml("search", tmp_path / "m.pt", tmp_path / "q.npy", "--k", "2", "--json")
    assert rc == 0
    res = json.loads(out)
    assert [r["query"] for r in res] == ["0", "1"]
    assert res[0]["neighbours"][0]["file"] is None and res[0]["neighbours"][0]["label"] in "abc"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(lambda d, q: ["--k", "0", q], ["--k: expected an integer >= 1"], id="k-zero"),
        pytest.param(lambda d, q: [d / "nope.png"], ["does not exist"], id="missing-query"),
        pytest.param(lambda d, q: [_broken(d)], ["could be read", "broken.png"], id="corrupt-query"),
        pytest.param(lambda d, q: [_npy(d, np.full((1, 16, 16), np.nan, np.float32))], ["NaN"],
                     id="nan-array"),
        pytest.param(lambda d, q: [_npy(d, np.zeros((1, 4, 16, 16), np.uint8)), q],
                     ["one .npy array"], id="npy-and-images"),
    ],
)
def test_bad_queries(gdml, error, run_dir, query, tmp_path, args, fragments):
    error(gdml("search", run_dir, *args(tmp_path, query)), *fragments)


def test_missing_or_foreign_model(gdml, error, query, tmp_path):
    error(gdml("search", tmp_path / "nothing", query), "no model at")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    error(gdml("search", tmp_path / "foreign.pt", query), "not a guided-dml model file")


def test_unloadable_data_set_of_an_old_model(gdml, error, run_dir, query, tmp_path):
    blob = load_torch(run_dir / "model.pt")
    del blob["reference"]
    blob["config"]["dataset"] = str(tmp_path / "moved-away")
    save_torch(blob, tmp_path / "old.pt")
    error(gdml("search", tmp_path / "old.pt", query), "holds no training embeddings", "retrain")


def _broken(d):
    path = d / "broken.png"
    path.write_bytes(b"no image")
    return path


def _npy(d, arr):
    path = d / "q.npy"
    np.save(path, arr)
    return path
