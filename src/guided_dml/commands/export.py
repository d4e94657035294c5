"""``gdml export``: the student as a TorchScript or ONNX file for deployment, checked before writing.

The exported network is the whole :class:`~guided_dml.models.embedding.EmbeddingNet`, input
standardisation included: it maps ``float32 (N, C, H, W)`` pixels scaled to [0, 1] (``uint8 /
255``; channels grey, grey + alpha, RGB or RGBA as in training) or ``(N, F)`` feature vectors to
``(N, d)`` embeddings, for any batch size N. A JSON description of that contract, the classes and
the method travels inside the file (TorchScript extra file ``guided_dml.json``, ONNX metadata
property ``guided_dml``).

Before anything is written, the exported model is run on probe inputs (batches of 1 and 8) and its
embeddings are compared with the original model's; the file is written (atomically) only if they
agree. TorchScript needs nothing beyond torch; ONNX needs the ``export`` extra (``onnx``,
``onnxscript``; ``onnxruntime`` for the check, else onnx's reference evaluator).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, GdmlError
from .inference import LoadedModel, open_model
from .outputs import check_output, write_bytes

EXPORT_FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}  # format -> file suffix
CHECK_BATCHES = (1, 8)
ATOL = 1e-4  # allowed |difference|, relative to the largest embedding coordinate (at least 1)

Runner = Callable[[np.ndarray], np.ndarray]


def export_metadata(loaded: LoadedModel) -> dict[str, Any]:
    """What a deployment needs to know about the exported network."""
    shape = list(loaded.input_shape)
    layout = "N×C×H×W float32 pixels / 255" if len(shape) == 3 else "N×F float32 feature vectors"
    return {
        "format": "guided-dml-export/1",
        "input": layout,
        "input_shape": shape,
        "embedding_dim": loaded.config.embedding_dim,
        "l2_normalized": bool(loaded.model.l2_normalize),
        "method": loaded.config.method_label,
        "classes": loaded.classes,
    }


def probe_inputs(loaded: LoadedModel, batch: int, seed: int = 0) -> torch.Tensor:
    """Deterministic check inputs: 8-bit images scaled to [0, 1], or vectors of the training scale."""
    g = torch.Generator().manual_seed(seed + batch)
    if len(loaded.input_shape) == 3:
        return torch.randint(0, 256, (batch, *loaded.input_shape), generator=g).float() / 255.0
    std = loaded.model.standardize
    return std.mean + std.std * torch.randn(batch, *loaded.input_shape, generator=g)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation warnings and progress logs: the CLI prints one line."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def to_torchscript(model: nn.Module, meta: dict[str, Any], example: torch.Tensor) -> tuple[bytes, Runner]:
    """TorchScript bytes (scripted; traced if scripting fails) and a runner that loads them back."""
    with _quiet():
        try:
            module = torch.jit.script(model)
        except Exception:  # a backbone TorchScript cannot compile: record one forward pass
            module = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(module, buf, _extra_files={"guided_dml.json": json.dumps(meta)})
    data = buf.getvalue()

    def run(x: np.ndarray) -> np.ndarray:
        with _quiet():
            loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return data, run


def to_onnx(model: nn.Module, meta: dict[str, Any], example: torch.Tensor) -> tuple[bytes, Runner]:
    """ONNX bytes (dynamic batch axis) and a runner (onnxruntime, else onnx's reference evaluator)."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise ConfigError(
            "ONNX export needs the onnx and onnxscript packages: pip install 'guided-dml[export]'"
        ) from exc
    input_name = "images" if example.dim() == 4 else "features"
    with _quiet():
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[input_name], output_names=["embeddings"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False,
        )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"guided_dml": json.dumps(meta)})
    data = proto.SerializeToString()

    def run(x: np.ndarray) -> np.ndarray:
        try:
            import onnxruntime
        except ImportError:
            from onnx.reference import ReferenceEvaluator

            return np.asarray(ReferenceEvaluator(onnx.load_from_string(data)).run(None, {input_name: x})[0])
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {input_name: x})[0])

    return data, run


EXPORTERS: dict[str, Callable[[nn.Module, dict[str, Any], torch.Tensor], tuple[bytes, Runner]]] = {
    "torchscript": to_torchscript,
    "onnx": to_onnx,
}


def default_export_path(model_path: str | os.PathLike[str], fmt: str) -> Path:
    """``RUN/model.torchscript.pt`` / ``RUN/model.onnx`` beside the model file."""
    path = Path(model_path).expanduser()
    model_file = path / "model.pt" if path.is_dir() else path
    return model_file.with_name(model_file.name.removesuffix(".pt") + EXPORT_FORMATS[fmt])


def export_model(
    model_path: str | os.PathLike[str],
    fmt: str = "torchscript",
    out: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export the student of ``model_path`` to ``out`` and check it gives the same embeddings.

    Returns:
        ``{"out", "format", "max_abs_diff", "checked_batches"}``.

    Raises:
        ConfigError: unknown format, missing ONNX packages, not a model file.
        OutputError: ``out`` exists (without ``overwrite``) or cannot be written.
        GdmlError: the exported model disagrees with the original (nothing is written).
    """
    if fmt not in EXPORTERS:
        raise ConfigError(f"unknown export format {fmt!r}; choose {' or '.join(EXPORTERS)}")
    target = check_output(out if out is not None else default_export_path(model_path, fmt), overwrite)
    loaded = open_model(model_path)
    model = loaded.model.eval()
    example = probe_inputs(loaded, max(CHECK_BATCHES))
    data, run = EXPORTERS[fmt](model, export_metadata(loaded), example)

    worst = 0.0
    for batch in CHECK_BATCHES:
        x = probe_inputs(loaded, batch)
        with torch.no_grad():
            want = model(x).numpy()
        got = run(x.numpy())
        if got.shape != want.shape:
            raise GdmlError(
                f"the exported {fmt} model returns shape {got.shape} for a batch of {batch}, the model "
                f"{want.shape}; nothing was written"
            )
        diff = float(np.abs(got - want).max())
        worst = max(worst, diff)
        tol = ATOL * max(1.0, float(np.abs(want).max()))
        if not diff <= tol:
            raise GdmlError(
                f"the exported {fmt} model's embeddings differ from the model's by {diff:.3g} "
                f"(allowed {tol:.1g}); nothing was written; try the other format"
            )
    write_bytes(target, data)
    return {"out": str(target), "format": fmt, "max_abs_diff": worst,
            "checked_batches": list(CHECK_BATCHES)}
