"""Data-parallel training over several processes with ``torch.distributed``.

Launch with ``torchrun --nproc_per_node=N $(which gdml) train ...`` (or ``gdml train --nproc N``,
which runs torchrun for you). torchrun starts N copies of the command and gives each one
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_from_env` reads them (gloo on CPU, NCCL on CUDA). Without them everything here is a
no-op and a run is the ordinary single process.

How a distributed run stays the single-process run (docs/design.md, "Distributed training"):

* **Global batch.** ``batch_size`` is the batch of one optimiser step, whatever N is. Every
  process draws the same global order from the shared per-epoch generator and takes its
  contiguous slice of each global batch (:func:`split_bounds`), so the N slices concatenated in
  rank order are exactly the single-process batch.
* **Whole-batch losses.** Pair-based losses (and MDR, and G-DML's distillation loss, for one code
  path) see the whole global batch: :func:`gather_rows` all-gathers the embeddings and targets in
  rank order, every process computes the same loss on the same global batch, and the gradient
  reaching this process's rows is multiplied by N because DistributedDataParallel *averages*
  parameter gradients over the processes. The parameter gradient is then the single-process one
  (up to floating-point summation order), and loss values, NaN checks and the loss's own
  buffers (MDR's running statistics) agree on every process without extra communication.
* **One writer.** Rank 0 ("main") alone writes files, logs, checkpoints and progress bars,
  trains the GEMINI teacher and computes validation scores; :func:`on_main` runs such a step on
  rank 0 and hands its result, or its exception, to every process.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)

# Processes other than rank 0 wait in a collective while rank 0 trains GEMINI or evaluates;
# the process group's timeout must outlast that. torchrun stops every process when one fails,
# so a long timeout does not leave a crashed run hanging.
DEFAULT_TIMEOUT = timedelta(hours=2)
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun, 1 when the process was not launched by it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """``LOCAL_RANK`` set by torchrun: which GPU of this machine the process uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) set the process-group environment variables."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE"))


