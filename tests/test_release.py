"""The package as a user gets it: sdist and wheel built, the wheel installed (not editable) in a
fresh virtual environment, and `gdml benchmark --preset smoke` run from there.

Minutes, not seconds (torch is installed into the new environment), so it is marked
``release``: the default run leaves it out (pyproject addopts), ``.ci/run`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # as scripts/setup.sh: the CPU wheel of this machine's wheel cache

pytestmark = pytest.mark.release


def _run(*cmd: object, **kw: object) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def test_the_wheel_installs_in_a_fresh_environment_and_runs_a_smoke_benchmark(tmp_path):
    import guided_dml

    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, REPO, timeout=600)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name.startswith(f"guided_dml-{guided_dml.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "guided_dml/py.typed" in names and "guided_dml/__main__.py" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("/LICENSE") for m in members) and any(m.endswith("py.typed") for m in members)

    env = tmp_path / "env"
    venv.create(env, with_pip=True)  # clean: no system site-packages, nothing of .venv
    py = env / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", TORCH, timeout=900)
    _run(py, "-m", "pip", "install", "-q", wheel, timeout=900)

    work = tmp_path / "work"  # not the repository: src/ must not be importable from here
    work.mkdir()
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    environ.pop("PYTHONPATH", None)
    where = _run(py, "-c", "import guided_dml; print(guided_dml.__file__)", cwd=work, env=environ)
    assert str(env) in where, "the installed wheel, not the working tree"
    assert guided_dml.__version__ in _run(env / "bin" / "gdml", "--version", cwd=work, env=environ)
    assert guided_dml.__version__ in _run(py, "-m", "guided_dml", "--version", cwd=work, env=environ)
    out = _run(env / "bin" / "gdml", "benchmark", "--preset", "smoke", "--threads", "1", "--seeds", "1",
               "--out", work / "bench", cwd=work, env=environ, timeout=900)
    assert "5 runs" in out and "0 failed" in out
    assert (work / "bench" / "report.html").is_file() and (work / "bench" / "runs.csv").is_file()
