"""Distance-weighted sampling (Wu et al. 2017, Sec. 4) against the formula written out here."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import MeanReducer

from guided_dml.experiments.config import resolve_config
from guided_dml.experiments.factory import build_loss
from guided_dml.losses.sampling import DistanceWeightedPairMiner


def expected_weights(x: torch.Tensor, labels: torch.Tensor, anchor: int, cutoff: float = 0.5,
                     nonzero: float = 1.4) -> dict[int, float]:
    """P(negative j | anchor) ∝ 1/q(d), q(d) = d^(n-2) (1 - d²/4)^((n-3)/2), on unit vectors."""
    u = [[c / math.sqrt(sum(c * c for c in v)) for c in v] for v in x.tolist()]
    n = len(u[0])
    w = {}
    for j in range(len(u)):
        if labels[j] == labels[anchor]:
            continue
        d = max(cutoff, math.dist(u[anchor], u[j]))
        if d >= nonzero:
            continue
        w[j] = d ** (2 - n) * (1 - d * d / 4) ** (-(n - 3) / 2)
    if not w:  # no negative within the cutoff: uniform over all of them
        w = {j: 1.0 for j in range(len(u)) if labels[j] != labels[anchor]}
    total = sum(w.values())
    return {j: v / total for j, v in w.items()}


def test_one_negative_per_ordered_positive_pair() -> None:
    torch.manual_seed(0)
    x, labels = torch.randn(12, 4), torch.arange(12) % 3
    a, p, n = DistanceWeightedPairMiner()(x, labels)
    pairs = sorted(zip(a.tolist(), p.tolist(), strict=True))
    want = sorted((i, j) for i in range(12) for j in range(12) if i != j and labels[i] == labels[j])
    assert pairs == want  # every ordered positive pair exactly once
    assert (labels[n] != labels[a]).all()


@pytest.mark.parametrize("dim", [2, 16])
def test_negatives_are_drawn_with_the_papers_weights(dim: int) -> None:
    g = torch.Generator().manual_seed(dim)
    x = torch.randn(10, dim, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    miner = DistanceWeightedPairMiner(generator=torch.Generator().manual_seed(1))
    draws = 2000
    counts: dict[int, int] = {}
    for _ in range(draws):
        a, _, n = miner.mine(x, labels, x, labels)  # PML's wrapper adds only bookkeeping
        for j in n[a == 0].tolist():  # anchor 0 has one positive: one draw per call
            counts[j] = counts.get(j, 0) + 1
    want = expected_weights(x, labels, anchor=0)
    assert set(counts) <= set(want)  # never a positive, never beyond the 1.4 cutoff
    for j, prob in want.items():
        got = counts.get(j, 0) / draws
        assert got == pytest.approx(prob, abs=4 * math.sqrt(prob * (1 - prob) / draws) + 1e-3)


def test_antipodal_points_in_many_dimensions_give_no_nan() -> None:
    x = torch.zeros(4, 8)
    x[0, 0], x[1, 0], x[2, 0], x[3, 1] = 1.0, -1.0, 2.0, 1.0  # 0 and 1 antipodal
    a, _, n = DistanceWeightedPairMiner()(x, torch.tensor([0, 1, 0, 1]))
    assert len(a) == 4 and (torch.tensor([0, 1, 0, 1])[n] != torch.tensor([0, 1, 0, 1])[a]).all()


def test_a_batch_of_one_class_gives_no_triplet() -> None:
    a, p, n = DistanceWeightedPairMiner()(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    assert len(a) == len(p) == len(n) == 0


def test_the_mdr_authors_triplet_from_the_config() -> None:
    # --miner distance-weighted --reducer mean: their sampling and plain mean, under MDR's
    # mean-distance scaling (the miner inside WithMDR, on the rescaled embedding).
    cfg = resolve_config({"dataset": "digits", "method": "triplet", "mdr": 0.6, "margin": 0.2,
                          "miner": "distance-weighted", "reducer": "mean"})
    loss, outer_miner = build_loss(cfg)
    assert outer_miner is None and isinstance(loss.miner, DistanceWeightedPairMiner)
    assert isinstance(loss.base_loss, TripletMarginLoss)
    assert isinstance(loss.base_loss.reducer, MeanReducer) and loss.base_loss.margin == 0.2
    torch.manual_seed(0)
    value = loss(torch.randn(16, 2, requires_grad=True), torch.arange(16) % 4)
    assert torch.isfinite(value)
    plain = resolve_config({"dataset": "digits", "method": "triplet"})
    assert "reducer" not in plain.to_dict() or plain.reducer == "default"
    assert cfg.hash() != resolve_config({"dataset": "digits", "method": "triplet", "mdr": 0.6,
                                         "margin": 0.2}).hash()
