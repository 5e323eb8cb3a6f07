"""Token-probability histograms in the paper's fixed bins (Table 6): mergeable counts, never means."""

from __future__ import annotations

import numpy as np

PROB_BINS = 10  # ten bins of width 0.1 over [0, 1]


def prob_histogram(logprob: np.ndarray) -> np.ndarray:
    """Counts of scored token probabilities in the fixed bins [0, .1), ..., [.9, 1] (NaN = unscored)."""
    lp = np.asarray(logprob)
    lp = lp[~np.isnan(lp)]
    counts, _ = np.histogram(np.exp(lp.astype(np.float64)), bins=PROB_BINS, range=(0.0, 1.0))
    return counts


def doc_ppl(logprob: np.ndarray) -> float:
    """exp(-mean log-prob) over scored positions (NaN = unscored); NaN for a document with none."""
    lp = np.asarray(logprob, dtype=np.float64)
    lp = lp[~np.isnan(lp)]
    return float(np.exp(-lp.mean())) if len(lp) else float("nan")
