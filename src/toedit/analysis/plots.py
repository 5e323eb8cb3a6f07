"""Figures of the analysis report (matplotlib object API on an Agg canvas: no pyplot state, thread-safe)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .ngrams import NgramStats


def _counts(x: Any) -> np.ndarray:
    """Bucket counts of an NgramStats, or a count vector as it is."""
    return np.asarray(getattr(x, "bucket_counts", x), dtype=np.float64)


def _as_stats_map(corpora: Mapping[str, NgramStats | np.ndarray] | NgramStats) -> dict[str, Any]:
    if hasattr(corpora, "bucket_counts"):
        return {"corpus": corpora}
    if not isinstance(corpora, Mapping) or not corpora:
        raise ValueError("expected a non-empty mapping label -> NgramStats (or count vector)")
    return dict(corpora)


def plot_bucket_response(
    corpora: Mapping[str, NgramStats | np.ndarray] | NgramStats,
    path: str | os.PathLike | None = None,
    *,
    panels: bool = True,
    log_y: bool = False,
    title: str | None = "Hashed n-gram bucket response",
):
    """Bucket index vs normalised count, one panel (``panels=True``) or one line per corpus label.
    Uses matplotlib's object API (Agg canvas, no pyplot state); returns the Figure, saved when
    ``path`` is given."""
    from matplotlib.figure import Figure

    data = _as_stats_map(corpora)
    n = len(data)
    if panels:
        fig = Figure(figsize=(9, 2.2 * n + 0.6), layout="constrained")
        axes = fig.subplots(n, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    else:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.subplots()
        axes = [ax] * n
    for (label, s), ax in zip(data.items(), axes, strict=True):
        c = _counts(s).astype(np.float64)
        y = c / c.sum() if c.sum() > 0 else c
        ax.plot(np.arange(c.shape[0]), y, lw=0.5, alpha=0.85 if panels else 0.6, label=str(label))
        if panels:
            ax.set_title(str(label), fontsize=9, loc="left")
        ax.set_ylabel("normalised count")
        if log_y:
            ax.set_yscale("log")
    axes[-1].set_xlabel("bucket index")
    if not panels:
        axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig


def plot_top_bigrams(
    corpora: Mapping[str, NgramStats] | NgramStats,
    path: str | os.PathLike | None = None,
    *,
    k: int = 20,
    normalise: bool = True,
    title: str | None = "Top bigrams",
):
    """Horizontal bars of the k most frequent bigrams, one panel per corpus (frequency = count /
    total bigrams when ``normalise``).  Returns the Figure, saved when ``path`` is given."""
    from matplotlib.figure import Figure

    data = _as_stats_map(corpora)
    n = len(data)
    fig = Figure(figsize=(4.2 * n, 0.28 * k + 1.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for (label, s), ax in zip(data.items(), axes, strict=True):
        tb = s.top_bigrams(k) if hasattr(s, "top_bigrams") else None
        if not tb:
            ax.text(0.5, 0.5, "no bigram counts", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(str(label), fontsize=9)
            continue
        names = [b for b, _ in tb][::-1]
        vals = np.array([c for _, c in tb][::-1], dtype=np.float64)
        if normalise and s.bigram_total:
            vals = vals / s.bigram_total
        ax.barh(np.arange(len(names)), vals, color="C0")
        ax.set_yticks(np.arange(len(names)), labels=names, fontsize=7)
        ax.set_xlabel("frequency" if normalise else "count")
        ax.set_title(str(label), fontsize=9)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
