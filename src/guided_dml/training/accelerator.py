"""Where and in what precision a run computes: ``--device``, ``--amp``, ``--channels-last``.

* ``device="auto"`` picks CUDA, else Apple's MPS, else the CPU. Under torchrun, CUDA means the
  GPU ``LOCAL_RANK`` of this machine (one GPU per process).
* ``amp`` (automatic mixed precision) runs the network's forward pass under ``torch.autocast``;
  losses, gradients and the optimiser stay in float32. ``"bf16"`` needs no loss scaling (same
  exponent range as float32) and also runs on CPUs; ``"fp16"`` needs a ``GradScaler`` and a GPU:
  on a CPU it would be slower than float32 with nothing to gain, so it is refused.
* ``channels_last`` stores image tensors as NHWC, the layout tensor-core convolutions prefer.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import ConfigError
from . import distributed

DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    """``auto|cpu|cuda|mps`` (or ``cuda:K``) to a :class:`torch.device` that exists here."""
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is visible to torch (use --device auto)")
        if ":" in name:
            return torch.device(name)
        # Under torchrun every process of this machine gets its own GPU.
        return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())
    if kind == "mps" and not _mps_available():
        raise ConfigError("--device mps: this torch build or machine has no MPS (use --device auto)")
    return torch.device(kind)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (``None`` for ``"none"``), or a ConfigError."""
    if amp not in AMP_MODES:
        raise ConfigError(f"unknown --amp {amp!r}; choose from {', '.join(AMP_MODES)}")
    if amp == "none":
        return None
    if amp == "fp16" and device.type == "cpu":
        raise ConfigError("--amp fp16 needs a GPU (float16 on a CPU is slower than float32 and "
                          "needs loss scaling); use --amp bf16 on a CPU, or --amp none")
    return _AMP_DTYPES[amp]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` on ``device`` with ``dtype``; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A loss scaler for float16 (whose small exponent range underflows gradients), else None."""
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler(device.type)


def memory_format(channels_last: bool, input_shape: tuple[int, ...]) -> torch.memory_format:
    """``channels_last`` for images when asked; vectors ``(F,)`` have no channel layout."""
    return torch.channels_last if channels_last and len(input_shape) == 3 else torch.contiguous_format


def processor_name(device: torch.device) -> str:
    """What computed a run: the GPU's name, else the CPU model (``/proc/cpuinfo`` on Linux).

    Recorded beside each run because it changes the numbers: kernels differ between CPU
    families (e.g. AMD EPYC and Intel Xeon), their float32 rounding differs, and the training of
    2-D embeddings amplifies such differences (docs/results.md, "Reproducibility").
    """
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
