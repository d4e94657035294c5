"""`--pretrained imagenet`: torchvision's ResNet-18 weights fetched from a URL (here a generated
state dict behind a ``file://`` URL: no network), checked by SHA-256 prefix, cached, loaded by
name, with ImageNet's input normalisation; offline, one line saying which file goes where."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest
import torch

from guided_dml.cli import main
from guided_dml.data import download
from guided_dml.errors import DataError
from guided_dml.experiments.config import RunConfig
from guided_dml.experiments.factory import build_student, load_model, student_stats
from guided_dml.models import pretrained, resnet18
from guided_dml.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, imagenet_stats


def _served_weights(tmp_path: Path) -> tuple[dict[str, torch.Tensor], str, str]:
    """A torchvision-shaped resnet18 state dict (3 channels, 7×7 conv1, 1000 classes) as a file,
    its file:// URL and the first 8 hex digits of its SHA-256."""
    torch.manual_seed(0)
    state = resnet18(3, 1000, stem="imagenet").state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    src = tmp_path / "server" / f"resnet18-{prefix}.pth"
    src.parent.mkdir()
    src.write_bytes(data)
    return state, src.as_uri(), prefix


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state, url, prefix = _served_weights(tmp_path)
    monkeypatch.setattr(pretrained, "RESNET18_IMAGENET_URL", url)
    monkeypatch.setattr(pretrained, "RESNET18_IMAGENET_SHA256_PREFIX", prefix)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no real torchvision copy
    monkeypatch.delenv("GDML_DATA", raising=False)
    return state, url, prefix, tmp_path


def _offline(*_args, **_kwargs):
    raise urllib.error.URLError("no network")


def test_fetched_once_cached_and_loaded_by_name(served, monkeypatch):
    state, _, prefix, tmp = served
    path = pretrained.fetch_imagenet_weights(progress=False)
    assert path == tmp / "cache" / "guided-dml" / "weights" / f"resnet18-{prefix}.pth"
    monkeypatch.setattr(download, "urlopen", _offline)  # the second time: from the cache
    assert pretrained.fetch_imagenet_weights(progress=False) == path

    cfg = RunConfig(pretrained="imagenet", stem="imagenet", embedding_dim=2)
    shape = (3, 32, 32)
    mean, std = student_stats(cfg, shape, torch.zeros(3), torch.ones(3))
    assert torch.allclose(mean, torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(std, torch.tensor(IMAGENET_STD))
    net = build_student(cfg, shape, mean, std)
    got = net.backbone.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):  # 1000 classes -> d = 2: the fresh head is kept
            assert got[key].shape != value.shape
        else:
            assert torch.equal(got[key], value), key
    # A file --pretrained keeps the data's own statistics.
    file_cfg = RunConfig(pretrained=str(path), stem="imagenet")
    m2, s2 = student_stats(file_cfg, shape, torch.zeros(3), torch.ones(3))
    assert torch.equal(m2, torch.zeros(3)) and torch.equal(s2, torch.ones(3))
    assert torch.equal(build_student(file_cfg, shape, m2, s2).backbone.conv1.weight,
                       state["conv1.weight"])


def test_grey_images_sum_the_rgb_filters_and_average_the_statistics(served):
    state, *_ = served
    cfg = RunConfig(pretrained="imagenet", stem="imagenet")
    mean, std = student_stats(cfg, (1, 28, 28), torch.zeros(1), torch.ones(1))
    assert mean.shape == (1,) and mean.item() == pytest.approx(sum(IMAGENET_MEAN) / 3)
    assert std.item() == pytest.approx(sum(IMAGENET_STD) / 3)
    net = build_student(cfg, (1, 28, 28), mean, std)
    assert torch.allclose(net.backbone.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert imagenet_stats(4)[0].tolist() == pytest.approx([*IMAGENET_MEAN, IMAGENET_MEAN[0]])


def test_wrong_hash_prefix_is_refused_and_leaves_no_file(served, monkeypatch):
    monkeypatch.setattr(pretrained, "RESNET18_IMAGENET_SHA256_PREFIX", "00000000")
    with pytest.raises(DataError, match=r"checksum mismatch.*start with 00000000"):
        pretrained.fetch_imagenet_weights(progress=False)
    assert not pretrained.imagenet_weights_path().exists()


def test_offline_error_says_which_file_goes_where(served, monkeypatch):
    prefix = served[2]
    monkeypatch.setattr(download, "urlopen", _offline)
    with pytest.raises(DataError) as info:
        pretrained.fetch_imagenet_weights(progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"save it as {pretrained.imagenet_weights_path()}" in msg
    assert f"resnet18-{prefix}.pth" in msg and "--pretrained FILE" in msg


def test_cli_train_offline_fails_in_one_line_and_leaves_no_run_folder(served, monkeypatch, capsys):
    *_, tmp = served
    monkeypatch.setattr(download, "urlopen", _offline)
    out = tmp / "run"
    rc = main(["train", "--dataset", "digits", "--preset", "smoke", "--threads", "1",
               "--pretrained", "imagenet", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(pretrained.imagenet_weights_path()) in lines[0], err
    assert not out.exists()


def test_cli_train_with_imagenet_weights_and_embed_without_them(served, capsys):
    *_, tmp = served
    out = tmp / "run"
    rc = main(["train", "--dataset", "digits", "--preset", "smoke", "--threads", "1",
               "--backbone", "resnet18", "--pretrained", "imagenet", "--epochs", "1",
               "--gemini-epochs", "1", "--out", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    model, _ = load_model(out)
    want = imagenet_stats(1)
    assert torch.allclose(model.standardize.mean, want[0])
    assert torch.allclose(model.standardize.std, want[1].clamp_min(1e-6))
    # A saved model needs no pretrained file any more.
    pretrained.imagenet_weights_path().unlink()
    model, _ = load_model(out)
    assert torch.isfinite(model(torch.rand(2, 1, 8, 8))).all()


def test_cifar_stem_says_conv1_starts_from_scratch(served):
    state, *_ = served
    cfg = RunConfig(pretrained="imagenet", stem="cifar")
    with pytest.warns(UserWarning, match="conv1 .* starts from scratch"):
        net = build_student(cfg, (3, 32, 32), *imagenet_stats(3))
    assert torch.equal(net.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
