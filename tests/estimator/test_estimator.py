"""GuidedEmbedder: the scikit-learn contract (params, clone, pickle, Pipeline, GridSearchCV),
the forms of X it takes, save/load, and every method."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

import guided_dml
from guided_dml import GuidedEmbedder
from guided_dml.cli import main


def test_exported_lazily_from_the_package():
    assert guided_dml.GuidedEmbedder is GuidedEmbedder
    assert "GuidedEmbedder" in guided_dml.__all__
    with pytest.raises(AttributeError):
        _ = guided_dml.NoSuchThing


def test_fit_transform_shapes_and_learned_attributes(fitted):
    est, x, y = fitted
    check_is_fitted(est)
    out = est.transform(x[:5])
    assert out.shape == (5, 2) and out.dtype == np.float32 and np.isfinite(out).all()
    assert list(est.classes_) == ["cat", "dog", "owl"]  # string labels, sorted
    assert est.input_shape_ == (1, 8, 8)
    assert est.embedding_.shape == (len(x), 2)
    assert est.classes_[est.labels_].tolist() == y.tolist()
    assert est.config_["backbone"] == "smallcnn" and est.config_["method"] == "gdml"
    assert set(est.history_) == {"teacher", "student"}
    assert est.best_epoch_ >= 1
    assert not hasattr(est, "n_features_in_")  # images, not feature vectors
    np.testing.assert_allclose(est.transform(x), est.embedding_, rtol=1e-6, atol=1e-6)
    assert est.get_feature_names_out().tolist() == ["guidedembedder0", "guidedembedder1"]


def test_not_fitted():
    est = GuidedEmbedder()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        est.transform(np.zeros((2, 8, 8), np.uint8))


def test_params_clone_and_set_params():
    est = GuidedEmbedder("triplet", n_components=3, mdr=0.2, epochs=4, options={"gemini_lr": 0.01})
    params = est.get_params()
    assert params["method"] == "triplet" and params["n_components"] == 3 and params["mdr"] == 0.2
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert twin.options is not est.options  # clone copies mutable parameters
    twin.set_params(n_components=5, random_state=3)
    assert twin.n_components == 5 and est.n_components == 3


def test_clone_of_a_fitted_estimator_is_unfitted(fitted):
    est, _, _ = fitted
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))


def test_pickle_round_trip_gives_identical_transforms(fitted):
    est, x, _ = fitted
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.transform(x), est.transform(x))
    assert list(copy.classes_) == list(est.classes_)


def test_save_and_load(fitted, tmp_path):
    est, x, _ = fitted
    path = tmp_path / "model.pt"
    est.save(path)
    back = GuidedEmbedder.load(path)
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.transform(x), est.transform(x))
    np.testing.assert_array_equal(back.embedding_, est.embedding_)
    assert list(back.classes_) == ["cat", "dog", "owl"]
    # The saved file is a gdml model file: the command line can search it.
    assert main(["search", str(path), str(tmp_path / "missing.png")]) == 2


def test_same_seed_same_model_and_global_rng_untouched(images, fast):
    x, y = images
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = GuidedEmbedder(**fast, random_state=5).fit(x, y)
    after = torch.rand(3)
    assert torch.equal(before, after), "fit must leave the caller's random state alone"
    b = GuidedEmbedder(**fast, random_state=5).fit(x, y)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))


@pytest.mark.parametrize(
    ("convert", "channels"),
    [
        pytest.param(lambda x: x[:, None], 1, id="NCHW-uint8"),
        pytest.param(lambda x: x[..., None].astype(np.float32) / 255.0, 1, id="NHWC-float01"),
        pytest.param(lambda x: x.astype(np.float64), 1, id="NHW-float255"),
        pytest.param(lambda x: x.astype(np.int64), 1, id="NHW-int"),
        pytest.param(lambda x: torch.from_numpy(x), 1, id="torch-tensor"),
        pytest.param(lambda x: list(x), 1, id="list-of-arrays"),
        pytest.param(lambda x: np.repeat(x[:, None], 3, axis=1), 3, id="RGB-NCHW"),
        pytest.param(lambda x: np.repeat(x[..., None], 3, axis=3), 3, id="RGB-NHWC"),
    ],
)
def test_forms_of_images(images, convert, channels, fast):
    x, y = images
    xs = convert(x)
    est = GuidedEmbedder(**fast).fit(xs, y)
    assert est.input_shape_ == (channels, 8, 8)
    out = est.transform(xs)
    assert out.shape == (len(x), 2)
    if isinstance(xs, np.ndarray):
        assert est.input_range_ == (float(xs.min()), float(xs.max()))


@pytest.mark.parametrize("kind", ["images", "vectors"])
def test_the_same_data_at_three_scales_give_the_same_map(kind, images, fast):
    """Issue 14: uint8, 0-1 floats and 0-16 floats (and an offset) reach the networks on one
    canonical scale, so the fits agree up to float rounding."""
    x, y = images
    levels = np.rint(x / 255.0 * 16.0)  # 17 grey levels, 0..16 like load_digits
    if kind == "vectors":
        levels = levels.reshape(len(x), -1)
    scales = [levels.astype(np.uint8), levels / 16.0, levels * 7.5 - 3.0]
    maps = [GuidedEmbedder(**fast, random_state=0).fit(xs, y) for xs in scales]
    ref = maps[0].transform(scales[0])
    for est, xs in zip(maps[1:], scales[1:], strict=True):
        np.testing.assert_allclose(est.transform(xs), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(est.embedding_, maps[0].embedding_, rtol=1e-4, atol=1e-4)


def test_seed_is_a_deprecated_alias_of_random_state(images, fast):
    x, y = images
    with pytest.warns(FutureWarning, match="random_state"):
        a = GuidedEmbedder(**fast, seed=3).fit(x, y)
    b = GuidedEmbedder(**fast, random_state=3).fit(x, y)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    c = GuidedEmbedder(**fast, random_state=np.random.RandomState(0)).fit(x, y)
    assert 0 <= c.config_["seed"] < 2**31
    with pytest.raises(ValueError, match="random_state"):
        GuidedEmbedder(**fast, random_state="zero").fit(x, y)


def test_pandas_output_and_feature_names(vectors, fast):
    pd = pytest.importorskip("pandas")
    x, y = vectors
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    est = GuidedEmbedder(**fast, random_state=0).set_output(transform="pandas")
    out = est.fit(frame, y).transform(frame)
    assert list(out.columns) == ["guidedembedder0", "guidedembedder1"]
    assert list(est.feature_names_in_) == list(frame.columns)
    assert est.fit_transform(frame, y).shape == (len(x), 2)


def test_feature_vectors_use_mlp(vectors, fast):
    x, y = vectors
    est = GuidedEmbedder(**fast).fit(x, y)
    assert est.config_["backbone"] == "mlp" and est.n_features_in_ == 16
    assert est.input_shape_ == (16,)
    assert list(est.classes_) == [0, 1, 2]
    assert est.transform(x[:4]).shape == (4, 2)


@pytest.mark.parametrize(("method", "mdr"), [("triplet", 0.0), ("multisim", 0.0), ("gdml", 0.2)])
def test_baselines_and_mdr(images, method, mdr, fast):
    x, y = images
    est = GuidedEmbedder(method, mdr=mdr, n_components=3, **fast).fit(x, y)
    assert est.transform(x).shape == (len(x), 3)
    assert est.config_["method"] == method and est.config_["mdr"] == mdr
    assert ("teacher" in est.history_) == (method == "gdml")


def test_the_fit_plan_sizes_unset_settings_to_the_data():
    est = GuidedEmbedder(random_state=0)
    cfg = est.run_config((1, 8, 8), 1257, 10)
    assert cfg.backbone == "smallcnn" and cfg.batch_size == 64
    assert cfg.epochs * (1131 // 64) >= 4000  # enough optimiser steps
    tiny = est.run_config((3, 32, 32), 96, 3)  # a folder of 96 photos: 8 steps per epoch
    assert tiny.backbone == "smallcnn" and tiny.batch_size == 8 and tiny.epochs == 300
    assert tiny.gemini_epochs * 6 >= 1000  # GEMINI: C(C-1) = 6 steps per epoch
    assert est.run_config((3, 64, 64), 50_000, 10).backbone == "resnet18"  # the preset's
    assert GuidedEmbedder(epochs=3).run_config((5,), 100, 2).epochs == 3  # explicit wins
    assert GuidedEmbedder(options={"batch_size": 16}).run_config((5,), 100, 2).batch_size == 16
    assert GuidedEmbedder(preset="smoke").run_config((1, 8, 8), 1257, 10).epochs == 2  # no plan
    vectors = est.run_config((64,), 1257, 10)
    assert vectors.select_on == "last" and vectors.input_noise == 0.5
    assert GuidedEmbedder(options={"select_on": "map@r"}).run_config((64,), 1257, 10).select_on == "map@r"


def test_vectors_keep_the_last_epoch_even_with_a_tiny_validation_split(vectors):
    """The fit plan's select_on 'last' for vectors is not replaced by the loss fallback of tiny
    validation splits, and the estimator ends on its last epoch."""
    x, y = vectors
    est = GuidedEmbedder(random_state=0, epochs=3, options={"gemini_epochs": 2}).fit(x, y)
    assert est.config_["select_on"] == "last" and est.best_epoch_ == 3
    assert len(est.history_["student"]) == 3


def test_pipeline_in_grid_search(images, fast):
    x, y = images
    pipe = Pipeline([("emb", GuidedEmbedder(**fast)), ("knn", KNeighborsClassifier(1))])
    grid = GridSearchCV(
        pipe,
        {"emb__n_components": [2, 3]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
        error_score="raise",
    )
    grid.fit(x, y)
    assert grid.best_params_["emb__n_components"] in (2, 3)
    assert len(grid.cv_results_["mean_test_score"]) == 2
    # Well-separated toy classes: the embedding keeps them apart.
    assert grid.best_score_ > 0.6
    pred = grid.predict(x)
    assert set(pred) <= {"cat", "dog", "owl"}


def test_load_a_gdml_train_run(tmp_path, images):
    run = tmp_path / "run"
    assert main(["train", "--method", "triplet", "--dataset", "digits", "--preset", "smoke",
                 "--epochs", "1", "--out", str(run)]) == 0
    est = GuidedEmbedder.load(run)
    assert est.method == "triplet" and est.input_shape_ == (1, 8, 8)
    assert list(est.classes_) == [str(d) for d in range(10)]
    assert est.embedding_.shape[1] == 2
    out = est.transform(np.zeros((2, 8, 8), np.uint8))
    assert out.shape == (2, 2)
