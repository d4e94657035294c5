"""`gdml plot`: PNG + self-contained interactive HTML from a run folder or an embeddings file."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from guided_dml import atomic
from guided_dml.commands.interactive import embedding_html, thumbnail_uri


def page_data(html: str) -> dict:
    m = re.search(r'<script id="gdml-data" type="application/json">(.*?)</script>', html, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


def assert_self_contained(html: str) -> None:
    # Every src/href is inline data; nothing is fetched (no CDN, no external script or font).
    assert not re.findall(r'(?:src|href)\s*=\s*"(?!data:)', html)
    assert "http://" not in html and "https://" not in html
    assert "<script src" not in html and "<link" not in html


def test_run_folder_png_and_html_with_thumbnails(gdml, run_dir, tmp_path):
    out = tmp_path / "maps" / "photos"
    rc, _, err = gdml("plot", run_dir, "--out", out)
    assert rc == 0, err
    png, html_file = out.with_suffix(".png"), out.with_suffix(".html")
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 400
    html = html_file.read_text()
    assert_self_contained(html)
    data = page_data(html)
    test = np.load(run_dir / "embeddings.npz")
    n = len(test["test_labels"])
    assert len(data["x"]) == len(data["y"]) == len(data["c"]) == len(data["thumbs"]) == n
    assert data["classes"] == ["circle", "cross", "stripes"]
    assert all(t.startswith("data:image/png;base64,") for t in data["thumbs"])
    assert data["names"][0].endswith(".png")  # the test image's file, shown on hover
    np.testing.assert_allclose(data["x"], test["test_embeddings"][:, 0], rtol=1e-5, atol=1e-6)
    assert f"and {out.with_suffix('.html')} ({n} points, {n} thumbnails)" in err


def test_default_output_is_in_the_run_folder(gdml, error, run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert gdml("plot", run)[0] == 0
    assert (run / "map.png").is_file() and (run / "map.html").is_file()
    # Existing outputs are refused, then replaced with --overwrite.
    before = (run / "map.html").read_bytes()
    error(gdml("plot", run), "map.png already exists", "--overwrite")
    assert (run / "map.html").read_bytes() == before
    assert gdml("plot", run, "--overwrite", "--max-points", "5")[0] == 0
    assert len(page_data((run / "map.html").read_text())["x"]) == 5


def test_csv_from_embed_gets_thumbnails_from_its_files(gdml, run_dir, photos, tmp_path):
    csv_file = tmp_path / "emb.csv"
    assert gdml("embed", run_dir, photos, "--out", csv_file)[0] == 0
    rc, _, err = gdml("plot", csv_file, "--max-points", "20")
    assert rc == 0, err
    data = page_data((tmp_path / "emb.html").read_text())
    assert len(data["x"]) == 20 and data["classes"] == ["circle", "cross", "stripes"]
    assert all(t and t.startswith("data:image/png") for t in data["thumbs"])
    assert "(a random 20 of 72)" in (tmp_path / "emb.html").read_text()
    assert (tmp_path / "emb.png").stat().st_size > 1000


def test_npy_and_npz_sources(gdml, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.normal(size=(50, 4)).astype(np.float32))  # d = 4: PCA to 2-D
    assert gdml("plot", tmp_path / "e.npy")[0] == 0
    data = page_data((tmp_path / "e.html").read_text())
    assert data["classes"] == ["all points"] and data["thumbs"] is None
    np.savez(tmp_path / "f.npz", embeddings=rng.normal(size=(30, 2)), labels=np.repeat(["a", "b", "c"], 10))
    assert gdml("plot", tmp_path / "f.npz")[0] == 0
    assert page_data((tmp_path / "f.html").read_text())["classes"] == ["a", "b", "c"]


def test_run_whose_data_are_gone_still_plots_without_thumbnails(gdml, run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["dataset"] = str(tmp_path / "moved-away/")
    (run / "config.json").write_text(json.dumps(cfg))
    rc, _, err = gdml("plot", run)
    assert rc == 0 and "gdml: note: no thumbnails" in err
    assert page_data((run / "map.html").read_text())["thumbs"] is None


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(lambda d: d / "nope.csv", ["does not exist"], id="missing"),
        pytest.param(lambda d: _write(d / "x.txt", b"1,2"), ["give a run folder or a .csv"], id="suffix"),
        pytest.param(lambda d: _npy(d, np.array([[0.0, np.nan], [1.0, 2.0]])), ["NaN or infinite"], id="nan"),
        pytest.param(lambda d: _npy(d, np.array([[0.0, np.inf], [1.0, 2.0]])), ["NaN or infinite"], id="inf"),
        pytest.param(lambda d: _npy(d, np.zeros(5)), ["N×d numeric embeddings"], id="1-d"),
        pytest.param(lambda d: _write(d / "x.npy", b"junk"), ["cannot read", ".npy"], id="unreadable-npy"),
        pytest.param(lambda d: _write(d / "x.csv", b"a,b\n1,2\n"), ["no file and e0"], id="foreign-csv"),
        pytest.param(lambda d: _write(d / "x.csv", b"file,label,e0\nx,a,oops\n"), ["malformed row"],
                     id="bad-csv-row"),
        pytest.param(lambda d: _mkdir(d / "notarun"), ["not a finished run folder"], id="not-a-run"),
    ],
)
def test_bad_sources(gdml, error, tmp_path, make, fragments):
    source = make(tmp_path)
    before = set(tmp_path.rglob("*"))
    error(gdml("plot", source, "--out", tmp_path / "map"), *fragments)
    assert set(tmp_path.rglob("*")) == before, "nothing written"


def test_full_disk_leaves_neither_file(gdml, error, tmp_path, monkeypatch):
    np.save(tmp_path / "e.npy", np.zeros((4, 2)))
    calls = []

    def fsync(fd: int) -> None:  # the PNG is written, the HTML page hits the full disk
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    error(gdml("plot", tmp_path / "e.npy"), "no space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy"]


def test_page_escapes_class_names_and_titles():
    page = embedding_html(np.zeros((2, 2)), np.array([0, 1]), ["</script><b>", "a&b"], title="<x>")
    assert "</script><b>" not in page.split('type="application/json">')[1].split("</script>")[0]
    assert page_data(page)["classes"] == ["</script><b>", "a&b"]
    assert "<title>&lt;x&gt;</title>" in page


def test_thumbnails_are_small_pngs():
    big = np.random.default_rng(0).integers(0, 256, (3, 200, 100), dtype=np.uint8)
    with _decode(thumbnail_uri(big)) as img:
        assert img.size == (24, 48) and img.mode == "P"  # shrunk, 64-colour palette
        assert len(img.getpalette()) // 3 <= 64
    with _decode(thumbnail_uri(np.zeros((8, 8), np.uint8))) as img:
        assert img.size == (8, 8)  # small images stay as they are; the page enlarges them


# A minimal DOM in Node.js: enough to run the page's script, hover a point and read the tooltip.
_NODE_HARNESS = r"""
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const data = html.match(/<script id="gdml-data" type="application\/json">([\s\S]*?)<\/script>/)[1];
const script = html.match(/<script>\n([\s\S]*?)<\/script>/)[1];
function el(tag) {
  const e = {tag, children: [], handlers: {}, style: {}, hidden: false, textContent: "",
    classList: {toggle() {}}, offsetWidth: 100, offsetHeight: 80,
    appendChild(c) { this.children.push(c); return c; },
    replaceChildren() { this.children = []; },
    addEventListener(t, f) { this.handlers[t] = f; },
    getBoundingClientRect() { return {left: 0, top: 0, width: 600, height: 400}; }};
  return e;
}
const drawn = [];
const canvas = el("canvas");
canvas.getContext = () => ({setTransform() {}, clearRect() {}, beginPath() {}, fill() {}, stroke() {},
  arc(x, y) { drawn.push([x, y]); }, set fillStyle(v) {}, set globalAlpha(v) {}, set strokeStyle(v) {},
  set lineWidth(v) {}});
