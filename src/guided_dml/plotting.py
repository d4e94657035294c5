"""Figures: 2-D embedding maps and training curves (matplotlib, Agg backend, PNG).

Plotting reads arrays and files only; it never imports training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt
import numpy as np

from .atomic import figure_bytes, write_figure


def to_2d(embeddings: np.ndarray) -> np.ndarray:
    """2-D coordinates to draw: the embedding itself when d = 2, else its first 2 principal axes."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.shape[1] == 2:
        return emb
    if emb.shape[1] == 1:
        return np.column_stack([emb[:, 0], np.zeros(len(emb))])
    centred = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def class_colors(n: int) -> list:
    """Distinct colours: tab10 up to 10 classes, tab20 up to 20, then a continuous map."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


def draw_embedding(
    ax: plt.Axes,
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    title: str | None = None,
    max_points: int = 20_000,
    seed: int = 0,
) -> list:
    """Scatter one 2-D map into ``ax``; returns the legend handles (one per class)."""
    xy = to_2d(embeddings)
    labels = np.asarray(labels)
    if len(xy) > max_points:  # keep figures light; a fixed subsample is still representative
        keep = np.random.default_rng(seed).choice(len(xy), max_points, replace=False)
        xy, labels = xy[keep], labels[keep]
    colors = class_colors(len(classes))
    size = max(1.0, min(12.0, 4000.0 / max(len(xy), 1)))
    handles = []
    for c, name in enumerate(classes):
        m = labels == c
        h = ax.scatter(xy[m, 0], xy[m, 1], s=size, color=colors[c], label=str(name),
                       alpha=0.7, linewidths=0, rasterized=True)
        handles.append(h)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    return handles


def _embedding_figure(
    embeddings: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str | None
) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    handles = draw_embedding(ax, embeddings, labels, classes, title)
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
              markerscale=max(1.0, 6.0 / handles[0].get_sizes()[0] ** 0.5) if handles else 1.0,
              frameon=False)
    fig.tight_layout()
    return fig


def plot_embedding(
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """One 2-D map coloured by class with a legend of class names, saved as PNG."""
    fig = _embedding_figure(embeddings, labels, classes, title)
    try:
        return write_figure(path, fig)  # atomic: Ctrl-C or a full disk never leaves half a PNG
    finally:
        plt.close(fig)


def embedding_png(
    embeddings: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str | None = None
) -> bytes:
    """The figure of :func:`plot_embedding` as PNG bytes, for callers that write files atomically."""
    fig = _embedding_figure(embeddings, labels, classes, title)
    try:
        return figure_bytes(fig)
    finally:
        plt.close(fig)


def plot_history(history: Sequence[dict], path: str | Path, title: str | None = None) -> Path:
    """Training and validation loss per epoch, one panel per phase (teacher, student)."""
    phases = sorted({h.get("phase", "train") for h in history}, key=lambda p: p != "teacher")
    fig, axes = plt.subplots(1, len(phases), figsize=(5 * len(phases), 3.5), dpi=110,
                             squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        rows = [h for h in history if h.get("phase", "train") == phase]
        ep = [h["epoch"] for h in rows]
        ax.plot(ep, [h["train_loss"] for h in rows], "o-", label="train")
        val = [np.nan if h.get("val_loss") is None else h["val_loss"] for h in rows]
        if any(np.isfinite(v) for v in val):
            ax.plot(ep, val, "s--", label="validation")
        scores = [h.get("val_score") for h in rows]
        if any(v is not None for v in scores):
            # The selection criterion (validation MAP@R by default) on a second axis.
            ax2 = ax.twinx()
            ax2.plot(ep, [np.nan if v is None else v for v in scores], "^:", color="tab:green",
                     label="validation score")
            ax2.set_ylabel("validation score", color="tab:green")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(phase)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return write_figure(path, fig)
    finally:
        plt.close(fig)
