"""The benchmark report: tables in the paper's layout, figures, and one self-contained HTML page.

Reads the run folders of a benchmark, ``OUT/runs/<dataset>/<method>/seed-<n>/`` (layout in
:mod:`guided_dml.experiments.run`; a folder counts once its ``metrics.json`` exists), and writes
into ``OUT``:

=========================== ==============================================================
``runs.csv``                one row per finished run: every metric (fractions), seed, times,
                            config hash
``summary.csv``             per (data set, method): seeds, mean and 95 % CI of every metric (%)
``summary.md``              the paper's table per data set (R@1, F1, NMI, RP, MAP@R as
                            mean ± CI, best in bold) with the published numbers beside ours;
                            the covariate-shift tables when ``shift.json`` files exist
``summary.tex``             the same tables as booktabs ``tabular``\\ s
``embeddings_<ds>.png``     the 2-D test maps of every method (first seed): Figures 3–5
``curves_<ds>.png``         validation loss per epoch per method (+ GEMINI's for G-DML)
``validation_<ds>.png``     validation MAP@R (the selection criterion) per epoch, all methods
``recall_at_1.png``         Recall@1 with CI error bars, grouped by data set, paper marked
``shift_<ds>.png``          Recall@1 against corruption severity per method (if shift data)
``shift.csv``               Recall@1 per corruption × severity × method (if shift data)
``shift_runs.csv``          the same per run (data set, method, seed, corruption, severity):
                            with ``runs.csv`` the whole record of a grid, small enough to commit
``paired.csv``              seed-by-seed differences: each ``X+mdr`` against ``X``, G-DML
                            against each baseline (mean ± paired CI, per-seed values, wins)
``report.html``             all of the above on one page, figures inlined as data URIs
=========================== ==============================================================

When ``OUT/references.csv`` exists (``gdml benchmark --references``,
:mod:`guided_dml.experiments.references`), every main table ends with the references a learned
map must beat (1-NN on the raw pixels, supervised UMAP 2-D), and a ``Converged`` column counts
the runs whose validation score had stopped improving (:func:`guided_dml.training.trainer.
convergence`).

A grid run in several places (two machines, or sessions whose run folders are gone) is reported
as one: ``include`` names earlier results (a folder with ``runs.csv`` and ``shift_runs.csv``, as
written here), whose rows join the tables and paired comparisons as if their runs were here
(:func:`~.records.read_included`). A run present in both counts once, the local folder first.

Confidence intervals are Student-t intervals over seeds (:func:`~.stats.mean_ci`).

The package, one job per module: :mod:`.names` (display names, order, colours), :mod:`.paper`
(the published numbers), :mod:`.records` (reading run folders and earlier records; CSV),
:mod:`.stats` (intervals, summaries, paired comparisons), :mod:`.tables` (Markdown and LaTeX),
:mod:`.figures` (the plots and their one list, :data:`~.figures.FIGURES`), :mod:`.html` (the
page); :func:`write_report` here puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import DataError
from ...training.checkpoint import save_bytes
from .figures import (
    FIGURES,
    Figure,
    FigureData,
    draw_figures,
    plot_curves,
    plot_embedding_grid,
    plot_recall_bars,
    plot_shift,
    plot_validation,
)
from .html import render_html
from .names import (
    DATASET_NAMES,
    DATASET_ORDER,
    REFERENCE_NAMES,
    dataset_key,
    dataset_name,
    method_color,
    method_key,
    method_name,
    split_imbalance,
    split_unseen,
)
from .paper import PAPER_CI, PAPER_RESULTS, PAPER_RUNS, paper_cell
from .records import (
    METRICS,
    REFERENCES_FILE,
    SHIFT_RUNS_COLUMNS,
    _runs_columns,
    _summary_columns,
    _unfinished,
    collect_runs,
    collect_shift,
    csv_bytes,
    merge_included,
    read_included,
    read_references,
)
from .stats import (
    PAIRED_METRICS,
    _corruption_order,
    _paired_columns,
    comparison_pairs,
    error_extent,
    mean_ci,
    paired_comparisons,
    summarize,
    summarize_shift,
)
from .tables import PAIRED_HEADERS, TABLE_HEADERS, TABLE_METRICS, render_latex, render_markdown

__all__ = [
    "DATASET_NAMES", "DATASET_ORDER", "FIGURES", "METRICS", "PAIRED_HEADERS", "PAIRED_METRICS",
    "PAPER_CI", "PAPER_RESULTS", "PAPER_RUNS", "REFERENCES_FILE", "REFERENCE_NAMES",
    "SHIFT_RUNS_COLUMNS", "TABLE_HEADERS", "TABLE_METRICS", "Figure", "FigureData",
    "collect_runs", "collect_shift", "comparison_pairs", "csv_bytes", "dataset_key",
    "dataset_name", "draw_figures", "error_extent", "mean_ci", "merge_included", "method_color",
    "method_key", "method_name", "paired_comparisons", "paper_cell", "plot_curves",
    "plot_embedding_grid", "plot_recall_bars", "plot_shift", "plot_validation", "read_included",
    "read_references", "render_html", "render_latex", "render_markdown", "split_imbalance",
    "split_unseen", "summarize", "summarize_shift", "write_report",
]


def write_report(out_dir: str | Path, confidence: float = 0.95,
                 include: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Write every table, figure and the HTML page of the benchmark in ``out_dir``.

    ``include``: earlier results reported together with this grid's (:func:`merge_included`);
    their rows are copied into ``runs.csv`` and ``shift_runs.csv`` here (with a ``source``
    column), so the written folder is again a complete record that can itself be included.

    Every file is written atomically (temporary file in ``out_dir``, then ``os.replace``), so a
    reader never sees a half-written report even while the benchmark keeps rewriting it.

    Returns:
        ``{key: path}`` with keys named after the files, dots as underscores (``summary_md``,
        ``report_html``, ``embeddings_mnist_png`` …).

    Raises:
        DataError: no finished run under ``out_dir/runs``.
    """
    out_dir = Path(out_dir)
    runs, shift_fallback = merge_included(collect_runs(out_dir), include)
    if not runs:
        raise DataError(f"no finished runs (run folders with metrics.json) under {out_dir / 'runs'}")
    summary = summarize(runs, confidence)
    shift_rows = collect_shift(runs)
    shift_summary = summarize_shift(shift_rows, confidence)
    have_shift = {(r["dataset"], r["method"]) for r in shift_rows}
    fallback = list({(r["dataset"], r["method"], r["corruption"], r["severity"]): r
                     for r in reversed(shift_fallback)  # the first include wins
                     if (r["dataset"], r["method"]) not in have_shift}.values())
    if fallback:  # summaries of runs whose per-run shift rows were never recorded
        corr_rank = {c: i for i, c in enumerate(_corruption_order([*shift_summary, *fallback]))}
        shift_summary = sorted([*shift_summary, *fallback],
                               key=lambda r: (dataset_key(r["dataset"]), method_key(r["method"]),
                                              corr_rank[r["corruption"]], r["severity"]))
    written: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        path = out_dir / name
        save_bytes(data, path)
        written[name.replace(".", "_")] = path

    # Relative run folders keep runs.csv valid when OUT is moved or copied.
    csv_runs = [r if "_shift_rows" in r else  # included rows keep the folder they name
                {**r, "run_dir": Path(r["run_dir"]).relative_to(out_dir).as_posix()} for r in runs]
    put("runs.csv", csv_bytes(csv_runs, _runs_columns(runs)))
    put("summary.csv", csv_bytes(summary, _summary_columns(summary)))
    if shift_summary:
        put("shift.csv", csv_bytes(shift_summary, list(shift_summary[0])))
    if shift_rows:
        put("shift_runs.csv", csv_bytes(shift_rows, SHIFT_RUNS_COLUMNS))
    paired = paired_comparisons(runs, confidence)
    if paired:
        put("paired.csv", csv_bytes(paired, _paired_columns(paired)))
    references = read_references([out_dir, *include])
    if references:
        put(REFERENCES_FILE, csv_bytes(references, list(dict.fromkeys(
            k for r in references for k in r))))  # every column any row has, in order
    put("summary.md", render_markdown(summary, shift_summary, confidence, paired,
                                      references).encode())
    put("summary.tex", render_latex(summary, shift_summary, confidence, references).encode())
    pngs = draw_figures(FigureData(runs, summary, shift_summary, confidence))
    for name, png in pngs.items():
        put(name, png)
    page = render_html(out_dir, runs, summary, shift_summary, pngs, _unfinished(out_dir),
                       confidence, paired, include, references)
    put("report.html", page.encode())
    return written
