"""Covariate and sub-population shifts of an image test set.

Corruptions follow the recipe of CIFAR-10-C / ImageNet-C [0] and MNIST-C [1]: the *same* test
images, degraded by a fixed family of corruptions at five severities, are embedded and retrieved
against the clean training set. Every corruption is a function
``fn(images, severity, generator) -> images`` on ``uint8 (N, C, H, W)`` tensors, vectorised over
the batch with torch and deterministic given the generator's seed.

Severity parameters (severity 1 … 5); pixel sizes are for 28–32 px images and scale with the
image (``scale = size / 32`` above 32 px, ``size / 28`` below 28 px, 1 between):

=============== ========================================= ===================================
corruption      parameter                                 severity 1, 2, 3, 4, 5
=============== ========================================= ===================================
gaussian_noise  σ of additive noise, fraction of 0–255    0.04, 0.06, 0.08, 0.09, 0.10  [0]
blur            σ of a Gaussian kernel, pixels × scale    0.5, 0.75, 1.0, 1.25, 1.5
contrast        factor c: ``x ← (x − mean) · c + mean``   0.75, 0.5, 0.4, 0.3, 0.15  [0]
brightness      added to the HSV value channel (0–1)      0.05, 0.1, 0.15, 0.2, 0.3  [0]
rotation        angle in degrees, random sign per image   10, 20, 30, 40, 50
translation     shift in pixels × scale, random           1, 2, 3, 4, 5
                direction per image (Chebyshev length)
=============== ========================================= ===================================

Noise, contrast and brightness use CIFAR-10-C's values. Its blur σ (0.4–1.0) barely changes the
two-pixel strokes of MNIST digits, so the blur table is stretched to 1.5. Rotation and translation
are MNIST-C's affine corruptions with a severity ladder; pixels moved in from outside the image
are black (zero padding), which is the background of MNIST / Fashion-MNIST.

:func:`imbalanced_subset` draws a long-tailed subset (Cao et al. 2019, CIFAR-10-LT profile) for
the sub-population (label) shift experiment.

[0] Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
    Perturbations", ICLR 2019. https://arxiv.org/abs/1903.12261
[1] Mu & Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", 2019.
    https://arxiv.org/abs/1906.02337

Examples:
    >>> x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    >>> y = corrupt(x, "rotation", severity=3, seed=0)
    >>> y.shape == x.shape and y.dtype == torch.uint8
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]

MAX_SEVERITY = 5

# Index severity - 1. See the module docstring for units and sources.
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "blur": (0.5, 0.75, 1.0, 1.25, 1.5),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "rotation": (10.0, 20.0, 30.0, 40.0, 50.0),
    "translation": (1.0, 2.0, 3.0, 4.0, 5.0),
}


# ---------------------------------------------------------------------------- helpers


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = (
            f"{images.dtype} of shape {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise DataError(f"corruptions need uint8 N×C×H×W images, got {got}")


def _param(name: str, severity: int) -> float:
    if not (isinstance(severity, int | np.integer) and 1 <= severity <= MAX_SEVERITY):
        raise ConfigError(f"severity of {name!r} must be an integer in 1..{MAX_SEVERITY}, got {severity!r}")
    return SEVERITY_PARAMS[name][int(severity) - 1]


def _scale(images: torch.Tensor) -> float:
    """Pixel parameters are set for 28–32 px images; other sizes get proportionally more or less.

    1 for 28–32 px, ``size / 32`` above, ``size / 28`` below (8 px digits: 0.29).
    """
    size = min(images.shape[-2:])
    return size / 32.0 if size > 32 else size / 28.0 if size < 28 else 1.0


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def _affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample every image through its own ``(2, 3)`` affine map (normalised coordinates).

    ``theta`` maps output coordinates to input coordinates, as in ``affine_grid``. Bilinear
    sampling, zeros outside: integer shifts and the identity reproduce pixels exactly.
    """
    x = _to_unit(images)  # (N, C, H, W)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _to_uint8(out)


def _random_signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).float().mul_(2).sub_(1)


# ---------------------------------------------------------------------------- geometric


def rotate(images: torch.Tensor, degrees: torch.Tensor | float) -> torch.Tensor:
    """Rotate each image about its centre by ``degrees`` (a scalar or one angle per image).

    Args:
        images: ``uint8 (N, C, H, W)``.
        degrees: counter-clockwise angle(s) in degrees, scalar or ``(N,)``.

    Returns:
        ``uint8 (N, C, H, W)``; corners that come from outside the image are black.
    """
    _check_images(images)
    n, _, h, w = images.shape
    rad = torch.as_tensor(degrees, dtype=torch.float32).expand(n) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # Normalised x spans W pixels and y spans H: rescale the off-diagonal terms so that a
    # rotation stays a rotation (not a shear) on non-square images.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * (h / w)
    theta[:, 1, 0] = sin * (w / h)
    theta[:, 1, 1] = cos
    return _affine(images, theta)


def translate(images: torch.Tensor, dx: torch.Tensor | float, dy: torch.Tensor | float) -> torch.Tensor:
    """Shift each image by ``(dx, dy)`` pixels (right, down); scalars or one value per image.

    Returns:
        ``uint8 (N, C, H, W)``; pixels moved in from outside are black.
    """
    _check_images(images)
    n, _, h, w = images.shape
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # Output pixel x reads input x - dx; one pixel is 2 / W in normalised coordinates.
    theta[:, 0, 2] = -2.0 * torch.as_tensor(dx, dtype=torch.float32).expand(n) / w
    theta[:, 1, 2] = -2.0 * torch.as_tensor(dy, dtype=torch.float32).expand(n) / h
    return _affine(images, theta)


