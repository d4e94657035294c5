"""GeminiLoss (G-DML Eq. 5) against a Python-loop reference; finite gradient at zero distance."""

from __future__ import annotations

import math

import pytest
import torch

from guided_dml.errors import ConfigError
from guided_dml.losses import GeminiLoss


def dist(u: list[float], v: list[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def reference(out_a, out_p, out_n, local_a, local_p, margin: float, beta: float) -> float:
    hinges, locals_ = [], []
    for i in range(len(out_a)):
        a, p, n = out_a[i].tolist(), out_p[i].tolist(), out_n[i].tolist()
        hinges.append(max(0.0, dist(a, p) - dist(a, n) + margin))
        locals_.append(dist(local_a[i].tolist(), local_p[i].tolist()))
    return (1 - beta) * sum(hinges) / len(hinges) + beta * sum(locals_) / len(locals_)


@pytest.mark.parametrize(("margin", "beta"), [(3.0, 0.005), (0.5, 0.3), (0.0, 0.0), (1.0, 1.0)])
def test_matches_loop_reference(margin: float, beta: float) -> None:
    g = torch.Generator().manual_seed(0)
    out_a, out_p, out_n = torch.randn(3, 9, 2, generator=g, dtype=torch.float64).unbind(0)
    local_a, local_p = torch.randn(2, 9, 20, generator=g, dtype=torch.float64).unbind(0)
    got = GeminiLoss(margin, beta)(out_a, out_p, out_n, local_a, local_p)
    expected = reference(out_a, out_p, out_n, local_a, local_p, margin, beta)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_gradient_matches_autograd_of_plain_norms() -> None:
    g = torch.Generator().manual_seed(1)
    tensors = [t.requires_grad_() for t in torch.randn(5, 6, 3, generator=g, dtype=torch.float64)]
    assert torch.autograd.gradcheck(GeminiLoss(margin=1.0, beta=0.2), tuple(tensors))


def test_finite_gradient_at_zero_distance() -> None:
    out = torch.randn(4, 2)
    local = torch.randn(4, 64)
    out_a = out.clone().requires_grad_()
    out_p = out.clone().requires_grad_()  # identical anchor and positive
    out_n = torch.randn(4, 2, requires_grad=True)
    local_a = local.clone().requires_grad_()
    local_p = local.clone().requires_grad_()
    loss = GeminiLoss()(out_a, out_p, out_n, local_a, local_p)
    loss.backward()
    for t in (out_a, out_p, out_n, local_a, local_p):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(local_a.grad, torch.zeros_like(local_a))


def test_invalid_parameters() -> None:
    with pytest.raises(ConfigError):
        GeminiLoss(margin=-1.0)
    with pytest.raises(ConfigError):
        GeminiLoss(beta=1.5)
