"""Arrays from users (the estimator's ``X, y``, ``.npy`` files) turned into what the networks take.

Images become ``uint8 (N, C, H, W)`` and feature vectors ``float32 (N, F)``, the two forms of
:class:`~guided_dml.data.base.ArrayDataset`; labels of any type (strings included) become
``int64`` codes into a sorted array of class values. Anything unusable raises a one-line
:class:`~guided_dml.errors.DataError` that says what is wrong and what to do.

**One canonical scale.** Fitting decides one affine map from the training array's value range
(:func:`fit_value_range`: its minimum and maximum over every sample and channel) and applies it
to every later array (:func:`as_model_input` with ``value_range``): images go onto 8-bit
intensities 0..255 (the scale of image files, and what GEMINI's raw-0-255 setting assumes: the
authors' Algorithm 1 inputs), feature vectors onto [0, 1]. The same data given as uint8, as 0-1 or 0-16 floats
or at any other scale and offset therefore reach the teacher and the student as the same numbers
(up to float rounding), and so give the same model. One map for all channels and features, not
one each: relative contrasts are kept, and the networks standardise per channel themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError

CHANNELS = (1, 2, 3, 4)  # grey, grey + alpha, RGB, RGBA: the 8-bit modes image loaders produce
PIXEL_SCALES = (1.0, 255.0)  # float images hold [0, 1] or [0, 255] intensities


@dataclass(frozen=True)
class ModelInput:
    """Validated network input.

    Attributes:
        data: ``uint8 (N, C, H, W)`` images or ``float32 (N, F)`` feature vectors.
        pixel_scale: for images given as floats, the intensity of white (1 or 255); None otherwise.
    """

    data: torch.Tensor
    pixel_scale: float | None = None
    value_range: tuple[float, float] | None = None  # the canonical map's (low, high), if used

    @property
    def is_images(self) -> bool:
        return self.data.dim() == 4


def _shapes_of(x: Any) -> list[tuple[int, ...]]:
    """The distinct shapes of the items of a ragged sequence, in order of first appearance."""
    seen: list[tuple[int, ...]] = []
    for item in x if isinstance(x, Sequence) else []:
        shape = tuple(np.shape(item))
        if shape not in seen:
            seen.append(shape)
    return seen


class NotNumbersError(DataError, TypeError):
    """Values that are not numbers (a TypeError, as numpy and scikit-learn raise for them)."""


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if hasattr(x, "tocsr") or hasattr(x, "to_dense"):  # scipy.sparse, sparse tensors
        # scikit-learn's wording, which its estimator checks look for.
        raise DataError(f"Sparse data was passed for {name}, but dense data is required; "
                        "use .toarray() to convert it to a dense numpy array")
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # numpy refuses ragged nesting: images of several sizes or modes
        shapes = _shapes_of(x)
        found = f" (found shapes {shapes[0]} and {shapes[1]})" if len(shapes) > 1 else ""
        raise DataError(
            f"{name} holds images of mixed sizes or modes{found}; convert them to one size and "
            "mode first (gdml train/embed on a folder of files does this for you)"
        ) from exc
    if arr.dtype == object:
        shapes = _shapes_of(x)
        if len(shapes) > 1:
            raise DataError(
                f"{name} holds images of mixed sizes or modes (found shapes {shapes[0]} and "
                f"{shapes[1]}); convert them to one size and mode first"
            )
        try:  # numbers held as Python objects (a DataFrame of mixed columns, ...)
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise NotNumbersError(
                f"{name} must hold numbers (images or feature vectors): {exc}"
            ) from exc
    if arr.dtype.kind == "c":
        raise DataError(f"Complex data not supported: {name} must hold real numbers")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
        raise DataError(
            f"{name} contains NaN or infinite values in {len(bad)} sample(s) (first: row {bad[0]}); "
            "remove or impute them"
        )


def _channels_first(arr: np.ndarray, name: str) -> np.ndarray:
    """``(N, C, H, W)`` from a 4-D image array in either layout (channels first when unclear)."""
    first, last = arr.shape[1] in CHANNELS, arr.shape[3] in CHANNELS
    if first:  # PyTorch's layout; also the choice for tiny images where both axes could be C
        return arr
    if last:
        return arr.transpose(0, 3, 1, 2)
    raise DataError(
        f"cannot find the colour channels of {name} with shape {arr.shape}: images need 1 (grey), "
        "2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels, first (N×C×H×W) or last (N×H×W×C); "
        "convert them, or reshape to N×F to use them as feature vectors"
    )


def _to_uint8(arr: np.ndarray, pixel_scale: float | None, name: str) -> tuple[np.ndarray, float | None]:
    """8-bit pixels from integer or float intensities; float images are quantised as loaders do."""
    if arr.dtype == np.uint8:
        return arr, None
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"integer {name} must lie in 0..255 (found {lo}..{hi}); rescale them to 8 bits"
            )
        return arr.astype(np.uint8), None
    x = arr.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if pixel_scale is None:  # fit: decide the scale once, from the training images
        if lo >= 0.0 and hi <= 1.0:
            pixel_scale = 1.0
        elif lo >= 0.0 and hi <= 255.0:
            pixel_scale = 255.0
        else:
            raise DataError(
                f"float {name} must hold intensities in [0, 1] or [0, 255] (found "
                f"[{lo:g}, {hi:g}]); rescale them, or reshape to N×F to use them as feature vectors"
            )
    elif lo < 0.0 or hi > pixel_scale * (1 + 1e-6):
        raise DataError(
            f"float {name} must hold intensities in [0, {pixel_scale:g}] like the training images "
            f"(found [{lo:g}, {hi:g}]); rescale them the same way"
        )
    return np.clip(np.rint(x * (255.0 / pixel_scale)), 0, 255).astype(np.uint8), pixel_scale


def fit_value_range(x: Any, name: str = "X") -> tuple[float, float]:
    """``(low, high)``: the smallest and largest value of ``x``, the canonical map's range.

    A constant array gets ``(low, low + 1)`` so the map stays defined.

    Raises:
        DataError: as :func:`as_model_input` for unusable ``x``.
    """
    arr = _as_array(x, name)
    if arr.ndim < 1 or len(arr) == 0:
        raise DataError(f"{name} holds no samples (shape {arr.shape})")
    if arr.size == 0:
        raise DataError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    _check_finite(arr, name)
    lo, hi = float(arr.min()), float(arr.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


OUT_OF_RANGE = 0.5  # of the training span: images beyond it were given on another scale


def _check_in_range(arr: np.ndarray, value_range: tuple[float, float], name: str) -> None:
    """Refuse images far outside the training range (clipping them would silently give white
    or black): most often the training data were 0-1 and these are 0-255, or the reverse."""
    lo, hi = value_range
    margin = OUT_OF_RANGE * (hi - lo)
    found_lo, found_hi = float(arr.min()), float(arr.max())
    if found_lo < lo - margin or found_hi > hi + margin:
        raise DataError(
            f"{name} holds values in [{found_lo:g}, {found_hi:g}] but the model was fitted on values "
            f"in [{lo:g}, {hi:g}]; give images on the training data's scale"
        )


def _canonical(arr: np.ndarray, value_range: tuple[float, float], images: bool) -> np.ndarray:
    """``arr`` mapped affinely from ``value_range`` onto 0..255 (images, rounded to uint8 and
    clipped: 8 bits is what every image path holds) or [0, 1] (vectors, float32, not clipped:
    a feature may exceed its training range)."""
    lo, hi = value_range
    x = (arr.astype(np.float64) - lo) / (hi - lo)
    if images:
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return x.astype(np.float32)


def as_model_input(
    x: Any,
    *,
    pixel_scale: float | None = None,
    value_range: tuple[float, float] | None = None,
    name: str = "X",
) -> ModelInput:
    """Validate ``x`` and convert it to network input.

    Args:
        x: ``N×F`` feature vectors, or images ``N×H×W`` (grey), ``N×C×H×W`` or ``N×H×W×C`` with
            C in 1..4; uint8, integers in 0..255, or floats in [0, 1] or [0, 255] (quantised to
            8 bits). A numpy array, torch tensor or nested sequence.
        pixel_scale: the white level of float images (1 or 255) decided when the model was fitted;
            None decides it from ``x`` (values up to 1 mean [0, 1]). Only for models without a
            ``value_range`` (``gdml train`` runs, estimator files saved before it existed).
        value_range: ``(low, high)`` from :func:`fit_value_range`: map ``x`` onto the canonical
            scale (see the module docstring); any dtype and range are then accepted.
        name: what to call ``x`` in messages.

    Raises:
        DataError: ragged input (images of mixed sizes or modes), non-numbers, NaN or infinite
            values, no samples, an unknown layout or channel count, intensities out of range.
    """
    arr = _as_array(x, name)
    if arr.ndim < 2:
        raise DataError(
            f"{name} must be N×F feature vectors or N images (N×H×W, N×C×H×W, N×H×W×C); got shape "
            f"{arr.shape}. Reshape your data (one sample? add a leading axis: x[None])"
        )
    if arr.ndim > 4:
        raise DataError(f"{name} has {arr.ndim} dimensions (shape {arr.shape}); expected 2 (N×F) to 4")
    if len(arr) == 0:
        raise DataError(f"{name} holds no samples (shape {arr.shape})")
    if arr.size == 0:
        raise DataError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    _check_finite(arr, name)
    if arr.ndim == 2:
        if value_range is not None:
            arr = _canonical(arr, value_range, images=False)
        return ModelInput(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)),
                          value_range=value_range)
    if arr.ndim == 3:
        arr = arr[:, None]  # N×H×W grey images
    else:
        arr = _channels_first(arr, name)
    if value_range is not None:
        _check_in_range(arr, value_range, name)
        pixels = _canonical(arr, value_range, images=True)
        return ModelInput(torch.from_numpy(np.ascontiguousarray(pixels)), value_range=value_range)
    pixels, scale = _to_uint8(arr, pixel_scale, name)
    return ModelInput(torch.from_numpy(np.ascontiguousarray(pixels)), scale)


def check_input_shape(data: torch.Tensor, input_shape: Sequence[int], name: str = "X") -> None:
    """Refuse input whose sample shape differs from the model's ``input_shape`` (C, H, W) or (F,)."""
    want, got = tuple(input_shape), tuple(data.shape[1:])
    if got == want:
        return
    if len(want) == 1 and len(got) == 1:
        raise DataError(f"{name} has {got[0]} features but the model takes {want[0]}")
    if len(want) == 1:
        raise DataError(f"{name} holds images but the model takes feature vectors of {want[0]} values")
    if len(got) == 1:
        raise DataError(f"{name} holds feature vectors but the model takes {want[1]}×{want[2]} images")
    if got[0] != want[0]:
        kinds = {1: "grey", 2: "grey + alpha", 3: "RGB", 4: "RGBA"}
        raise DataError(
            f"{name} has {got[0]} channel(s) but the model takes {want[0]} ({kinds.get(want[0], '?')} "
            "images); convert them"
        )
    raise DataError(
        f"{name} holds {got[1]}×{got[2]} images but the model takes {want[1]}×{want[2]}; "
        "resize them to that size"
    )


