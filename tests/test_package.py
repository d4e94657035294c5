"""Release metadata: one version, `gdml --version`, `python -m guided_dml`, LICENSE, py.typed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import guided_dml
from guided_dml.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_the_version_is_written_in_one_place():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert guided_dml.__version__.count(".") >= 2


def test_gdml_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gdml (guided-dml) {guided_dml.__version__}"


def test_python_m_guided_dml():
    out = subprocess.run([sys.executable, "-m", "guided_dml", "--version"], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    assert guided_dml.__version__ in out


def test_license_and_type_hints_ship():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert (Path(guided_dml.__file__).parent / "py.typed").is_file()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["keywords"] and project["classifiers"]
    low = project["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {low}" in project["classifiers"]
