"""n-gram concentration of a corpus: mergeable hashed-bucket counts, entropy, Gini, top-1 % share, distinct-n.

The features are DSIR's (:mod:`toedit.analysis.features`, re-exported here); the figures of these statistics
live in :mod:`toedit.analysis.plots`, which imports this module (never the other way round).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .features import (
    WORDPUNCT_PATTERN,
    HashedNgramFeaturizer,
    _batches,
    bucket_of,
    clear_default_caches,
    detect_nltk_engine,
    featurize,
    hashed_features,
    wordpunct_tokenize,
)

__all__ = [
    "CONCENTRATION_KEYS",
    "WORDPUNCT_PATTERN",
    "HashedNgramFeaturizer",
    "NgramStats",
    "bucket_entropy",
    "bucket_of",
    "clear_default_caches",
    "detect_nltk_engine",
    "distinct_n",
    "featurize",
    "gini",
    "hashed_features",
    "ngram_metrics",
    "top_bigrams",
    "top_share",
    "wordpunct_tokenize",
]


class NgramStats:
    """Mergeable n-gram statistics of a corpus.

    ``bucket_counts`` (int64, length num_buckets): summed DSIR feature vectors; ``total_ngrams`` their
    sum; exact ``unigram_counts`` / ``bigram_counts`` Counters (bigram key: the two tokens joined by one
    space, as hashed), from which distinct-1/2 and the top bigrams follow.  The Counters grow with the
    number of distinct bigrams (memory!); ``track_counts=False`` keeps only bucket counts and totals.
    ``merge`` of the stats of two corpora equals the stats of their concatenation.
    """

    TOP_K = 40

    def __init__(
        self, num_buckets: int = 10000, ngrams: int = 2, *, engine: str = "re", track_counts: bool = True
    ) -> None:
        self.num_buckets = int(num_buckets)
        self.ngrams = int(ngrams)
        self.engine = engine
        self.track_counts = bool(track_counts)
        self.bucket_counts = np.zeros(self.num_buckets, dtype=np.int64)
        self.num_docs = 0
        self.unigram_total = 0
        self.bigram_total = 0
        self.unigram_counts: Counter[str] | None = Counter() if track_counts else None
        self.bigram_counts: Counter[str] | None = Counter() if track_counts else None
        # summary values restored by from_dict without counters (read-only, not mergeable)
        self._frozen: dict[str, Any] | None = None
        self._featurizer: HashedNgramFeaturizer | None = None

    # -- accumulation -------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], featurizer: HashedNgramFeaturizer | None = None) -> NgramStats:
        """Add documents (any iterable of str); returns self."""
        if featurizer is None:
            if self._featurizer is None:
                self._featurizer = HashedNgramFeaturizer(self.num_buckets, self.ngrams, engine=self.engine)
            featurizer = self._featurizer
        f = featurizer
        if (f.num_buckets, f.ngrams, f.engine) != (self.num_buckets, self.ngrams, self.engine):
            raise ValueError("featurizer settings differ from the stats' settings")
        self._frozen = None  # summary values restored by from_dict no longer describe the corpus
        for chunk in _batches(texts):
            batch = f._encode(chunk, pairs=True)
            self.bucket_counts += np.bincount(batch.buckets, minlength=self.num_buckets)
            self.num_docs += int(batch.lens.shape[0])
            self.unigram_total += int(batch.ids.shape[0])
            a, b = batch.pair_a, batch.pair_b
            n_pairs = 0 if a is None else int(a.shape[0])
            self.bigram_total += n_pairs
            if self.track_counts and batch.ids.shape[0]:
                toks = f._vocab.tokens
                uc = np.bincount(batch.ids)
                nz = np.flatnonzero(uc)
                _counter_add(
                    self.unigram_counts,
                    {toks[i]: c for i, c in zip(nz.tolist(), uc[nz].tolist(), strict=True)},
                )
                if n_pairs:
                    codes, cnt = np.unique((a << 32) | b, return_counts=True)
                    _counter_add(
                        self.bigram_counts,
                        {
                            toks[c >> 32] + " " + toks[c & 0xFFFFFFFF]: k
                            for c, k in zip(codes.tolist(), cnt.tolist(), strict=True)
                        },
                    )
        return self

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], num_buckets: int = 10000, ngrams: int = 2, **kw: Any
    ) -> NgramStats:
        return cls(num_buckets, ngrams, **kw).add_texts(texts)

    def merge(self, other: NgramStats) -> NgramStats:
        """A new NgramStats of both corpora (self's documents first)."""
        if (self.num_buckets, self.ngrams, self.engine) != (other.num_buckets, other.ngrams, other.engine):
            raise ValueError("cannot merge NgramStats with different num_buckets/ngrams/engine")
        track = self.track_counts and other.track_counts
        out = NgramStats(self.num_buckets, self.ngrams, engine=self.engine, track_counts=track)
        out.bucket_counts = self.bucket_counts + other.bucket_counts
        out.num_docs = self.num_docs + other.num_docs
        out.unigram_total = self.unigram_total + other.unigram_total
        out.bigram_total = self.bigram_total + other.bigram_total
        if track:
            out.unigram_counts = self.unigram_counts + other.unigram_counts
            out.bigram_counts = self.bigram_counts + other.bigram_counts
        return out

    __add__ = merge

    # -- derived values -----------------------------------------------------------------------------
    @property
    def total_ngrams(self) -> int:
        return int(self.bucket_counts.sum())

    def _summary(self, key: str) -> Any:
        if self._frozen is not None:
            return self._frozen.get(key)
        return None

    @property
    def unigram_distinct(self) -> int | None:
        return (
            len(self.unigram_counts) if self.unigram_counts is not None else self._summary("unigram_distinct")
        )

    @property
    def bigram_distinct(self) -> int | None:
        return len(self.bigram_counts) if self.bigram_counts is not None else self._summary("bigram_distinct")

    @property
    def distinct_1(self) -> float | None:
        d = self.unigram_distinct
        return None if d is None else (d / self.unigram_total if self.unigram_total else math.nan)

    @property
    def distinct_2(self) -> float | None:
        d = self.bigram_distinct
        return None if d is None else (d / self.bigram_total if self.bigram_total else math.nan)

    def top_bigrams(self, k: int = TOP_K) -> list[tuple[str, int]] | None:
        """The k most frequent bigrams with counts (ties broken by the bigram string)."""
        if self.bigram_counts is None:
            frozen = self._summary("top_bigrams")
            return None if frozen is None else [(s, int(c)) for s, c in frozen[:k]]
        return _top_items(self.bigram_counts, k)

    def metrics(self, top_k: int = 20, top_frac: float = 0.01) -> dict[str, Any]:
        return ngram_metrics(self, top_k=top_k, top_frac=top_frac)

    # -- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self, include_counters: bool = True) -> dict[str, Any]:
        """JSON-able dict; with ``include_counters`` (and tracking) the exact Counters, so that
        ``from_dict(to_dict())`` can still be merged exactly."""
        d: dict[str, Any] = {
            "num_buckets": self.num_buckets,
            "ngrams": self.ngrams,
            "engine": self.engine,
            "num_docs": self.num_docs,
            "total_ngrams": self.total_ngrams,
            "unigram_total": self.unigram_total,
            "bigram_total": self.bigram_total,
            "unigram_distinct": self.unigram_distinct,
            "bigram_distinct": self.bigram_distinct,
            "top_bigrams": [[s, c] for s, c in (self.top_bigrams(self.TOP_K) or [])],
            "bucket_counts": self.bucket_counts.tolist(),
        }
        if include_counters and self.unigram_counts is not None and self.bigram_counts is not None:
            d["unigram_counts"] = dict(self.unigram_counts)
            d["bigram_counts"] = dict(self.bigram_counts)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NgramStats:
        has = "unigram_counts" in d and "bigram_counts" in d
        out = cls(int(d["num_buckets"]), int(d["ngrams"]), engine=d.get("engine", "re"), track_counts=has)
        out.bucket_counts = np.asarray(d["bucket_counts"], dtype=np.int64).copy()
        if out.bucket_counts.shape != (out.num_buckets,):
            raise ValueError("bucket_counts has the wrong length")
        out.num_docs = int(d["num_docs"])
        out.unigram_total = int(d["unigram_total"])
        out.bigram_total = int(d["bigram_total"])
        if has:
            out.unigram_counts = Counter({k: int(v) for k, v in d["unigram_counts"].items()})
            out.bigram_counts = Counter({k: int(v) for k, v in d["bigram_counts"].items()})
        else:
            out._frozen = {
                "unigram_distinct": d.get("unigram_distinct"),
                "bigram_distinct": d.get("bigram_distinct"),
                "top_bigrams": [tuple(x) for x in d.get("top_bigrams") or []] or None,
            }
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NgramStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"NgramStats(docs={self.num_docs}, ngrams={self.total_ngrams}, buckets={self.num_buckets}, "
            f"distinct_1={self.distinct_1}, distinct_2={self.distinct_2})"
        )


