"""Markdown and LaTeX tables: the paper's table per data set, shift, paired and sub-population tables.

Each table is built once as text cells with bold flags (``_table_rows``, ``_shift_tables``,
``_paired_table``, ``_imbalance_tables``) and written as Markdown (:func:`render_markdown`,
``summary.md``), as booktabs LaTeX (:func:`render_latex`, ``summary.tex``) and as HTML
(:mod:`.html`). Numbers are in percent with two decimals, ``mean ± CI``; ``n/a`` where there is
no number (one seed has no CI) and ``–`` where there is nothing to show (a cell the paper did not
publish, a time it did not report).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..shift import CLEAN
from .names import REFERENCE_NAMES, dataset_name, method_key, method_name, split_imbalance
from .paper import PAPER_RESULTS, PAPER_RUNS, paper_cell
from .records import _float
from .stats import PAIRED_METRICS, _datasets, _shift_curves

#: The paper's table columns, in its order (its "MAP@1" column is MAP@R).
TABLE_METRICS = ("recall@1", "f1", "nmi", "r_precision", "map@r")
TABLE_HEADERS = ("R@1", "F1", "NMI", "RP", "MAP@R")
#: The column headers of :data:`~.stats.PAIRED_METRICS`, in its order.
PAIRED_HEADERS = ("R@1", "MAP@R", "Robustness AUC")

# The notes under the tables (summary.md and report.html say the same).
_CONVERGED_NOTE = ("Converged: runs whose validation score gained less than half a point over "
                   "the last third of their epochs.")
_REFERENCES_NOTE = ("Rows marked (reference): what a user gets without a learned map, scored "
                    "by the same evaluation on the same test set (one seed; 1-NN on the raw "
                    "pixels, supervised UMAP 2-D fitted on the training set with its labels, "
                    "test set transformed).")
_PAIRED_NOTE = ("Seed by seed: a method minus its reference trained with the same seed (same "
                "split, initial weights and batch order), in percentage points; mean ± {pct} "
                "Student-t CI of the differences (a paired interval: it excludes 0 when one is "
                "better on every seed by a steady margin, even where the CIs of the two means "
                "above overlap). Wins: seeds where the method has the higher Recall@1.")


# ---------------------------------------------------------------------------- formatting


def _fmt(mean: float, ci: float | None = None, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if ci is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if math.isfinite(ci) else f"{mean:.{digits}f} ± n/a"


def _fmt_diff(mean: float, ci: float) -> str:
    """A difference with its sign: ``+1.64 ± 0.13``, ``-0.75 ± 16.52``."""
    text = _fmt(mean, ci)
    return f"+{text}" if math.isfinite(mean) and mean > 0 and not text.startswith("0.00 ") else text


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _best(values: Sequence[float]) -> set[int]:
    """Indices of the largest finite value (all of them on a tie at the shown precision); none
    when fewer than two values compete, where bold would say nothing."""
    finite = [round(v, 2) for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return set()
    top = max(finite)
    return {i for i, v in enumerate(values) if math.isfinite(v) and round(v, 2) == top}


def _converged_cell(s: dict[str, Any]) -> str:
    """``k/n``: how many of a method's runs converged (``–`` when no run recorded it)."""
    n = int(s.get("n_convergence", 0))
    return f"{int(s['converged'])}/{n}" if n else "–"


