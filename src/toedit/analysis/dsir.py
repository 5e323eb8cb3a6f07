"""Data selection with importance resampling (DSIR, Xie et al. 2023) on hashed n-gram features.

The paper uses DSIR to pick, from a raw (synthetic) pool, the documents whose hashed n-gram
distribution is closest to a target (human) corpus, and the feature-space KL divergence to measure how
far apart the two are.  With ``x`` a document's DSIR count vector (:mod:`toedit.analysis.ngrams`):

* ``q`` / ``p``: bucket distributions of the target / raw corpus, ``(counts + smoothing) / (total +
  smoothing * num_buckets)`` (add-one by default);
* log importance weight of raw document ``x``: ``log w = x . (log(q + eps) - log(p + eps))``;
* selection: the ``n`` documents with the largest ``log w + Gumbel(0, 1)`` noise (Gumbel top-k =
  sampling ``n`` documents without replacement with probabilities proportional to ``w``); seeded;
* ``kl_before = KL(q || p)``, ``kl_after = KL(q || p_selected)`` with the same smoothing.

Differences from the ``data-selection`` package (``HashedNgramDSIR``): it estimates ``q`` and ``p``
without smoothing and adds ``eps = 1e-8`` inside the logs (``smoothing=0.0, eps=1e-8`` here reproduces
its log weights exactly), fits ``p`` on at most ``100000 * num_buckets`` raw n-grams by default (here:
all), and drops raw documents with fewer than 100 words before resampling (``min_words`` here, default
0).  The Gumbel noise comes from ``numpy.random.default_rng(seed)`` instead of the global NumPy state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..divergence import bucket_distribution, js_divergence, kl_divergence  # noqa: F401 (re-exported)
from ..io import BadRecord, FieldSpec, InputError, extract_texts, list_shards, read_shard, write_jsonl_atomic
from ..optional import optional_import
from ..runs.rundir import RUN_DIRS
from .features import HashedNgramFeaturizer

sp = optional_import("scipy.sparse", purpose="DSIR selection (toedit select, analyze)")

__all__ = [
    "SelectionError",
    "SelectionResult",
    "bucket_distribution",
    "gumbel_top_k",
    "kl_divergence",
    "log_importance_weights",
    "read_records",
    "select",
    "select_files",
    "select_from_features",
]


class SelectionError(ValueError):
    """The corpora cannot give the selection asked for (too few raw documents, no n-grams); the CLI reports
    it as an input error."""


@dataclass
class SelectionResult:
    """``indices``: selected raw documents, by descending perturbed key; ``log_weights``: log importance
    weight of every raw document; ``kl_before`` = KL(target || raw), ``kl_after`` = KL(target ||
    selected) on smoothed bucket distributions (nats)."""

    indices: np.ndarray
    log_weights: np.ndarray
    kl_before: float
    kl_after: float
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))  # log w + Gumbel noise of the selected
    log_ratio: np.ndarray | None = None  # log q - log p per bucket
    num_buckets: int = 10000
    length_normalized: bool = False  # the selection used length-normalised weights
    kl_after_other: float | None = None  # kl_after of the same selection with the other weighting
    kl_after_random: float | None = None  # kl_after of a uniform random subset of the same size

    @property
    def kl_reduction(self) -> float:
        return self.kl_before - self.kl_after

    @property
    def kl_relative_reduction(self) -> float:
        return self.kl_reduction / self.kl_before if self.kl_before > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        lw = self.log_weights
        sel = lw[self.indices] if self.indices.size else np.empty(0)
        return {
            "num_raw": int(lw.shape[0]),
            "num_selected": int(self.indices.shape[0]),
            "num_buckets": self.num_buckets,
            "kl_before": float(self.kl_before),
            "kl_after": float(self.kl_after),
            "kl_reduction": float(self.kl_reduction),
            "kl_relative_reduction": _finite_or_none(self.kl_relative_reduction),
            "kl_after_random_subset": _finite_or_none(self.kl_after_random),
            "length_normalized": self.length_normalized,
            "kl_after_raw_weights": _finite_or_none(
                self.kl_after_other if self.length_normalized else self.kl_after
            ),
            "kl_after_length_normalized": _finite_or_none(
                self.kl_after if self.length_normalized else self.kl_after_other
            ),
            "log_weight_mean_raw": _finite_or_none(float(lw.mean())) if lw.size else None,
            "log_weight_mean_selected": _finite_or_none(float(sel.mean())) if sel.size else None,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def log_importance_weights(features: sp.spmatrix | np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    """``features @ log_ratio``: one log importance weight per row (document)."""
    return np.asarray(features @ np.asarray(log_ratio, dtype=np.float64), dtype=np.float64).ravel()


def gumbel_top_k(
    log_weights: np.ndarray, n: int, seed: int | np.random.Generator | None = 0, *, top_k: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``n`` distinct rows with the largest ``log_weights + Gumbel(0, 1)`` (noise omitted
    with ``top_k=True``), ordered by descending key (ties: lower index first), and their keys.
    Entries of -inf (excluded documents) are never selected."""
    lw = np.asarray(log_weights, dtype=np.float64)
    eligible = np.flatnonzero(lw > -np.inf)
    if n < 0:
        raise SelectionError(f"cannot select {n} documents: n must be >= 0")
    if n > eligible.shape[0]:
        raise SelectionError(
            f"cannot select {n} documents: only {eligible.shape[0]} raw documents are eligible"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keys = lw.copy()
    if not top_k:
        keys += rng.gumbel(size=lw.shape[0])  # noise for every row, so a row's noise does not depend on n
    ek = keys[eligible]
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    # full sort by (-key, index): deterministic also for tied keys at the cut (top_k=True)
    idx = eligible[np.lexsort((eligible, -ek))[:n]].astype(np.int64)
    return idx, keys[idx]


def select(
    target_texts: Iterable[str],
    raw_texts: Iterable[str],
    n: int,
    seed: int = 0,
    num_buckets: int = 10000,
    *,
    ngrams: int = 2,
    smoothing: float = 1.0,
    eps: float = 0.0,
    min_words: int = 0,
    top_k: bool = False,
    length_normalized: bool = False,
    engine: str = "re",
    workers: int = 1,
    featurizer: HashedNgramFeaturizer | None = None,
) -> SelectionResult:
    """Select ``n`` raw documents by DSIR importance resampling towards the target corpus.

    ``smoothing``: add-``smoothing`` to the bucket counts of q and p (and of the KL distributions);
    ``eps``: added inside the logs of the weights (DSIR's 1e-8); ``min_words``: raw documents with
    fewer tokens are never selected; ``top_k``: deterministic top-k on log w (no Gumbel noise);
    ``length_normalized``: rank by ``log w * mean_len / len`` (every document weighted as if it had the raw
    pool's mean n-gram count), since raw log weights grow with length and favour long documents. The
    result reports the KL after selection under both weightings.
    """
    f = featurizer or HashedNgramFeaturizer(num_buckets, ngrams, engine=engine)
    num_buckets = f.num_buckets
    target_counts, n_target = f.bucket_totals(target_texts)
    raw = f.featurize(raw_texts, workers=workers)
    return select_from_features(
        target_counts,
        raw,
        n,
        seed=seed,
        smoothing=smoothing,
        eps=eps,
        min_words=min_words,
        top_k=top_k,
        length_normalized=length_normalized,
        ngrams=f.ngrams,
        n_target=n_target,
    )


def select_from_features(
    target_counts: np.ndarray,
    raw_features: sp.spmatrix | np.ndarray,
    n: int,
    *,
    seed: int = 0,
    smoothing: float = 1.0,
    eps: float = 0.0,
    min_words: int = 0,
    top_k: bool = False,
    length_normalized: bool = False,
    ngrams: int = 2,
    n_target: int | None = None,
) -> SelectionResult:
    """:func:`select` on precomputed features: target bucket totals and the raw feature matrix."""
    if smoothing <= 0 and eps <= 0:
        raise ValueError("need smoothing > 0 or eps > 0 (log of zero probabilities)")
    target_counts = np.asarray(target_counts, dtype=np.float64)
    if target_counts.sum() <= 0:
        raise SelectionError("the target corpus has no n-grams (is it empty?)")
    raw = sp.csr_matrix(raw_features) if not sp.issparse(raw_features) else raw_features.tocsr()
    if raw.shape[1] != target_counts.shape[0]:
        raise ValueError("target and raw features have different numbers of buckets")
    raw_counts = np.asarray(raw.sum(axis=0), dtype=np.float64).ravel()
    if raw_counts.sum() <= 0 and smoothing <= 0:
        raise SelectionError("the raw corpus has no n-grams (is it empty?)")
    q = bucket_distribution(target_counts, smoothing)
    p = bucket_distribution(raw_counts, smoothing)
    with np.errstate(divide="ignore"):
        log_ratio = np.log(q + eps) - np.log(p + eps)
    log_w = log_importance_weights(raw, log_ratio)
    sums = np.asarray(raw.sum(axis=1), dtype=np.float64).ravel()
    scaled = log_w * (sums.mean() / np.maximum(sums, 1.0)) if sums.size else log_w
    excluded = np.zeros(log_w.shape[0], dtype=bool)
    if min_words > 0:
        # tokens per document from its features: sum = sum_k (L - k + 1)^+ over orders k <= ngrams
        excluded = _words_from_feature_sums(sums.astype(np.int64), ngrams) < min_words
    kl_before = kl_divergence(q, p)

    def pick(weights: np.ndarray, deterministic: bool = top_k) -> tuple[np.ndarray, np.ndarray, float]:
        i, k = gumbel_top_k(np.where(excluded, -np.inf, weights), n, seed, top_k=deterministic)
        sel = np.asarray(raw[i].sum(axis=0), dtype=np.float64).ravel() if i.size else np.zeros_like(q)
        after = (
            kl_divergence(q, bucket_distribution(sel, smoothing))
            if sel.sum() > 0 or smoothing > 0
            else math.inf
        )
        return i, k, after

    idx, keys, kl_after = pick(scaled if length_normalized else log_w)
    _, _, kl_other = pick(log_w if length_normalized else scaled)
    # baseline: a uniform random subset of the same size (a smaller sample alone moves the smoothed KL)
    _, _, kl_random = pick(np.zeros_like(log_w), deterministic=False)
    return SelectionResult(
        indices=idx,
        log_weights=log_w,
        kl_before=kl_before,
        kl_after=kl_after,
        keys=keys,
        log_ratio=log_ratio,
        num_buckets=int(target_counts.shape[0]),
        length_normalized=length_normalized,
        kl_after_other=kl_other,
        kl_after_random=kl_random,
    )


def _words_from_feature_sums(sums: np.ndarray, ngrams: int) -> np.ndarray:
    """Invert ``sum_{k=1..n} max(L - k + 1, 0)`` (the number of n-grams of a document of L tokens)."""
    sums = np.asarray(sums, dtype=np.int64)
    # the count is increasing in L (for L >= 1): vectorised binary search for the largest L with count <= sum
    lo = np.zeros_like(sums)
    hi = sums.copy()
    while (lo < hi).any():
        mid = (lo + hi + 1) // 2
        cnt = np.zeros_like(mid)
        for k in range(1, ngrams + 1):
            cnt += np.maximum(mid - k + 1, 0)
        ok = cnt <= sums
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid - 1)
    return lo