def _counter_add(counter: Counter[str] | None, items: dict[str, int]) -> None:
    if counter is None:
        return
    if not counter:
        counter.update(items)  # plain dict update, fast
        return
    get = counter.get
    for k, v in items.items():
        counter[k] = get(k, 0) + v


def _top_items(counter: Mapping[str, int], k: int) -> list[tuple[str, int]]:
    import heapq

    return heapq.nsmallest(k, counter.items(), key=lambda kv: (-kv[1], kv[0]))


# -- metrics ---------------------------------------------------------------------------------------------
def _counts(x: NgramStats | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(x, NgramStats):
        return x.bucket_counts
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("expected a 1-D count vector")
    if (arr < 0).any():
        raise ValueError("counts must be non-negative")
    return arr


def bucket_entropy(x: NgramStats | np.ndarray, base: float | None = None) -> float:
    """Shannon entropy of the normalised bucket distribution, in nats (``base=None``) or the given
    base (2 for bits).  NaN for an all-zero vector."""
    c = _counts(x).astype(np.float64)
    total = c.sum()
    if total <= 0:
        return math.nan
    p = c[c > 0] / total
    h = float(-(p * np.log(p)).sum())
    h = max(h, 0.0)
    return h / math.log(base) if base is not None else h


def gini(x: NgramStats | np.ndarray) -> float:
    """Gini coefficient of the bucket counts: 0 for a uniform vector, (n-1)/n for one non-zero bucket.
    ``G = 2 * sum_i i * x_(i) / (n * sum x) - (n + 1) / n`` with x sorted ascending, i = 1..n."""
    c = np.sort(_counts(x).astype(np.float64))
    n = c.shape[0]
    total = c.sum()
    if n == 0 or total <= 0:
        return math.nan
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * (i * c).sum() / (n * total) - (n + 1.0) / n)


