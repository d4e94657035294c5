"""The scikit-learn front door: :class:`GuidedEmbedder`, ``fit(X, y)`` then ``transform(X)``.

It trains exactly what ``gdml train`` trains (the same config resolution, networks and loop,
:func:`guided_dml.experiments.run.train_model`) on arrays held in memory, and nothing is written
to disk unless :meth:`GuidedEmbedder.save` is called. The saved file is a ``gdml`` model file, so
``gdml embed``, ``gdml search``, ``gdml plot`` and ``gdml export`` take it too, and
:meth:`GuidedEmbedder.load` takes the ``model.pt`` of a ``gdml train`` run.
"""

from __future__ import annotations

import numbers
import os
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from .atomic import write_torch
from .commands.outputs import check_output
from .data import ArrayDataset
from .data.arrays import as_model_input, check_input_shape, encode_labels, fit_value_range
from .errors import ConfigError, DataError, TrainingError
from .experiments.config import RunConfig, resolve_config
from .experiments.factory import load_model, model_blob
from .experiments.plan import SMALL_IMAGE, DataSummary, applies, fit_plan
from .experiments.run import prepare_data, train_model, val_scorable
from .training import embed
from .training.accelerator import resolve_device

_DATASET = "array"  # RunConfig.dataset of estimator runs: the data come from fit(X, y)
_SEED_MAX = np.iinfo(np.int32).max  # seeds drawn from a RandomState / None: 0 .. 2**31 - 2


def fold_value_range(model: Any, value_range: tuple[float, float]) -> None:
    """Make a student trained on canonical vectors ``c = (x - low) / (high - low)`` take the raw
    ``x``: its standardisation ``(c - mean) / std`` equals ``(x - mean') / std'`` with
    ``mean' = low + (high - low)·mean`` and ``std' = (high - low)·std`` (exact: vectors are not
    clipped or rounded)."""
    low, high = value_range
    with torch.no_grad():
        model.standardize.mean.mul_(high - low).add_(low)
        model.standardize.std.mul_(high - low)


class GuidedEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Supervised low-dimensional embeddings by Guided Deep Metric Learning (or a baseline).

    ``fit(X, y)`` trains the GEMINI teacher on the labelled data, then distils its 2-D map into
    a student network (``method="gdml"``, Gonzalez-Zapata et al., CVPR-W 2022), or trains the
    student directly with a metric-learning loss (``"siamese"``, ``"triplet"``, ``"margin"``,
    ``"multisim"``); ``mdr > 0`` adds Multi-level Distance Regularization (Kim & Park, AAAI 2021).
    ``transform(X)`` maps new data with the student; the teacher needs labels and is not kept.

    ``X`` is an array of images, ``N×H×W`` (grey), ``N×C×H×W`` or ``N×H×W×C`` with 1 to 4
    channels (channels first when both readings are possible), or of feature vectors ``N×F``
    (then the teacher's streams and the student are MLPs), of any numeric type and scale: uint8,
    0–1 or 0–16 floats, anything. ``fit`` maps the training values' range ``input_range_``
    affinely onto one canonical scale (images: 8-bit intensities 0..255, vectors: [0, 1]) and
    ``transform`` applies the same map, so the same data at another scale give the same model
    (:mod:`guided_dml.data.arrays`). ``y`` holds one label per sample, of any sortable type
    (strings are fine); ``classes_`` lists them.

    Settings left as None are sized to the data by the fit plan
    (:func:`guided_dml.experiments.plan.fit_plan`, the same one ``gdml train`` uses on a folder):
    backbone, batch size and epochs from the number of samples, classes and the input shape, so
    that a few hundred samples still get thousands of optimiser steps.

    Args:
        method: ``"gdml"`` or a baseline (see above).
        n_components: dimension d of the embedding (the paper: 2, a map you can plot).
        mdr: λ of MDR; 0 disables it.
        backbone: ``"auto"`` (the fit plan's: MLP for vectors, small CNN for images under 32
            pixels or fewer than 5 000 samples, else ResNet-18), ``"smallcnn"``, ``"resnet18"``
            or ``"mlp"``.
        epochs: student (or baseline) epochs; None: the fit plan's (enough for ~4 000 steps).
        batch_size: student batch size; None: the fit plan's (at most 64).
        lr: student learning rate; None: the preset's.
        gemini_epochs: teacher epochs; None: the fit plan's (~1 500 class-pair steps).
        val_fraction: share of ``X`` held out to select the best epoch; None: the preset's (0.1).
        preset: ``"cpu"`` (default), ``"paper"`` (the authors' settings, for a GPU) or
            ``"smoke"`` (seconds; for tests).
        random_state: seeds the split, the initialisation and the batches: an int (the same
            int, data and device give the same model; it is ``gdml train --seed``), a
            ``numpy.random.RandomState`` or None (numpy's global one), from which a seed is drawn
            at each ``fit``; ``config_["seed"]`` records the seed used.
        seed: deprecated alias of ``random_state`` (an int); it wins when set.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"`` (the GPU when there is one);
            training and ``transform`` run there, the fitted model is kept on the CPU.
        verbose: show progress bars.
        options: any other setting of :class:`~guided_dml.experiments.config.RunConfig` by
            name, e.g. ``{"gemini_lr": 0.01, "select_on": "loss"}``.

    Attributes:
        model_: the trained student, an ``nn.Module`` mapping float ``(N, *input_shape_)`` to
            ``(N, n_components)``: images on the canonical scale (8-bit intensities / 255),
            vectors as given to ``fit`` (the canonical map is folded into the network).
        classes_: the sorted distinct labels of ``y``.
        input_shape_: ``(C, H, W)`` or ``(F,)``.
        input_range_: ``(low, high)``, the training values' range that the canonical map takes
            to 0..255 (images) or [0, 1] (vectors).
        n_features_in_: F, for feature vectors only.
        feature_names_in_: the column names of a DataFrame ``X`` of feature vectors.
        embedding_: ``float32 (N, n_components)``, the training samples' embeddings.
        labels_: ``int64 (N,)``, their labels as indices into ``classes_``.
        config_: the resolved run settings (a dict).
        history_: per-epoch records of the teacher (G-DML) and the student.
        best_epoch_: the student's epoch selected on the validation split (1-based).

    Examples:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.neighbors import KNeighborsClassifier
        >>> from sklearn.pipeline import make_pipeline
        >>> X, y = load_digits(return_X_y=True)                 # N×64, values 0..16
        >>> clf = make_pipeline(GuidedEmbedder(random_state=0), KNeighborsClassifier(1))
        >>> clf.fit(X[:1200], y[:1200]).score(X[1200:], y[1200:])  # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "gdml",
        *,
        n_components: int = 2,
        mdr: float = 0.0,
        backbone: str = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        gemini_epochs: int | None = None,
        val_fraction: float | None = None,
        preset: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        seed: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        # scikit-learn: store the arguments untouched; everything is checked in fit.
        self.method = method
        self.n_components = n_components
        self.mdr = mdr
        self.backbone = backbone
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.gemini_epochs = gemini_epochs
        self.val_fraction = val_fraction
        self.preset = preset
        self.random_state = random_state
        self.seed = seed
        self.device = device
        self.verbose = verbose
        self.options = options

    # ------------------------------------------------------------------ configuration
    def _backbone_for(self, input_shape: tuple[int, ...]) -> str | None:
        if self.backbone != "auto":
            return self.backbone
        if len(input_shape) == 1:
            return "mlp"
        if min(input_shape[1:]) < SMALL_IMAGE:
            return "smallcnn"
        return None  # the plan's, else the preset's (ResNet-18 under cpu and paper)

    def _seed(self) -> int:
        """The int seed of this fit: ``seed`` (deprecated), else one from ``random_state``."""
        if self.seed is not None:
            warnings.warn("GuidedEmbedder(seed=...) is deprecated; use random_state=...",
                          FutureWarning, stacklevel=3)
            return int(self.seed)
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if not 0 <= int(rs) <= _SEED_MAX:
                raise ConfigError(f"random_state must lie in 0..{_SEED_MAX}, got {rs}")
            return int(rs)
        try:
            return int(check_random_state(rs).randint(_SEED_MAX))
        except ValueError as exc:
            raise ConfigError(
                f"random_state must be an int, a numpy RandomState or None, got {rs!r}"
            ) from exc

    def run_config(
        self,
        input_shape: tuple[int, ...],
        n_samples: int | None = None,
        n_classes: int | None = None,
        *,
        seed: int | None = None,
    ) -> RunConfig:
        """The resolved :class:`RunConfig` that ``fit`` uses for ``n_samples`` samples of
        ``input_shape`` in ``n_classes`` classes (without the counts: no fit plan)."""
        options = dict(self.options or {})
        for reserved in ("method", "mdr", "embedding_dim", "seed", "preset", "dataset", "device",
                         "progress", "backbone"):  # progress: `verbose`
            if reserved in options:
                raise ConfigError(f"options[{reserved!r}]: set it with the estimator's own parameter")
        explicit = {
            "embedding_dim": self.n_components,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "gemini_epochs": self.gemini_epochs,
            "val_fraction": self.val_fraction,
            "backbone": self._backbone_for(input_shape),
        }
        plan: dict[str, Any] | None = None
        if n_samples is not None and n_classes is not None and applies(self.preset, _DATASET):
            val = self.val_fraction if self.val_fraction is not None else options.get("val_fraction")
            plan = fit_plan(DataSummary(n_samples, n_classes, tuple(input_shape)),
                            **({"val_fraction": val} if val is not None else {}))
            if self.backbone == "auto":
                explicit["backbone"] = None  # the plan's choice
        overrides: dict[str, Any] = {}
        overrides.update(options)
        overrides.update({k: v for k, v in explicit.items() if v is not None})
        overrides.update(method=self.method, mdr=self.mdr,
                         seed=self._seed() if seed is None else seed, preset=self.preset,
                         dataset=_DATASET, device=self.device, progress=bool(self.verbose))
        # An error names what the user set: a parameter (`seed: expected ...`), or options[...].
        params = {k for k, v in explicit.items() if v is not None and k != "backbone"}
        params |= {"method", "mdr", "seed", "preset", "device"}
        return resolve_config(overrides, plan=plan, name_of=lambda k: (
            "n_components" if k == "embedding_dim" else k) if k in params else f"options[{k!r}]")

    # ------------------------------------------------------------------ scikit-learn API
    def fit(self, X: Any, y: Any) -> GuidedEmbedder:
        """Train the teacher (G-DML) and the student on images or feature vectors ``X``, labels ``y``.

        Raises:
            DataError: unusable ``X`` or ``y`` (the message says what to change).
            ConfigError: an invalid parameter.
            TrainingError: training diverged (the message suggests a lower learning rate).
        """
        _check_feature_names(self, X, reset=True)
        value_range = fit_value_range(X, name="X")
        inp = as_model_input(X, value_range=value_range, name="X")
        codes, classes = encode_labels(y, len(inp.data), name="y")
        input_shape = tuple(inp.data.shape[1:])
        cfg = self.run_config(input_shape, len(codes), len(classes))
        device = resolve_device(cfg.device)
        data = ArrayDataset(inp.data, torch.from_numpy(codes), [str(c) for c in classes], _DATASET)
        no_test = data.subset(torch.zeros(0, dtype=torch.int64))  # fit evaluates nothing
        # Training seeds torch's global generator; fork it so that fit leaves the caller's
        # random state as it was.
        cuda = [device.index or 0] if device.type == "cuda" else []
        threads = torch.get_num_threads()
        with torch.random.fork_rng(devices=cuda):
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            # Same numerics as `gdml train` (see run_experiment): denormals flushed to zero.
            torch.set_flush_denormal(True)
            torch.manual_seed(cfg.seed)
            prepared = prepare_data(cfg, {"train": data, "test": no_test})
            if cfg.select_on not in ("loss", "last") and not val_scorable(prepared):
                # A validation split this small has no pair of one class, so no retrieval score
                # can rank the epochs: select on the validation loss instead.
                cfg = replace(cfg, select_on="loss")
            try:
                trained = train_model(cfg, prepared, device=device)
                if len(input_shape) == 1:
                    # Vectors: fold the canonical map into the student, which then takes the
                    # raw vectors (transform, gdml embed and exported models alike).
                    fold_value_range(trained.model, value_range)
                    embedding = embed(trained.model, as_model_input(X, name="X").data)
                else:
                    embedding = embed(trained.model, data.images)
            finally:
                torch.set_num_threads(threads)  # the caller's setting, as it was
        if not torch.isfinite(embedding).all():
            raise TrainingError(
                f"{trained.name}: the trained model gives non-finite embeddings; lower lr"
            )
        self.model_ = trained.model
        self.classes_ = classes
        self.input_shape_ = input_shape
        self.input_range_ = value_range
        if len(input_shape) == 1:
            self.n_features_in_ = input_shape[0]
        elif hasattr(self, "n_features_in_"):  # a refit on images after one on vectors
            del self.n_features_in_
        self.embedding_ = embedding.numpy()
        self.labels_ = codes
        self.config_ = cfg.to_dict()
        self.history_ = trained.phases
        self.best_epoch_ = trained.result.best_epoch + 1
        self._n_features_out = cfg.embedding_dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``float32 (N, n_components)`` embeddings of ``X`` (same forms as in ``fit``)."""
        check_is_fitted(self, "model_")
        _check_feature_names(self, X, reset=False)
        inp = self._model_input(X)
        if len(self.input_shape_) == 1 and inp.data.dim() == 2 and inp.data.shape[1] != self.input_shape_[0]:
            # scikit-learn's wording (its estimator checks match it)
            raise DataError(f"X has {inp.data.shape[1]} features, but {type(self).__name__} is "
                            f"expecting {self.input_shape_[0]} features as input")
        check_input_shape(inp.data, self.input_shape_, name="X")
        device = resolve_device(self.device)
        model = self.model_.to(device)
        try:
            return embed(model, inp.data).numpy()
        finally:
            self.model_.cpu()  # keep the stored model on the CPU: it pickles anywhere

    def _model_input(self, X: Any) -> Any:
        """Images on the canonical scale of the training data (older files: their pixel scale);
        vectors as they are (the model folds their map in: :func:`fold_value_range`)."""
        value_range = getattr(self, "input_range_", None)
        if value_range is not None and len(self.input_shape_) == 3:
            return as_model_input(X, value_range=value_range, name="X")
        return as_model_input(X, pixel_scale=getattr(self, "_pixel_scale", None), name="X")

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, y)``, then the training samples' embeddings (``embedding_``, not recomputed)."""
        return self.fit(X, y, **fit_params).embedding_.copy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # supervised: fit needs y
        tags.input_tags.three_d_array = True  # N×H×W images
        tags.transformer_tags.preserves_dtype = ["float32"]  # embeddings are float32, always
        return tags

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the fitted model to ``path`` (a ``gdml`` model file, written atomically).

        The file holds the student, the settings and the training samples' embeddings and
        labels, so ``gdml search`` can retrieve from it and :meth:`load` restores this estimator.

        Raises:
            OutputError: ``path`` exists (pass ``overwrite=True``) or cannot be written.
        """
        check_is_fitted(self, "model_")
        target = check_output(path, overwrite, hint="pass overwrite=True")
        reference = {
            "embeddings": torch.from_numpy(self.embedding_),
            "labels": torch.from_numpy(self.labels_),
            "paths": None,
            "root": None,
        }
        extra = {
            "estimator": {
                "params": self._saved_params(),
                "classes": self.classes_,  # the original label values (strings, integers)
                "input_range": list(self.input_range_) if self.input_range_ is not None else None,
                "history": self.history_,
                "best_epoch": self.best_epoch_,
            }
        }
        blob = model_blob(self.model_, RunConfig(**self.config_), self.input_shape_,
                          [str(c) for c in self.classes_], reference=reference, extra=extra)
        write_torch(target, blob)  # serialised in memory first: a full disk gives one line

    def _saved_params(self) -> dict[str, Any]:
        """``get_params()``, with a RandomState replaced by the int seed it gave (None stays)."""
        params = self.get_params()
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = int(self.config_["seed"])
        return params

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GuidedEmbedder:
        """A fitted estimator from :meth:`save`'s file, or from a ``gdml train`` run folder / model.pt.

        Raises:
            ConfigError: no model at ``path``, or not a guided-dml model file.
        """
        model, blob = load_model(path)
        cfg = RunConfig(**blob["config"])
        saved = blob.get("estimator")
        if saved is not None:
            est = cls(**saved["params"])
            classes = np.asarray(saved["classes"])
            pixel_scale = saved.get("pixel_scale")  # files saved before input_range existed
            value_range = saved.get("input_range")
            history, best_epoch = saved["history"], saved["best_epoch"]
        else:  # a `gdml train` run: parameters from its config
            est = cls(method=cfg.method, n_components=cfg.embedding_dim, mdr=cfg.mdr,
                      backbone=cfg.backbone, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      gemini_epochs=cfg.gemini_epochs, val_fraction=cfg.val_fraction,
                      preset=cfg.preset, random_state=cfg.seed)
            classes = np.asarray(blob["classes"])
            pixel_scale, value_range, history, best_epoch = None, None, {}, None
        est.model_ = model
        est.classes_ = classes
        est.input_shape_ = tuple(blob["input_shape"])
        est.input_range_ = tuple(value_range) if value_range is not None else None
        est._pixel_scale = pixel_scale
        if len(est.input_shape_) == 1:
            est.n_features_in_ = est.input_shape_[0]
        reference = blob.get("reference")
        if reference is not None:
            est.embedding_ = reference["embeddings"].numpy()
            est.labels_ = reference["labels"].numpy()
        est.config_ = cfg.to_dict()
        est.history_ = history
        est.best_epoch_ = best_epoch
        est._n_features_out = cfg.embedding_dim
        return est
