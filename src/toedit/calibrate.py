"""Choose the threshold from scores: a target fraction of tokens that really change, or that are selected.

A selected token changes with probability 1 - w_orig / sum(w) over its candidates (weights p^(1/beta)), so
the expected change rate of any threshold follows from one scoring pass: no trial edits are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .config import ConfigError
from .scoring import TokenScores


@dataclass
class Calibration:
    """The chosen threshold and what it is expected to do on the sample it was fitted on."""

    target: str  # "change_rate" | "selected_rate"
    target_rate: float
    threshold: float
    expected_change_rate: float
    selected_rate: float
    sample_docs: int
    sample_tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


WordMasks = tuple[np.ndarray, np.ndarray]  # (eligible [n], allowed candidates [n, k]) from editing.word_masks


def change_probability(
    scores: TokenScores, top_k: int, beta: float, exclude_original: bool, words: WordMasks | None = None
) -> np.ndarray:
    """P(the drawn token differs from the original | selected), per position (NaN where unscored).

    With `words` (the word-boundary rule) disallowed candidates weigh nothing and ineligible positions never
    change.
    """
    if top_k <= 0:
        raise ConfigError("target rates need top_k > 0 (the full-vocabulary rule keeps no candidate weights)")
    if scores.topk_ids.shape[1] < top_k:
        raise ValueError(f"scores hold top-{scores.topk_ids.shape[1]} candidates, need {top_k}")
    ids = scores.topk_ids[:, :top_k]
    lps = scores.topk_logprobs[:, :top_k].astype(np.float64)
    if words is not None:
        lps = np.where(words[1][:, :top_k], lps, -np.inf)
    orig_lp = scores.logprob.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = np.maximum(np.max(np.where(np.isnan(lps), -np.inf, lps), axis=1), orig_lp)
        others = np.where(ids == scores.token_ids[:, None], 0.0, np.exp((lps - ref[:, None]) / beta)).sum(
            axis=1
        )
        own = np.exp((orig_lp - ref) / beta)
        prob = (others > 0).astype(np.float64) if exclude_original else others / (others + own)
    if words is not None:
        prob = np.where(words[0], prob, 0.0)
    # the original counts once, whether inside the top-k (excluded from `others`) or added to it
    return np.where(np.isnan(orig_lp), np.nan, prob)


def _pool(
    scores: Sequence[TokenScores],
    top_k: int,
    beta: float,
    exclude_original: bool,
    words: Sequence[WordMasks] | None = None,
):
    """Pooled (selection probability, change probability) of scored positions; with `words`, ineligible
    positions get probability 0 so no threshold selects them."""
    if not scores:
        return np.zeros(0), np.zeros(0)
    if words is not None and len(words) != len(scores):
        raise ValueError("one word mask per scored document is needed")
    ws = list(words) if words is not None else [None] * len(scores)
    p = np.concatenate(
        [
            np.exp(s.logprob.astype(np.float64)) * (1.0 if w is None else w[0])
            for s, w in zip(scores, ws, strict=True)
        ]
    )
    c = np.concatenate(
        [change_probability(s, top_k, beta, exclude_original, w) for s, w in zip(scores, ws, strict=True)]
    )
    keep = ~np.isnan(p)
    return p[keep], c[keep]


def expected_rates(
    scores: Sequence[TokenScores],
    threshold: float,
    top_k: int,
    beta: float,
    exclude_original: bool = False,
    words: Sequence[WordMasks] | None = None,
) -> tuple[float, float]:
    """(expected change rate, selected rate) of a threshold, as shares of scored tokens."""
    p, c = _pool(scores, top_k, beta, exclude_original, words)
    if len(p) == 0:
        return 0.0, 0.0
    sel = p > threshold
    return float(c[sel].sum() / len(p)), float(sel.mean())


def calibrate(
    scores: Sequence[TokenScores],
    top_k: int,
    beta: float,
    exclude_original: bool = False,
    change_rate: float | None = None,
    selected_rate: float | None = None,
    words: Sequence[WordMasks] | None = None,
) -> Calibration:
    """The threshold whose expected change rate (or selected rate) on `scores` is closest to the target.

    `words`: one `editing.word_masks` pair per document for the word-boundary rule.
    """
    if (change_rate is None) == (selected_rate is None):
        raise ConfigError("give exactly one of target_change_rate and target_selected_rate")
    target = change_rate if change_rate is not None else selected_rate
    if not 0.0 <= target <= 1.0:
        raise ConfigError(f"target rate must be in [0, 1], got {target}")
    p, c = _pool(scores, top_k, beta, exclude_original, words)
    n = len(p)
    if n == 0:
        raise ConfigError("cannot calibrate: the sample has no scored tokens")
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    gain = c[order] if change_rate is not None else np.ones(n)
    cum = np.concatenate([[0.0], np.cumsum(gain) / n])  # cum[m]: rate when the top m tokens are selected
    m = int(np.argmin(np.abs(cum - target)))
    # select the top m: threshold = the (m+1)-th largest probability (strict >; ties at it are not selected)
    threshold = 1.0 if m == 0 else (float(p_sorted[m]) if m < n else 0.0)
    expected, selected = expected_rates(scores, threshold, top_k, beta, exclude_original, words)
    return Calibration(
        target="change_rate" if change_rate is not None else "selected_rate",
        target_rate=float(target),
        threshold=threshold,
        expected_change_rate=expected,
        selected_rate=selected,
        sample_docs=len(scores),
        sample_tokens=n,
    )