# -- files -------------------------------------------------------------------------------------------------
def read_records(
    paths: Sequence[str | os.PathLike], text_field: str = "text"
) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, text) of every record of the inputs (any format the I/O layer reads: JSONL(.gz/.zst),
    Parquet, txt, datasets dirs, directories, globs). A bad record raises InputError naming file and line:
    a selection must not silently skip documents."""
    spec = FieldSpec(text_field=text_field, id_field=None)
    shards = [shard for p in paths for shard in list_shards([str(p)], fence=RUN_DIRS)]  # in the order given
    for shard in shards:
        for rec in read_shard(shard, spec):
            if isinstance(rec, BadRecord):
                raise InputError(f"{rec.file}:{rec.line}: {rec.reason}")
            yield rec.data, "\n\n".join(extract_texts(rec.data, spec))


def _as_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [str(paths)]
    return [str(p) for p in paths]


def select_files(
    target_paths: str | os.PathLike | Sequence[str | os.PathLike],
    raw_paths: str | os.PathLike | Sequence[str | os.PathLike],
    n: int,
    out_path: str | os.PathLike,
    text_field: str = "text",
    seed: int = 0,
    **kwargs: Any,
) -> tuple[SelectionResult, dict[str, Any]]:
    """DSIR selection over files (any input format of the I/O layer).

    Reads the target and raw records (``text_field`` holds the text), selects ``n`` raw records with
    :func:`select` (``kwargs``: num_buckets, ngrams, smoothing, eps, min_words, top_k, length_normalized,
    engine, workers), and writes the selected raw records with all their fields as JSON lines to
    ``out_path`` (gzip if it ends in .gz) in selection order: descending perturbed key.  Raw record indices count across the
    raw files in the order given.  Returns the result and a JSON-able summary.
    """
    tpaths = _as_paths(target_paths)
    rpaths = _as_paths(raw_paths)
    target_texts = (text for _, text in read_records(tpaths, text_field))
    raw_records: list[dict[str, Any]] = []
    raw_texts: list[str] = []
    for data, text in read_records(rpaths, text_field):
        raw_records.append(data)
        raw_texts.append(text)
    result = select(target_texts, raw_texts, n, seed=seed, **kwargs)
    del raw_texts
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out, (raw_records[i] for i in result.indices.tolist()))
    summary = {
        **result.summary(),
        "target_paths": tpaths,
        "raw_paths": rpaths,
        "out_path": str(out),
        "text_field": text_field,
        "seed": seed,
        "n": n,
        **{k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)},
    }
    return result, summary
