"""`gdml benchmark` says why it failed: bad data sets before any work, and the runs' own errors."""

from __future__ import annotations

import numpy as np
from PIL import Image

from guided_dml.cli import main

SMOKE = ("--preset", "smoke", "--threads", "1", "--seeds", "1", "--methods", "triplet")


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("gdml: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_unknown_data_set_is_refused_before_any_run(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--datasets", "digits", "nosuch", *SMOKE, "--out", str(out)]) == 2
    assert "unknown data set 'nosuch'" in _error_line(capsys.readouterr().err)
    assert not out.exists(), "nothing written, not even for digits"


def test_when_every_run_fails_the_error_says_why(tmp_path, capsys):
    data = tmp_path / "one-class" / "a"
    data.mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.full((8, 8), 40 * k, np.uint8), "L").save(data / f"{k}.png")
    out = tmp_path / "bench"
    assert main(["benchmark", "--datasets", str(data.parent), *SMOKE, "--out", str(out)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "single class" in line and "none has finished" in line and "error.txt" in line
