"""Baseline adapters: equal to calling pytorch-metric-learning directly, and to loop references."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners

from guided_dml.errors import ConfigError
from guided_dml.losses import MINERS, build_metric_loss, build_miner, metric_losses


def batch(n: int = 24, d: int = 3, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    return emb, labels


def dist(u: list[float], v: list[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def rows(emb: torch.Tensor, normalize: bool) -> list[list[float]]:
    out = []
    for row in emb.tolist():
        norm = math.sqrt(sum(x * x for x in row)) if normalize else 1.0
        out.append([x / norm for x in row])
    return out


def mean_nonzero(values: list[float]) -> float:
    kept = [v for v in values if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


@pytest.mark.parametrize("name", list(metric_losses()))
@pytest.mark.parametrize("normalize", [None, True, False])
def test_adapter_equals_pml(name: str, normalize: bool | None) -> None:
    emb, labels = batch()
    direct_kwargs = {}
    if normalize is False:
        direct_kwargs["distance"] = distances.LpDistance(normalize_embeddings=False)
    direct = metric_losses()[name](**direct_kwargs)
    adapter = build_metric_loss(name, normalize_embeddings=normalize)
    assert type(adapter) is type(direct)
    assert adapter(emb, labels).item() == pytest.approx(direct(emb, labels).item(), rel=1e-12)


def test_registry_names_the_paper_losses() -> None:
    assert metric_losses() == {
        "siamese": losses.ContrastiveLoss,
        "triplet": losses.TripletMarginLoss,
        "margin": losses.MarginLoss,
        "multisim": losses.MultiSimilarityLoss,
    }


def test_defaults_are_pml_defaults() -> None:
    triplet = build_metric_loss("triplet")
    assert triplet.margin == 0.05 and triplet.distance.normalize_embeddings
    assert isinstance(build_metric_loss("multisim").distance, distances.CosineSimilarity)
    raw = build_metric_loss("multisim", normalize_embeddings=False)
    assert isinstance(raw.distance, distances.LpDistance) and not raw.distance.normalize_embeddings


@pytest.mark.parametrize(("normalize", "margin"), [(None, 0.05), (False, 1.0)])
def test_triplet_matches_loop(normalize: bool | None, margin: float) -> None:
    emb, labels = batch()
    x, y = rows(emb, normalize is None), labels.tolist()
    values = []
    for a in range(len(y)):
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            for n in range(len(y)):
                if y[n] != y[a]:
                    values.append(max(0.0, dist(x[a], x[p]) - dist(x[a], x[n]) + margin))
    got = build_metric_loss("triplet", normalize_embeddings=normalize, margin=margin)(emb, labels)
    assert got.item() == pytest.approx(mean_nonzero(values), rel=1e-10)


@pytest.mark.parametrize("normalize", [None, False])
def test_contrastive_matches_loop(normalize: bool | None) -> None:
    emb, labels = batch()
    x, y = rows(emb, normalize is None), labels.tolist()
    pos, neg = [], []
    for i in range(len(y)):
        for j in range(len(y)):
            if i == j:
                continue
            d = dist(x[i], x[j])
            if y[i] == y[j]:
                pos.append(max(0.0, d - 0.0))
            else:
                neg.append(max(0.0, 1.0 - d))
    got = build_metric_loss("siamese", normalize_embeddings=normalize)(emb, labels)
    assert got.item() == pytest.approx(mean_nonzero(pos) + mean_nonzero(neg), rel=1e-10)


def test_multisimilarity_matches_loop() -> None:
    emb, labels = batch()
    x, y = rows(emb, normalize=True), labels.tolist()
    alpha, beta, base = 2.0, 50.0, 0.5
    per_sample = []
    for i in range(len(y)):
        sims = [sum(a * b for a, b in zip(x[i], x[j], strict=True)) for j in range(len(y))]
        pos = sum(math.exp(-alpha * (sims[j] - base)) for j in range(len(y)) if j != i and y[j] == y[i])
        neg = sum(math.exp(beta * (sims[j] - base)) for j in range(len(y)) if y[j] != y[i])
        per_sample.append(math.log1p(pos) / alpha + math.log1p(neg) / beta)
    got = build_metric_loss("multisim")(emb, labels)
    assert got.item() == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-9)


def test_kwargs_reach_pml() -> None:
    loss = build_metric_loss("margin", margin=0.3, learn_beta=True, num_classes=4)
    assert loss.margin == 0.3 and loss.beta.requires_grad
    custom = distances.LpDistance(power=2)
    assert build_metric_loss("triplet", distance=custom).distance is custom


def test_errors() -> None:
    with pytest.raises(ConfigError, match="siamese, triplet, margin, multisim"):
        build_metric_loss("arcface")
    with pytest.raises(ConfigError, match="triplet"):
        build_metric_loss("triplet", not_an_option=1)
    with pytest.raises(ConfigError, match="distance"):
        build_metric_loss("triplet", normalize_embeddings=False, distance=distances.DotProductSimilarity())
    with pytest.raises(ConfigError, match="none"):
        build_miner("hardest")


def test_miners() -> None:
    assert set(MINERS) == {"none", "multisim", "triplet", "semihard", "distance-weighted"}
    assert build_miner("none") is None
    assert isinstance(build_miner("multisim"), miners.MultiSimilarityMiner)
    assert build_miner("semihard").type_of_triplets == "semihard"
    raw = build_miner("triplet", normalize_embeddings=False, margin=0.5)
    assert raw.margin == 0.5 and not raw.distance.normalize_embeddings
    emb, labels = batch()
    miner, loss = build_miner("triplet"), build_metric_loss("triplet")
    direct = losses.TripletMarginLoss()(emb, labels, miners.TripletMarginMiner()(emb, labels))
    assert loss(emb, labels, miner(emb, labels)).item() == pytest.approx(direct.item())
