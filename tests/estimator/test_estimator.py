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
    twin.set_params(n_components=5, seed=3)
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
    a = GuidedEmbedder(**fast, seed=5).fit(x, y)
    after = torch.rand(3)
    assert torch.equal(before, after), "fit must leave the caller's random state alone"
    b = GuidedEmbedder(**fast, seed=5).fit(x, y)
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
    if isinstance(xs, np.ndarray) and xs.dtype.kind == "f":
        assert est.pixel_scale_ == (1.0 if xs.max() <= 1 else 255.0)
        # Float images are quantised to the 8 bits the networks were trained on: the same
        # images as uint8 give the same embeddings.
        pixels = np.rint(xs * (255.0 / est.pixel_scale_)).astype(np.uint8)
        np.testing.assert_allclose(est.transform(pixels), out, atol=1e-6)


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


def test_small_networks_get_the_measured_cpu_recipe(images):
    est = GuidedEmbedder()
    cfg = est.run_config((1, 8, 8))
    assert cfg.backbone == "smallcnn" and cfg.epochs == 30 and cfg.batch_size == 64
    assert est.run_config((3, 64, 64)).backbone == "resnet18"  # the preset's for larger images
    assert GuidedEmbedder(epochs=3).run_config((5,)).epochs == 3  # explicit wins


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
