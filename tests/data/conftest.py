"""Fixtures of the data-layer tests: an isolated environment and builders of tiny data sets."""

from __future__ import annotations

import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guided_dml.data import download


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads $GDML_DATA, writes into the real per-user cache, or opens a network URL."""
    monkeypatch.delenv("GDML_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def local_only(url: str, *args: object, **kwargs: object) -> object:
        if not url.startswith("file:"):
            raise AssertionError(f"a test tried to download {url}")
        return urllib.request.urlopen(url, *args, **kwargs)

    monkeypatch.setattr(download, "urlopen", local_only)


def random_image(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
    """A noise image of PIL ``size`` (width, height) in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode in ("L", "P"):
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        return img.convert("P") if mode == "P" else img
    bands = len(mode)
    return Image.fromarray(rng.integers(0, 256, (h, w, bands), dtype=np.uint8), mode)


@pytest.fixture
def make_image_tree() -> Callable[..., list[Path]]:
    """Write ``{relative path: (size, mode)}`` images below a root folder (PNG keeps pixels)."""

    def make(root: Path, spec: dict[str, tuple[tuple[int, int], str]]) -> list[Path]:
        paths = []
        for i, (rel, (size, mode)) in enumerate(sorted(spec.items())):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            random_image(size, mode, seed=i).save(path)
            paths.append(path)
        return paths

    return make


@pytest.fixture
def tar_folder() -> Callable[..., Path]:
    """Pack a folder's children into an archive (gzip by suffix), optionally under one folder."""

    def pack(folder: Path, archive: Path, top: str | None = None) -> Path:
        mode = "w:gz" if archive.name.endswith((".gz", ".tgz")) else "w"
        with tarfile.open(archive, mode) as tar:
            for child in sorted(folder.iterdir()):
                tar.add(child, arcname=f"{top}/{child.name}" if top else child.name)
        return archive

    return pack
