"""Distances between discrete distributions (numpy only: core commands use them without the analysis extra)."""

from __future__ import annotations

import numpy as np


def bucket_distribution(counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """``(counts + smoothing) / (counts.sum() + smoothing * len(counts))`` (float64)."""
    c = np.asarray(counts, dtype=np.float64)
    if smoothing < 0:
        raise ValueError("smoothing must be >= 0")
    total = c.sum() + smoothing * c.shape[0]
    if total <= 0:
        raise ValueError("cannot normalise an all-zero count vector without smoothing")
    return (c + smoothing) / total


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats for two probability vectors (0 log 0 = 0; inf where q = 0 < p)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = p > 0
    with np.errstate(divide="ignore"):
        return float(max((p[m] * (np.log(p[m]) - np.log(q[m]))).sum(), 0.0))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in nats of two probability vectors (bounded by log 2)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)
