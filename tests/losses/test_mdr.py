"""Multi-level Distance Regularization: loop reference, momentum statistics, checkpoints, levels'
gradients, WithMDR around PML and distillation losses, degenerate batches."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss

from guided_dml.errors import ConfigError
from guided_dml.losses import (
    DistillationLoss,
    MultiLevelDistanceRegularizer,
    WithMDR,
    mean_distance_normalize,
)

LEVELS = (-3.0, 0.0, 3.0)


def embeddings(n: int = 10, d: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def distance_matrix(x: torch.Tensor) -> list[list[float]]:
    pts = x.tolist()
    return [[math.sqrt(sum((a - b) ** 2 for a, b in zip(p, q, strict=True))) for q in pts] for p in pts]


def batch_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and unbiased std of all B² distances, zero diagonal included (authors' choice)."""
    flat = [d for row in distance_matrix(x) for d in row]
    return statistics.fmean(flat), statistics.stdev(flat)


def reference_loss(x: torch.Tensor, mean: float, std: float, levels=LEVELS) -> float:
    """mean over pairs i < j of min_k |(d_ij − M)/S − l_k| (no level penalty)."""
    dm = distance_matrix(x)
    values = []
    for i in range(len(dm)):
        for j in range(i + 1, len(dm)):
            z = (dm[i][j] - mean) / std
            values.append(min(abs(z - level) for level in levels))
    return sum(values) / len(values)


def test_first_batch_matches_loop_reference() -> None:
    x = embeddings()
    mdr = MultiLevelDistanceRegularizer(nu=0.01)
    mean, std = batch_stats(x)
    expected = reference_loss(x, mean, std) + 0.01 * sum(v * v for v in LEVELS)
    assert mdr(x).item() == pytest.approx(expected, rel=1e-6)
    assert bool(mdr.initialized)


def test_momentum_statistics_over_three_batches() -> None:
    mdr = MultiLevelDistanceRegularizer(momentum=0.9, nu=0.0)
    m = s = None
    for step in range(3):
        x = embeddings(n=8 + step, seed=step) * (1 + step)  # different scales per batch
        mu, sigma = batch_stats(x)
        if m is None:
            m, s = mu, sigma
        else:
            m, s = 0.9 * m + 0.1 * mu, 0.9 * s + 0.1 * sigma
        value = mdr(x).item()
        assert mdr.running_mean.item() == pytest.approx(m, rel=1e-6)
        assert mdr.running_std.item() == pytest.approx(s, rel=1e-6)
        # The loss uses the statistics after this batch's update.
        assert value == pytest.approx(reference_loss(x, m, s), rel=1e-5)


def test_state_dict_restores_statistics() -> None:
    mdr = MultiLevelDistanceRegularizer()
    for seed in range(2):
        mdr(embeddings(seed=seed))
    state = mdr.state_dict()
    assert {"levels", "running_mean", "running_std", "initialized"} <= set(state)

    restored = MultiLevelDistanceRegularizer()
    assert not bool(restored.initialized)
    restored.load_state_dict(state)
    assert bool(restored.initialized)
    assert torch.equal(restored.running_mean, mdr.running_mean)
    assert torch.equal(restored.running_std, mdr.running_std)
    x = embeddings(seed=5)
    assert restored(x).item() == pytest.approx(mdr(x).item(), rel=1e-12)


def test_eval_mode_does_not_update_statistics() -> None:
    mdr = MultiLevelDistanceRegularizer().eval()
    x = embeddings()
    mean, std = batch_stats(x)
    # Not initialised yet: the batch's own statistics are used, and nothing is stored.
    assert mdr.distance_loss(x).item() == pytest.approx(reference_loss(x, mean, std), rel=1e-6)
    assert not bool(mdr.initialized)

    mdr.train()(x)
    saved = (mdr.running_mean.clone(), mdr.running_std.clone())
    mdr.eval()
    other = embeddings(seed=3) * 5
    value = mdr.distance_loss(other).item()
    assert torch.equal(mdr.running_mean, saved[0]) and torch.equal(mdr.running_std, saved[1])
    assert value == pytest.approx(reference_loss(other, saved[0].item(), saved[1].item()), rel=1e-6)


