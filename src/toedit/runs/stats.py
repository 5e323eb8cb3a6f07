"""Mergeable run statistics: counts and fixed-bin histograms only (never averaged means)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..editing import STAT_KEYS
from ..probs import PROB_BINS, prob_histogram

__all__ = [
    "COUNT_KEYS",
    "PROB_BINS",
    "add_hist",
    "merge",
    "new_round",
    "new_stats",
    "prob_histogram",
    "rates",
]
COUNT_KEYS = (*STAT_KEYS, "n_records", "n_texts", "n_empty", "n_errors")


def new_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(COUNT_KEYS, 0)
    stats["prob_hist"] = [0] * PROB_BINS
    return stats


def new_round() -> dict[str, Any]:
    """Counts of one editing round (its input's scores and what the round changed)."""
    out: dict[str, Any] = dict.fromkeys(STAT_KEYS, 0)
    out["prob_hist"] = [0] * PROB_BINS
    return out


def add_hist(a: list[int], b: list[int] | None) -> list[int]:
    return [x + int(y) for x, y in zip(a, [0] * PROB_BINS if b is None else b, strict=True)]


def merge(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum shard stats; `rounds` (per-round counts of --rounds N runs) is summed round by round."""
    out = new_stats()
    for part in parts:
        for key in COUNT_KEYS:
            out[key] += int(part.get(key, 0))
        out["prob_hist"] = add_hist(out["prob_hist"], part.get("prob_hist"))
        for r, rnd in enumerate(part.get("rounds") or []):
            rounds = out.setdefault("rounds", [])
            if r == len(rounds):
                rounds.append(new_round())
            for key in STAT_KEYS:
                rounds[r][key] += int(rnd.get(key, 0))
            rounds[r]["prob_hist"] = add_hist(rounds[r]["prob_hist"], rnd.get("prob_hist"))
    return out


def rates(stats: dict[str, Any]) -> dict[str, float]:
    """Shares of scored tokens (the denominators are counts, so merged runs stay exact)."""
    scored = max(stats.get("n_scored", 0), 1)
    return {
        "above_rate": stats.get("n_above", 0) / scored,
        "change_rate": stats.get("n_changed", 0) / scored,
        "drop_rate": stats.get("n_dropped", 0) / scored,
    }
