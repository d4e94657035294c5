"""The class-disjoint protocol (--split classes): seen classes train, unseen ones are tested."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from guided_dml.cli import main
from guided_dml.data import ArrayDataset, load_dataset
from guided_dml.data.splits import class_disjoint_classes, parse_class_list
from guided_dml.errors import ConfigError, DataError
from guided_dml.evaluation import evaluate
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.report import dataset_key, dataset_name
from guided_dml.experiments.run import prepare_data


def test_class_lists_and_the_default_half() -> None:
    assert parse_class_list("0-2,7", 10) == [0, 1, 2, 7]
    assert parse_class_list(" 5 , 3,3 ", 10) == [3, 5]
    for bad in ("a-b", "3-1", "0-10", ","):
        with pytest.raises(DataError):
            parse_class_list(bad, 10)
    assert class_disjoint_classes(10) == ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    assert class_disjoint_classes(5) == ([0, 1, 2], [3, 4])
    assert class_disjoint_classes(10, "1,3,5,7,9") == ([1, 3, 5, 7, 9], [0, 2, 4, 6, 8])
    with pytest.raises(DataError):
        class_disjoint_classes(3)  # 2 seen, 1 unseen: no negative among the unseen


def test_with_classes_relabels_in_the_given_order() -> None:
    ds = ArrayDataset(torch.arange(6).view(6, 1).float(), torch.tensor([0, 1, 2, 0, 1, 2]),
                      ["a", "b", "c"], "toy")
    part = ds.with_classes([2, 0])
    assert part.classes == ["c", "a"]
    assert part.labels.tolist() == [1, 0, 1, 0] and part.images.flatten().tolist() == [0, 2, 3, 5]
    with pytest.raises(DataError):
        ds.with_classes([0, 0])


def test_prepared_data_never_shows_an_unseen_class_to_training() -> None:
    cfg = resolve_config({"dataset": "digits", "split": "classes", "preset": "smoke"})
    assert cfg.dataset_label == "digits-unseen"
    data = prepare_data(cfg)
    full = load_dataset("digits")
    assert data.train.classes == data.reference.classes == [full["train"].classes[k] for k in range(5)]
    assert data.test.classes == [full["test"].classes[k] for k in range(5, 10)]
    assert len(data.test) == int(np.isin(full["test"].labels.numpy(), range(5, 10)).sum())
    chosen = resolve_config({"dataset": "digits", "split": "classes", "train_classes": "0,2,4,6,8"})
    assert chosen.dataset_label == "digits-unseen-0_2_4_6_8"
    assert prepare_data(chosen).test.classes == [full["test"].classes[k] for k in (1, 3, 5, 7, 9)]
    with pytest.raises(ConfigError):
        resolve_config({"dataset": "digits", "train_classes": "0-4"})  # needs --split classes
    assert cfg.hash() != resolve_config({"dataset": "digits", "preset": "smoke"}).hash()


def test_train_scores_unseen_test_images_leave_one_out(tmp_path) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--method", "siamese", "--preset", "smoke",
               "--split", "classes", "--threads", "1", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    emb = np.load(out / "embeddings.npz")
    assert set(emb["classes"].tolist()) == {str(c) for c in load_dataset("digits")["test"].classes[5:]}
    # The reported numbers are leave-one-out retrieval among the unseen test images.
    again = evaluate(torch.from_numpy(emb["test_embeddings"]), torch.from_numpy(emb["test_labels"]))
    assert metrics["recall@1"] == pytest.approx(again["recall@1"])
    assert metrics["map@r"] == pytest.approx(again["map@r"])
    assert metrics["n_test"] == len(emb["test_labels"])


def test_the_report_names_the_protocol() -> None:
    assert dataset_name("fashion-mnist-unseen") == (
        "Fashion-MNIST, unseen classes (class-disjoint: trained on the first half)")
    assert dataset_name("cifar10-unseen-0_2") == "CIFAR-10, unseen classes (trained on classes 0,2)"
    assert dataset_key("mnist") < dataset_key("mnist-imb10") < dataset_key("mnist-unseen") \
        < dataset_key("fashion-mnist")


def test_shift_needs_the_closed_protocol(tmp_path) -> None:
    from guided_dml.experiments.benchmark import BenchmarkSpec, plan

    with pytest.raises(ConfigError, match="closed"):
        plan(BenchmarkSpec(datasets=["digits"], methods=["siamese"], seeds=1, preset="smoke",
                           out=str(tmp_path), shift=True, overrides={"split": "classes"}))
