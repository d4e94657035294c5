"""DistillationLoss (G-DML Algorithm 2) against a loop reference; finite gradient at zero."""

from __future__ import annotations

import math

import pytest
import torch

from guided_dml.errors import ConfigError
from guided_dml.losses import DistillationLoss


def test_matches_loop_reference() -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(11, 3, generator=g, dtype=torch.float64)
    tgt = torch.randn(11, 3, generator=g, dtype=torch.float64)
    expected = sum(
        math.sqrt(sum((e - t) ** 2 for e, t in zip(emb[i].tolist(), tgt[i].tolist(), strict=True)))
        for i in range(len(emb))
    ) / len(emb)
    assert DistillationLoss()(emb, tgt).item() == pytest.approx(expected, rel=1e-12)


def test_euclidean_not_squared() -> None:
    assert DistillationLoss()(torch.zeros(2, 2), torch.tensor([[3.0, 4.0], [0.0, 1.0]])).item() == 3.0


def test_finite_gradient_at_zero() -> None:
    tgt = torch.randn(5, 2)
    emb = tgt.clone()
    emb[0] += 1.0  # one sample off target, four exactly on it
    emb.requires_grad_()
    DistillationLoss()(emb, tgt).backward()
    assert torch.isfinite(emb.grad).all()
    assert torch.equal(emb.grad[1:], torch.zeros(4, 2))
    assert emb.grad[0].norm().item() == pytest.approx(1 / 5)


def test_shape_mismatch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="output dimension"):
        DistillationLoss()(torch.zeros(4, 3), torch.zeros(4, 2))