def init_from_env(device: torch.device, timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Join the process group described by torchrun's environment variables.

    Does nothing (and returns False) for a single process or when a group already exists,
    so it is safe to call at the start of every run. The group is destroyed at exit.

    Args:
        device: where this process trains; ``cuda`` selects NCCL, ``cpu`` gloo.
        timeout: how long a collective may wait (rank 0 trains GEMINI meanwhile).
    """
    if not launched_by_torchrun() or env_world_size() <= 1:
        return False
    if dist.is_initialized():
        return False
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run a single process")
    if device.type == "mps":
        raise ConfigError("torch.distributed does not support mps tensors; use --device cpu "
                          "for multi-process runs on a Mac")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timeout)
    atexit.register(_destroy)
    return True


def _destroy() -> None:
    """End the process group at exit, while the interpreter is still whole.

    A DistributedDataParallel wrapper kept alive by a reference cycle (a trainer and its
    callbacks) holds the group's communicator. Left to the interpreter's final teardown, its
    destruction can wake a gloo thread that needs the GIL, which Python then ends mid-C++:
    ``terminate called without an active exception`` and SIGABRT, after a run that succeeded
    (about 1 launch in 15 of the two-process tests). Collecting such cycles first removes it.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def split_bounds(n: int, parts: int, index: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` when ``n`` rows are cut into ``parts`` contiguous parts.

    Sizes differ by at most one, the larger parts first (``torch.tensor_split``'s rule), so the
    parts in order are the rows in order.
    """
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


# ------------------------------------------------------------------ gathering with gradient
class _GatherRows(torch.autograd.Function):
    """All-gather of ``(n_r, ...)`` row blocks, concatenated in rank order, with a gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        ctx.sizes = sizes
        largest = max(sizes)
        # all_gather needs equal shapes: pad every block to the largest, then trim.
        padded = x.new_zeros((largest, *x.shape[1:]))
        padded[: len(x)] = x
        blocks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(blocks, padded.contiguous())
        return torch.cat([b[:s] for b, s in zip(blocks, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        sizes = ctx.sizes
        r = dist.get_rank()
        start = sum(sizes[:r])
        # Every process computed the same loss on the same gathered batch, so ``grad`` already
        # is the full gradient; DDP divides the summed parameter gradients by N, hence * N.
        return grad[start : start + sizes[r]] * len(sizes), None


def gather_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The global batch: every process's rows of each tensor, concatenated in rank order.

    Tensors that require a gradient get one (see the module docstring for the factor N); the
    others (labels, teacher targets) are gathered as plain data. Blocks may differ in length by
    any amount (a last validation batch split unevenly); with one process, returns the inputs.

    Args:
        tensors: ``(n, ...)`` tensors with the same number of rows ``n`` on this process.
    """
    if not is_distributed():
        return tensors
    n = len(tensors[0])
    device = tensors[0].device
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([n], dtype=torch.int64, device=device))
    sizes = [int(c.item()) for c in counts]
    return tuple(_GatherRows.apply(t, sizes) for t in tensors)


# ------------------------------------------------------------------ the model
def data_parallel(model: nn.Module, device: torch.device, batch_size: int) -> nn.Module:
    """``model`` under DistributedDataParallel inside a process group, else ``model`` itself.

    DDP averages the parameter gradients over the processes in ``backward`` (hence the factor N
    of :func:`gather_rows`). BatchNorm: on GPUs the layers become SyncBatchNorm, whose
    statistics cover the global batch, so results do not depend on the number of processes.
    torch has no CPU SyncBatchNorm: with gloo each process normalises with the statistics of its
    own slice of the batch, which rank 0 logs as a warning when ``model`` has BatchNorm layers.

    Args:
        model: the network, already on ``device``.
        device: where this process trains (``cuda:i``: DDP on that GPU).
        batch_size: the global batch, for the warning's numbers.
    """
    if not is_distributed():
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and is_main():
        log.warning("BatchNorm on %s: torch has no CPU SyncBatchNorm, so batch statistics come "
                    "from each process's %d of the %d samples of a batch; results depend on the "
                    "number of processes", device.type, batch_size // world_size(), batch_size)
    return DistributedDataParallel(model)


# ------------------------------------------------------------------ rank-0 work
def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of process ``src`` on every process (pickled; tensors arrive on the CPU)."""
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _transportable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling, else a RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"rank 0 failed: {type(exc).__name__}: {exc}")


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only; every process returns its result or raises its exception.

    For work that must happen once (training GEMINI, reading or writing the run folder,
    evaluating): the others wait, then get the same outcome, so no process is left waiting in
    a collective that rank 0 will never reach. Without a process group it is ``fn()``.
    """
    if not is_distributed():
        return fn()
    if is_main():
        try:
            result = fn()
        except Exception as exc:
            broadcast_object(("error", _transportable(exc)))
            raise
        broadcast_object(("ok", result))
        return result
    status, payload = broadcast_object(None)
    if status == "error":
        raise payload
    return payload


def main_first(fn: Callable[[], T]) -> T:
    """``fn`` on rank 0, then (if it succeeded) on every other process; e.g. loading a data
    set that rank 0 may have to download first. Returns each process's own result."""
    if not is_distributed():
        return fn()
    result: list[T] = []
    on_main(lambda: result.append(fn()))
    return result[0] if is_main() else fn()


def barrier() -> None:
    """Wait until every process gets here (no-op for one process)."""
    if is_distributed():
        dist.barrier()


# ------------------------------------------------------------------ launching
def launch_command(nproc: int, argv: list[str], module: str = "guided_dml.cli") -> list[str]:
    """The torchrun command that runs ``python -m module *argv`` in ``nproc`` local processes.

    ``--standalone`` makes torchrun pick a free port and run its own rendezvous on this
    machine, so nothing needs configuring. A ``--nproc N`` in ``argv`` is left out: torchrun's
    parser would take it for an abbreviation of its own ``--nproc-per-node``, and the
    processes learn their number from ``WORLD_SIZE`` anyway.
    """
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", module, *kept]


def launch(nproc: int, argv: list[str], module: str = "guided_dml.cli") -> int:
    """Run :func:`launch_command` and return its exit status (what ``gdml train --nproc`` does).

    Unless ``OMP_NUM_THREADS`` is set, each process gets an equal share of this machine's cores
    (torchrun's own default is 1 thread per process, which leaves cores idle on a CPU run).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(launch_command(nproc, argv, module), env=env)
