"""Corruptions (CIFAR-10-C / MNIST-C style) and the long-tailed subset."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from guided_dml.data.shifts import (
    CORRUPTIONS,
    SEVERITY_PARAMS,
    corrupt,
    imbalanced_counts,
    imbalanced_subset,
    rotate,
    translate,
)
from guided_dml.errors import ConfigError, DataError

RANDOM = ("gaussian_noise", "rotation", "translation")  # the corruptions that draw from the seed


def digits(n: int = 12, channels: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    """MNIST-like images: two bright Gaussian strokes on a black background, ``uint8``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    img = torch.zeros(n, channels, size, size)
    for _ in range(2):
        cy, cx = (torch.rand(2, n, 1, 1, 1, generator=g) * 0.4 + 0.3) * size
        sy, sx = torch.rand(2, n, 1, 1, 1, generator=g) * size / 6 + 1.5
        tint = torch.rand(n, channels, 1, 1, generator=g) * 0.5 + 0.5
        img += tint * torch.exp(-((yy - cy) ** 2) / (2 * sy**2) - (xx - cx) ** 2 / (2 * sx**2))
    img = (img * 3 - 1).clamp(0, 1)  # sharp stroke edges, as in MNIST, so that blur shows
    return (img * 255).round().to(torch.uint8)


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_shape_dtype_and_monotone_severity(name: str, shape: tuple[int, int]) -> None:
    x = digits(channels=shape[0], size=shape[1])
    diffs = []
    for severity in range(1, 6):
        y = corrupt(x, name, severity, seed=1)
        assert y.shape == x.shape and y.dtype == torch.uint8
        diffs.append(mean_abs_diff(x, y))
    assert diffs[0] > 0.5, f"{name} at severity 1 leaves the images unchanged"
    assert all(a < b for a, b in itertools.pairwise(diffs)), (name, diffs)
    assert torch.equal(corrupt(x, name, 0, seed=1), x)  # severity 0: the clean images


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_deterministic_given_the_seed(name: str) -> None:
    x = digits()
    assert torch.equal(corrupt(x, name, 3, seed=5), corrupt(x, name, 3, seed=5))
    direct = CORRUPTIONS[name](x, 3, torch.Generator().manual_seed(5))
    assert torch.equal(direct, corrupt(x, name, 3, seed=5))
    if name in RANDOM:
        assert not torch.equal(corrupt(x, name, 3, seed=5), corrupt(x, name, 3, seed=6))


def test_rotation_by_zero_and_quarter_turn() -> None:
    x = digits(channels=3, size=16)
    assert torch.equal(rotate(x, 0.0), x)
    assert torch.equal(rotate(x, torch.zeros(len(x))), x)
    # A quarter turn moves pixel centres onto pixel centres: exactly torch.rot90 (counter-clockwise).
    assert torch.equal(rotate(x, 90.0), torch.rot90(x, 1, dims=(2, 3)))


def test_translation_is_an_exact_shift_with_black_fill() -> None:
    x = digits(n=3, size=28)
    assert torch.equal(translate(x, 0.0, 0.0), x)
    y = translate(x, 2.0, -3.0)  # 2 px right, 3 px up
    expected = torch.zeros_like(x)
    expected[..., :-3, 2:] = x[..., 3:, :-2]
    assert torch.equal(y, expected)
    # One shift per image.
    z = translate(x, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(z[0], x[0]) and torch.equal(z[1, ..., 1:], x[1, ..., :-1])


def test_translation_severity_is_the_chebyshev_length() -> None:
    # A single bright pixel shows where the image went.
    x = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 14, 14] = 255
    for severity in (1, 4):
        y = corrupt(x, "translation", severity, seed=0)
        pos = y.flatten(1).argmax(1)
        dy, dx = pos // 28 - 14, pos % 28 - 14
        assert (torch.maximum(dy.abs(), dx.abs()) == severity).all()


def test_photometric_corruptions_follow_their_formulas() -> None:
    x = digits(n=4, channels=3, size=32)
    # Contrast keeps each image's mean and scales deviations by the severity's factor.
    y = corrupt(x, "contrast", 2, seed=0).float()
    c = SEVERITY_PARAMS["contrast"][1]
    xf = x.float()
    m = xf.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(y, ((xf - m) * c + m).round(), atol=1.0)
    # Brightness: a black pixel becomes grey at the shift; colours keep their channel ratios.
    z = corrupt(x, "brightness", 5, seed=0)
    shift = SEVERITY_PARAMS["brightness"][4]
    black = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    assert (corrupt(black, "brightness", 5) == round(shift * 255)).all()
    bright = x.float().amax(1) > 100
    ratio_in = x[:, 0].float() / x.float().amax(1).clamp(min=1)
    ratio_out = z[:, 0].float() / z.float().amax(1).clamp(min=1)
    assert torch.allclose(ratio_in[bright], ratio_out[bright], atol=0.03)
    # Blur keeps a constant image constant (replicated borders, normalised kernel).
    flat = torch.full((2, 1, 28, 28), 77, dtype=torch.uint8)
    assert torch.equal(corrupt(flat, "blur", 5), flat)


def test_noise_level_matches_the_table() -> None:
    x = torch.full((8, 1, 32, 32), 128, dtype=torch.uint8)
    y = corrupt(x, "gaussian_noise", 3, seed=0).float() / 255
    assert y.std().item() == pytest.approx(SEVERITY_PARAMS["gaussian_noise"][2], rel=0.05)


def test_bad_arguments() -> None:
    x = digits(n=2)
    with pytest.raises(ConfigError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(x, "blur", 6)
    with pytest.raises(DataError, match="uint8"):
        corrupt(x.float(), "blur", 1)
    with pytest.raises(DataError, match="uint8"):
        corrupt(x[0], "blur", 1)


def test_imbalanced_subset_follows_the_exponential_profile() -> None:
    labels = torch.arange(10).repeat_interleave(100)[torch.randperm(1000)]
    idx = imbalanced_subset(labels, ratio=10.0, seed=0)
    counts = torch.bincount(labels[idx], minlength=10).tolist()
    assert counts == [math.floor(100 * 10 ** (-i / 9) + 1e-9) for i in range(10)]
    assert counts[0] == 100 and counts[-1] == 10
    assert torch.equal(idx, idx.unique())  # sorted, no repeats
    assert torch.equal(idx, imbalanced_subset(labels, 10.0, seed=0))
    assert not torch.equal(imbalanced_subset(labels, 3.0, seed=0), imbalanced_subset(labels, 3.0, seed=1))
    assert len(imbalanced_subset(labels, 1.0)) == 1000


def test_imbalanced_subset_uses_the_smallest_class_as_head() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 80)
    counts = torch.bincount(labels[imbalanced_subset(labels, 4.0)]).tolist()
    assert counts == imbalanced_counts(30, 3, 4.0) == [30, 15, 7]
    with pytest.raises(ConfigError, match="ratio"):
        imbalanced_subset(labels, 0.5)
    with pytest.raises(DataError):
        imbalanced_subset(torch.zeros(0, dtype=torch.long), 2.0)