def test_levels_get_gradient_only_through_nearest_assignments() -> None:
    levels = (-3.0, 0.0, 3.0, 50.0)  # nothing is near 50
    nu = 0.01
    mdr = MultiLevelDistanceRegularizer(levels=levels, nu=nu)
    x = embeddings(n=12).requires_grad_()
    mdr(x).backward()

    mean, std = batch_stats(x.detach())
    dm = distance_matrix(x.detach())
    expected = [2 * nu * v for v in levels]
    pairs = [(i, j) for i in range(len(dm)) for j in range(i + 1, len(dm))]
    for i, j in pairs:
        z = (dm[i][j] - mean) / std
        k = min(range(len(levels)), key=lambda k: abs(z - levels[k]))
        # d|z − l_k|/dl_k = −sign(z − l_k)
        expected[k] -= math.copysign(1.0, z - levels[k]) / len(pairs)
    assert mdr.levels.grad.tolist() == pytest.approx(expected, abs=1e-6)
    assert mdr.levels.grad[3].item() == pytest.approx(2 * nu * 50.0)
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mean_distance_normalize_is_not_detached() -> None:
    x = embeddings(n=6).requires_grad_()
    out = mean_distance_normalize(x)
    dm = distance_matrix(out.detach())
    off = [dm[i][j] for i in range(6) for j in range(6) if i != j]
    assert statistics.fmean(off) == pytest.approx(1.0)

    weights = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    d = torch.cdist(x, x)
    (x / (d.sum() / 30) * weights).sum().backward()  # the same formula, written out
    assert torch.allclose(grad, x.grad)
    # A detached scale would give weights / mean_d; the gradient through mean_d changes it.
    assert not torch.allclose(grad, weights / (d.detach().sum() / 30))


def test_with_mdr_around_triplet_loss() -> None:
    x = embeddings(n=16, d=8).requires_grad_()
    labels = torch.arange(16) % 4
    base = TripletMarginLoss(margin=0.2)
    loss_fn = WithMDR(base, lam=0.6)
    value = loss_fn(x, labels)
    value.backward()

    e = mean_distance_normalize(x.detach())
    reference = MultiLevelDistanceRegularizer()
    expected = base(e, labels) + 0.6 * reference.distance_loss(e) + reference.level_penalty()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(loss_fn.mdr.levels.grad).all()
    assert "mdr.levels" in dict(loss_fn.named_parameters())


def test_level_penalty_is_not_scaled_by_lambda() -> None:
    x = embeddings(n=8)
    zero_lam = WithMDR(lambda e, y: e.sum() * 0, lam=0.0)
    assert zero_lam(x, None).item() == pytest.approx(0.01 * 18.0)


def test_with_mdr_around_distillation_loss() -> None:
    x = embeddings(n=12, d=2).requires_grad_()
    targets = embeddings(n=12, d=2, seed=7)
    loss_fn = WithMDR(DistillationLoss(), lam=0.2, normalize_by_mean_distance=False)
    value = loss_fn(x, targets)
    value.backward()
    reference = MultiLevelDistanceRegularizer()
    expected = (
        DistillationLoss()(x.detach(), targets)
        + 0.2 * reference.distance_loss(x.detach())
        + reference.level_penalty()
    )
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ConfigError, match="normalize_by_mean_distance=False"):
        WithMDR(DistillationLoss(), lam=0.2)


@pytest.mark.parametrize("wrap", ["mdr", "triplet", "triplet_raw", "distillation"])
def test_degenerate_batch_gives_no_nan(wrap: str) -> None:
    x = torch.ones(9, 3, requires_grad=True)  # all embeddings equal: σ = 0, mean distance 0
    labels = torch.arange(9) % 3
    if wrap == "mdr":
        loss = MultiLevelDistanceRegularizer()(x)
    elif wrap == "triplet":
        loss = WithMDR(TripletMarginLoss(), lam=0.5)(x, labels)
    elif wrap == "triplet_raw":
        base = TripletMarginLoss(distance=LpDistance(normalize_embeddings=False))
        loss = WithMDR(base, lam=0.5)(x, labels)
    else:
        loss_fn = WithMDR(DistillationLoss(), lam=0.5, normalize_by_mean_distance=False)
        loss = loss_fn(x, torch.zeros(9, 3))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


def test_degenerate_first_batch_then_normal_batch() -> None:
    mdr = MultiLevelDistanceRegularizer()
    assert torch.isfinite(mdr(torch.zeros(5, 2)))
    x = embeddings(n=5, d=2).requires_grad_()
    value = mdr(x)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_single_sample_batch() -> None:
    mdr = MultiLevelDistanceRegularizer()
    value = mdr(torch.randn(1, 4))
    assert value.item() == pytest.approx(0.01 * 18.0)
    assert not bool(mdr.initialized)
    assert torch.equal(mean_distance_normalize(torch.ones(1, 3)), torch.ones(1, 3))


def test_invalid_parameters() -> None:
    with pytest.raises(ConfigError):
        MultiLevelDistanceRegularizer(levels=())
    with pytest.raises(ConfigError):
        MultiLevelDistanceRegularizer(momentum=1.0)
    with pytest.raises(ConfigError):
        MultiLevelDistanceRegularizer(nu=-1.0)
    with pytest.raises(ConfigError):
        WithMDR(TripletMarginLoss(), lam=-0.1)


# ---------------------------------------------------------------------------- the authors' wiring


