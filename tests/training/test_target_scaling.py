"""--target-scaling standardize (training/gemini.py): a similarity transform of GEMINI's targets."""

from __future__ import annotations

import torch

from guided_dml.evaluation import evaluate
from guided_dml.training import standardize_targets


def targets() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # A 2-D map like GEMINI's: class clusters far from the origin, anisotropic.
    g = torch.Generator().manual_seed(0)
    y_train, y_val = torch.arange(60) % 4, torch.arange(20) % 4
    centres = torch.tensor([[10.0, 3.0], [14.0, 3.5], [10.5, 9.0], [16.0, 8.0]])
    scale = torch.tensor([3.0, 0.5])
    train = centres[y_train] + scale * torch.randn(60, 2, generator=g)
    val = centres[y_val] + scale * torch.randn(20, 2, generator=g)
    return train, val, y_train, y_val


def test_training_targets_are_centred_with_unit_rms() -> None:
    train, val, _, _ = targets()
    s_train, s_val = standardize_targets(train, val)
    assert torch.allclose(s_train.mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.isclose(s_train.pow(2).mean().sqrt(), torch.tensor(1.0), atol=1e-5)
    # One isotropic scale, the training split's centre for both splits: a similarity transform.
    centre = train.mean(dim=0)
    ratio = (s_val - s_train.mean(dim=0)).norm(dim=1) / (val - centre).norm(dim=1)
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)
    # The axes keep their ratio (no per-axis standardisation).
    assert torch.allclose(s_train.std(dim=0) / s_train.std(dim=0)[0],
                          train.std(dim=0) / train.std(dim=0)[0], rtol=1e-4)


def test_retrieval_metrics_of_the_targets_are_unchanged() -> None:
    train, val, y_train, y_val = targets()
    s_train, s_val = standardize_targets(train, val)
    before = evaluate(val, y_val, train, y_train, nmi=False)
    after = evaluate(s_val, y_val, s_train, y_train, nmi=False)
    assert before.keys() == after.keys()
    for k in before:
        assert abs(before[k] - after[k]) < 1e-9, k


def test_it_is_the_run_s_formula() -> None:
    # What train_model computed inline before it moved here (bit for bit).
    train, val, _, _ = targets()
    centre = train.mean(dim=0)
    scale = (train - centre).pow(2).mean().sqrt().clamp_min(1e-8)
    s_train, s_val = standardize_targets(train, val)
    assert torch.equal(s_train, (train - centre) / scale) and torch.equal(s_val, (val - centre) / scale)


def test_constant_targets_do_not_divide_by_zero() -> None:
    s_train, s_val = standardize_targets(torch.ones(5, 2), torch.full((3, 2), 2.0))
    assert torch.isfinite(s_train).all() and torch.isfinite(s_val).all()
    assert torch.equal(s_train, torch.zeros(5, 2))
