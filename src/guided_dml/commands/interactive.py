"""A 2-D map as one self-contained, interactive HTML page (no external scripts, styles or fonts).

The page draws the points on a canvas with plain JavaScript: hovering a point shows its image
thumbnail (a small base64 PNG embedded in the page), class label and file name; the wheel zooms,
dragging pans, a double click resets the view, and clicking a class in the legend hides or shows
it. Like :mod:`guided_dml.plotting`, this module reads arrays only.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import to_hex
from PIL import Image

from ..plotting import class_colors, to_2d

# Longest side of an embedded thumbnail; colour ones get a 64-colour palette. Measured on
# CIFAR-10 and 128-px photos: about 1-1.5 KB of PNG each (2-6 KB at 64 px in full colour), so a
# page of 3 000 points stays near 5 MB.
THUMBNAIL_SIDE = 48
THUMBNAIL_COLOURS = 64


def thumbnail_uri(image: np.ndarray | Image.Image, max_side: int = THUMBNAIL_SIDE) -> str:
    """A ``data:image/png;base64,...`` URI of ``image`` (uint8 C×H×W, H×W×C or H×W, or PIL).

    Images larger than ``max_side`` are shrunk (aspect kept); smaller ones stay as they are and
    the page enlarges them without smoothing. Colour images are stored with a 64-colour palette.
    """
    if isinstance(image, Image.Image):
        img = image
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
            arr = arr.transpose(1, 2, 0)  # C×H×W -> H×W×C
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if img.mode in ("RGB", "RGBA"):
        img = img.quantize(THUMBNAIL_COLOURS, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _script_json(obj: object) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` can appear)."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embedding_html(
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    thumbnails: Sequence[str | None] | None = None,
    names: Sequence[str] | None = None,
    title: str = "2-D map",
    total: int | None = None,
    note: str | None = None,
) -> str:
    """The page for ``embeddings`` (N, d): the map of :func:`~guided_dml.plotting.to_2d`.

    Args:
        embeddings: (N, d) points; d > 2 is drawn on its first two principal axes.
        labels: (N,) class indices into ``classes``.
        classes: class names.
        thumbnails: per point, a ``data:`` URI from :func:`thumbnail_uri` or None.
        names: per point, a file name shown on hover, or None.
        title: page heading.
        total: the number of points before subsampling, stated in the page when larger than N.
        note: an extra line under the heading (e.g. why thumbnails are missing).
    """
    xy = to_2d(np.asarray(embeddings))
    labels = np.asarray(labels, dtype=np.int64)
    n = len(xy)
    counts = np.bincount(labels, minlength=len(classes)) if n else np.zeros(len(classes), int)
    data = {
        # 6 significant digits: plenty for a screen, and a third of the size of full floats.
        "x": [float(f"{v:.6g}") for v in xy[:, 0]],
        "y": [float(f"{v:.6g}") for v in xy[:, 1]],
        "c": labels.tolist(),
        "classes": [str(c) for c in classes],
        "colors": [to_hex(c) for c in class_colors(len(classes))],
        "counts": counts.tolist(),
        "thumbs": list(thumbnails) if thumbnails is not None else None,
        "names": [str(s) for s in names] if names is not None else None,
    }
    shown = f"{n:,} points" + (f" (a random {n:,} of {total:,})" if total and total > n else "")
    sub = (f"{shown} · {len(classes)} classes · hover a point for its "
           f"{'image and ' if thumbnails is not None else ''}label; scroll to zoom, drag to pan, "
           "double-click to reset; click a class to hide it")
    return _PAGE.format(
        title=html.escape(title),
        sub=html.escape(sub),
        note=f'<p class="note">{html.escape(note)}</p>' if note else "",
        data=_script_json(data),
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="guided-dml">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }}
header {{ padding: 10px 16px 4px; }}
h1 {{ font-size: 18px; margin: 0; }}
.sub, .note {{ margin: 2px 0; color: #666; font-size: 12px; }}
main {{ display: flex; gap: 12px; padding: 8px 16px 16px; height: calc(100vh - 90px); min-height: 320px; }}
#plot {{ position: relative; flex: 1; border: 1px solid #ddd; border-radius: 4px; cursor: crosshair; }}
#map {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
#tip {{ position: absolute; pointer-events: none; background: #fff; border: 1px solid #999;
        border-radius: 4px; padding: 6px; box-shadow: 0 2px 8px rgba(0,0,0,.2); font-size: 12px;
        max-width: 220px; word-break: break-all; }}
#tip img {{ display: block; width: 96px; height: auto; image-rendering: pixelated; margin-bottom: 4px; }}
#legend {{ list-style: none; margin: 0; padding: 0; width: 190px; overflow-y: auto; font-size: 12px; }}
#legend li {{ cursor: pointer; padding: 2px 4px; border-radius: 3px; user-select: none; }}
#legend li:hover {{ background: #f0f0f0; }}
#legend li.off {{ opacity: .35; }}
#legend span.sw {{ display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }}
</style>
</head>
<body>
<header><h1>{title}</h1><p class="sub">{sub}</p>{note}</header>
<main>
<div id="plot"><canvas id="map"></canvas><div id="tip" hidden></div></div>
<ul id="legend"></ul>
</main>
<script id="gdml-data" type="application/json">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""

# Plain JavaScript, no libraries: a canvas scatter with hover, zoom, pan and a class legend.
_SCRIPT = r"""
(() => {
  "use strict";
  const D = JSON.parse(document.getElementById("gdml-data").textContent);
  const box = document.getElementById("plot"), cv = document.getElementById("map");
  const ctx = cv.getContext("2d"), tip = document.getElementById("tip");
  const n = D.x.length, hidden = new Set();
  const radius = n > 2000 ? 2.5 : n > 500 ? 3.5 : 5;
  let W = 0, H = 0, view = {cx: 0, cy: 0, s: 1}, hover = -1, drag = null;

  function fit() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, D.x[i]); x1 = Math.max(x1, D.x[i]);
      y0 = Math.min(y0, D.y[i]); y1 = Math.max(y1, D.y[i]);
    }
    if (!n) { x0 = y0 = -1; x1 = y1 = 1; }
    const dx = Math.max(x1 - x0, 1e-12), dy = Math.max(y1 - y0, 1e-12);
    view = {cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, s: 0.9 * Math.min(W / dx, H / dy)};
  }
  const sx = i => W / 2 + (D.x[i] - view.cx) * view.s;
  const sy = i => H / 2 - (D.y[i] - view.cy) * view.s;

  function draw() {
    ctx.clearRect(0, 0, W, H);
    for (let i = 0; i < n; i++) {
      if (hidden.has(D.c[i])) continue;
      ctx.fillStyle = D.colors[D.c[i]];
      ctx.globalAlpha = 0.75;
      ctx.beginPath(); ctx.arc(sx(i), sy(i), radius, 0, 2 * Math.PI); ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (hover >= 0) {
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(sx(hover), sy(hover), radius + 3, 0, 2 * Math.PI); ctx.stroke();
    }
  }

  function resize() {
    const r = box.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const first = W === 0;
    W = r.width; H = r.height;
    cv.width = Math.round(W * dpr); cv.height = Math.round(H * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (first) fit();
    draw();
  }

  function nearest(mx, my) {
    let best = -1, bestD = 100;  // within 10 px
    for (let i = 0; i < n; i++) {
      if (hidden.has(D.c[i])) continue;
      const d = (sx(i) - mx) ** 2 + (sy(i) - my) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  function showTip(i, mx, my) {
    tip.replaceChildren();
    if (D.thumbs && D.thumbs[i]) {
      const img = document.createElement("img");
      img.src = D.thumbs[i]; img.alt = "";
      tip.appendChild(img);
    }
    const label = document.createElement("div");
    label.textContent = D.classes[D.c[i]];
    label.style.fontWeight = "bold";
    tip.appendChild(label);
    if (D.names && D.names[i]) {
      const name = document.createElement("div");
      name.textContent = D.names[i];
      tip.appendChild(name);
    }
    tip.hidden = false;
    const tw = tip.offsetWidth, th = tip.offsetHeight;
    tip.style.left = (mx + 14 + tw > W ? mx - 14 - tw : mx + 14) + "px";
    tip.style.top = Math.max(0, Math.min(my + 14, H - th)) + "px";
  }

  function pos(e) { const r = cv.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }

  cv.addEventListener("mousemove", e => {
    const [mx, my] = pos(e);
    if (drag) {
      view.cx = drag.cx - (mx - drag.mx) / view.s; view.cy = drag.cy + (my - drag.my) / view.s;
      draw(); return;
    }
    const i = nearest(mx, my);
    if (i !== hover) { hover = i; draw(); }
    if (i >= 0) showTip(i, mx, my); else tip.hidden = true;
  });
  cv.addEventListener("mouseleave", () => { hover = -1; drag = null; tip.hidden = true; draw(); });
  cv.addEventListener("mousedown", e => {
    const [mx, my] = pos(e); drag = {mx, my, cx: view.cx, cy: view.cy}; tip.hidden = true;
  });
  window.addEventListener("mouseup", () => { drag = null; });
  cv.addEventListener("wheel", e => {
    e.preventDefault();
    const [mx, my] = pos(e), f = Math.exp(-e.deltaY * 0.0015);
    // Keep the data point under the cursor where it is.
    const px = view.cx + (mx - W / 2) / view.s, py = view.cy - (my - H / 2) / view.s;
    view.s *= f;
    view.cx = px - (mx - W / 2) / view.s; view.cy = py + (my - H / 2) / view.s;
    draw();
  }, {passive: false});
  cv.addEventListener("dblclick", () => { fit(); draw(); });

  const legend = document.getElementById("legend");
  D.classes.forEach((name, k) => {
    const li = document.createElement("li"), sw = document.createElement("span");
    sw.className = "sw"; sw.style.background = D.colors[k];
    li.appendChild(sw);
    li.appendChild(document.createTextNode(name + " (" + D.counts[k] + ")"));
    li.addEventListener("click", () => {
      if (hidden.has(k)) hidden.delete(k); else hidden.add(k);
      li.classList.toggle("off", hidden.has(k));
      hover = -1; tip.hidden = true; draw();
    });
    legend.appendChild(li);
  });

  window.addEventListener("resize", resize);
  resize();
})();
"""