def _show(value: Any) -> str:
    """``'cat'``, not ``np.str_('cat')``: a label as the user wrote it."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def encode_labels(y: Any, n_samples: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """``(codes int64 (N,), classes (K,))`` with ``classes[codes] == y``; classes sorted.

    Labels may be integers, strings or any other sortable values of one type. Metric learning
    needs at least 2 classes and at least 2 samples of each (a positive pair; GEMINI's anchor
    and positive).

    Raises:
        DataError: missing labels, wrong length or shape, missing values, mixed types, one class,
            a class with a single sample.
    """
    if y is None:
        raise DataError("this estimator requires y to be passed, but the target y is None: the "
                        "model learns from labelled data (fit(X, y))")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise DataError(f"{name} must be one label per sample (shape (N,)), got shape {labels.shape}")
    if n_samples == 1:
        raise DataError("X has 1 sample; metric learning needs at least 2 classes of 2 samples each")
    if len(labels) != n_samples:
        raise DataError(f"X has {n_samples} samples but {name} has {len(labels)} labels; they must match")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise DataError(f"{name} contains missing labels (NaN); drop those samples or label them")
    if labels.dtype == object and any(v is None for v in labels):
        raise DataError(f"{name} contains missing labels (None); drop those samples or label them")
    try:
        classes, codes = np.unique(labels, return_inverse=True)
    except TypeError as exc:
        raise DataError(
            f"{name} mixes labels of different types (e.g. numbers and strings); use one type"
        ) from exc
    if len(classes) < 2:
        raise DataError(
            f"{name} has a single class ({_show(classes[0])}); metric learning needs at least 2 classes"
        )
    counts = np.bincount(codes, minlength=len(classes))
    lonely = classes[counts < 2]
    if len(lonely):
        shown = ", ".join(_show(c) for c in lonely[:5])
        more = f" and {len(lonely) - 5} more" if len(lonely) > 5 else ""
        raise DataError(
            f"class(es) {shown}{more} of {name} have a single sample; every class needs at least 2 "
            "(add samples or drop those classes)"
        )
    return codes.astype(np.int64).reshape(-1), classes