def _table_rows(summary: Sequence[dict[str, Any]], dataset: str,
                references: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The rows of one data set's main table: ours (``bold`` marks the best per column) with the
    paper's row right under the matching method, then the references (:data:`REFERENCE_NAMES`)
    scored on the same test set. ``kind`` is ``ours``, ``paper`` or ``reference``; ``cells``
    are ``(mean, ci)`` per :data:`TABLE_METRICS` (``ci`` None: no interval), None for a cell
    the paper did not publish."""
    ours = [s for s in summary if s["dataset"] == dataset]
    paper = PAPER_RESULTS.get(dataset, {})
    labels = sorted({s["method"] for s in ours} | set(paper), key=method_key)
    best = {m: _best([s[f"{m}_mean"] for s in ours]) for m in TABLE_METRICS}
    rows = []
    for label in labels:
        for i, s in enumerate(ours):
            if s["method"] == label:
                rows.append({
                    "label": method_name(label), "paper": False, "kind": "ours", "n": s["n"],
                    "cells": [(s[f"{m}_mean"], s[f"{m}_ci"]) for m in TABLE_METRICS],
                    "bold": [i in best[m] for m in TABLE_METRICS],
                    "time": _fmt_seconds(s["wall_seconds_mean"]),
                    "converged": _converged_cell(s),
                })
        if label in paper:
            rows.append({
                "label": f"{method_name(label)} (paper)", "paper": True, "kind": "paper",
                "n": PAPER_RUNS,
                "cells": [paper_cell(dataset, label, m) for m in TABLE_METRICS],
                "bold": [False] * len(TABLE_METRICS), "time": "", "converged": "–",
            })
    for ref in references:
        if ref["dataset"] != dataset:
            continue
        rows.append({
            "label": f"{REFERENCE_NAMES.get(ref['method'], ref['method'])} (reference)",
            "paper": False, "kind": "reference", "n": 1,
            "cells": [(100.0 * _float(ref.get(m)), None) for m in TABLE_METRICS],
            "bold": [False] * len(TABLE_METRICS),
            "time": _fmt_seconds(_float(ref.get("wall_seconds"))), "converged": "–",
        })
    return rows


def _shift_tables(srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                  dataset: str) -> tuple[list[str], list[list[str]], list[list[bool]],
                                         list[str], list[list[str]], list[list[bool]]] | None:
    """Two tables of a data set's shift results, as text cells with bold flags:
    (1) per method: clean R@1, mean R@1 at each severity, robustness AUC (mean ± CI over seeds);
    (2) per (corruption, severity): R@1 of each method (mean over seeds)."""
    methods, corrs, sevs, curve = _shift_curves(srows, dataset)
    if not methods:
        return None
    auc = {s["method"]: (s.get("robustness_auc_mean", math.nan), s.get("robustness_auc_ci", math.nan))
           for s in summary if s["dataset"] == dataset}
    head1 = ["Method", "Clean", *[f"Severity {s}" for s in sevs], "Robustness AUC"]
    cols = [[curve[m]["mean"].get(s, math.nan) for m in methods] for s in [0, *sevs]]
    cols.append([auc.get(m, (math.nan, math.nan))[0] for m in methods])
    best_cols = [_best(c) for c in cols]
    body1, bold1 = [], []
    for i, m in enumerate(methods):
        cells = [_fmt(c[i]) for c in cols[:-1]] + [_fmt(*auc.get(m, (math.nan, math.nan)))]
        body1.append([method_name(m), *cells])
        bold1.append([False] + [i in b for b in best_cols])
    head2 = ["Corruption", "Severity", *[method_name(m) for m in methods]]
    body2, bold2 = [], []
    keys: list[tuple[str, int]] = [(CLEAN, 0)] + [(c, s) for c in corrs for s in sevs]
    keys += [("mean", s) for s in sevs]
    for c, s in keys:
        src = "mean" if c == CLEAN else c  # every curve holds the clean value at severity 0
        vals = [curve[m].get(src, {}).get(s, math.nan) for m in methods]
        name = "clean" if c == CLEAN else "mean of all" if c == "mean" else c.replace("_", " ")
        body2.append([name, str(s), *[_fmt(v) for v in vals]])
        bold2.append([False, False] + [i in _best(vals) for i in range(len(vals))])
    return head1, body1, bold1, head2, body2, bold2


def _paired_table(prows: Sequence[dict[str, Any]], dataset: str
                  ) -> tuple[list[str], list[list[str]]] | None:
    """A data set's paired comparisons as text cells: per pair the shared seeds, the seeds won on
    Recall@1, mean ± CI of each metric's difference and the per-seed Recall@1 differences."""
    rows = [r for r in prows if r["dataset"] == dataset]
    if not rows:
        return None
    metrics = [(m, h) for m, h in zip(PAIRED_METRICS, PAIRED_HEADERS, strict=True)
               if any(f"{m}_diff_mean" in r for r in rows)]
    head = ["Comparison", "Seeds", "Wins (R@1)", *[f"Δ {h} (pp)" for _, h in metrics],
            "Δ R@1 per seed"]
    body = [[f"{method_name(r['method'])} vs {method_name(r['reference'])}", r["seeds"],
             f"{r['wins']}/{r['n']}",
             *[_fmt_diff(r.get(f"{m}_diff_mean", math.nan), r.get(f"{m}_diff_ci", math.nan))
               for m, _ in metrics],
             r.get("recall@1_per_seed", "") or "n/a"] for r in rows]
    return head, body


def _imbalance_tables(summary: Sequence[dict[str, Any]]
                      ) -> list[tuple[str, list[str], list[list[str]], list[list[bool]]]]:
    """Sub-population shift: per data set with long-tailed variants, Recall@1 of each method
    trained on the balanced and on each long-tailed training set (same balanced test set), and
    the change in percentage points. ``[(base, head, body, bold), ...]``."""
    variants: dict[str, list[float]] = defaultdict(list)
    for ds in _datasets(summary):
        base, ratio = split_imbalance(ds)
        if ratio is not None:
            variants[base].append(ratio)
    out = []
    for base, ratios in variants.items():
        ratio_ds = {r: next(d for d in _datasets(summary) if split_imbalance(d) == (base, r))
                    for r in ratios}
        cell = {(s["dataset"], s["method"]): (s["recall@1_mean"], s["recall@1_ci"]) for s in summary}
        methods = sorted({m for d, m in cell if split_imbalance(d)[0] == base}, key=method_key)
        nan2 = (math.nan, math.nan)
        cols: list[tuple[str, list[tuple[float, float]], bool]] = [
            ("Balanced", [cell.get((base, m), nan2) for m in methods], True)]
        for r in ratios:
            vals = [cell.get((ratio_ds[r], m), nan2) for m in methods]
            cols.append((f"Long-tailed ×{r:g}", vals, True))
            delta = [(v[0] - b[0], math.nan) for v, b in zip(vals, cols[0][1], strict=True)]
            cols.append((f"Δ ×{r:g} (pp)", delta, False))
        head = ["Method", *[c[0] for c in cols]]
        body = [[method_name(m), *[_fmt(c[1][i][0], c[1][i][1] if c[2] else None) for c in cols]]
                for i, m in enumerate(methods)]
        best = [_best([v[0] for v in c[1]]) for c in cols]
        bold = [[False, *[i in b for b in best]] for i in range(len(methods))]
        out.append((base, head, body, bold))
    return out


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]],
              bold: Sequence[Sequence[bool]] | None = None) -> str:
    def cell(text: str, b: bool) -> str:
        return f"**{text}**" if b and text != "n/a" else text

    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for r, row in enumerate(body):
        flags = bold[r] if bold else [False] * len(row)
        lines.append("| " + " | ".join(cell(t, f) for t, f in zip(row, flags, strict=True)) + " |")
    return "\n".join(lines)


