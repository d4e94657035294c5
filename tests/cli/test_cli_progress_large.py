"""Progress of `gdml embed`, `search --gallery` and `plot` on large inputs (threshold lowered here).

Off a terminal (pytest's captured stderr) each step prints a line per tenth of the work and a
"done" line, as `train` prints per-epoch lines; `-q` prints nothing; small inputs print nothing.
"""

from __future__ import annotations

import re

import pytest

from guided_dml import progress


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "MIN_ITEMS", 10)


def _lines(err: str, step: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(f"gdml: {step} ")]


def test_embed_prints_progress_lines_off_a_terminal(gdml, run_dir, photos, tmp_path, low_threshold):
    rc, _, err = gdml("embed", run_dir, photos, "--out", tmp_path / "e.npy")
    assert rc == 0, err
    for step in ("decoding", "embedding"):
        lines = _lines(err, step)
        assert lines, err
        assert re.fullmatch(rf"gdml: {step} 72/72 images done in \d+ s", lines[-1]), lines
    assert "\r" not in err  # no bar off a terminal
    assert "wrote 72 embeddings" in err


def test_embed_quiet_and_small_inputs_print_no_progress(gdml, run_dir, photos, tmp_path,
                                                        low_threshold, monkeypatch):
    rc, _, err = gdml("embed", run_dir, photos, "--out", tmp_path / "q.npy", "-q")
    assert rc == 0 and err == ""
    monkeypatch.setattr(progress, "MIN_ITEMS", 2000)  # the default: 72 images are small
    rc, _, err = gdml("embed", run_dir, photos, "--out", tmp_path / "s.npy")
    assert rc == 0 and not _lines(err, "embedding") and not _lines(err, "decoding")


def test_search_gallery_and_plot_progress(gdml, run_dir, photos, query, tmp_path, low_threshold,
                                          monkeypatch):
    monkeypatch.setenv("GDML_CACHE", "off")  # the gallery is embedded, not read from a cache
    rc, _, err = gdml("search", run_dir, query, "--gallery", photos, "--k", "3")
    assert rc == 0, err
    assert _lines(err, "embedding the gallery")[-1].startswith("gdml: embedding the gallery 72/72")
    csv_path = tmp_path / "e.csv"
    assert gdml("embed", run_dir, photos, "--out", csv_path, "-q")[0] == 0
    rc, _, err = gdml("plot", csv_path, "--out", tmp_path / "map")
    assert rc == 0, err
    assert _lines(err, "thumbnails")[-1].startswith("gdml: thumbnails 72/72 images done")


def test_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "MIN_ITEMS", 10)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with progress.Progress("embedding", 100) as bar:
        assert bar.bar is not None and not bar.lines
        bar.update(100)
    with progress.Progress("embedding", 100, progress=False) as bar:
        assert bar.bar is None and not bar.lines
