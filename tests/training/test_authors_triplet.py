"""The G-DML authors' triplet baseline: fixed class-pair triplets, three forwards, plain mean."""

from __future__ import annotations

import json

import pytest
import torch

from guided_dml.cli import main
from guided_dml.errors import ConfigError
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.factory import build_loss
from guided_dml.losses.triplet import PlainTripletLoss
from guided_dml.training.authors_triplet import FixedTripletBatches, three_forward_step


def labelled(n_per_class: int = 10, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = (torch.arange(len(labels)) % 256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    return images.contiguous(), labels


def test_triplets_are_drawn_once_b_per_ordered_class_pair() -> None:
    images, labels = labelled()
    src = FixedTripletBatches(images, labels, batch_size=4, seed=0)
    assert src.b == 4 and len(src.anchors) == 3 * 2 * 4  # 6 ordered pairs x B
    a, p, n = src.anchors, src.positives, src.negatives
    assert (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all() and (a != p).all()
    pairs = torch.stack([labels[a], labels[n]], 1).tolist()
    assert sorted({tuple(x) for x in pairs}) == [(i, j) for i in range(3) for j in range(3) if i != j]
    assert all(pairs.count([i, j]) == 4 for i in range(3) for j in range(3) if i != j)

    def epoch(seed: int) -> list[tuple[int, ...]]:
        out = []
        for x, y in src(torch.Generator().manual_seed(seed)):
            b = len(x) // 3
            assert (y[:b] == y[b : 2 * b]).all() and (y[:b] != y[2 * b :]).all()
            ids = (x[:, 0, 0, 0] * 255).round().long()  # the image index, as built above
            out += list(zip(*(ids[k * b : (k + 1) * b].tolist() for k in range(3)), strict=True))
        return out

    first, second = epoch(1), epoch(2)
    assert first != second and sorted(first) == sorted(second)  # same triplets, new order
    again = FixedTripletBatches(images, labels, batch_size=4, seed=0)
    assert torch.equal(again.anchors, src.anchors)  # the draw depends on the seed only


def test_plain_triplet_loss_equals_torchs_mean_over_all_triplets() -> None:
    torch.manual_seed(0)
    a, p, n = torch.randn(3, 16, 2, dtype=torch.float64).unbind(0)
    ref = torch.nn.TripletMarginLoss(margin=3.0, p=2, eps=0.0)(a, p, n)
    assert PlainTripletLoss(3.0)(a, p, n).item() == pytest.approx(ref.item(), rel=1e-12)
    same = torch.zeros(4, 2, requires_grad=True)
    PlainTripletLoss(1.0)(same, same.detach().clone(), torch.ones(4, 2)).backward()
    assert torch.isfinite(same.grad).all()  # zero distance: a finite gradient, not NaN


def test_three_forwards_keep_batchnorm_statistics_per_part() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    x = torch.cat([torch.randn(5, 3), 10 + torch.randn(5, 3), -10 + torch.randn(5, 3)])
    loss_fn = PlainTripletLoss(1.0)
    value = three_forward_step(net, loss_fn, (x, torch.zeros(15)))
    parts = [net(x[k * 5 : (k + 1) * 5]) for k in range(3)]
    assert value.item() == pytest.approx(loss_fn(*parts).item())
    one_batch = net(x)  # one forward: shared statistics, another loss
    assert value.item() != pytest.approx(loss_fn(one_batch[:5], one_batch[5:10], one_batch[10:]).item())


def test_paper_preset_uses_it_for_triplet_only() -> None:
    cfg = resolve_config({"preset": "paper", "dataset": "fashion-mnist", "method": "triplet"})
    assert (cfg.triplet_sampling, cfg.batch_size, cfg.margin) == ("class-pairs", 512, 3.0)
    assert resolve_config({"preset": "paper", "dataset": "cifar10", "method": "triplet"}
                          ).batch_size == 412
    loss, miner = build_loss(cfg)
    assert isinstance(loss, PlainTripletLoss) and loss.margin == 3.0 and miner is None
    assert resolve_config({"preset": "paper", "dataset": "fashion-mnist", "method": "margin"}
                          ).triplet_sampling == "batch"
    for bad in ({"method": "margin"}, {"method": "triplet", "mdr": 0.2}):
        with pytest.raises(ConfigError):
            resolve_config({"dataset": "digits", "triplet_sampling": "class-pairs", **bad})


def test_trains_end_to_end_and_repeats_exactly(tmp_path) -> None:
    args = ["train", "--dataset", "digits", "--method", "triplet", "--preset", "smoke",
            "--triplet-sampling", "class-pairs", "--batch-size", "8", "--margin", "1",
            "--threads", "1", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert 0.0 <= metrics["recall@1"] <= 1.0
    history = [json.loads(x) for x in (tmp_path / "a" / "history.jsonl").read_text().splitlines()]
    assert all(h["train_loss"] == h["train_loss"] for h in history)  # finite, not NaN
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert again["recall@1"] == metrics["recall@1"]  # seeded: the same run twice
