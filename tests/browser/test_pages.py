"""The report and the interactive map, opened in a real browser (headless Chromium).

No console error, every figure loads, hovering a point shows its label and thumbnail, and a
click on the legend hides a class. Skipped, with the reason, where Chromium or Playwright is
missing; ``.ci/run`` installs both and sets ``GDML_REQUIRE_BROWSER=1``, under which a missing
browser fails instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from guided_dml.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _need(ok: bool, reason: str) -> None:
    if not ok:
        if os.environ.get("GDML_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (GDML_REQUIRE_BROWSER=1: CI must have it)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "the playwright package is not installed")
    _need(CHROMIUM is not None, "no chromium on this machine (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-method smoke benchmark's report.html, and the map.html of its G-DML run."""
    out = tmp_path_factory.mktemp("bench")
    assert main(["benchmark", "--preset", "smoke", "--threads", "1", "--seeds", "1",
                 "--methods", "triplet", "gdml", "--out", str(out)]) == 0
    run = out / "runs" / "digits" / "gdml" / "seed-0"
    assert main(["plot", str(run)]) == 0
    return {"report": out / "report.html", "map": run / "map.html"}


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1100, "height": 750})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url[:80]}"))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors


def test_the_report_loads_every_figure_without_errors(browser, pages):
    page, errors = _open(browser, pages["report"])
    images = page.evaluate("""() => [...document.images].map(
        i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))""")
    assert len(images) >= 3, images
    assert all(i["ok"] for i in images), [i["alt"] for i in images if not i["ok"]]
    assert page.locator("table").count() >= 1
    assert errors == []
    page.close()


# The page's own mapping from data to screen (interactive.py: fit, sx, sy), and the point that
# lies farthest from every other one, so that hovering it can only find it.
_ISOLATED_POINT = """() => {
  const D = JSON.parse(document.getElementById("gdml-data").textContent);
  const r = document.getElementById("map").getBoundingClientRect(), n = D.x.length;
  const W = r.width, H = r.height;
  const x0 = Math.min(...D.x), x1 = Math.max(...D.x), y0 = Math.min(...D.y), y1 = Math.max(...D.y);
  const s = 0.9 * Math.min(W / Math.max(x1 - x0, 1e-12), H / Math.max(y1 - y0, 1e-12));
  const X = i => W / 2 + (D.x[i] - (x0 + x1) / 2) * s, Y = i => H / 2 - (D.y[i] - (y0 + y1) / 2) * s;
  let best = -1, bestD = -1;
  for (let i = 0; i < n; i++) {
    let m = Infinity;
    for (let j = 0; j < n; j++) if (j !== i) m = Math.min(m, Math.hypot(X(i) - X(j), Y(i) - Y(j)));
    if (m > bestD) { bestD = m; best = i; }
  }
  return {i: best, gap: bestD, x: r.left + X(best), y: r.top + Y(best), cx: X(best), cy: Y(best),
          label: D.classes[D.c[best]], cls: D.c[best], thumb: !!(D.thumbs && D.thumbs[best])};
}"""

_ALPHA_AT = """([x, y]) => {
  const cv = document.getElementById("map"), dpr = window.devicePixelRatio || 1;
  return cv.getContext("2d").getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1).data[3];
}"""


def test_the_map_shows_label_and_thumbnail_on_hover_and_the_legend_hides_a_class(browser, pages):
    page, errors = _open(browser, pages["map"])
    p = page.evaluate(_ISOLATED_POINT)
    assert p["gap"] > 12, "a point far enough from the others to hover it alone"
    assert p["thumb"], "digits runs have thumbnails"
    tip = page.locator("#tip")
    assert tip.is_hidden()
    page.mouse.move(p["x"], p["y"])
    assert tip.is_visible()
    assert p["label"] in tip.inner_text()
    assert page.evaluate("() => { const i = document.querySelector('#tip img');"
                         " return !!i && i.complete && i.naturalWidth > 0; }")
    assert page.evaluate(_ALPHA_AT, [p["cx"], p["cy"]]) > 0, "the point is drawn"

    page.mouse.move(5, 5)
    page.locator("#legend li").nth(p["cls"]).click()
    assert "off" in (page.locator("#legend li").nth(p["cls"]).get_attribute("class") or "")
    assert page.evaluate(_ALPHA_AT, [p["cx"], p["cy"]]) == 0, "its class is hidden"
    page.mouse.move(p["x"], p["y"])
    assert tip.is_hidden(), "a hidden point has no tip"
    page.locator("#legend li").nth(p["cls"]).click()  # and back
    assert page.evaluate(_ALPHA_AT, [p["cx"], p["cy"]]) > 0
    assert errors == []
    page.close()
