"""``--device``, ``--amp`` and ``--channels-last`` on the CPU (no GPU is needed to test them)."""

from __future__ import annotations

import json

import pytest
import torch

from guided_dml.cli import main
from guided_dml.errors import ConfigError
from guided_dml.experiments.config import RunConfig
from guided_dml.training import accelerator
from guided_dml.training.accelerator import amp_dtype, grad_scaler, resolve_device


def test_auto_prefers_cuda_then_mps_then_cpu():
    expected = ("cuda" if torch.cuda.is_available()
                else "mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_a_missing_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_amp_modes_on_cpu():
    cpu = torch.device("cpu")
    assert amp_dtype("none", cpu) is None
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert grad_scaler(cpu, torch.bfloat16) is None  # bf16 has float32's range: no scaling
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        amp_dtype("fp16", cpu)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        RunConfig(amp="fp16", device="cpu").validate()
    with pytest.raises(ConfigError, match="--amp"):
        RunConfig(amp="fp8").validate()


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    args = ["train", "--method", "multisim", "--dataset", "digits", "--preset", "smoke",
            "--device", "cpu", "--threads", "1", "--out", str(out), *extra]
    assert main(args) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return history, json.loads((out / "metrics.json").read_text())


def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path):
    ref_hist, ref = _train(tmp_path, "fp32")
    cl_hist, cl = _train(tmp_path, "channels_last", "--channels-last", "true")
    # The same computation in another memory layout: only the summation order may differ.
    for a, b in zip(ref_hist, cl_hist, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    bf_hist, bf = _train(tmp_path, "bf16", "--amp", "bf16")
    # bfloat16 keeps 8 bits of mantissa: close to float32, not equal.
    assert bf_hist[0]["train_loss"] == pytest.approx(ref_hist[0]["train_loss"], rel=0.05)
    assert 0.0 <= bf["map@r"] <= 1.0 and bf["config_hash"] != ref["config_hash"]
    assert cl["config_hash"] == ref["config_hash"]


def test_fp16_on_cpu_fails_with_one_line(tmp_path, capsys):
    rc = main(["train", "--preset", "smoke", "--device", "cpu", "--amp", "fp16",
               "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "fp16 needs a GPU" in err and "Traceback" not in err


def test_processor_name_reads_the_cpu_model(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    real_path = accelerator.Path
    monkeypatch.setattr(accelerator, "Path",
                        lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert accelerator.processor_name(torch.device("cpu")) == "AMD EPYC 7B13"
    # No /proc (macOS, Windows): the platform's own answer, never an empty string.
    monkeypatch.setattr(accelerator, "Path", lambda p: tmp_path / "missing")
    assert accelerator.processor_name(torch.device("cpu"))
