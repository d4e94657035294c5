"""The README's "Your own images" commands, word for word, on a folder of generated photos.

Only the fit plan's step counts are shrunk (the commands pass no tuning flag, so the plan sizes
the run: its full size is measured in docs/results.md, not here).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guided_dml.experiments import plan

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """The ``gdml`` command lines of the README's "Your own images" code block."""
    text = README.read_text()
    section = text[text.index("## Your own images"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    commands = []
    for line in block.group(1).splitlines():
        line = line.split("#")[0].strip()
        if line.startswith(".venv/bin/gdml "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_block_has_the_steps():
    names = [c[0] for c in readme_commands()]
    assert names[0] == "train" and {"plot", "search", "embed", "export", "index"} <= set(names)


def test_readme_walkthrough_word_for_word(gdml, tmp_path, monkeypatch, photo_tools):
    make_photos, draw = photo_tools
    pytest.importorskip("faiss")
    for name, value in (("MIN_STUDENT_STEPS", 16), ("MIN_EPOCHS", 2), ("MAX_EPOCHS", 2),
                        ("TEACHER_STEPS", 12), ("MAX_TEACHER_EPOCHS", 2)):
        monkeypatch.setattr(plan, name, value)
    monkeypatch.chdir(tmp_path)
    make_photos(tmp_path / "photos", per_class=70)  # 210 photos
    make_photos(tmp_path / "more_photos", per_class=4, seed=1)
    make_photos(tmp_path / "catalogue", per_class=5, seed=2)
    Image.fromarray(draw("cross", np.random.default_rng(7)), "L").save(tmp_path / "new.jpg")
    for args in readme_commands():
        if args[:2] == ["export", "runs/photos"] and "onnx" in args:
            pytest.importorskip("onnxscript")
        rc, out, err = gdml(*args)
        assert rc == 0, (args, err)
        if args[0] == "train":
            assert "fit plan for 168 samples" in err  # 210 photos, 20 % held out
            assert json.loads(out)["recall@1"] >= 0
        if args[0] == "search" and "--vote" in args:
            assert "vote: " in out
    for produced in ("runs/photos/map.png", "runs/photos/map.html", "more.csv", "more.png",
                     "runs/photos/model.torchscript.pt", "photos.faiss", "photos.faiss.json",
                     "photos.npz"):
        assert (tmp_path / produced).is_file(), produced


def test_readme_python_block_runs(tmp_path, monkeypatch, photo_tools):
    """The README's GuidedEmbedder block, as written, on generated images (X, y, X_new)."""
    _, draw = photo_tools
    for name, value in (("MIN_STUDENT_STEPS", 8), ("MIN_EPOCHS", 2), ("MAX_EPOCHS", 2),
                        ("TEACHER_STEPS", 12), ("MAX_TEACHER_EPOCHS", 2)):
        monkeypatch.setattr(plan, name, value)
    monkeypatch.chdir(tmp_path)
    text = README.read_text()
    start = text.index("In Python, `GuidedEmbedder`")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block is not None and "GuidedEmbedder(" in block.group(1)
    rng = np.random.default_rng(0)
    kinds = ["circle", "cross", "stripes"]
    y = np.repeat(kinds, 12)
    X = np.stack([draw(k, rng) for k in y])
    scope = {"X": X, "y": y, "X_new": X[:5]}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    assert scope["Z"].shape == (36, 2) and scope["Z_new"].shape == (5, 2)
    assert (tmp_path / "photos.pt").is_file() and scope["best"]["emb__n_components"] in (2, 8)
