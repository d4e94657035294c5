"""The one validation layer: property-based tests throw values of the wrong type and range at
every setting, through every entry point (flags, config files, the estimator), and check that
each is refused before any work with one line naming the setting and what it accepts."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guided_dml.cli import _SWITCHES, main
from guided_dml.errors import ConfigError
from guided_dml.experiments.config import flag_name, flag_settings, resolve_config, setting_rules
from guided_dml.validation import Rule

RULES = setting_rules()
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
_ANY_WRONG = st.one_of(st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@pytest.fixture(autouse=True)
def _subnormals_on():
    """Training flushes subnormal floats to zero for the whole process (run_experiment), and
    hypothesis's float strategies need them: turn them back on for these tests."""
    import torch

    torch.set_flush_denormal(False)
    yield


def bad_values(rule: Rule) -> st.SearchStrategy:
    """Values ``rule`` must refuse: other types, None where it cannot be unset, NaN and
    infinities, numbers out of its range, strings outside its choices."""
    wrong_type = {
        int: st.one_of(st.text(max_size=6), st.floats(), st.booleans(), _ANY_WRONG),
        float: st.one_of(st.text(max_size=6), st.booleans(), _ANY_WRONG,
                         st.sampled_from([math.nan, math.inf, -math.inf])),
        str: st.one_of(st.integers(), st.floats(), st.booleans(), _ANY_WRONG),
        bool: st.one_of(st.integers(), st.floats(), st.text(max_size=6), _ANY_WRONG),
        tuple: st.one_of(st.text(max_size=6), st.integers(), st.floats(), st.booleans(),
                         st.lists(st.text(max_size=3), min_size=1, max_size=2)),
    }[rule.kind]
    options = [wrong_type]
    if not rule.optional:
        options.append(st.none())
    if rule.kind is int and rule.low is not None:
        options.append(st.integers(max_value=int(rule.low) - (0 if rule.low_open else 1)))
    if rule.kind is int and rule.high is not None:
        options.append(st.integers(min_value=int(rule.high) + 1))
    if rule.kind is float and rule.low is not None:
        options.append(st.floats(max_value=rule.low, exclude_max=not rule.low_open, allow_nan=False))
    if rule.kind is float and rule.high is not None:
        options.append(st.floats(min_value=rule.high, exclude_min=not rule.high_open, allow_nan=False))
    if rule.kind is tuple and rule.low is not None:
        options.append(st.lists(st.integers(max_value=int(rule.low) - 1), min_size=1, max_size=3))
    if rule.choices is not None:
        options.append(st.text(max_size=8).filter(lambda t: t not in rule.choices))
    return st.one_of(options)


def _accepts(rule: Rule, value: object) -> bool:
    try:
        rule.check(value, "x")
    except ConfigError:
        return False
    return True


def test_the_issue_examples_are_refused_by_name():
    cases = {
        "threads": -1, "momentum": -1.0, "seed": -1, "clip_value": -1.0, "margin": -1.0,
        "early_stop_patience": -1, "lr": math.nan, "mdr": math.nan, "weight_decay": math.nan,
    }
    for key, value in cases.items():
        with pytest.raises(ConfigError, match=f"^--{key.replace('_', '-')}: expected ") as info:
            resolve_config({key: value})
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"--lr: expected a finite number > 0, got inf"):
        resolve_config({"lr": math.inf})


@pytest.mark.parametrize(("content", "match"), [
    ({"epochs": "5"}, r"'epochs' in config file .*: expected an integer >= 1, got '5'"),
    ({"lr": "0.1"}, r"'lr' in config file .*: expected a finite number > 0, got '0.1'"),
    ({"epochs": 2.5}, r"'epochs' in config file .*: expected an integer >= 1, got 2.5"),
    ({"batch_size": None}, r"'batch_size' in config file .*got null \(it cannot be unset\)"),
    ({"augment": "yes"}, r"'augment' in config file .*: expected true or false"),
])
def test_config_files_are_typed_strictly(tmp_path, content, match):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=match):
        resolve_config({}, path)


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml_is_refused_by_name(tmp_path, suffix):
    path = tmp_path / f"c{suffix}"
    path.write_text("epochs: 5\n")
    with pytest.raises(ConfigError, match=r"YAML is not supported; use \.json or \.toml"):
        resolve_config({}, path)


