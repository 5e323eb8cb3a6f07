"""Figures of the analysis report (matplotlib object API on an Agg canvas: no pyplot state, thread-safe)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..optional import optional_import

if TYPE_CHECKING:
    from .ngrams import NgramStats


def _counts(x: Any) -> np.ndarray:
    """Bucket counts of an NgramStats, or a count vector as it is."""
    return np.asarray(getattr(x, "bucket_counts", x), dtype=np.float64)


def _finish(fig, title: str | None, path: str | os.PathLike | None, dpi: int = 130):
    """Title the figure and save it when a path is given; returns the figure."""
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


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
    Figure = optional_import("matplotlib.figure", purpose="the analysis figures").Figure

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
    return _finish(fig, title, path, dpi=150)


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
    Figure = optional_import("matplotlib.figure", purpose="the analysis figures").Figure

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
    return _finish(fig, title, path, dpi=150)


def plot_ppl_hist(
    corpora: Mapping[str, Sequence[float]],
    path: str | os.PathLike | None = None,
    *,
    bins: int = 25,
    title: str | None = "Per-document perplexity under the prior",
):
    """Overlaid density histograms of per-document PPL on a log x axis (shared bins), with each corpus's
    25/50/75 % quantiles as dashed lines in its colour."""
    Figure = optional_import("matplotlib.figure", purpose="the analysis figures").Figure
    ticker = optional_import("matplotlib.ticker", purpose="the analysis figures")
    LogLocator, NullFormatter, ScalarFormatter = (
        ticker.LogLocator,
        ticker.NullFormatter,
        ticker.ScalarFormatter,
    )

    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    logs = {k: np.log(np.asarray(v, dtype=np.float64)) for k, v in corpora.items()}
    logs = {k: v[np.isfinite(v)] for k, v in logs.items()}
    pooled = np.concatenate([v for v in logs.values()] or [np.zeros(0)])
    if pooled.size == 0:
        ax.text(0.5, 0.5, "no documents with a PPL", ha="center", va="center", transform=ax.transAxes)
    else:
        lo, hi = float(pooled.min()), float(pooled.max())
        edges = np.exp(np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1))
        for i, (label, v) in enumerate(logs.items()):
            color = f"C{i % 10}"
            if v.size == 0:
                continue
            ax.hist(np.exp(v), bins=edges, density=True, alpha=0.12, color=color)
            ax.hist(
                np.exp(v),
                bins=edges,
                density=True,
                histtype="step",
                lw=1.6,
                color=color,
                label=f"{label} (n={v.size})",
            )
            for q, style in ((0.25, ":"), (0.5, "--"), (0.75, ":")):
                ax.axvline(float(np.exp(np.quantile(v, q))), color=color, ls=style, lw=1.2)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    ax.set_xlabel("document perplexity (log scale; dashed: median, dotted: 25 / 75 %)")
    ax.set_ylabel("density")
    return _finish(fig, title, path)


def plot_prob_hist(
    corpora: Mapping[str, Sequence[int] | np.ndarray],
    threshold: float = 0.99,
    path: str | os.PathLike | None = None,
    *,
    title: str | None = "Token probabilities under the prior (the paper's Table 6 bins)",
):
    """Grouped bars of the share of tokens in the ten probability bins of width 0.1, one colour per corpus."""
    Figure = optional_import("matplotlib.figure", purpose="the analysis figures").Figure

    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    n = max(len(corpora), 1)
    width = 0.8 / n
    x = np.arange(10)
    for i, (label, hist) in enumerate(corpora.items()):
        h = np.asarray(hist, dtype=np.float64)
        share = 100 * h / h.sum() if h.sum() > 0 else h
        ax.bar(x + (i - (n - 1) / 2) * width, share, width=width, label=str(label), color=f"C{i % 10}")
    ax.set_xticks(x, [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)], fontsize=8)
    ax.set_xlabel(f"P(token | prefix) (editable: p > {threshold})")
    ax.set_ylabel("% of scored tokens")
    ax.legend(fontsize=8)
    return _finish(fig, title, path)


def plot_embedding_map(
    maps: Mapping[str, np.ndarray],
    which: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = "Document embeddings (all-MiniLM-L6-v2)",
):
    """Scatter plots of 2-D projections (one panel per method, e.g. PCA and t-SNE), coloured by corpus."""
    Figure = optional_import("matplotlib.figure", purpose="the analysis figures").Figure

    fig = Figure(figsize=(4.6 * len(maps), 4.2), layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (method, xy) in zip(axes, maps.items(), strict=True):
        for i, label in enumerate(labels):
            m = which == i
            ax.scatter(
                xy[m, 0], xy[m, 1], s=9, alpha=0.6, color=f"C{i % 10}", label=f"{label} ({int(m.sum())})"
            )
        ax.set_title(method, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=8, markerscale=1.5)
    return _finish(fig, title, path)