def _main_table_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]],
                                                               list[list[bool]]]:
    """The text cells and bold flags of a main table (rows of :func:`_table_rows`)."""
    head = ["Method", "Seeds", *TABLE_HEADERS, "Time / run", "Converged"]
    body = [[r["label"], str(r["n"]), *["–" if c is None else _fmt(*c) for c in r["cells"]],
             r["time"] or "–", r["converged"]] for r in rows]
    bold = [[False, False, *r["bold"], False, False] for r in rows]
    return head, body, bold


def render_markdown(summary: Sequence[dict[str, Any]], srows: Sequence[dict[str, Any]],
                    confidence: float = 0.95, prows: Sequence[dict[str, Any]] = (),
                    references: Sequence[dict[str, Any]] = ()) -> str:
    """``summary.md``: per data set the paper's table (with the ``references``,
    :func:`read_references`), the covariate-shift tables, then the paired comparisons
    (:func:`paired_comparisons`, rows ``prows``)."""
    pct = f"{confidence * 100:g} %"
    parts = ["# Benchmark results", "",
             f"Mean ± {pct} Student-t confidence interval over seeds, in percent. "
             "Best of our runs in **bold**; rows marked (paper) are the published numbers "
             f"(mean ± 95 % CI over {PAPER_RUNS} runs). R@1: macro recall of 1-NN against the "
             "training set; F1: macro F1; NMI: k-means on the test embeddings; RP and MAP@R: "
             "Musgrave et al. 2020. " + _CONVERGED_NOTE
             + (" " + _REFERENCES_NOTE if references else ""), ""]
    for ds in _datasets(summary):
        head, body, bold = _main_table_cells(_table_rows(summary, ds, references))
        parts += [f"## {dataset_name(ds)}", "", _md_table(head, body, bold), ""]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, h2, b2, f2 = tables
            parts += [f"### {dataset_name(ds)} under covariate shift", "",
                      "Recall@1 (%) of corrupted test images against the clean training set, "
                      "mean over corruptions and seeds; robustness AUC: normalised area under "
                      "Recall@1 against severity 0–5 (mean ± CI over seeds).", "",
                      _md_table(h1, b1, f1), "",
                      "Recall@1 (%) per corruption and severity (mean over seeds):", "",
                      _md_table(h2, b2, f2), ""]
        paired = _paired_table(prows, ds)
        if paired:
            parts += [f"### {dataset_name(ds)}: paired comparisons (same seeds)", "",
                      _PAIRED_NOTE.format(pct=pct), "", _md_table(*paired), ""]
    for base, head, body, bold in _imbalance_tables(summary):
        parts += [f"## {dataset_name(base)}: sub-population shift", "",
                  "Recall@1 (%) on the usual test set after training on the balanced or on a "
                  "long-tailed training set (class i keeps n·ratio^(−i/(C−1)) samples); Δ: change "
                  "in percentage points.", "", _md_table(head, body, bold), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- LaTeX

_TEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "\\": r"\textbackslash{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in text)


def _tex_cell(text: str, bold: bool) -> str:
    text = _tex(text).replace(" ± ", r" $\pm$ ").replace("–", "--")
    return rf"\textbf{{{text}}}" if bold and text != "n/a" else text


def _tex_tabular(head: Sequence[str], body: Sequence[Sequence[str]],
                 bold: Sequence[Sequence[bool]], italic_rows: Sequence[bool] | None = None,
                 n_text_cols: int = 1) -> list[str]:
    spec = "l" * n_text_cols + "r" * (len(head) - n_text_cols)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_tex(h) for h in head) + r" \\", r"\midrule"]
    for r, row in enumerate(body):
        cells = [_tex_cell(t, f) for t, f in zip(row, bold[r], strict=True)]
        if italic_rows and italic_rows[r]:
            cells = [rf"\textit{{{c}}}" if c else c for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def render_latex(summary: Sequence[dict[str, Any]], srows: Sequence[dict[str, Any]],
                 confidence: float = 0.95, references: Sequence[dict[str, Any]] = ()) -> str:
    """``summary.tex``: booktabs tables (``\\usepackage{booktabs}``), best of ours in bold,
    the paper's rows in italics."""
    pct = f"{confidence * 100:g}\\,\\%"
    out = ["% Generated by guided_dml.experiments.report; needs \\usepackage{booktabs}.", ""]
    for ds in _datasets(summary):
        rows = _table_rows(summary, ds, references)
        head, body, bold = _main_table_cells(rows)
        slug = re.sub(r"[^a-z0-9]+", "-", ds.lower())
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_tex(dataset_name(ds))}: mean $\pm$ {pct} CI over seeds (\%). "
                r"Best of our runs in bold; in italics the published numbers \textit{(paper)} "
                r"and the \textit{(reference)} maps scored on the same test set.}",
                rf"\label{{tab:{slug}}}",
                *_tex_tabular(head, body, bold, [r["kind"] != "ours" for r in rows]),
                r"\end{table}", ""]
        tables = _shift_tables(srows, summary, ds)
        if tables:
            h1, b1, f1, *_ = tables
            out += [r"\begin{table}[t]", r"\centering",
                    rf"\caption{{{_tex(dataset_name(ds))} under covariate shift: Recall@1 (\%) "
                    r"averaged over corruptions and seeds, and the normalised area under "
                    r"Recall@1 against severity.}",
                    rf"\label{{tab:{slug}-shift}}", *_tex_tabular(h1, b1, f1),
                    r"\end{table}", ""]
    for base, head, body, bold in _imbalance_tables(summary):
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower())
        out += [r"\begin{table}[t]", r"\centering",
                rf"\caption{{{_tex(dataset_name(base))}, sub-population shift: Recall@1 (\%) "
                r"after training on the balanced or a long-tailed training set.}",
                rf"\label{{tab:{slug}-imbalance}}", *_tex_tabular(head, body, bold),
                r"\end{table}", ""]
    return "\n".join(out)
