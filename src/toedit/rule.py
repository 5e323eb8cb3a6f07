"""The ToEdit decision rule on log-probabilities (parity with the official code; pure numpy)."""

from __future__ import annotations

import numpy as np

DROP = -1  # marker in a decision array: delete the token


def above(logprob: np.ndarray, threshold: float) -> np.ndarray:
    """Selected positions: P > threshold, strictly, P = exp(logprob) in float64 (NaN = unscored = False)."""
    with np.errstate(invalid="ignore"):
        return np.exp(logprob.astype(np.float64)) > threshold


def below(logprob: np.ndarray, low: float) -> np.ndarray:
    """Positions to drop: P < low (NaN = unscored = False)."""
    with np.errstate(invalid="ignore"):
        return np.exp(logprob.astype(np.float64)) < low


def inverse_cdf(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise draw: first column whose cumulative weight exceeds u * total (numpy's `choice` convention)."""
    cum = np.cumsum(weights, axis=1)
    target = u * cum[:, -1]
    return np.argmax(cum > target[:, None], axis=1)


def draw_topk(
    original: np.ndarray,
    original_logprob: np.ndarray,
    topk_ids: np.ndarray,
    topk_logprobs: np.ndarray,
    beta: float,
    u: np.ndarray,
    exclude_original: bool = False,
) -> np.ndarray:
    """Resample selected positions among top-k plus the original token, weights softmax(logprob / beta).

    Rows are positions; candidate order is the top-k order (descending) followed by the original token when it
    is not in the top-k. A row with no candidate left (exclude_original with k = 0) keeps its token.
    """
    m = len(original)
    if m == 0:
        return original.copy()
    in_top = (topk_ids == original[:, None]).any(axis=1)
    ids = np.concatenate([topk_ids, original[:, None]], axis=1)
    extra = np.where(in_top, -np.inf, original_logprob.astype(np.float64))
    lps = np.concatenate([topk_logprobs.astype(np.float64), extra[:, None]], axis=1)
    if exclude_original:
        lps = np.where(ids == original[:, None], -np.inf, lps)
    row_max = lps.max(axis=1)
    empty = ~np.isfinite(row_max)
    with np.errstate(invalid="ignore"):
        weights = np.exp((lps - np.where(empty, 0.0, row_max)[:, None]) / beta)
    weights[empty, -1] = 1.0  # nothing to draw from: keep the original (the last column)
    ids[empty, -1] = original[empty]
    picked = ids[np.arange(m), inverse_cdf(weights, u)]
    return picked.astype(original.dtype)
