"""``evaluate(index="ivf")``: approximate neighbours from faiss IVF, and the recall it reports."""

from __future__ import annotations

import numpy as np
import pytest

from guided_dml.errors import ConfigError
from guided_dml.evaluation import evaluate
from guided_dml.evaluation.approximate import ivf_settings
from guided_dml.evaluation.knn import faiss_available

pytestmark = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")

COMPARED = ("precision@1", "recall@1", "f1", "recall@2", "recall@4", "recall@8", "r_precision",
            "map@r")


@pytest.mark.parametrize("dim", [2, 16])
@pytest.mark.parametrize("leave_one_out", [False, True])
def test_scanning_every_cell_is_exact(blobs, dim, leave_one_out):
    x, y = blobs(1200, dim, 6, seed=dim, quantize=False)
    ref = (None, None) if leave_one_out else (x[400:], y[400:])
    q, ql = x[:400] if not leave_one_out else x, y[:400] if not leave_one_out else y
    exact = evaluate(q, ql, *ref, nmi=False)
    ivf = evaluate(q, ql, *ref, nmi=False, index="ivf", nlist=8, nprobe=8)
    for key in COMPARED:
        assert ivf[key] == pytest.approx(exact[key], abs=1e-6), key
    assert ivf["ann_recall@1"] == 1.0 and ivf["ann_recall@8"] == 1.0


def test_a_partial_scan_reports_its_recall_and_is_repeatable(blobs):
    x, y = blobs(3000, 16, 10, seed=1, quantize=False)
    a = evaluate(x[:500], y[:500], x[500:], y[500:], nmi=False, index="ivf", nlist=50, nprobe=2)
    b = evaluate(x[:500], y[:500], x[500:], y[500:], nmi=False, index="ivf", nlist=50, nprobe=2,
                 memory_budget_mb=0.01)  # one query per chunk: same numbers
    assert a == b
    assert 0.0 < a["ann_recall@8"] < 1.0 and 0.0 < a["ann_recall@1"] <= 1.0
    exact = evaluate(x[:500], y[:500], x[500:], y[500:], nmi=False)
    # Items the index misses count as misses: R-Precision can only drop.
    assert a["r_precision"] <= exact["r_precision"] + 1e-12
    assert set(a) == set(exact) | {"ann_recall@1", "ann_recall@8"}


def test_default_settings_scan_enough_for_map_at_r():
    s = ivf_settings(1_000_000, None, None, max_relevant=10_000)
    assert s.nlist == 1000 and s.nprobe == 20  # 2 % of the reference = twice R
    s = ivf_settings(1_000_000, None, None, max_relevant=100_000)
    assert s.nprobe == 200  # a large class needs a wider scan
    with pytest.raises(ConfigError, match="nprobe"):
        ivf_settings(100, 10, 11)
    with pytest.raises(ConfigError, match="index must be"):
        evaluate(np.zeros((3, 2)), [0, 1, 0], index="hnsw")