def test_numpy_scalars_are_the_numbers_they_hold():
    cfg = resolve_config({"epochs": np.int64(3), "lr": np.float32(0.5), "augment": np.bool_(True)})
    assert (cfg.epochs, cfg.lr, cfg.augment) == (3, 0.5, True)
    assert type(cfg.epochs) is int and type(cfg.lr) is float and type(cfg.augment) is bool
    cfg.hash()  # JSON-serialisable


@given(data=st.data())
@PROPERTY
def test_every_setting_refuses_wrong_values(data):
    key = data.draw(st.sampled_from(sorted(RULES)))
    value = data.draw(bad_values(RULES[key]))
    assume(value is not None)  # None is "not given" among overrides (config files: below)
    with pytest.raises(ConfigError) as info:
        resolve_config({key: value})
    msg = str(info.value)
    assert "\n" not in msg and f"--{key.replace('_', '-')}" in msg and "expected" in msg


@given(data=st.data())
@PROPERTY
def test_config_files_refuse_wrong_values(data, tmp_path):
    key = data.draw(st.sampled_from(sorted(RULES)))
    value = data.draw(bad_values(RULES[key]))
    assume(not (isinstance(value, float) and not math.isfinite(value)))  # not JSON: a parse error
    path = tmp_path / "c.json"
    path.write_text(json.dumps({key: value}))
    with pytest.raises(ConfigError) as info:
        resolve_config({}, path)
    msg = str(info.value)
    assert "\n" not in msg and f"{key!r} in config file {path}" in msg


@contextmanager
def _in_empty_folder() -> Iterator[Path]:
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            yield Path(d)
        finally:
            os.chdir(old)


_FLAGS = {flag_name(k): k for k in flag_settings() if k not in _SWITCHES}
_FLAGS.update({"--seed": "seed", "--mdr": "mdr", "--nproc": "nproc"})
# Flags whose text has a rule to break (free strings such as --pretrained have none; lists are
# parsed by their own flag type).
# (Booleans are left out: most short texts are valid ones, true/false/yes/no/1/0; their
# parsing is tested in tests/cli/test_cli_settings.py.)
_FLAGS = {f: k for f, k in _FLAGS.items()
          if (RULES[k].kind is not str or RULES[k].choices) and RULES[k].kind not in (tuple, bool)}


@given(data=st.data())
@PROPERTY
def test_gdml_train_refuses_wrong_flags_in_one_line_and_writes_nothing(data, capsys):
    flag = data.draw(st.sampled_from(sorted(_FLAGS)))
    rule = RULES[_FLAGS[flag]]
    text = data.draw(st.one_of(
        bad_values(rule).filter(lambda v: isinstance(v, (int, float, str)) and v is not None).map(str),
        st.text(max_size=6)))
    parsed = {int: _int_or_none, float: _float_or_none}.get(rule.kind, lambda t: t)(text)
    assume((text.strip() == text and not text.startswith("-")) or parsed is not None)
    assume(parsed is None or not _accepts(rule, parsed))
    capsys.readouterr()  # hypothesis runs every example in one test: start each one clean
    with _in_empty_folder() as folder:
        rc = main(["train", "--dataset", "digits", "--preset", "smoke", flag, text])
        err = capsys.readouterr().err
        assert rc == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
        assert list(folder.iterdir()) == [], "nothing written"


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@given(data=st.data())
@PROPERTY
def test_the_estimator_refuses_wrong_options_before_training(data):
    from guided_dml import GuidedEmbedder

    reserved = {"method", "mdr", "embedding_dim", "seed", "preset", "dataset", "device", "progress",
                "backbone"}
    key = data.draw(st.sampled_from(sorted(set(RULES) - reserved)))
    value = data.draw(bad_values(RULES[key]))
    assume(value is not None)
    x, y = np.zeros((20, 8, 8), np.float32), np.arange(20) % 2
    with pytest.raises(ConfigError) as info:
        GuidedEmbedder(preset="smoke", options={key: value}).fit(x, y)
    assert f"options[{key!r}]" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("params", "match"), [
    ({"seed": -1}, r"^seed: expected an integer in \[0, 4294967295\], got -1"),
    ({"options": {"clip_value": "x"}}, r"^options\['clip_value'\]: expected a finite number > 0"),
    ({"lr": math.nan}, r"^lr: expected a finite number > 0, got nan"),
])
def test_the_estimator_names_its_parameters(params, match):
    from guided_dml import GuidedEmbedder

    with pytest.raises(ConfigError, match=match):
        GuidedEmbedder(preset="smoke", **params).fit(np.zeros((20, 8, 8), np.float32), np.arange(20) % 2)
