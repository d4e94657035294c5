"""``gdml train --nproc N`` and the settings around it, without starting processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from guided_dml.cli import main
from guided_dml.errors import ConfigError
from guided_dml.experiments.config import RunConfig, resolve_config
from guided_dml.experiments.run import run_experiment
from guided_dml.training import distributed


@pytest.fixture
def not_under_torchrun(monkeypatch):
    for var in distributed.ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_nproc_relaunches_the_same_command_under_torchrun(monkeypatch, tmp_path, not_under_torchrun):
    calls = []
    monkeypatch.setattr(distributed, "launch", lambda n, argv: calls.append((n, argv)) or 0)
    argv = ["train", "--method", "triplet", "--preset", "smoke", "--nproc", "2",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert calls == [(2, argv)]
    assert not (tmp_path / "run").exists()  # the launched processes write it, not this one


def test_nproc_without_torchrun_is_a_clear_error(tmp_path, not_under_torchrun):
    cfg = resolve_config({"preset": "smoke", "nproc": 2})
    with pytest.raises(ConfigError, match="gdml train --nproc 2"):
        run_experiment(cfg, tmp_path / "run")


def test_global_batch_must_cover_the_processes():
    with pytest.raises(ConfigError, match="global batch"):
        resolve_config({"preset": "smoke", "nproc": 4, "batch_size": 2})


def test_where_a_run_computes_is_not_part_of_its_identity():
    base = RunConfig()
    for change in ({"device": "cuda"}, {"channels_last": True}, {"nproc": 4}):
        assert RunConfig(**change).hash() == base.hash(), change
    # Mixed precision changes the numbers, so a bf16 run is another run.
    assert RunConfig(amp="bf16").hash() != base.hash()


SHUTDOWN_PROBE = """
import gc, socket
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from guided_dml.training import distributed

with socket.socket() as s:  # a free port for the one-process group
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)

class Trainer:
    pass

def train():  # the trainer's callback refers back to it, as in train_model: a cycle
    trainer = Trainer()
    trainer.net = DistributedDataParallel(nn.Linear(3, 2))
    trainer.on_epoch = lambda: trainer

gc.disable()  # as if no automatic collection happened to run before exit
train()
before = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
distributed._destroy()
alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
print(before, alive, dist.is_initialized())
"""


def test_exit_releases_data_parallel_wrappers_before_the_group():
    # A DDP wrapper left in a reference cycle past destroy_process_group was torn down during
    # interpreter finalisation and aborted finished two-process runs (SIGABRT) now and then.
    proc = subprocess.run([sys.executable, "-c", SHUTDOWN_PROBE], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "0", "False"]
