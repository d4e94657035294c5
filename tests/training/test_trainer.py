"""The generic trainer: determinism, resume equivalence, best-epoch selection, NaN handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guided_dml.errors import TrainingError
from guided_dml.training import ArrayBatches, OptimConfig, Trainer, random_crop_flip


class _MSE(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target) ** 2).mean()


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (96, 1, 4, 4), generator=g, dtype=torch.uint8)
    w = torch.randn(16, 2, generator=g)
    y = (x.float().div(255).flatten(1) @ w).contiguous()
    return x, y


def _trainer(tmp_path, epochs: int, lr: float = 0.05, ckpt: bool = True) -> Trainer:
    torch.manual_seed(0)
    x, y = _problem()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loss = _MSE()
    return Trainer(
        model=model,
        loss_fn=loss,
        step=lambda b: loss(model(b[0]), b[1]),
        train_batches=ArrayBatches(x[:64], y[:64], 16),
        val_batches=ArrayBatches(x[64:], y[64:], 32, shuffle=False, drop_last=False),
        config=OptimConfig(epochs=epochs, lr=lr, clip_value=1.0, plateau_factor=0.5),
        seed=3,
        checkpoint_path=tmp_path / "t.ckpt" if ckpt else None,
        progress=False,
    )


def test_loss_decreases_and_best_epoch_is_restored(tmp_path):
    tr = _trainer(tmp_path, epochs=6)
    res = tr.fit()
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    best = min(range(len(res.history)), key=lambda i: res.history[i]["val_loss"])
    assert res.best_epoch == best
    # The restored model is the best epoch's: its validation loss equals the recorded minimum.
    assert tr.validate() == pytest.approx(res.history[best]["val_loss"], rel=1e-6)


def test_same_seed_same_numbers(tmp_path):
    a = _trainer(tmp_path / "a", epochs=3).fit().history
    b = _trainer(tmp_path / "b", epochs=3).fit().history
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    straight = _trainer(tmp_path / "s", epochs=5).fit()
    # Interrupted after 2 epochs, then resumed from the checkpoint by a fresh trainer.
    _trainer(tmp_path / "r", epochs=2).fit()
    resumed_tr = _trainer(tmp_path / "r", epochs=5)
    resumed_tr.config.epochs = 5
    resumed = resumed_tr.fit(resume=True)
    assert len(resumed.history) == 5
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in straight.history], rel=1e-6
    )


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    tr = _trainer(tmp_path, epochs=2)
    tr.step = lambda b: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(TrainingError, match=r"epoch 1.*--lr"):
        tr.fit()


def test_checkpoint_is_complete_file(tmp_path):
    _trainer(tmp_path, epochs=1).fit()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.ckpt"]  # no temporary leftovers


def test_random_crop_flip_keeps_shape_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    out = random_crop_flip(x, g, pad=4)
    assert out.shape == x.shape
    # pad=0 and no flip would be identity; with pad=0 every output row is a (possibly flipped) input.
    out0 = random_crop_flip(x, torch.Generator().manual_seed(1), pad=0)
    for i in range(8):
        assert torch.equal(out0[i], x[i]) or torch.equal(out0[i], x[i].flip(-1))
