"""`gdml search --gallery/--vote` and `gdml index`: other galleries, label votes, an exported
index that loads without guided-dml (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guided_dml.commands.gallery import vote


def test_vote_takes_the_majority_and_breaks_ties_by_distance():
    assert vote(["a", "b", "b"], [0.1, 0.2, 0.3]) == {"label": "b", "votes": 2, "k": 3, "share": 2 / 3}
    assert vote(["a", "b", "b", "a"], [0.1, 0.2, 0.3, 0.4])["label"] == "a"  # tie: the nearest


def test_search_a_folder_gallery_with_a_vote_and_a_cache(gdml, run_dir, photos, query):
    args = ("search", run_dir, query, "--gallery", photos, "--k", "5", "--vote", "--json")
    rc, out, err = gdml(*args)
    assert rc == 0, err
    (res,) = json.loads(out)
    files = [n["file"] for n in res["neighbours"]]
    assert all(str(photos) in f for f in files) and len(files) == 5
    assert res["vote"]["label"] == "circle" and res["vote"]["k"] == 5
    assert 0 < res["vote"]["share"] <= 1
    rc, out2, err = gdml(*args)  # embedded once: the second search reads the cache
    assert rc == 0 and json.loads(out2) == [res] and "read from the cache" in err
    rc, table, _ = gdml("search", run_dir, query, "--gallery", photos, "--vote")
    assert rc == 0 and "vote: circle (" in table


def test_a_csv_gallery_from_gdml_embed_gives_the_same_neighbours(gdml, run_dir, photos, query, tmp_path):
    csv_file = tmp_path / "gallery.csv"
    assert gdml("embed", run_dir, photos, "--out", csv_file)[0] == 0
    rc, from_csv, err = gdml("search", run_dir, query, "--gallery", csv_file, "--k", "4", "--json")
    assert rc == 0, err
    _, from_folder, _ = gdml("search", run_dir, query, "--gallery", photos, "--k", "4", "--json")
    a, b = json.loads(from_csv)[0]["neighbours"], json.loads(from_folder)[0]["neighbours"]
    assert [n["label"] for n in a] == [n["label"] for n in b]
    np.testing.assert_allclose([n["distance"] for n in a], [n["distance"] for n in b], atol=1e-5)


@pytest.mark.parametrize("suffix", [".npz", ".faiss"])
def test_exported_index_loads_without_guided_dml(gdml, run_dir, query, tmp_path, suffix):
    out = tmp_path / f"index{suffix}"
    rc, _, err = gdml("index", run_dir, "--out", out)
    assert rc == 0, err
    _, found, _ = gdml("search", run_dir, query, "--k", "3", "--json")
    want = json.loads(found)[0]["neighbours"]
    assert gdml("embed", run_dir, query, "--out", tmp_path / "q.npy")[0] == 0
    q = np.load(tmp_path / "q.npy")
    if suffix == ".npz":
        z = np.load(out)
        assert str(z["format"]) == "guided-dml-index/1" and str(z["metric"]) == "l2"
        d2 = ((z["embeddings"] - q) ** 2).sum(1)
        order = np.argsort(d2, kind="stable")[:3]
        labels = z["labels"][order].tolist()
    else:
        faiss = pytest.importorskip("faiss")
        index = faiss.read_index(str(out))
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        assert meta["count"] == index.ntotal and meta["dim"] == index.d == 2
        d2, ids = index.search(q.astype(np.float32), 3)
        order = ids[0]
        labels = [meta["labels"][i] for i in order]
    assert labels == [n["label"] for n in want]
    assert order.tolist() == [n["index"] for n in want]
    assert gdml("index", run_dir, "--out", out)[0] == 2  # no overwrite without --overwrite
