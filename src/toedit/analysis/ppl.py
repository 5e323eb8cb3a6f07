"""Per-document perplexity distributions and how far apart they are (the paper's Fig. 3, with numbers).

PPL = exp(-mean log-prob of the scored tokens). Distributions are compared on log PPL: quantiles, KL and JS
divergences on one shared binning, the 1-Wasserstein distance, and coverage of a reference corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..divergence import js_divergence, kl_divergence
from ..optional import optional_import
from ..probs import doc_ppl

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def run_ppls(run_dir: str | Path) -> Iterator[tuple[str, float]]:
    """(document id, PPL) for every record in RUN_DIR/scores/, in shard and input order."""
    from ..runs.rundir import RunDir

    for row in RunDir(run_dir).iter_scores(["id", "logprob"]):
        lp = row["logprob"]
        yield row["id"], doc_ppl(np.array(lp, dtype=np.float64) if lp else np.zeros(0))


def _clean_log(ppls) -> np.ndarray:
    x = np.log(np.asarray(ppls, dtype=np.float64))
    return x[np.isfinite(x)]


def _hist(x: np.ndarray, edges: np.ndarray, smoothing: float) -> np.ndarray:
    counts, _ = np.histogram(x, bins=edges)
    p = counts + smoothing
    return p / p.sum()


def compare(reference, other, bins: int = 50, smoothing: float = 0.5) -> dict[str, float]:
    """Distances of `other`'s PPL distribution from `reference`'s, on log PPL.

    KL(reference || other) and JS use one binning over both corpora with add-`smoothing` counts. Coverage:
    `range_coverage` is the share of the reference's 1-99 % log-PPL range inside other's 1-99 % range;
    `mass_coverage` the share of reference documents whose log PPL lies inside other's whole range.
    """
    wasserstein_distance = optional_import("scipy.stats", purpose="PPL distances").wasserstein_distance

    a, b = _clean_log(reference), _clean_log(other)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both corpora need at least one document with a finite PPL")
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
    p, q = _hist(a, edges, smoothing), _hist(b, edges, smoothing)
    a_lo, a_hi = np.quantile(a, [0.01, 0.99])
    b_lo, b_hi = np.quantile(b, [0.01, 0.99])
    overlap = max(0.0, min(a_hi, b_hi) - max(a_lo, b_lo))
    return {
        "kl": kl_divergence(p, q),
        "js": js_divergence(p, q),
        "wasserstein_log_ppl": float(wasserstein_distance(a, b)),
        "range_coverage": float(overlap / (a_hi - a_lo)) if a_hi > a_lo else float(b_lo <= a_lo <= b_hi),
        "mass_coverage": float(((a >= b.min()) & (a <= b.max())).mean()),
    }


def summarize(ppls) -> dict[str, float]:
    """Count, mean log PPL and PPL quantiles of one corpus (documents without a finite PPL are left out)."""
    x = _clean_log(ppls)
    out: dict[str, float] = {"documents": int(len(x))}
    if len(x):
        out["mean_log_ppl"] = float(x.mean())
        out.update({f"q{int(q * 100):02d}": float(np.exp(np.quantile(x, q))) for q in QUANTILES})
    return out
