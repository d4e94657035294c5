"""scripts/sync_record.py: a grid folder that holds only some runs of a data set does not
replace the record's figures drawn from run folders (they would lose the other methods)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _sync_record():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import sync_record
    finally:
        sys.path.pop(0)
    return sync_record


def test_figures_of_a_data_set_with_included_runs_are_partial(tmp_path) -> None:
    sync = _sync_record()
    finished = ["runs/mnist/triplet/seed-0", "runs/mnist/gdml/seed-0",
                "runs/cifar10/triplet/seed-0", "runs/digits/gdml/seed-0"]
    for run in finished:
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "metrics.json").write_text("{}")
    (tmp_path / "runs/digits/gdml/seed-1").mkdir(parents=True)  # unfinished: no metrics.json
    runs = [*finished, "runs/cifar10/gdml/seed-0",  # included from a record: no folder here
            "runs/digits/gdml/seed-1"]
    (tmp_path / "runs.csv").write_text(
        "dataset,method,seed,run_dir\n"
        + "".join(f"{r.split('/')[1]},{r.split('/')[2]},{r[-1]},{r}\n" for r in runs))
    assert sync.partial_figures(tmp_path) == {
        f"{kind}_{ds}.png" for ds in ("cifar10", "digits")
        for kind in ("embeddings", "curves", "validation")}
