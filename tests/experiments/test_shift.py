"""Covariate-shift evaluation on a tiny model; the robustness AUC; shift.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from guided_dml.data.shifts import CORRUPTIONS, SEVERITY_PARAMS
from guided_dml.errors import ConfigError, DataError
from guided_dml.experiments.shift import (
    CLEAN,
    evaluate_shift,
    read_shift,
    robustness_auc,
    write_shift,
)

try:  # written in parallel with this module; the tests that need it say so when it is missing
    from guided_dml.evaluation import evaluate  # noqa: F401

    HAVE_EVALUATE = True
except ImportError:
    HAVE_EVALUATE = False
needs_evaluate = pytest.mark.skipif(not HAVE_EVALUATE,
                                    reason="guided_dml.evaluation.evaluate is not importable yet")


def tiny_images(n_per_class: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 classes of 1×8×8 images: a bright row band whose position is the class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    img = torch.rand(len(labels), 1, 8, 8, generator=g) * 60
    for c in range(3):
        img[labels == c, :, 1 + 2 * c : 3 + 2 * c, :] += 180
    return img.clamp(0, 255).to(torch.uint8), labels


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


def brute_force_macro_recall(q: torch.Tensor, ql: torch.Tensor, r: torch.Tensor,
                             rl: torch.Tensor) -> float:
    pred = rl[torch.cdist(q.double(), r.double()).argmin(1)]
    return float(np.mean([(pred[ql == c] == c).float().mean().item() for c in ql.unique()]))


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, ...]:
    ref_x, ref_y = tiny_images(seed=1)
    test_x, test_y = tiny_images(seed=2)
    return ref_x, ref_y, test_x, test_y


@needs_evaluate
def test_rows_cover_every_corruption_and_severity(data: tuple[torch.Tensor, ...]) -> None:
    rows = evaluate_shift(tiny_model(), *data, batch_size=16)
    assert len(rows) == len(CORRUPTIONS) * 5 + 1
    assert (rows[0]["corruption"], rows[0]["severity"]) == (CLEAN, 0)
    assert {(r["corruption"], r["severity"]) for r in rows[1:]} == {
        (c, s) for c in CORRUPTIONS for s in range(1, 6)}
    for r in rows:
        assert r["n_test"] == 60
        assert 0.0 <= r["recall@1"] <= 1.0 and 0.0 <= r["precision@1"] <= 1.0


@needs_evaluate
def test_clean_row_is_the_one_nn_macro_recall(data: tuple[torch.Tensor, ...]) -> None:
    from guided_dml.training import embed

    model = tiny_model()
    rows = evaluate_shift(model, *data, corruptions=["blur"], severities=[2])
    ref_x, ref_y, test_x, test_y = data
    expected = brute_force_macro_recall(embed(model, test_x), test_y, embed(model, ref_x), ref_y)
    assert rows[0]["recall@1"] == pytest.approx(expected)
    assert len(rows) == 2 and rows[1]["corruption"] == "blur"


@needs_evaluate
def test_deterministic_and_subset(data: tuple[torch.Tensor, ...]) -> None:
    kw = {"corruptions": ["gaussian_noise", "rotation"], "severities": (1, 5), "seed": 3}
    a = evaluate_shift(tiny_model(), *data, **kw)
    b = evaluate_shift(tiny_model(), *data, **kw)
    assert a == b
    assert len(a) == 1 + 2 * 2
    sub = evaluate_shift(tiny_model(), *data, max_test=30, **kw)
    assert all(r["n_test"] == 30 for r in sub)
    assert sub == evaluate_shift(tiny_model(), *data, max_test=30, **kw)


@needs_evaluate
def test_heavy_corruption_hurts_a_trained_model(data: tuple[torch.Tensor, ...]) -> None:
    # A "model" that reads the row profile: perfect on clean data, lost when rows move.
    model = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (8, 8)), nn.AvgPool1d(8), nn.Flatten())
    rows = evaluate_shift(model, *data, corruptions=["translation"], severities=(1, 2, 3, 4, 5))
    recall = [r["recall@1"] for r in rows]
    assert recall[0] == 1.0
    assert recall[-1] < recall[0]


def test_bad_arguments(data: tuple[torch.Tensor, ...]) -> None:
    pytest.importorskip("guided_dml.evaluation")
    with pytest.raises(ConfigError, match="unknown corruption"):
        evaluate_shift(tiny_model(), *data, corruptions=["fog"])
    with pytest.raises(ConfigError, match="severities"):
        evaluate_shift(tiny_model(), *data, severities=(0, 6))
    ref_x, ref_y, test_x, test_y = data
    with pytest.raises(DataError, match="uint8"):
        evaluate_shift(tiny_model(), ref_x, ref_y, test_x.float().flatten(1), test_y)


def _rows(values: dict[str, list[float]], clean: float = 1.0) -> list[dict]:
    rows = [{"corruption": CLEAN, "severity": 0, "recall@1": clean}]
    rows += [{"corruption": c, "severity": s, "recall@1": v}
             for c, vals in values.items() for s, v in enumerate(vals, start=1)]
    return rows


def test_robustness_auc_by_corruption() -> None:
    rows = _rows({"blur": [0.8, 0.6, 0.4, 0.2, 0.0], "contrast": [1.0] * 5})
    auc = robustness_auc(rows)
    # Trapezoids over 0..5: (0.9 + 0.7 + 0.5 + 0.3 + 0.1) / 5.
    assert auc["blur"] == pytest.approx(0.5)
    assert auc["contrast"] == pytest.approx(1.0)
    assert auc["mean"] == pytest.approx(0.75)
    assert list(auc) == ["blur", "contrast", "mean"]
    # Without a clean row the area runs over the severities present, still normalised.
    assert robustness_auc(rows[1:6])["blur"] == pytest.approx((0.7 + 0.5 + 0.3 + 0.1) / 4)


def test_robustness_auc_by_method_averages_corruptions_and_seeds() -> None:
    rows = [{**r, "method": "gdml"} for r in _rows({"blur": [1.0] * 5, "noise": [0.0] * 5})]
    rows += [{**r, "method": "triplet"} for r in _rows({"blur": [0.5] * 5}, clean=0.5)]
    rows += [{**r, "method": "triplet"} for r in _rows({"blur": [0.7] * 5}, clean=0.7)]
    auc = robustness_auc(rows)
    assert set(auc) == {"gdml", "triplet"}
    # gdml: clean 1.0, then 0.5 at every severity → (0.75 + 4 · 0.5) / 5.
    assert auc["gdml"] == pytest.approx((0.75 + 4 * 0.5) / 5)
    assert auc["triplet"] == pytest.approx(0.6)
    assert 0.0 <= min(auc.values()) <= max(auc.values()) <= 1.0
    assert robustness_auc([]) == {}


def test_write_and_read_shift(tmp_path: Path) -> None:
    rows = _rows({"rotation": [0.9, 0.8, 0.7, 0.6, 0.5]})
    path = write_shift(tmp_path, rows)
    assert path == tmp_path / "shift.json"
    assert not list(tmp_path.glob(".*.tmp"))
    data = json.loads(path.read_text())
    assert data["rows"] == rows
    assert data["robustness_auc"]["rotation"] == pytest.approx(robustness_auc(rows)["rotation"])
    assert data["severity_params"] == {"rotation": list(SEVERITY_PARAMS["rotation"])}
    assert read_shift(tmp_path) == rows == read_shift(path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "shift.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        read_shift(tmp_path / "bad")
