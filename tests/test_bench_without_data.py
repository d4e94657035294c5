"""`make bench` on a fresh clone: the data-loading section skips what has no data, with a note,
and creates no folder (nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_data_loading_skips_without_the_shared_data_sets(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import bench_data

    missing = tmp_path / "shared" / "datasets"
    assert bench_data.run(100, missing) == []
    out = capsys.readouterr().out.splitlines()
    notes = [line.split(":")[0].strip() for line in out]
    assert notes == ["skipped IDX", "skipped JPEG folder and CIFAR-10 pickles"]
    assert not (tmp_path / "shared").exists(), "no folder for data that are not there"
    sys.modules.pop("bench_data", None)
