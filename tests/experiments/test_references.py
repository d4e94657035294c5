"""The references every table carries: raw-pixel 1-NN against scikit-learn's classifier, and
supervised UMAP against umap-learn called directly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score
from sklearn.neighbors import KNeighborsClassifier

from guided_dml.data import load_dataset
from guided_dml.errors import ConfigError
from guided_dml.experiments.references import score_reference


@pytest.fixture(scope="module")
def digits():
    splits = load_dataset("digits")
    return splits["train"], splits["test"]


def test_raw_1nn_equals_scikit_learn(digits):
    train, test = digits
    row = score_reference("raw-1nn", train, test, dataset="digits")
    x_tr = train.images.numpy().reshape(len(train), -1) / 255.0
    x_te = test.images.numpy().reshape(len(test), -1) / 255.0
    pred = KNeighborsClassifier(1).fit(x_tr, train.labels.numpy()).predict(x_te)
    y = test.labels.numpy()
    assert row["recall@1"] == pytest.approx(recall_score(y, pred, average="macro"), abs=1e-9)
    assert row["f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-9)
    assert row["wall_seconds"] > 0 and row["n_train"] == len(train)


def test_supervised_umap_matches_umap_learn(digits):
    umap = pytest.importorskip("umap")
    train, test = digits
    row = score_reference("umap-2d", train, test, dataset="digits", seed=0)
    x_tr = train.images.numpy().reshape(len(train), -1).astype(np.float32) / 255.0
    x_te = test.images.numpy().reshape(len(test), -1).astype(np.float32) / 255.0
    reducer = umap.UMAP(n_components=2, random_state=0)
    e_tr = reducer.fit_transform(x_tr, y=train.labels.numpy())
    pred = KNeighborsClassifier(1).fit(e_tr, train.labels.numpy()).predict(reducer.transform(x_te))
    assert row["recall@1"] == pytest.approx(recall_score(test.labels.numpy(), pred, average="macro"),
                                            abs=1e-9)
    assert row["recall@1"] > 0.8  # supervised UMAP separates the digits


def test_unknown_reference_is_a_config_error(digits):
    with pytest.raises(ConfigError, match="unknown reference"):
        score_reference("pca", *digits, dataset="digits")


def test_benchmark_references_flag_writes_and_resumes(tmp_path):
    pytest.importorskip("umap")
    from guided_dml.cli import main

    out = tmp_path / "bench"
    assert main(["benchmark", "--datasets", "digits", "--methods", "siamese", "--seeds", "1",
                 "--preset", "smoke", "--threads", "1", "--out", str(out), "--references"]) == 0
    text = (out / "references.csv").read_text().splitlines()
    assert text[0].startswith("dataset,method,seed,recall@1")
    names = [line.split(",")[1] for line in text[1:]]
    assert names == ["raw-1nn", "umap-2d"]
    before = (out / "references.csv").stat().st_mtime_ns
    from guided_dml.experiments.references import run_references

    run_references(["digits"], out)  # nothing left to do: the file is not rewritten
    assert (out / "references.csv").stat().st_mtime_ns == before


def test_unseen_classes_reference_is_leave_one_out_among_unseen_test_images(tmp_path):
    # raw-1nn under the class-disjoint protocol: each unseen test image's nearest other unseen
    # test image (scikit-learn, the query itself excluded), fitted on nothing of the seen ones.
    from sklearn.neighbors import NearestNeighbors

    from guided_dml.experiments.references import run_references

    path = run_references(["digits"], tmp_path, names=("raw-1nn",), split="classes")
    (row,) = [r.split(",") for r in path.read_text().splitlines()[1:]]
    cols = path.read_text().splitlines()[0].split(",")
    got = dict(zip(cols, row, strict=True))
    assert got["dataset"] == "digits-unseen"
    test = load_dataset("digits")["test"]
    keep = test.labels.numpy() >= 5
    x = test.images.numpy().reshape(len(test), -1)[keep] / 255.0
    y = test.labels.numpy()[keep]
    _, idx = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    pred = y[idx[:, 1]]
    assert float(got["recall@1"]) == pytest.approx(recall_score(y, pred, average="macro"), abs=1e-9)
    n_train = len(load_dataset("digits")["train"])
    assert int(got["n_test"]) == int(keep.sum()) and int(got["n_train"]) < n_train


def test_references_larger_than_memory_are_refused_before_reading(digits, monkeypatch):
    import os

    from guided_dml.errors import DataError
    from guided_dml.experiments import references

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < references.available_memory() <= physical
    train, test = digits
    need = (len(train) + len(test)) * 64 * 4  # the float pixels of both splits
    monkeypatch.setattr(references, "available_memory", lambda: need - 1)
    with pytest.raises(DataError, match=r"GB available; run without --references"):
        score_reference("raw-1nn", train, test, dataset="digits")
    monkeypatch.setattr(references, "available_memory", lambda: need)
    assert score_reference("raw-1nn", train, test, dataset="digits")["recall@1"] > 0.9
