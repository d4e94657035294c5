"""GEMINI teacher: per-class routing, the authors' stream sizes, small inputs, label checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guided_dml.errors import ConfigError, DataError
from guided_dml.models import Gemini, conv_stream_output_size


@pytest.mark.parametrize(("shape", "flat"), [((1, 28, 28), 1024), ((3, 32, 32), 1600), ((1, 16, 16), 64)])
def test_authors_stream_flattened_size(shape: tuple[int, int, int], flat: int) -> None:
    model = Gemini(3, shape)
    assert model.padding == 0
    assert model.local_dim == flat
    assert model.global_net[0].in_features == flat
    out, local = model(torch.rand(5, *shape), torch.tensor([0, 1, 2, 1, 0]))
    assert out.shape == (5, 2) and local.shape == (5, flat)


def test_authors_architecture() -> None:
    model = Gemini(2, (1, 28, 28), out_dim=2)
    kinds = [type(m).__name__ for m in model.streams[0]]
    assert kinds == ["Conv2d", "PReLU", "MaxPool2d", "Conv2d", "PReLU", "MaxPool2d", "Flatten"]
    conv1, conv2 = model.streams[0][0], model.streams[0][3]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size) == (1, 32, (5, 5))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size) == (32, 64, (5, 5))
    sizes = [(m.in_features, m.out_features) for m in model.global_net if isinstance(m, nn.Linear)]
    assert sizes == [(1024, 256), (256, 256), (256, 2)]
    assert [type(m).__name__ for m in model.global_net] == [
        "Linear",
        "PReLU",
        "Linear",
        "PReLU",
        "Linear",
    ]
    # each stream has its own parameters
    assert model.streams[0][1].weight is not model.streams[1][1].weight


def test_small_inputs_get_same_padding() -> None:
    model = Gemini(10, (1, 8, 8))
    assert model.padding == 2 and model.local_dim == 64 * 2 * 2
    assert model(torch.rand(4, 1, 8, 8), torch.tensor([9, 0, 9, 3]))[0].shape == (4, 2)
    assert conv_stream_output_size(15, 0) == 0 and conv_stream_output_size(16, 0) == 1
    with pytest.raises(ConfigError, match="mlp"):
        Gemini(10, (1, 3, 3))
    with pytest.raises(ConfigError):
        Gemini(10, (1, 8, 8), padding=0)
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        Gemini(10, (64,))


def test_mlp_stream_and_configurable_hidden() -> None:
    model = Gemini(3, (64,), out_dim=3, stream="mlp", hidden=(32,), mlp_hidden=(48, 16))
    assert model.local_dim == 16
    out, local = model(torch.randn(6, 64), torch.tensor([0, 1, 2, 2, 1, 0]))
    assert out.shape == (6, 3) and local.shape == (6, 16)
    assert [type(m).__name__ for m in model.global_net] == ["Linear", "PReLU", "Linear"]


def test_output_matches_stream_and_global_by_hand() -> None:
    torch.manual_seed(0)
    model = Gemini(4, (1, 16, 16), out_dim=2)
    x = torch.randn(7, 1, 16, 16)
    y = torch.tensor([3, 0, 3, 1, 0, 3, 1])
    out, local = model(x, y)
    for i in range(len(y)):
        h = model.streams[int(y[i])](x[i : i + 1])
        assert torch.allclose(local[i], h[0], atol=1e-6)
        assert torch.allclose(out[i], model.global_net(h)[0], atol=1e-6)
    out_c, local_c = model.forward_class(x[y == 3], 3)
    assert torch.allclose(out_c, out[y == 3], atol=1e-6)
    assert torch.allclose(local_c, local[y == 3], atol=1e-6)


def test_other_class_stream_does_not_affect_sample() -> None:
    torch.manual_seed(0)
    model = Gemini(3, (1, 16, 16))
    x = torch.randn(6, 1, 16, 16)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    before, _ = model(x, y)
    with torch.no_grad():
        for p in model.streams[1].parameters():
            p.add_(torch.randn_like(p))
        for p in model.streams[2].parameters():  # a class absent from the batch
            p.mul_(-3.0)
    after, _ = model(x, y)
    assert torch.equal(after[y == 0], before[y == 0])
    assert not torch.allclose(after[y == 1], before[y == 1])


def test_gradient_reaches_only_active_streams() -> None:
    model = Gemini(3, (1, 16, 16))
    out, local = model(torch.randn(4, 1, 16, 16), torch.tensor([2, 0, 2, 0]))
    (out.sum() + local.sum()).backward()
    assert all(p.grad is not None for p in model.streams[0].parameters())
    assert all(p.grad is not None for p in model.streams[2].parameters())
    assert all(p.grad is None for p in model.streams[1].parameters())
    assert all(torch.isfinite(p.grad).all() for p in model.global_net.parameters())


def test_label_validation() -> None:
    model = Gemini(3, (1, 16, 16))
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        model(x, torch.tensor([0, 3]))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        model(x, torch.tensor([-1, 0]))
    with pytest.raises(DataError, match="one label per sample"):
        model(x, torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match="integers"):
        model(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(DataError):
        model.forward_class(x, 5)
    with pytest.raises(ConfigError, match="stream"):
        Gemini(3, (1, 16, 16), stream="rnn")


def test_empty_batch() -> None:
    model = Gemini(2, (1, 16, 16))
    out, local = model(torch.zeros(0, 1, 16, 16), torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 2) and local.shape == (0, 64)
