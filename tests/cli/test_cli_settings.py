"""The shared flags of `train` and `benchmark` come from RunConfig (one source per setting)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from guided_dml.cli import _overrides, build_parser
from guided_dml.experiments.config import RunConfig, flag_name, flag_settings, setting_rules

# RunConfig fields that each command defines itself (their meaning differs per command).
COMMAND_OWN = {"method", "dataset", "seed", "mdr", "progress", "nproc"}


def _subparser(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


def test_every_setting_is_a_flag_of_train_and_benchmark() -> None:
    settings = flag_settings()
    assert set(settings) | COMMAND_OWN == {f.name for f in fields(RunConfig)}
    assert all(len(h) > 5 for h in settings.values()), "every setting has a help text"
    for command in ("train", "benchmark"):
        known = {opt for a in _subparser(command)._actions for opt in a.option_strings}
        assert {flag_name(n) for n in settings} <= known, command


def _sample(name: str, rule) -> tuple[str, object]:
    """A valid command-line text for setting ``name`` and the value it must parse to."""
    if rule.choices:
        return rule.choices[-1], rule.choices[-1]
    if rule.kind is bool:
        return "true", True
    if rule.kind is tuple:
        return "3,5", (3, 5)
    if rule.kind is int:
        return "3", 3
    if rule.kind is float:
        return "0.25", 0.25
    return "x", "x"


@pytest.mark.parametrize("command", ["train", "benchmark"])
def test_each_flag_reaches_its_setting(command: str) -> None:
    rules = setting_rules()
    argv, expected = [command], {}
    for name in flag_settings():
        if name == "skip_bad":
            argv.append("--skip-bad")
            expected[name] = True
            continue
        text, value = _sample(name, rules[name])
        argv += [flag_name(name), text]
        expected[name] = value
    args = build_parser().parse_args(argv)
    assert _overrides(args) == expected
    unset = _overrides(build_parser().parse_args([command]))
    assert set(unset.values()) == {None}  # not given: the preset decides


def test_the_parser_loads_no_torch() -> None:
    """`gdml --help` and a mistyped flag answer at once: building the parser (which reads the
    RunConfig fields) imports neither torch nor scikit-learn."""
    import subprocess
    import sys

    code = ("import sys, guided_dml.cli as c; c.build_parser().parse_args(['train', '--lr', '0.1']);"
            "print(sorted(m for m in ('torch', 'sklearn', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
