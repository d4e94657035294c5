"""`gdml export`: TorchScript (always) and ONNX (with the export extra), checked before writing."""

from __future__ import annotations

import errno
import json
import os
import sys
import warnings

import numpy as np
import pytest
import torch

from guided_dml import atomic
from guided_dml.commands import export as export_mod
from guided_dml.experiments.factory import load_model


def _probe(shape: tuple[int, ...], n: int = 5) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(7))


def test_torchscript_gives_the_models_embeddings(gdml, run_dir, tmp_path):
    out = tmp_path / "student.pt"
    rc, _, err = gdml("export", run_dir, "--format", "torchscript", "--out", out)
    assert rc == 0, err
    assert "embeddings match the model" in err and "batches of 1 and 8" in err
    extra = {"guided_dml.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["guided_dml.json"])
    assert meta["input_shape"] == [1, 16, 16] and meta["classes"] == ["circle", "cross", "stripes"]
    assert meta["embedding_dim"] == 2 and meta["method"] == "gdml"
    model, _ = load_model(run_dir)
    x = _probe((1, 16, 16))
    with torch.no_grad():
        np.testing.assert_allclose(ts(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_default_output_beside_the_model_and_overwrite(gdml, error, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert gdml("export", run)[0] == 0
    target = run / "model.torchscript.pt"
    assert target.is_file()
    before = target.read_bytes()
    error(gdml("export", run), "model.torchscript.pt already exists", "--overwrite")
    assert target.read_bytes() == before
    assert gdml("export", run, "--overwrite")[0] == 0


def test_vector_model_exports_too(gdml, tmp_path):
    from guided_dml import GuidedEmbedder

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (30, 6)) + np.repeat(np.eye(3, 6) * 5, 10, axis=0)
    est = GuidedEmbedder("triplet", preset="smoke", epochs=2, batch_size=8).fit(x, np.repeat([0, 1, 2], 10))
    est.save(tmp_path / "m.pt")
    assert gdml("export", tmp_path / "m.pt", "--out", tmp_path / "m.ts")[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(tmp_path / "m.ts"))
    with torch.no_grad():
        got = ts(torch.from_numpy(x[:4]).float()).numpy()
    np.testing.assert_allclose(got, est.transform(x[:4]), rtol=1e-5, atol=1e-6)


def test_onnx_gives_the_models_embeddings(gdml, run_dir, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "student.onnx"
    rc, out_text, err = gdml("export", run_dir, "--format", "onnx", "--out", out)
    assert rc == 0, err
    assert out_text == ""  # the exporter's progress chatter is kept off the terminal
    import onnx

    proto = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["guided_dml"])
    assert meta["input_shape"] == [1, 16, 16]
    model, _ = load_model(run_dir)
    x = _probe((1, 16, 16), n=3)
    with torch.no_grad():
        want = model(x).numpy()
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_onnx_without_its_packages(gdml, error, run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    error(gdml("export", run_dir, "--format", "onnx", "--out", tmp_path / "m.onnx"),
          "pip install 'guided-dml[export]'")
    assert not (tmp_path / "m.onnx").exists()


def test_an_export_that_disagrees_is_not_written(gdml, error, run_dir, tmp_path, monkeypatch):
    real = export_mod.EXPORTERS["torchscript"]

    def broken(model, meta, example):
        data, run = real(model, meta, example)
        return data, lambda x: run(x) + 0.5  # an exporter that changes the numbers

    monkeypatch.setitem(export_mod.EXPORTERS, "torchscript", broken)
    error(gdml("export", run_dir, "--out", tmp_path / "m.pt"), "differ from the model's",
          "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_bad_model_format_and_full_disk(gdml, error, run_dir, tmp_path, monkeypatch):
    error(gdml("export", tmp_path / "none"), "no model at")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04junk")
    error(gdml("export", tmp_path / "junk.pt"), "not a readable guided-dml model")
    # argparse: an unknown --format is a usage error, one line and status 2 like the others
    error(gdml("export", run_dir, "--format", "pickle"), "--format: invalid choice: 'pickle'")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    error(gdml("export", run_dir, "--out", out_dir / "m.pt"), "no space left")
    assert list(out_dir.iterdir()) == []


def test_onnx_checked_by_the_reference_evaluator_without_onnxruntime(gdml, run_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    rc, _, err = gdml("export", run_dir, "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert rc == 0, err
    assert (tmp_path / "m.onnx").stat().st_size > 1000
