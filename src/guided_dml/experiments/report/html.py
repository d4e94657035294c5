"""The HTML page: ``report.html``, every table and figure on one self-contained page.

No external resources: the figures are inlined as base64 data URIs, in the places their
:data:`~.figures.FIGURES` entries name.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import figures as _figures
from .names import dataset_name
from .paper import PAPER_RUNS
from .records import METRICS, _float
from .stats import _datasets
from .tables import (
    _CONVERGED_NOTE,
    _PAIRED_NOTE,
    _REFERENCES_NOTE,
    _fmt,
    _fmt_seconds,
    _imbalance_tables,
    _main_table_cells,
    _paired_table,
    _shift_tables,
    _table_rows,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1500px;
margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0 18px;font-size:0.92em}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f4f4f4;border-bottom:2px solid #bbb}
td:first-child,th:first-child{text-align:left}
tr.paper td{color:#777;font-style:italic}tr.reference td{color:#35679a;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}
.note{color:#555;font-size:0.92em}details{margin:12px 0}
"""


def _html_table(head: Sequence[str], body: Sequence[Sequence[str]],
                bold: Sequence[Sequence[bool]] | None = None,
                row_classes: Sequence[str] | None = None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r, row in enumerate(body):
        flags = bold[r] if bold else [False] * len(row)
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(f"<td><b>{html.escape(t)}</b></td>" if f and t != "n/a"
                        else f"<td>{html.escape(t)}</td>" for t, f in zip(row, flags, strict=True))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure_imgs(pngs: dict[str, bytes], place: str, dataset: str | None = None) -> list[str]:
    """The ``<img>`` of every figure of :data:`~.figures.FIGURES` shown at ``place`` (of
    ``dataset`` for a per-data-set place) that was drawn."""
    return [_img(pngs.get(f.file(dataset)), f.alt_text(dataset))
            for f in _figures.FIGURES if f.place == place]


def render_html(out_dir: Path, runs: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                srows: Sequence[dict[str, Any]], figures: dict[str, bytes],
                unfinished: int, confidence: float = 0.95,
                prows: Sequence[dict[str, Any]] = (), include: Sequence[str | Path] = (),
                references: Sequence[dict[str, Any]] = ()) -> str:
    """``report.html``: one page, no external resources (figures as base64 data URIs)."""
    pct = f"{confidence * 100:g} %"
    n_inc = sum(1 for r in runs if "_shift_rows" in r)
    inc_note = (f" ({n_inc} of them included from "
                + ", ".join(f"<code>{html.escape(str(p))}</code>" for p in include) + ")"
                if n_inc else "")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>guided-dml benchmark report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Guided Deep Metric Learning: benchmark report</h1>",
             f'<p class="note">{len(runs)} finished runs in <code>{html.escape(str(out_dir))}</code>'
             + inc_note
             + (f"; {unfinished} run folder(s) without <code>metrics.json</code> (unfinished or "
                "failed) left out" if unfinished else "")
             + f". Generated {html.escape(time.strftime('%Y-%m-%d %H:%M'))}.</p>",
             f'<p class="note">Mean ± {pct} Student-t confidence interval over seeds, in percent; '
             "best of our runs in <b>bold</b>; grey rows: the paper's published numbers "
             f"(mean ± 95 % CI over {PAPER_RUNS} runs). R@1: macro recall of the 1-nearest-"
             "neighbour classifier against the training set; F1: macro F1; NMI: k-means on the "
             "test embeddings; RP and MAP@R: Musgrave et al. 2020. "
             + html.escape(_CONVERGED_NOTE)
             + (" " + html.escape(_REFERENCES_NOTE) if references else "") + "</p>"]
    parts += _figure_imgs(figures, "top")
    for ds in _datasets(summary):
        name = dataset_name(ds)
        rows = _table_rows(summary, ds, references)
        head, body, bold = _main_table_cells(rows)
        parts += [f"<h2>{html.escape(name)}</h2>",
                  _html_table(head, body, bold,
                              ["" if r["kind"] == "ours" else r["kind"] for r in rows]),
                  *_figure_imgs(figures, "dataset", ds)]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, h2, b2, f2 = tables
            parts += [f"<h3>{html.escape(name)} under covariate shift</h3>",
                      '<p class="note">Corruptions after Hendrycks &amp; Dietterich (ICLR 2019) '
                      "and MNIST-C (Mu &amp; Gilmer 2019), applied to the test images; the "
                      "reference stays clean. Recall@1 (%) averaged over corruptions and seeds; "
                      "robustness AUC: normalised area under Recall@1 against severity 0–5 "
                      f"(mean ± {pct} CI over seeds).</p>",
                      _html_table(h1, b1, f1),
                      *_figure_imgs(figures, "shift", ds),
                      "<details><summary>Recall@1 (%) per corruption and severity</summary>",
                      _html_table(h2, b2, f2), "</details>"]
        paired = _paired_table(prows, ds)
        if paired:
            parts += [f"<h3>{html.escape(name)}: paired comparisons (same seeds)</h3>",
                      f'<p class="note">{html.escape(_PAIRED_NOTE.format(pct=pct))}</p>',
                      _html_table(*paired)]
    for base, head, body, bold in _imbalance_tables(summary):
        parts += [f"<h2>{html.escape(dataset_name(base))}: sub-population shift</h2>",
                  '<p class="note">Recall@1 (%) on the usual test set after training on the '
                  "balanced or on a long-tailed training set (class i keeps "
                  "n·ratio<sup>−i/(C−1)</sup> samples); Δ: change in percentage points.</p>",
                  _html_table(head, body, bold)]
    cols = ["dataset", "method", "seed", *METRICS, "wall_seconds"]
    body = [[str(r["dataset"]), str(r["method"]), str(r["seed"]),
             *[_fmt(100 * _float(r.get(m)), digits=2) for m in METRICS],
             _fmt_seconds(_float(r.get("wall_seconds")))] for r in runs]
    parts += ["<h2>All runs</h2>", "<details><summary>one row per run (metrics in %)</summary>",
              _html_table(cols, body), "</details>", "</body></html>"]
    return "\n".join(p for p in parts if p)