def _official_step(x: torch.Tensor, triplets: tuple[torch.Tensor, ...], levels: torch.Tensor,
                   state: dict[str, float], margin: float, lam: float, nu: float = 0.01
                   ) -> torch.Tensor:
    """One training step's loss as the MDR paper writes it (Eqs. 1-6), the embedding divided by
    the batch's mean pairwise distance first ("learning without L2 norm"); the triplet term is a
    plain mean of max(0, d(a,p) - d(a,n) + m) over the given triplets."""
    b = x.shape[0]
    d = torch.cdist(x, x)
    e = x / (d.sum() / (b * (b - 1)))
    de = torch.cdist(e, e)
    a, p, n = triplets
    triplet = torch.relu(de[a, p] - de[a, n] + margin).mean()
    mu, sigma = de.detach().mean().item(), de.detach().std().item()  # all B² entries
    if "M" not in state:
        state["M"], state["S"] = mu, sigma
    else:
        state["M"], state["S"] = 0.9 * state["M"] + 0.1 * mu, 0.9 * state["S"] + 0.1 * sigma
    iu = torch.triu_indices(b, b, offset=1)
    z = (de[iu[0], iu[1]] - state["M"]) / state["S"]
    mdr = (z[:, None] - levels[None, :]).abs().min(dim=1).values.mean()
    return triplet + lam * mdr + nu * levels.pow(2).sum()


def test_three_training_steps_match_the_papers_formulas() -> None:
    from pytorch_metric_learning.reducers import MeanReducer

    torch.manual_seed(0)
    x_batches = [torch.randn(12, 5, dtype=torch.float64) for _ in range(3)]
    labels = torch.arange(12) % 3
    # Fixed (anchor, positive, negative) triplets, handed to the loss by a "miner".
    a = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]); p = (a + 3) % 12; n = (a + 1) % 12  # noqa: E702
    lin_ours = torch.nn.Linear(5, 3).double()
    lin_ref = torch.nn.Linear(5, 3).double()
    lin_ref.load_state_dict(lin_ours.state_dict())
    ours = WithMDR(TripletMarginLoss(margin=0.2, reducer=MeanReducer(),
                                     distance=LpDistance(normalize_embeddings=False)),
                   lam=0.6, miner=lambda e, y: (a, p, n)).double()
    ref_levels = torch.nn.Parameter(torch.tensor(LEVELS, dtype=torch.float64))
    opt_ours = torch.optim.Adam([*lin_ours.parameters(), *ours.parameters()], lr=1e-2)
    opt_ref = torch.optim.Adam([*lin_ref.parameters(), ref_levels], lr=1e-2)
    state: dict[str, float] = {}
    for x in x_batches:
        opt_ours.zero_grad(); opt_ref.zero_grad()  # noqa: E702
        loss = ours(lin_ours(x), labels)
        ref = _official_step(lin_ref(x), (a, p, n), ref_levels, state, margin=0.2, lam=0.6)
        loss.backward(); ref.backward()  # noqa: E702
        assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
        assert torch.allclose(lin_ours.weight.grad, lin_ref.weight.grad, atol=1e-12)
        assert torch.allclose(ours.mdr.levels.grad, ref_levels.grad, atol=1e-12)
        opt_ours.step(); opt_ref.step()  # noqa: E702
    assert ours.mdr.running_mean.item() == pytest.approx(state["M"], rel=1e-12)


def test_the_miner_sees_the_rescaled_embedding() -> None:
    seen: list[torch.Tensor] = []

    def miner(e: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seen.append(e.detach())
        return torch.tensor([0]), torch.tensor([2]), torch.tensor([1])

    loss_fn = WithMDR(TripletMarginLoss(margin=0.2), lam=0.2, miner=miner)
    x = 10 * embeddings(n=8)  # far from unit scale
    loss_fn(x, torch.arange(8) % 2)
    d = torch.cdist(seen[0], seen[0])
    assert (d.sum() / (8 * 7)).item() == pytest.approx(1.0)


def test_eval_mode_divides_by_the_running_mean_distance_of_training() -> None:
    seen: list[torch.Tensor] = []
    loss_fn = WithMDR(lambda e, y: seen.append(e.detach()) or e.sum() * 0, lam=0.2)
    scales = []
    for seed, factor in ((1, 1.0), (2, 3.0), (3, 5.0)):
        x = factor * embeddings(n=8, seed=seed)
        scales.append((torch.cdist(x, x).sum() / 56).item())
        loss_fn(x, None)
    expected = scales[0]
    for s in scales[1:]:
        expected = 0.9 * expected + 0.1 * s
    assert loss_fn.running_scale.item() == pytest.approx(expected)
    loss_fn.eval()
    val = 7 * embeddings(n=8, seed=9)
    loss_fn(val, None)
    assert torch.allclose(seen[-1], val / expected)  # not by the validation batch's own scale
    state = loss_fn.state_dict()  # a resumed run continues the same running scale
    assert state["running_scale"].item() == pytest.approx(expected)
