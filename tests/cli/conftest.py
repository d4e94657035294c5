"""A folder of labelled photos (tiny PNGs), one model trained on it, and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guided_dml.cli import main

CLASSES = ("circle", "cross", "stripes")


def draw(kind: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A grey ``size``×``size`` uint8 image of one of three shapes, with noise."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 2 - 0.5
    if kind == "circle":
        img = (np.hypot(yy - c, xx - c) < size / 3) * 220.0
    elif kind == "cross":
        img = ((abs(yy - c) < 2) | (abs(xx - c) < 2)) * 220.0
    else:
        img = ((yy // 3) % 2) * 220.0
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


def make_photos(root: Path, per_class: int = 24, seed: int = 0) -> Path:
    """``root/<class>/<k>.png``: the layout `gdml train --dataset FOLDER` takes."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            Image.fromarray(draw(kind, rng), "L").save(root / kind / f"{k:03d}.png")
    return root


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, cache_home: Path):
    """No test reads $GDML_DATA or writes the real per-user cache; one thread for tiny models."""
    monkeypatch.delenv("GDML_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photos(tmp_path_factory.mktemp("data") / "photos")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, photos: Path, cache_home: Path) -> Path:
    """A G-DML run trained once per session on ``photos`` (smoke preset: seconds)."""
    out = tmp_path_factory.mktemp("runs") / "photos"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache_home))
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        rc = main(["train", "--dataset", f"{photos}/", "--preset", "smoke", "--out", str(out)])
        torch.set_num_threads(before)
    assert rc == 0
    return out


@pytest.fixture
def query(tmp_path: Path) -> Path:
    """A new circle image, not in the training folder."""
    path = tmp_path / "query.png"
    Image.fromarray(draw("circle", np.random.default_rng(99)), "L").save(path)
    return path


Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def gdml(capsys: pytest.CaptureFixture[str]) -> Runner:
    """``gdml(*args) -> (exit status, stdout, stderr)``."""

    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def assert_error(result: tuple[int, str, str], *fragments: str) -> str:
    """A failed command: status 2, one line on stderr with ``fragments``, no traceback."""
    rc, _, err = result
    assert rc == 2, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gdml: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def error() -> Callable[..., str]:
    return assert_error


@pytest.fixture
def photo_tools() -> tuple[Callable[..., Path], Callable[..., np.ndarray]]:
    """``(make_photos, draw)`` for tests that build their own folders."""
    return make_photos, draw
