"""The training steps (training/steps.py): each is the loss of the network's output, nothing else."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from guided_dml.losses import DistillationLoss, build_metric_loss, build_miner
from guided_dml.losses.triplet import PlainTripletLoss
from guided_dml.training import distributed as dist
from guided_dml.training import gemini, gemini_step, metric_step, three_forward_step
from guided_dml.training import steps as steps_mod


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def batch(n: int = 24, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 6, 6, generator=g), torch.arange(n) % classes


def grads(net: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_metric_step_is_the_loss_of_the_output_without_a_miner(layout) -> None:
    x, y = batch()
    loss_fn = build_metric_loss("triplet", normalize_embeddings=False, margin=0.5)
    net = conv_net()
    want = loss_fn(net(x), y)
    want.backward()
    want_grads = grads(net)

    net = conv_net()
    got = metric_step(net, loss_fn, (x, y), layout=layout)
    got.backward()
    assert torch.equal(got, want) if layout == torch.contiguous_format else torch.allclose(got, want)
    for g, w in zip(grads(net), want_grads, strict=True):
        assert torch.allclose(g, w, atol=1e-6)


def test_metric_step_gives_the_loss_the_miners_tuples() -> None:
    x, y = batch()
    loss_fn = build_metric_loss("triplet", normalize_embeddings=False, margin=0.5)
    miner = build_miner("semihard", normalize_embeddings=False)
    net = conv_net()
    emb = net(x)
    want = loss_fn(emb, y, miner(emb, y))
    got = metric_step(conv_net(), loss_fn, (x, y), miner=miner)
    assert torch.equal(got, want)
    # The miner matters here: without it the loss is another number.
    assert not torch.equal(got, loss_fn(emb, y))


def test_metric_step_regresses_gemini_targets_in_float32() -> None:
    # The G-DML student (Algorithm 2): targets instead of labels; vectors keep their layout.
    torch.manual_seed(0)
    net = nn.Linear(5, 2)
    x, t = torch.randn(16, 5), torch.randn(16, 2)
    loss_fn = DistillationLoss()
    want = loss_fn(net(x), t)
    got = metric_step(net, loss_fn, (x, t), layout=torch.channels_last)
    assert torch.equal(got, want)


def test_metric_step_runs_the_network_inside_autocast() -> None:
    opened = []

    @contextlib.contextmanager
    def autocast():
        opened.append(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    x, y = batch()
    loss_fn = build_metric_loss("multisim")
    net = conv_net()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = net(x)
    want = loss_fn(emb.float(), y)
    got = metric_step(conv_net(), loss_fn, (x, y), autocast=autocast)
    assert opened == [True] and got.dtype == torch.float32 and torch.equal(got, want)


def test_metric_step_gathers_the_global_batch(monkeypatch) -> None:
    # In a process group the loss sees every process's rows (gather_rows); stand-in: doubling.
    x, y = batch()
    loss_fn = build_metric_loss("triplet", normalize_embeddings=False, margin=0.5)
    seen = []

    def gather_rows(*tensors):
        seen.append([t.shape for t in tensors])
        return tuple(torch.cat([t, t]) for t in tensors)

    monkeypatch.setattr(steps_mod.dist, "gather_rows", gather_rows)
    emb = conv_net()(x)
    got = metric_step(conv_net(), loss_fn, (x, y))
    assert seen == [[torch.Size([24, 2]), torch.Size([24])]]
    assert torch.equal(got, loss_fn(torch.cat([emb, emb]), torch.cat([y, y])))


def test_three_forwards_is_the_authors_triplet_step() -> None:
    # --triplet-sampling class-pairs: anchors, positives, negatives through the net separately.
    x, y = batch(18)
    loss_fn = PlainTripletLoss(margin=1.0)
    want = three_forward_step(conv_net(), loss_fn, (x, y))
    got = metric_step(conv_net(), loss_fn, (x, y), three_forwards=True)
    assert torch.equal(got, want)
    one_forward = conv_net()(x)
    assert not torch.equal(got, loss_fn(one_forward[:6], one_forward[6:12], one_forward[12:]))


def test_the_steps_stay_importable_where_they_were() -> None:
    from guided_dml.training.authors_triplet import three_forward_step as from_authors

    assert gemini.gemini_step is gemini_step is steps_mod.gemini_step
    assert from_authors is three_forward_step


def test_data_parallel_leaves_a_single_process_model_alone() -> None:
    net = conv_net()
    assert dist.data_parallel(net, torch.device("cpu"), 32) is net