const els = {"gdml-data": {textContent: data}, plot: el("div"), map: canvas, tip: el("div"),
             legend: el("ul")};
global.document = {getElementById: id => els[id], createElement: el, createTextNode: t => ({text: t})};
global.window = {devicePixelRatio: 1, addEventListener() {}};
eval(script);
const D = JSON.parse(data);
const n = D.x.length, [x, y] = drawn[0];   // the first point drawn is point 0
canvas.handlers.mousemove({clientX: x, clientY: y});
const tip = els.tip;
console.log(JSON.stringify({
  points: n, drawn: drawn.length, hidden: tip.hidden,
  img: tip.children[0].src === D.thumbs[0],
  label: tip.children[1].textContent, expected: D.classes[D.c[0]],
  name: tip.children[2] ? tip.children[2].textContent : null, legend: els.legend.children.length,
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_page_script_runs_and_hover_shows_thumbnail_and_label(gdml, run_dir, tmp_path):
    assert gdml("plot", run_dir, "--out", tmp_path / "map")[0] == 0
    harness = tmp_path / "harness.js"
    harness.write_text(_NODE_HARNESS)
    res = subprocess.run(["node", str(harness), str(tmp_path / "map.html")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["drawn"] >= got["points"] > 0
    assert got["hidden"] is False and got["img"] is True
    assert got["label"] == got["expected"] and got["name"].endswith(".png")
    assert got["legend"] == 3


def _decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def _write(path, data):
    path.write_bytes(data)
    return path


def _npy(d, arr):
    np.save(d / "x.npy", arr)
    return d / "x.npy"


def _mkdir(path):
    path.mkdir()
    return path
