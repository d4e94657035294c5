"""The method registry: every entry is complete and agrees with PML; everything reads it."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import torch
from matplotlib.colors import is_color_like
from pytorch_metric_learning import losses

from guided_dml.cli import build_parser
from guided_dml.errors import ConfigError
from guided_dml.experiments.benchmark import BenchmarkSpec
from guided_dml.experiments.config import RunConfig, resolve_config
from guided_dml.experiments.factory import build_loss, loss_normalizes
from guided_dml.experiments.report import method_color, method_key, method_name
from guided_dml.losses import DistillationLoss, metric_losses
from guided_dml.methods import METHODS, Method, get_method, method_names, register_method


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_complete(name: str) -> None:
    method = METHODS[name]
    assert method.name == name
    for f in fields(Method):
        value = getattr(method, f.name)
        if f.name != "pml_loss":
            assert value is not None and value != "", f"{name}.{f.name} is empty"
    assert is_color_like(method.color)
    assert re.search(r"\d{4}", method.reference), "the reference names its year"
    # A method either distils the teacher's map or trains on a PML loss: never both, never none.
    assert method.teacher == (method.pml_loss is None)


@pytest.mark.parametrize("name", [m for m in METHODS if METHODS[m].pml_loss])
def test_normalizes_is_pmls_default_geometry(name: str) -> None:
    loss = getattr(losses, METHODS[name].pml_loss)()
    assert METHODS[name].normalizes == loss.distance.normalize_embeddings
    cfg = resolve_config({"method": name, "preset": "smoke"})
    assert loss_normalizes(RunConfig(**{**cfg.to_dict(), "normalize_embeddings": None}))


def test_the_registry_is_the_papers_table_order_and_the_one_list() -> None:
    assert method_names() == ("siamese", "triplet", "margin", "multisim", "gdml")
    assert [method_name(m) for m in method_names()] == ["Siamese", "Triplet", "Margin",
                                                        "MultiSim", "G-DML"]
    assert sorted(["gdml", "triplet+mdr", "siamese"], key=method_key) == ["siamese", "gdml",
                                                                          "triplet+mdr"]
    assert list(metric_losses()) == ["siamese", "triplet", "margin", "multisim"]
    assert tuple(BenchmarkSpec().methods) == method_names()
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert " | ".join(method_names()) in re.sub(r"\s+", " ", help_text)
    with pytest.raises(ConfigError, match="choose from siamese, triplet"):
        get_method("lifted")
    with pytest.raises(ConfigError, match="unknown method"):
        resolve_config({"method": "lifted"})


@pytest.fixture
def registry():
    """The registry, restored after the test (entries added by it are removed)."""
    before = dict(METHODS)
    yield METHODS
    METHODS.clear()
    METHODS.update(before)


def test_a_registered_pml_loss_builds_and_reports_everywhere(registry) -> None:
    """Adding a baseline is one registry entry: config, factory, CLI and report take it."""
    register_method(Method("lifted", "Lifted", "tab:brown", "Oh Song et al., CVPR 2016",
                           "GeneralizedLiftedStructureLoss", teacher=False, normalizes=True))
    assert registry["lifted"].display == "Lifted"
    cfg = resolve_config({"method": "lifted", "preset": "smoke"})
    loss, _ = build_loss(cfg)
    assert isinstance(loss, losses.GeneralizedLiftedStructureLoss)
    assert loss_normalizes(cfg)
    emb = torch.randn(16, 2, requires_grad=True)
    loss(emb, torch.arange(16) % 4).backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert method_name("lifted+mdr") == "Lifted + MDR" and method_color("lifted") == "tab:brown"
    assert method_key("lifted") > method_key("gdml")  # after the paper's rows
    assert "lifted" in BenchmarkSpec().methods
    with pytest.raises(ConfigError, match="already registered"):
        register_method(registry["lifted"])
    with pytest.raises(ConfigError, match="lower-case"):
        register_method(Method("Bad Name", "B", "k", "x 2020", "ContrastiveLoss", False, True))


def test_teacher_methods_distil() -> None:
    cfg = resolve_config({"method": "gdml", "preset": "smoke"})
    loss, miner = build_loss(cfg)
    assert isinstance(loss, DistillationLoss) and miner is None
    assert not loss_normalizes(cfg)