def top_share(x: NgramStats | np.ndarray, frac: float = 0.01) -> float:
    """Share of the total mass in the ``ceil(frac * n)`` (at least 1) largest buckets."""
    c = _counts(x).astype(np.float64)
    total = c.sum()
    if total <= 0:
        return math.nan
    k = max(1, math.ceil(frac * c.shape[0]))
    return float(np.partition(c, c.shape[0] - k)[c.shape[0] - k :].sum() / total)


def distinct_n(stats: NgramStats, n: int) -> float | None:
    """distinct-n = distinct n-grams / total n-grams, for n in (1, 2)."""
    if n == 1:
        return stats.distinct_1
    if n == 2:
        return stats.distinct_2
    raise ValueError("distinct_n supports n = 1 or 2")


def top_bigrams(stats: NgramStats, k: int = 40) -> list[tuple[str, int]] | None:
    return stats.top_bigrams(k)


# the headline concentration numbers, as the report's size-matched table shows them (columns of ngram_metrics)
CONCENTRATION_KEYS = (
    "num_docs",
    "total_ngrams",
    "bucket_entropy_bits",
    "gini",
    "top_1pct_share",
    "distinct_1",
    "distinct_2",
)


def ngram_metrics(stats: NgramStats, top_k: int = 20, top_frac: float = 0.01) -> dict[str, Any]:
    """All concentration metrics of one corpus, JSON-able."""
    h = bucket_entropy(stats)
    tb = stats.top_bigrams(top_k)
    return {
        "num_docs": stats.num_docs,
        "total_ngrams": stats.total_ngrams,
        "num_buckets": stats.num_buckets,
        "bucket_entropy_nats": h,
        "bucket_entropy_bits": h / math.log(2) if not math.isnan(h) else math.nan,
        "bucket_entropy_max_bits": math.log2(stats.num_buckets),
        "gini": gini(stats),
        f"top_{top_frac * 100:g}pct_share": top_share(stats, top_frac),  # "top_1pct_share" by default
        "distinct_1": stats.distinct_1,
        "distinct_2": stats.distinct_2,
        "unigram_distinct": stats.unigram_distinct,
        "bigram_distinct": stats.bigram_distinct,
        "unigram_total": stats.unigram_total,
        "bigram_total": stats.bigram_total,
        "top_bigrams": None if tb is None else [[s, c] for s, c in tb],
    }
