"""MDR's recipe part by part: P x K batches, Adam, the step schedule, frozen BatchNorm, the preset."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from guided_dml.cli import main
from guided_dml.errors import ConfigError, DataError
from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.factory import build_loss, student_optim
from guided_dml.losses import WithMDR
from guided_dml.losses.sampling import DistanceWeightedPairMiner
from guided_dml.training import OptimConfig, Trainer
from guided_dml.training.batches import ClassBalancedBatches


def test_pk_batches_hold_k_samples_of_batch_over_k_classes() -> None:
    labels = torch.arange(10).repeat_interleave(12)  # 10 classes x 12
    images = torch.arange(120).view(120, 1).float()
    src = ClassBalancedBatches(images, labels, batch_size=16, k=4)
    assert len(src) == 120 // 16
    seen = torch.zeros(120, dtype=torch.long)
    for x, y in src(torch.Generator().manual_seed(0)):
        assert len(y) == 16
        counts = torch.bincount(y, minlength=10)
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4, 4]  # P = 4 classes, K = 4
        assert (labels[x.flatten().long()] == y).all()
        seen[x.flatten().long()] += 1
    assert seen.max() == 1  # within an epoch a class gives each sample at most once (12 >= 4)
    first, again = ([y for _, y in src(torch.Generator().manual_seed(0))] for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # seeded
    with pytest.raises(DataError):
        ClassBalancedBatches(images, labels, batch_size=16, k=0)


def _fit(config: OptimConfig, model: nn.Module | None = None) -> Trainer:
    torch.manual_seed(0)
    model = model or nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    data = torch.randn(32, 3)

    def batches(g: torch.Generator):
        for i in range(0, 32, 8):
            yield (data[i : i + 8],)

    t = Trainer(model=model, loss_fn=nn.Identity(), step=lambda b: model(b[0]).pow(2).mean(),
                train_batches=batches, val_batches=None, config=config, progress=False)
    t.fit()
    return t


def test_step_schedule_multiplies_the_lr_at_each_milestone() -> None:
    cfg = OptimConfig(epochs=6, lr=0.1, schedule="step", step_milestones=(2, 4), step_gamma=0.2,
                      clip_value=None, select_best=False, optimizer="adam", weight_decay=1e-5)
    t = _fit(cfg)
    lrs = [h["lr"] for h in t.result.history]
    assert lrs == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.004])
    assert isinstance(t.optimizer, torch.optim.Adam)
    assert t.optimizer.param_groups[0]["weight_decay"] == 1e-5


def test_frozen_batchnorm_keeps_its_running_statistics_and_learns_its_affine() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    before = model[1].running_mean.clone(), model[1].weight.detach().clone()
    _fit(OptimConfig(epochs=2, lr=0.05, clip_value=None, freeze_bn=True, select_best=False), model)
    assert torch.equal(model[1].running_mean, before[0])
    assert not torch.equal(model[1].weight.detach(), before[1])
    free = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    _fit(OptimConfig(epochs=2, lr=0.05, clip_value=None, select_best=False), free)
    assert not torch.equal(free[1].running_mean, torch.zeros(4))


def test_the_mdr_preset_is_the_papers_recipe() -> None:
    cfg = resolve_config({"preset": "mdr", "dataset": "cub200", "method": "triplet", "mdr": 0.6})
    assert (cfg.embedding_dim, cfg.batch_size, cfg.batch_sampler, cfg.samples_per_class) == \
        (512, 128, "pk", 4)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.schedule, cfg.step_milestones,
            cfg.step_gamma, cfg.clip_value, cfg.freeze_bn) == \
        ("adam", 5e-5, 1e-5, "step", (40, 60, 80), 0.2, None, True)
    assert (cfg.split, cfg.normalize_embeddings) == ("classes", False)
    assert (cfg.loss_optimizer, cfg.loss_lr, cfg.loss_weight_decay) == ("adam", 5e-5, 1e-5)
    opt = student_optim(cfg)
    assert (opt.optimizer, opt.schedule, opt.freeze_bn) == ("adam", "step", True)
    loss, miner = build_loss(cfg)
    assert isinstance(loss, WithMDR) and isinstance(loss.miner, DistanceWeightedPairMiner)
    assert loss.base_loss.margin == 0.2 and miner is None
    sop = resolve_config({"preset": "mdr", "dataset": "sop", "method": "triplet"})
    assert (sop.batch_size, sop.samples_per_class, sop.lr) == (256, 3, 1e-4)
    with pytest.raises(ConfigError):
        resolve_config({"dataset": "digits", "schedule": "step"})  # no milestones


def test_a_tiny_run_of_the_mdr_preset(tmp_path) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--method", "triplet", "--preset", "mdr",
               "--mdr", "0.6", "--backbone", "smallcnn", "--embedding-dim", "16", "--epochs", "3",
               "--step-milestones", "2", "--batch-size", "32", "--lr", "1e-3", "--threads", "1",
               "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "digits-unseen" and 0 <= metrics["recall@8"] <= 1
    lrs = [json.loads(x)["lr"] for x in (out / "history.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([1e-3, 1e-3, 2e-4])
