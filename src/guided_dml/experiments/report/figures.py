"""Figures: every plot of the report, and :data:`FIGURES`, the one list of them.

Each figure is a function that returns PNG bytes (None when there is nothing to draw) and one
:class:`Figure` entry in :data:`FIGURES`: its file name, its alt text and where the HTML page
shows it. :func:`draw_figures` (the files ``write_report`` writes) and the page
(:func:`~.html.render_html`) both read that list, so adding a figure is one function and one
entry.
"""

from __future__ import annotations

import io
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...plotting import class_colors, draw_embedding, plt
from .names import dataset_name, method_color, method_key, method_name
from .paper import paper_cell
from .records import _float, _load_history
from .stats import _datasets, _shift_curves, error_extent

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- figures


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _legend_ncol(labels: Sequence[str], width_in: float, fontsize: float = 9.0) -> int:
    """Columns for a one-line legend when it fits the figure width, else as many rows as needed."""
    # ≈ 0.6 em per character plus marker and padding, in inches.
    widths = [len(t) * fontsize * 0.6 / 72 + 0.45 for t in labels]
    per_row = max(1, int(len(labels) * (0.95 * width_in) / max(sum(widths), 1e-9)))
    rows = math.ceil(len(labels) / min(per_row, len(labels)))
    return math.ceil(len(labels) / rows)


def plot_embedding_grid(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """The 2-D test map of every method (its first seed), coloured by class: Figures 3–5."""
    first: dict[str, dict[str, Any]] = {}
    for r in runs:  # sorted by seed
        # Included runs (see merge_included) are drawn from their own folder's report.
        if r["dataset"] == dataset and r["method"] not in first and "_shift_rows" not in r:
            first[r["method"]] = r
    if not first:
        return None
    methods = sorted(first, key=method_key)
    nrows = math.ceil(len(methods) / 5)
    ncols = math.ceil(len(methods) / nrows)  # 7 methods: 4 + 3, not 5 + 2
    loaded, classes = {}, None
    for m in methods:
        f = Path(first[m]["run_dir"]) / "embeddings.npz"
        try:
            with np.load(f, allow_pickle=False) as z:
                loaded[m] = (z["test_embeddings"], z["test_labels"])
                classes = classes if classes is not None else [str(c) for c in z["classes"]]
        except (OSError, KeyError, ValueError) as err:
            log.warning("no embedding map for %s: %s", f.parent, err)
    if not loaded or classes is None:
        return None
    many = len(classes) > 20  # a legend of 100 class names is noise; colours still separate
    width = 3.4 * ncols
    ncol = _legend_ncol(classes, width)
    legend_rows = 0 if many else math.ceil(len(classes) / ncol)
    bottom_in = 0.25 + 0.24 * legend_rows
    fig_h = 4.0 * nrows + 0.45 + bottom_in  # square maps 3.4 in wide + a two-line title
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, fig_h), dpi=110, squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, methods, strict=False):
        run = first[m]
        title = f"{method_name(m)}\nR@1 {100 * float(run.get('recall@1', math.nan)):.1f} %" \
                f" · seed {run['seed']}"
        if m not in loaded:
            ax.text(0.5, 0.5, "embeddings.npz missing", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        emb, labels = loaded[m]
        draw_embedding(ax, emb, labels, classes, title=title)
        _robust_limits(ax, emb)
        for spine in ax.spines.values():  # a light frame: the map, not the axes, is the content
            spine.set_color("0.8")
    colors = class_colors(len(classes))
    if not many:
        handles = [plt.Line2D([], [], marker="o", linestyle="", markersize=7, color=colors[c],
                              label=name) for c, name in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9,
                   handletextpad=0.2, columnspacing=1.0)
    fig.suptitle(f"{dataset_name(dataset)}: 2-D test embeddings", fontsize=12)
    fig.tight_layout(rect=(0, bottom_in / fig_h, 1, 1))
    return _png(fig)


def _robust_limits(ax: Any, emb: np.ndarray) -> None:
    """Frame the central 99.6 % of the points: a handful of stray points would otherwise shrink
    every cluster to a dot. Only for 2-D embeddings (others are drawn as PCA projections)."""
    if emb.ndim != 2 or emb.shape[1] != 2 or len(emb) < 50:
        return
    finite = emb[np.isfinite(emb).all(axis=1)]
    lo, hi = np.percentile(finite, [0.2, 99.8], axis=0)
    half = 0.56 * float((hi - lo).max())  # a square window keeps distances true in x and y
    if half > 0:
        centre = (lo + hi) / 2
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)


