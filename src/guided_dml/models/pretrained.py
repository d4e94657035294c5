"""``--pretrained imagenet``: torchvision's ResNet-18 ImageNet weights, fetched once and cached.

The file is torchvision's own (``resnet18(weights="IMAGENET1K_V1")``), from its published URL;
the 8 hex digits in its name are the start of its SHA-256, checked as torchvision checks them.
It is cached under the per-user cache folder (``$XDG_CACHE_HOME/guided-dml/weights`` or
``~/.cache/guided-dml/weights``; not ``$GDML_CACHE``, which is the decoded-image cache and may be
off). A copy torchvision already downloaded (``$TORCH_HOME/hub/checkpoints``) is used as it is.
Without a network the error names the file and where to put it.

The weights expect ImageNet's normalisation of 0–1 RGB pixels (mean 0.485, 0.456, 0.406; std
0.229, 0.224, 0.225): :func:`imagenet_stats` gives it, and the student standardises with it
instead of its training data's own statistics (:func:`guided_dml.experiments.run.train_model`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data import download
from ..data.paths import user_cache_dir
from ..errors import DataError

IMAGENET = "imagenet"  # the --pretrained value that fetches the weights (anything else: a file)
RESNET18_IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_IMAGENET_SHA256_PREFIX = "f37072fd"  # the hash part of torchvision's file name
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_cache_dir() -> Path:
    """``<user cache>/weights``: where fetched weights are kept."""
    return user_cache_dir().resolve() / "weights"


def _file_name() -> str:
    return RESNET18_IMAGENET_URL.rsplit("/", 1)[-1]


def imagenet_weights_path() -> Path:
    """Where the ImageNet weights are cached (whether or not they are there yet)."""
    return weights_cache_dir() / _file_name()


def _torch_hub_copy() -> Path | None:
    try:
        path = Path(torch.hub.get_dir()) / "checkpoints" / _file_name()
    except Exception:  # pragma: no cover - an unusual torch configuration
        return None
    return path if path.is_file() else None


def _check(path: Path) -> Path:
    got = download.sha256sum(path)
    if not got.startswith(RESNET18_IMAGENET_SHA256_PREFIX.lower()):
        raise DataError(
            f"{path} is not torchvision's ResNet-18 ImageNet file (SHA-256 {got[:16]}..., expected "
            f"it to start with {RESNET18_IMAGENET_SHA256_PREFIX}); delete it and retry, or put "
            f"the file from {RESNET18_IMAGENET_URL} there"
        )
    return path


def fetch_imagenet_weights(*, progress: bool = True) -> Path:
    """The path of the ResNet-18 ImageNet weights, downloaded into the cache if not there.

    Raises:
        DataError: not cached and the download failed (one line: which file to put where), or
            the file's SHA-256 does not start with :data:`RESNET18_IMAGENET_SHA256_PREFIX`.
    """
    dest = imagenet_weights_path()
    if dest.is_file():
        return _check(dest)
    hub = _torch_hub_copy()
    if hub is not None:
        return _check(hub)
    try:
        download.download_url(RESNET18_IMAGENET_URL, dest, progress=progress,
                              sha256_prefix=RESNET18_IMAGENET_SHA256_PREFIX)
    except DataError as exc:
        # download_url's message names the URL and the file to save (dest): one line.
        raise DataError(f"--pretrained imagenet: {exc}, or pass --pretrained FILE") from exc
    return dest


def resolve_pretrained(value: str | os.PathLike[str] | None, *, progress: bool = True) -> Path | None:
    """The weights file of a ``pretrained`` setting: ``"imagenet"`` fetched (cached), a file as
    it is (checked to exist), None for no pretrained weights."""
    if value is None or os.fspath(value) == "":
        return None
    if os.fspath(value) == IMAGENET:
        return fetch_imagenet_weights(progress=progress)
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataError(f"pretrained weights not found: {value} (give a torchvision resnet18 "
                        "state-dict file, or --pretrained imagenet)")
    return path


def imagenet_stats(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet's per-channel mean and std for ``channels`` input channels (pixels in [0, 1]).

    Three channels: ImageNet's RGB statistics. One channel (grey images): the average of the
    three means and of the three stds. Note: the 1-channel ``conv1`` is the *sum* of the RGB
    filters (:func:`guided_dml.models.resnet.load_pretrained`), so a grey image standardised with
    these averages gives roughly what the RGB network gives to the grey image repeated on three
    channels; averaging the filters instead would divide conv1's output by 3 and put it off the
    scale of the pretrained BatchNorm statistics after it. Other counts: the RGB statistics
    repeated cyclically, as the filters are.
    """
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    if channels == 1:
        return mean.mean().reshape(1), std.mean().reshape(1)
    idx = torch.arange(channels) % 3
    return mean[idx], std[idx]
