"""GuidedEmbedder on bad input: one-line messages that say what to do, nothing half-written."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from guided_dml import GuidedEmbedder, atomic
from guided_dml.errors import ConfigError, DataError, GdmlError, OutputError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg, msg
    return msg


@pytest.mark.parametrize(
    ("make_x", "make_y", "match"),
    [
        pytest.param(lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x / 255.0),
                     lambda y: y, "NaN or infinite values in 1 sample", id="nan"),
        pytest.param(lambda x: np.where(np.arange(x.size).reshape(x.shape) == 70, np.inf, x / 255.0),
                     lambda y: y, "NaN or infinite", id="inf"),
        pytest.param(lambda x: [*list(x[:-1]), np.zeros((9, 9), np.uint8)], lambda y: y,
                     r"mixed sizes or modes \(found shapes \(8, 8\) and \(9, 9\)\)", id="mixed-sizes"),
        pytest.param(lambda x: [*list(x[:-1]), np.zeros((8, 8, 3), np.uint8)], lambda y: y,
                     "mixed sizes or modes", id="mixed-modes"),
        pytest.param(lambda x: np.repeat(x[:, None], 5, axis=1), lambda y: y,
                     "1 \\(grey\\), 2 \\(grey \\+ alpha\\), 3 \\(RGB\\) or 4", id="five-channels"),
        pytest.param(lambda x: x[:, None, None], lambda y: y, "5 dimensions", id="five-dims"),
        pytest.param(lambda x: x[0].ravel(), lambda y: y, "one sample", id="one-dimensional"),
        pytest.param(lambda x: x[:0], lambda y: y[:0], "no samples", id="empty"),
        pytest.param(lambda x: np.array([["a"] * 8] * 3), lambda y: y[:3], "real numbers",
                     id="strings-as-X"),
        pytest.param(lambda x: x, lambda y: None, "requires y to be passed", id="no-labels"),
        pytest.param(lambda x: x, lambda y: y[:-1], "36 samples but y has 35 labels", id="length"),
        pytest.param(lambda x: x, lambda y: np.full(len(y), "cat"), "single class \\('cat'\\)",
                     id="single-class"),
        pytest.param(lambda x: x[:25], lambda y: y[:25], "class\\(es\\) 'owl' of y have a single sample",
                     id="class-with-one-image"),
        pytest.param(lambda x: x, lambda y: np.where(np.arange(len(y)) == 3, np.nan, 1.0 * (y == "cat")),
                     "missing labels \\(NaN\\)", id="nan-label"),
        pytest.param(lambda x: x, lambda y: np.array([*y[:-1], None], dtype=object),
                     "missing labels \\(None\\)", id="none-label"),
        pytest.param(lambda x: x, lambda y: np.array([*y[:-1], 3], dtype=object),
                     "mixes labels of different types", id="mixed-label-types"),
        pytest.param(lambda x: x, lambda y: np.stack([y, y], axis=1), "one label per sample",
                     id="2d-labels"),
    ],
)
def test_bad_training_data(images, fast, make_x, make_y, match):
    x, y = images
    with pytest.raises(DataError, match=match) as exc:
        GuidedEmbedder(**fast).fit(make_x(x), make_y(y))
    _one_line(exc)


def test_string_labels_are_fine_and_column_vectors_too(images, fast):
    x, y = images
    est = GuidedEmbedder(**fast).fit(x, y.reshape(-1, 1))
    assert list(est.classes_) == ["cat", "dog", "owl"]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"preset": "fast"}, "unknown preset 'fast'"),
        ({"n_components": 0}, "n_components: expected an integer >= 1"),
        ({"backbone": "vgg"}, "unknown backbone 'vgg'"),
        ({"options": {"no_such": 1}}, "unknown setting"),
        ({"options": {"seed": 3}}, "estimator's own parameter"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters(images, fast, params, match):
    x, y = images
    with pytest.raises(ConfigError, match=match) as exc:
        GuidedEmbedder(**{**fast, **params}).fit(x, y)
    _one_line(exc)


def test_cuda_when_there_is_none(images, fast):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as exc:
        GuidedEmbedder(**{**fast, "device": "cuda"}).fit(*images)
    _one_line(exc)


def test_auto_device_works_here(images, fast):
    est = GuidedEmbedder(**{**fast, "device": "auto"}).fit(*images)
    assert est.transform(images[0][:2]).shape == (2, 2)


@pytest.mark.parametrize(
    ("make_x", "match"),
    [
        pytest.param(lambda x: np.repeat(x[:, None], 3, axis=1), "3 channel\\(s\\) but the model takes 1",
                     id="channels"),
        pytest.param(lambda x: np.zeros((2, 9, 9), np.uint8), "9×9 images but the model takes 8×8",
                     id="size"),
        pytest.param(lambda x: np.zeros((2, 64), np.float32), "feature vectors but the model takes 8×8",
                     id="vectors-for-images"),
        pytest.param(lambda x: np.full((2, 8, 8), np.nan), "NaN", id="nan"),
        pytest.param(lambda x: np.full((2, 8, 8), -1000.0), "fitted on values in", id="float-range"),
    ],
)
def test_bad_data_to_transform(fitted, make_x, match):
    est, x, _ = fitted
    with pytest.raises(DataError, match=match) as exc:
        est.transform(make_x(x))
    _one_line(exc)


def test_transform_of_vectors_checks_the_feature_count(vectors, fast):
    x, y = vectors
    est = GuidedEmbedder(**fast).fit(x, y)
    with pytest.raises(DataError, match="X has 5 features, but GuidedEmbedder is expecting 16"):
        est.transform(x[:, :5])
    with pytest.raises(DataError, match="holds images but the model takes feature vectors"):
        est.transform(np.zeros((2, 4, 4), np.uint8))


def test_float_images_keep_their_scale_in_transform(images, fast):
    x, y = images
    est = GuidedEmbedder(**fast).fit(x / 255.0, y)  # [0, 1] floats
    with pytest.raises(DataError, match=r"fitted on values in \[0, 1\]"):
        est.transform(x.astype(np.float32))  # [0, 255] floats: a different scale, refused
    # Within the training range (or a little beyond it: clipped) they are fine.
    assert est.transform(np.clip(x / 250.0, 0, 1.02)).shape == (len(x), 2)


def test_save_refuses_an_existing_file(fitted, tmp_path):
    est, _, _ = fitted
    path = tmp_path / "model.pt"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match=r"already exists.*overwrite=True") as exc:
        est.save(path)
    _one_line(exc)
    assert path.read_bytes() == b"precious"
    est.save(path, overwrite=True)
    assert GuidedEmbedder.load(path).input_shape_ == (1, 8, 8)


def test_save_on_a_full_disk_leaves_nothing(fitted, tmp_path, monkeypatch):
    est, _, _ = fitted

    def full(fd: int) -> None:  # the data are written; flushing them to the disk fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OutputError, match="no space left") as exc:
        est.save(tmp_path / "model.pt")
    _one_line(exc)
    assert list(tmp_path.iterdir()) == [], "no partial or temporary file may remain"


def test_save_into_a_folder_path(fitted, tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        fitted[0].save(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "no model at"), (b"not a model", "not a readable guided-dml model"),
     ("dict", "not a guided-dml model file")],
)
def test_load_missing_or_unreadable(tmp_path, content, match):
    import torch

    path = tmp_path / "model.pt"
    if content == "dict":
        torch.save({"something": 1}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GdmlError, match=match):
        GuidedEmbedder.load(path)
