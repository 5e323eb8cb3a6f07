"""Paired statistics and verdict words of `experiment benefit`, on top of the shared rules in `verdicts`
(`paired_delta`, `verdict`) plus the per-item paired bootstrap (`item_bootstrap`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import verdicts

VERDICTS = ("improves", "no difference", "harms", "undetermined")


def paired_delta(arm: Sequence[float], base: Sequence[float]) -> dict:
    """Δ = arm − base per seed (same seed order): mean, s.e., half-width of the 95 % t-interval, n
    (`verdicts.paired_delta`, the experiments' one implementation)."""
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired values need the same seeds")
    if len(a) == 0:
        return {"mean": math.nan, "se": math.nan, "ci95": math.nan, "n": 0, "per_seed": []}
    d = verdicts.paired_delta(a.tolist(), b.tolist())
    return {"mean": d["mean"], "se": d["se"], "ci95": d["half"], "n": d["n"], "per_seed": (a - b).tolist()}


def verdict(mean: float, half_width: float, higher_is_better: bool) -> str:
    """The stated rule (`verdicts.effect`): the interval [mean ± half_width] entirely on the better side of 0
    -> "improves", on the worse side -> "harms", containing 0 -> "no difference"; no interval -> "undetermined"."""
    if math.isnan(mean) or math.isnan(half_width):
        return "undetermined"
    d = {"mean": mean, "half": half_width, "ci95_low": mean - half_width, "ci95_high": mean + half_width}
    return verdicts.effect(d, lower_is_better=not higher_is_better).word


def item_bootstrap(arm: np.ndarray, base: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """Paired bootstrap over items of the accuracy difference; `arm`, `base`: 0/1 arrays [seeds, items].

    Items are resampled (the same resample for both arms); the statistic is the mean over seeds and items.
    Returns the observed Δ, the 2.5/97.5 % percentiles and a two-sided p (share of resamples on the other side
    of 0, doubled, capped at 1).
    """
    a, b = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError("arm and base must be [seeds, items] arrays of one shape")
    d = (a - b).mean(axis=0)  # per item, averaged over seeds
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(axis=1)
    lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
    p = min(1.0, 2 * min(float((boots <= 0).mean()), float((boots >= 0).mean())))
    if np.all(d == 0):
        p = 1.0
    return {"mean": obs, "lo": lo, "hi": hi, "p": p, "items": int(len(d))}