def rotation(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Rotate by the severity's angle, clockwise or counter-clockwise at random per image."""
    _check_images(images)
    angle = _param("rotation", severity)
    return rotate(images, angle * _random_signs(len(images), generator))


def translation(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Shift by ``k`` pixels in a random direction: one axis moves ±k, the other −k … k.

    The Chebyshev length of the shift is exactly ``k`` for every image, so a severity means the
    same displacement whatever the direction.
    """
    _check_images(images)
    n = len(images)
    k = _param("translation", severity) * _scale(images)
    major = _random_signs(n, generator) * k
    minor = (torch.rand(n, generator=generator) * 2.0 - 1.0) * k
    if k == int(k):  # whole-pixel shifts copy pixels exactly, with no interpolation blur
        minor = minor.round()
    swap = torch.rand(n, generator=generator) < 0.5
    dx = torch.where(swap, minor, major)
    dy = torch.where(swap, major, minor)
    return translate(images, dx, dy)


# ---------------------------------------------------------------------------- photometric


def gaussian_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Additive i.i.d. Gaussian noise on the 0–1 scale, clipped (CIFAR-10-C ``gaussian_noise``)."""
    _check_images(images)
    sigma = _param("gaussian_noise", severity)
    x = _to_unit(images)
    noise = torch.randn(x.shape, generator=generator)
    return _to_uint8(x.add_(noise.mul_(sigma)).clamp_(0.0, 1.0))


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    # Truncated at 4 σ like scipy.ndimage / skimage.filters.gaussian, which CIFAR-10-C uses.
    radius = max(1, int(4.0 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur: a separable depth-wise convolution, borders replicated.

    ``generator`` is unused (the corruption is deterministic); it keeps the common signature.
    """
    _check_images(images)
    sigma = _param("blur", severity) * _scale(images)
    x = _to_unit(images)  # (N, C, H, W)
    c = x.shape[1]
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    # Replicate padding ≈ skimage's mode="nearest": no dark frame appears around the image.
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, len(k)), groups=c)  # along W
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, len(k), 1), groups=c)  # along H
    return _to_uint8(x)


def contrast(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Pull every pixel towards the image's mean intensity by the severity's factor."""
    _check_images(images)
    factor = _param("contrast", severity)
    x = _to_unit(images)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1), over channels too as in [0]
    return _to_uint8((x - mean).mul_(factor).add_(mean).clamp_(0.0, 1.0))


def brightness(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add the severity's shift to the HSV value channel, hue and saturation unchanged.

    With hue and saturation fixed, RGB is proportional to V, so the HSV round trip of [0]
    reduces to scaling each pixel by ``V' / V``; black pixels (V = 0, saturation 0) become
    grey ``V'``. For one channel this is ``clip(x + shift)``.
    """
    _check_images(images)
    shift = _param("brightness", severity)
    x = _to_unit(images)
    v = x.amax(dim=1, keepdim=True)  # (N, 1, H, W): HSV value
    v_new = (v + shift).clamp_(max=1.0)
    out = torch.where(v > 0, x * (v_new / v.clamp(min=1e-12)), v_new.expand_as(x))
    return _to_uint8(out)


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "contrast": contrast,
    "brightness": brightness,
    "rotation": rotation,
    "translation": translation,
}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` with a generator seeded by ``seed``.

    Severity 0 returns an unchanged copy (the clean test set), so a severity sweep can start at 0.
    The same seed gives the same noise pattern, rotation signs and shift directions at every
    severity, which makes a severity curve differ only in the corruption's strength.

    Raises:
        ConfigError: unknown ``name`` or a severity outside 0..5.
        DataError: ``images`` is not ``uint8 (N, C, H, W)``.
    """
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    _check_images(images)
    if severity == 0:
        return images.clone()
    generator = torch.Generator().manual_seed(int(seed))
    return CORRUPTIONS[name](images, severity, generator)


# ---------------------------------------------------------------------------- label shift


def imbalanced_subset(
    labels: torch.Tensor | np.ndarray | Sequence[int], ratio: float, seed: int = 0
) -> torch.Tensor:
    """Indices of a long-tailed subset: class ``i`` keeps ``⌊n_max · ratio^(−i/(C−1))⌋`` samples.

    The exponential profile of CIFAR-10-LT (Cao et al., NeurIPS 2019): the first class keeps
    ``n_max`` samples, the last ``n_max / ratio``. ``n_max`` is the smallest class count, so every
    quota can be met; classes are ordered by label value. Every class keeps at least one sample.

    Args:
        labels: ``(N,)`` integer labels.
        ratio: imbalance factor ``n_max / n_min`` (≥ 1; 1 gives a balanced subset).
        seed: which samples of each class are kept (``numpy.random.default_rng(seed)``).

    Returns:
        Sorted ``int64`` indices into ``labels``.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or len(y) == 0 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"imbalanced_subset needs a non-empty 1-D integer label array, got "
            f"dtype {y.dtype} and shape {y.shape}"
        )
    if not ratio >= 1.0:
        raise ConfigError(f"imbalance ratio must be >= 1, got {ratio}")
    classes, counts = np.unique(y, return_counts=True)
    quotas = imbalanced_counts(int(counts.min()), len(classes), ratio)
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(np.flatnonzero(y == c), q, replace=False) for c, q in zip(classes, quotas, strict=True)
    ]
    return torch.from_numpy(np.sort(np.concatenate(keep))).long()


def imbalanced_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Per-class sample counts of the exponential long-tail profile used by ``imbalanced_subset``."""
    if num_classes == 1:
        return [n_max]
    return [
        max(1, math.floor(n_max * ratio ** (-i / (num_classes - 1)) + 1e-9)) for i in range(num_classes)
    ]
