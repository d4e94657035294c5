"""Issue 13's optimiser fixes: the plateau schedule's mode, clipping by norm, the cosine
schedule with warm-up, keeping the last epoch, a separate loss optimiser, the convergence rule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from guided_dml.training import ArrayBatches, OptimConfig, Trainer
from guided_dml.training.trainer import convergence


class _MSE(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target) ** 2).mean()


class _ScaledMSE(nn.Module):
    """An MSE with a learnable scale: a loss with its own parameter, like MDR's levels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred * self.scale - target) ** 2).mean()


def _trainer(config: OptimConfig, *, scores=None, loss: nn.Module | None = None) -> Trainer:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 1, 4, 4), generator=g, dtype=torch.uint8)
    y = x.float().div(255).flatten(1) @ torch.randn(16, 2, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loss = loss or _MSE()
    it = iter(scores) if scores is not None else None
    return Trainer(
        model=model, loss_fn=loss, step=lambda b: loss(model(b[0].float() / 255), b[1]),
        train_batches=ArrayBatches(x[:64], y[:64], 16),
        val_batches=ArrayBatches(x[64:], y[64:], 32, shuffle=False, drop_last=False),
        config=config, seed=1, progress=False,
        val_score=(lambda: next(it)) if it is not None else None,
    )


def test_plateau_counts_a_slightly_lower_score_as_a_bad_epoch():
    # 0.7 -> 0.69995 -> 0.6999: two epochs without improvement; with patience 1 the rate
    # halves after the third. The old code fed -score to mode="min" with a relative threshold,
    # which counted -0.69995 < -0.7 * (1 - 1e-4) as an improvement and never decreased it.
    cfg = OptimConfig(epochs=4, lr=0.1, clip_value=None, plateau_factor=0.5, plateau_patience=1)
    tr = _trainer(cfg, scores=[0.7, 0.69995, 0.6999, 0.6998])
    tr.fit()
    assert [h["lr"] for h in tr.result.history] == pytest.approx([0.1, 0.1, 0.1, 0.05])
    assert tr.result.best_epoch == 0


def test_plateau_on_the_training_loss_ignores_the_score():
    # The authors step the schedule on the training loss: a falling score changes nothing
    # while the training loss keeps falling.
    cfg = OptimConfig(epochs=4, lr=0.05, clip_value=None, plateau_factor=0.5, plateau_patience=0,
                      plateau_on="train_loss", select_best=False)
    tr = _trainer(cfg, scores=[0.9, 0.8, 0.7, 0.6])
    res = tr.fit()
    losses = [h["train_loss"] for h in res.history]
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert [h["lr"] for h in res.history] == pytest.approx([0.05] * 4)
    assert res.best_epoch == 3  # the last epoch is kept, not the best-scored (epoch 0)


def test_clip_by_norm_caps_the_global_norm():
    cfg = OptimConfig(epochs=1, lr=0.0, weight_decay=0.0, clip_value=None, clip_norm=1e-3,
                      plateau_factor=None)
    tr = _trainer(cfg)
    norms = []
    orig = tr.optimizer.step

    def spy(*a, **k):
        norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in tr.params])).item())
        return orig(*a, **k)

    tr.optimizer.step = spy
    tr.fit()
    assert norms and max(norms) == pytest.approx(1e-3, rel=1e-4)


def test_cosine_with_warmup_follows_its_formula():
    cfg = OptimConfig(epochs=4, lr=0.2, clip_value=None, schedule="cosine", warmup_epochs=1)
    tr = _trainer(cfg)
    seen = []
    orig = tr.optimizer.step

    def spy(*a, **k):
        seen.append(tr.optimizer.param_groups[0]["lr"])
        return orig(*a, **k)

    tr.optimizer.step = spy
    tr.fit()
    n = 4  # 64 samples / 16 per batch
    expected = []
    for e in range(4):
        for i in range(n):
            t = e + i / n
            warm = 0.01 + 0.99 * t if t < 1 else 1.0
            expected.append(0.2 * warm * 0.5 * (1 + math.cos(math.pi * max(t - 1, 0) / 3)))
    assert seen == pytest.approx(expected)


def test_warmup_needs_cosine():
    with pytest.raises(ValueError, match="cosine"):
        OptimConfig(warmup_epochs=1)


def test_loss_parameters_get_their_own_unclipped_adam():
    cfg = OptimConfig(epochs=1, lr=0.05, clip_value=1e-6, plateau_factor=None,
                      loss_optimizer="adam", loss_lr=0.01)
    loss = _ScaledMSE()
    tr = _trainer(cfg, loss=loss)
    assert isinstance(tr.loss_optimizer, torch.optim.Adam)
    assert all(p is not loss.scale for p in tr.params)  # not among the clipped parameters
    tr.fit()
    # Adam's first steps move a parameter by about lr each, whatever the gradient's size; a
    # clip of 1e-6 in the shared SGD would have left it at 1 (4 steps x 0.05 x 1e-6).
    assert abs(loss.scale.item() - 1.0) > 0.01
    assert "loss_optimizer" in tr.state_dict() and tr.state_dict()["loss_optimizer"] is not None


def test_convergence_rule():
    flat = [{"val_score": v} for v in (0.5, 0.70, 0.80, 0.801, 0.803, 0.804)]
    rising = [{"val_score": v} for v in (0.5, 0.70, 0.80, 0.81, 0.82, 0.83)]
    assert convergence(flat)["converged"] is True
    assert convergence(flat)["val_gain_last_third"] == pytest.approx(0.804 - 0.801)
    assert convergence(rising)["converged"] is False
    assert convergence(rising[:2]) == {"val_gain_last_third": None, "converged": None}
    assert convergence([{"val_loss": 1.0}] * 4)["converged"] is None
