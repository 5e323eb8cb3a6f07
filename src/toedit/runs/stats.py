"""Mergeable run statistics: counts and fixed-bin histograms only (never averaged means)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..editing import STAT_KEYS

PROB_BINS = 10  # the paper's Table 6: ten bins of width 0.1 over [0, 1]
COUNT_KEYS = (*STAT_KEYS, "n_records", "n_texts", "n_empty", "n_errors")


def new_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(COUNT_KEYS, 0)
    stats["prob_hist"] = [0] * PROB_BINS
    return stats


def prob_histogram(logprob: np.ndarray) -> np.ndarray:
    """Counts of scored token probabilities in the fixed bins [0, .1), ..., [.9, 1]."""
    lp = logprob[~np.isnan(logprob)]
    counts, _ = np.histogram(np.exp(lp.astype(np.float64)), bins=PROB_BINS, range=(0.0, 1.0))
    return counts


def merge(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out = new_stats()
    for part in parts:
        for key in COUNT_KEYS:
            out[key] += int(part.get(key, 0))
        hist = part.get("prob_hist") or [0] * PROB_BINS
        out["prob_hist"] = [a + int(b) for a, b in zip(out["prob_hist"], hist, strict=True)]
    return out


def rates(stats: dict[str, Any]) -> dict[str, float]:
    """Shares of scored tokens (the denominators are counts, so merged runs stay exact)."""
    scored = max(stats.get("n_scored", 0), 1)
    return {
        "above_rate": stats.get("n_above", 0) / scored,
        "change_rate": stats.get("n_changed", 0) / scored,
        "drop_rate": stats.get("n_dropped", 0) / scored,
    }