def _kept_teacher(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epochs of the GEMINI teacher whose targets the student learnt: ``"teacher"``, or the
    restart (``--gemini-restarts``) that replaced it, whose last epoch says ``kept``."""
    by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in history:
        if str(h.get("phase", "")).startswith("teacher"):
            by_phase[h["phase"]].append(h)
    kept = [recs for recs in by_phase.values() if recs[-1].get("kept")]
    return kept[0] if kept else by_phase.get("teacher", [])


def plot_curves(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """Validation loss per epoch, one panel per method (each seed thin, the mean bold, the mean
    training loss dashed), plus a panel for the GEMINI teacher of every G-DML variant."""
    panels: list[tuple[str, str, list[list[dict[str, Any]]]]] = []  # (title, method, histories)
    by_method: dict[str, list[Path]] = defaultdict(list)
    for r in runs:
        if r["dataset"] == dataset:
            by_method[r["method"]].append(Path(r["run_dir"]))
    teacher_panels = []
    for m in sorted(by_method, key=method_key):
        hists = [_load_history(d) for d in by_method[m]]
        student = [[h for h in hist if h.get("phase", "student") == "student"] for hist in hists]
        teacher = [_kept_teacher(hist) for hist in hists]
        if any(student):
            panels.append((method_name(m), m, [s for s in student if s]))
        if any(teacher):
            teacher_panels.append((f"{method_name(m)}: GEMINI teacher", m, [t for t in teacher if t]))
    panels += teacher_panels
    if not panels:
        return None
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.8), dpi=110,
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, m, hists) in zip(axes.flat, panels, strict=False):
        color = method_color(m)
        positive = True
        for key, style in (("train_loss", "--"), ("val_loss", "-")):
            series = [(np.array([h["epoch"] for h in hist], float),
                       np.array([_float(h.get(key)) for h in hist])) for hist in hists]
            series = [(e, v) for e, v in series if np.isfinite(v).any()]
            if not series:
                continue
            positive &= all((v[np.isfinite(v)] > 0).all() for _, v in series)
            if key == "val_loss" and len(series) > 1:
                for e, v in series:
                    ax.plot(e, v, style, color=color, lw=0.8, alpha=0.35)
            e_all = np.unique(np.concatenate([e for e, _ in series]))
            mean = np.array([np.nanmean([v[e == x][0] for e, v in series if (e == x).any()])
                             for x in e_all])
            ax.plot(e_all, mean, style, color=color if key == "val_loss" else "0.35",
                    lw=2.0 if key == "val_loss" else 1.3,
                    marker="o" if len(e_all) <= 30 else None, markersize=3.5)
            if positive and np.nanmax(mean) / max(np.nanmin(mean), 1e-12) > 30:
                ax.set_yscale("log")  # distillation losses fall by orders of magnitude
        ax.set_title(f"{title} ({len(hists)} seed{'s' if len(hists) != 1 else ''})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    handles = [plt.Line2D([], [], color="0.2", lw=2.0, marker="o", markersize=3.5,
                          label="validation loss (mean over seeds)"),
               plt.Line2D([], [], color="0.2", lw=0.8, alpha=0.4, label="validation loss (each seed)"),
               plt.Line2D([], [], color="0.35", lw=1.3, ls="--", label="training loss (mean)")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(f"{dataset_name(dataset)}: training curves", fontsize=12)
    fig.tight_layout(rect=(0, 0.5 / (3.1 * nrows + 0.8), 1, 1))
    return _png(fig)


def plot_validation(runs: Sequence[dict[str, Any]], dataset: str) -> bytes | None:
    """The selection criterion per epoch (validation MAP@R, or whatever ``val_score`` the runs
    recorded), every method on one axis: each seed thin, the mean bold. This is where a reader
    sees whether a method had converged when its epochs ran out (issue 13's fairness check)."""
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for r in runs:
        if r["dataset"] != dataset:
            continue
        hist = [h for h in _load_history(Path(r["run_dir"])) if h.get("phase", "student") == "student"
                and h.get("val_score") is not None]
        if hist:
            curves[r["method"]].append((np.array([h["epoch"] for h in hist], float),
                                        np.array([_float(h["val_score"]) for h in hist])))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for m in sorted(curves, key=method_key):
        color, dashed = method_color(m), m.endswith("+mdr")
        for e, v in curves[m]:
            ax.plot(e, v, "--" if dashed else "-", color=color, lw=0.7, alpha=0.3)
        e_all = np.unique(np.concatenate([e for e, _ in curves[m]]))
        mean = np.array([np.nanmean([v[e == x][0] for e, v in curves[m] if (e == x).any()])
                         for x in e_all])
        ax.plot(e_all, mean, "--" if dashed else "-", color=color, lw=2.0, marker="o",
                markersize=3.5, label=f"{method_name(m)} ({len(curves[m])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAP@R")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(frameon=False, fontsize=9, title="method (seeds)", title_fontsize=9,
              loc="lower right")
    ax.set_title(f"{dataset_name(dataset)}: the selection criterion per epoch", fontsize=12)
    fig.tight_layout()
    return _png(fig)


def plot_recall_bars(summary: Sequence[dict[str, Any]], confidence: float = 0.95) -> bytes | None:
    """Recall@1 mean with CI error bars, grouped by data set; the paper's values as ◆ markers."""
    if not summary:
        return None
    datasets = _datasets(summary)
    methods = sorted({s["method"] for s in summary}, key=method_key)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.45 * len(methods) * len(datasets)), 4.6),
                           dpi=110)
    paper_drawn = False
    for j, m in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for i, ds in enumerate(datasets):
            s = next((s for s in summary if s["dataset"] == ds and s["method"] == m), None)
            if s is None:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(s["recall@1_mean"])
            down, up = error_extent(ys[-1], s["recall@1_ci"])
            lo.append(down)
            hi.append(up)
            paper = paper_cell(ds, m, "recall@1")
            if paper is not None:
                ax.plot(xs[-1], paper[0], marker="D", color="black", markersize=5, zorder=5,
                        linestyle="", label="_nolegend_")
                paper_drawn = True
        mdr = "+" in m
        ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=3, color=method_color(m),
               alpha=0.55 if mdr else 0.9, hatch="//" if mdr else None, edgecolor="white",
               error_kw={"elinewidth": 1.0, "ecolor": "0.15"}, label=method_name(m))
    ax.set_xticks(range(len(datasets)), [dataset_name(d).replace(", ", ",\n") for d in datasets])
    ax.set_ylabel("Recall@1 (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    if paper_drawn:
        handles.append(plt.Line2D([], [], marker="D", color="black", linestyle="", markersize=5))
        labels.append("paper")
    # Legend to the right, outside the axes: bars reach the top on MNIST.
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
              fontsize=9)
    ax.set_title(f"Recall@1, mean ± {confidence * 100:g} % CI over seeds "
                 "(clipped to 0–100; none for one seed)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def plot_shift(srows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
               dataset: str) -> bytes | None:
    """Recall@1 against severity per method: the mean over corruptions (large panel, AUC in the
    legend) and one small panel per corruption."""
    methods, corrs, _, curve = _shift_curves(srows, dataset)
    if not methods:
        return None
    auc = {s["method"]: s.get("robustness_auc_mean", math.nan)
           for s in summary if s["dataset"] == dataset}
    ncols_small = 3 if len(corrs) > 4 else max(1, min(2, len(corrs)))
    nrows_small = max(1, math.ceil(len(corrs) / ncols_small))
    legend_cols = min(len(methods), 4)
    legend_in = 0.3 + 0.25 * math.ceil(len(methods) / legend_cols)
    fig_w = 5.2 + 2.7 * ncols_small
    fig_h = max(4.6, 2.35 * nrows_small + 1.0) + legend_in
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=110)
    gs = fig.add_gridspec(nrows_small, 2 + ncols_small, width_ratios=[1.0, 0.9] + [1.0] * ncols_small,
                          wspace=0.35, hspace=0.55)
    main = fig.add_subplot(gs[:, :2])
    small = [fig.add_subplot(gs[i // ncols_small, 2 + i % ncols_small]) for i in range(len(corrs))]
    for m in methods:
        style = {"color": method_color(m), "ls": "--" if "+" in m else "-", "marker": "o"}
        pts = sorted(curve[m]["mean"].items())
        a = auc.get(m, math.nan)
        label = f"{method_name(m)} (AUC {a:.1f})" if math.isfinite(a) else method_name(m)
        main.plot([p[0] for p in pts], [p[1] for p in pts], lw=2, markersize=5, label=label,
                  **style)
        for ax, c in zip(small, corrs, strict=True):
            pts = sorted(curve[m][c].items())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.3, markersize=2.5, **style)
    main.set_title("mean over corruptions", fontsize=10)
    main.set_xlabel("severity (0 = clean)")
    main.set_ylabel("Recall@1 (%)")
    for ax, c in zip([main, *small], ["", *corrs], strict=True):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if c:
            ax.set_title(c.replace("_", " "), fontsize=9)
            ax.tick_params(labelsize=8)
    lo = min(min(line.get_ydata()) for ax in [main, *small] for line in ax.get_lines())
    for ax in [main, *small]:  # one y scale, so panels compare at a glance
        ax.set_ylim(max(0.0, lo - 5.0), 100.0 if lo > 5 else 101.0)
    for ax in [main, *small]:
        ax.set_xticks(range(0, 1 + max(int(x) for line in ax.get_lines() for x in line.get_xdata())))
    # Below the panels: inside any panel it would hide the lowest curves.
    fig.legend(*main.get_legend_handles_labels(), loc="lower center", ncol=legend_cols,
               fontsize=9, frameon=False)
    fig.suptitle(f"{dataset_name(dataset)}: Recall@1 under covariate shift "
                 "(mean over seeds; AUC: normalised area under the curve, %)", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.75 / fig_h,
                        bottom=(legend_in + 0.55) / fig_h)
    return _png(fig)


# ---------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class FigureData:
    """What the figures are drawn from: the runs, their summaries and the CI level."""

    runs: Sequence[dict[str, Any]]
    summary: Sequence[dict[str, Any]]
    shift_summary: Sequence[dict[str, Any]]
    confidence: float = 0.95


@dataclass(frozen=True)
class Figure:
    """One figure of the report.

    ``filename`` names its PNG; with ``{dataset}`` in it the figure is drawn once per data set
    (``draw(data, dataset)``), without it once for the whole report (``draw(data, None)``).
    ``alt`` is its alt text on the page (``{name}``: the data set's display name). ``place`` is
    where the page shows it: ``top`` (above the tables), ``dataset`` (under a data set's main
    table) or ``shift`` (in a data set's covariate-shift section); in the order of
    :data:`FIGURES` within a place.
    """

    filename: str
    alt: str
    draw: Callable[[FigureData, str | None], bytes | None]
    place: str = "dataset"

    @property
    def per_dataset(self) -> bool:
        return "{dataset}" in self.filename

    def file(self, dataset: str | None = None) -> str:
        """The PNG's file name (of ``dataset`` for a per-data-set figure)."""
        return self.filename.replace("{dataset}", str(dataset)) if self.per_dataset else self.filename

    def alt_text(self, dataset: str | None = None) -> str:
        return self.alt.replace("{name}", dataset_name(dataset)) if dataset is not None else self.alt


#: Every figure of the report, in the page's order.
FIGURES: tuple[Figure, ...] = (
    Figure("recall_at_1.png", "Recall@1 per data set and method",
           lambda d, _: plot_recall_bars(d.summary, d.confidence), place="top"),
    Figure("embeddings_{dataset}.png", "{name} embeddings",
           lambda d, ds: plot_embedding_grid(d.runs, ds)),
    Figure("validation_{dataset}.png", "{name} validation curves",
           lambda d, ds: plot_validation(d.runs, ds)),
    Figure("curves_{dataset}.png", "{name} training curves",
           lambda d, ds: plot_curves(d.runs, ds)),
    Figure("shift_{dataset}.png", "{name} covariate shift",
           lambda d, ds: plot_shift(d.shift_summary, d.summary, ds), place="shift"),
)


def draw_figures(data: FigureData, figures: Sequence[Figure] | None = None) -> dict[str, bytes]:
    """``{file name: PNG}`` of every figure of ``figures`` (default :data:`FIGURES`) that has
    something to draw: the per-data-set ones for each data set of the summary, then the rest."""
    figures = FIGURES if figures is None else figures
    out: dict[str, bytes] = {}
    jobs = [(f, ds) for ds in _datasets(data.summary) for f in figures if f.per_dataset]
    jobs += [(f, None) for f in figures if not f.per_dataset]
    for fig, ds in jobs:
        png = fig.draw(data, ds)
        if png is not None:
            out[fig.file(ds)] = png
    return out
