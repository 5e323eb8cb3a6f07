"""Hashed n-gram features (DSIR's featurizer), n-gram concentration statistics and plots.

The paper measures n-gram concentration with the hashed n-gram featurizer of DSIR (Xie et al. 2023,
the ``data-selection`` package, ``data_selection.hashed_ngram_dsir.get_ngram_counts``).  That
featurizer does, for one document ``line``::

    words = WordPunctTokenizer().tokenize(line.lower())        # nltk, regex r"\\w+|[^\\w\\s]+"
    for w in words:               counts[sha256(w)    % num_buckets] += 1      # unigrams
    for i in range(2, n + 1):                                                     # n = 2 by default
        for ng in nltk.ngrams(words, i):
            counts[sha256(" ".join(ng)) % num_buckets] += 1                      # bigrams, ...

with ``sha256(s) = int(hashlib.sha256(s.encode("utf-8")).hexdigest(), 16)`` and ``num_buckets=10000``:
Python ``str.lower()``, no other normalisation, n-grams never span documents, one space between the
tokens of an n-gram, an int64 count vector.  :class:`HashedNgramFeaturizer` reproduces it exactly
(tests compare against a plain reference loop and, when it is installed, the package itself).

The one thing that depends on the environment is the regular-expression *engine*: nltk up to the 3.9
line compiled ``RegexpTokenizer`` patterns with the standard library's ``re``; recent nltk (the 3.10
line) compiles them with the third-party ``regex`` module (``nltk.redos``), whose ``\\w``/``\\s`` differ
from ``re``'s on some non-ASCII characters (combining marks such as U+0301, superscript digits and
vulgar fractions, connector punctuation, ZWJ/ZWNJ, and U+001C..U+001F, which ``re`` treats as
whitespace).  ``engine="re"`` (the default) reproduces the older nltk, ``engine="regex"`` the newer;
:func:`detect_nltk_engine` says which one the installed nltk uses.  On text without those characters
the two agree.

Speed: every distinct token and every distinct bigram is hashed once (bucket caches), the per-token
work is a C-level ``dict`` lookup, bigram buckets come from a dense table for pairs of the first
``dense_vocab`` distinct tokens (most pairs in running text) and a dict otherwise, and counting is
done in numpy.  ``featurize(..., workers=k)`` spreads batches over processes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
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
    "plot_bucket_response",
    "plot_top_bigrams",
    "top_bigrams",
    "top_share",
    "wordpunct_tokenize",
]

#: nltk's ``WordPunctTokenizer`` pattern.
WORDPUNCT_PATTERN = r"\w+|[^\w\s]+"
ENGINES = ("re", "regex")

# a batch of texts is encoded at once; bounded so memory stays bounded for any corpus size
_BATCH_CHARS = 8_000_000
_BATCH_DOCS = 100_000


def bucket_of(ngram: str, num_buckets: int = 10000) -> int:
    """DSIR's bucket of one n-gram string: ``int(sha256(utf-8).hexdigest(), 16) % num_buckets``.

    (``int.from_bytes(digest, "big")`` is the same integer as ``int(hexdigest, 16)``.)  Lone surrogates,
    which UTF-8 cannot encode (DSIR raises on them), are encoded with ``surrogatepass``.
    """
    return (
        int.from_bytes(hashlib.sha256(ngram.encode("utf-8", "surrogatepass")).digest(), "big") % num_buckets
    )


def _compile(engine: str):
    if engine == "re":
        return re.compile(WORDPUNCT_PATTERN, re.UNICODE | re.MULTILINE | re.DOTALL)
    if engine == "regex":
        try:
            import regex
        except ImportError as e:  # pragma: no cover - regex ships with transformers
            raise ImportError("engine='regex' needs the 'regex' package") from e
        return regex.compile(WORDPUNCT_PATTERN, regex.UNICODE | regex.MULTILINE | regex.DOTALL)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def wordpunct_tokenize(text: str, engine: str = "re") -> list[str]:
    """Lowercase and split like DSIR: ``WordPunctTokenizer().tokenize(text.lower())``."""
    return _compile(engine).findall(text.lower())


def detect_nltk_engine() -> str | None:
    """Which regex engine the installed nltk's ``WordPunctTokenizer`` behaves like ("re"/"regex"),
    or None when nltk is not importable.  Decided by behaviour (a combining accent is a word character
    for ``regex`` but not for ``re``), not by version number."""
    try:
        from nltk.tokenize import WordPunctTokenizer
    except ImportError:
        return None
    return "regex" if WordPunctTokenizer().tokenize("a\u0301b") == ["a\u0301b"] else "re"


class _Vocab(dict):
    """token -> id; a miss appends the token (its bucket is computed in bulk afterwards)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def __missing__(self, token: str) -> int:
        i = len(self.tokens)
        self[token] = i
        self.tokens.append(token)
        return i


class _PairCache(dict):
    """(id_a << 32 | id_b) -> bucket of "tok_a tok_b"; a miss hashes the bigram string once."""

    def __init__(self, tokens: list[str], num_buckets: int) -> None:
        super().__init__()
        self.tokens = tokens
        self.num_buckets = num_buckets

    def __missing__(self, code: int) -> int:
        t = self.tokens
        v = bucket_of(t[code >> 32] + " " + t[code & 0xFFFFFFFF], self.num_buckets)
        self[code] = v
        return v


class _StrCache(dict):
    """n-gram string -> bucket (orders above 2)."""

    def __init__(self, num_buckets: int) -> None:
        super().__init__()
        self.num_buckets = num_buckets

    def __missing__(self, s: str) -> int:
        v = bucket_of(s, self.num_buckets)
        self[s] = v
        return v


@dataclass
class _Batch:
    """Encoded batch: ``lens[d]`` tokens of doc d, token ids, (row, bucket) of every n-gram of every
    order, and the bigram id pairs (a, b) when computed.  Ids are valid until the next encode."""

    lens: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    buckets: np.ndarray
    pair_a: np.ndarray | None = None
    pair_b: np.ndarray | None = None


class HashedNgramFeaturizer:
    """DSIR's hashed n-gram featurizer, with bucket caches (not thread-safe; one per thread/process).

    ``num_buckets``: hash space (10000 as in DSIR); ``ngrams``: highest order (2 = unigrams + bigrams);
    ``engine``: "re" or "regex" (see the module docstring); ``max_cache_entries``: the token and bigram
    caches are dropped and rebuilt between batches when either grows past this (about 100 bytes an
    entry, so the default bounds them near 200 MB per cache on huge corpora);
    ``dense_vocab``: bigrams of the first ``dense_vocab`` distinct tokens use a dense
    ``dense_vocab**2`` int32 table (16 MiB for 2048).
    """

    def __init__(
        self,
        num_buckets: int = 10000,
        ngrams: int = 2,
        *,
        engine: str = "re",
        max_cache_entries: int = 2_000_000,
        dense_vocab: int = 2048,
    ) -> None:
        if num_buckets < 1:
            raise ValueError("num_buckets must be >= 1")
        if ngrams < 1:
            raise ValueError("ngrams must be >= 1")
        self.num_buckets = int(num_buckets)
        self.ngrams = int(ngrams)
        self.engine = engine
        self.max_cache_entries = int(max_cache_entries)
        self.dense_vocab = int(dense_vocab)
        self._findall = _compile(engine).findall
        self._reset()

    # -- caches -------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._vocab = _Vocab()
        self._tok_bucket = np.empty(0, dtype=np.int64)
        self._pairs = _PairCache(self._vocab.tokens, self.num_buckets)
        self._dense: np.ndarray | None = None
        self._strs = _StrCache(self.num_buckets)

    def clear(self) -> None:
        """Drop the bucket caches (they are rebuilt on demand)."""
        self._reset()

    def _maybe_reset(self) -> None:
        m = self.max_cache_entries
        if len(self._vocab) > m or len(self._pairs) > m or len(self._strs) > m:
            self._reset()

    def _sync_token_buckets(self) -> np.ndarray:
        toks = self._vocab.tokens
        old = self._tok_bucket.shape[0]
        if len(toks) > old:
            nb = self.num_buckets
            new = np.fromiter((bucket_of(t, nb) for t in toks[old:]), dtype=np.int64, count=len(toks) - old)
            self._tok_bucket = np.concatenate([self._tok_bucket, new])
        return self._tok_bucket

    def config(self) -> dict[str, Any]:
        return {
            "num_buckets": self.num_buckets,
            "ngrams": self.ngrams,
            "engine": self.engine,
            "max_cache_entries": self.max_cache_entries,
            "dense_vocab": self.dense_vocab,
        }

    # -- encoding -----------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        return self._findall(text.lower())

    def _pair_buckets(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(a.shape[0], dtype=np.int64)
        k = self.dense_vocab
        small = (a < k) & (b < k) if k > 0 else np.zeros(a.shape[0], dtype=bool)
        if small.any():
            if self._dense is None:
                self._dense = np.full(k * k, -1, dtype=np.int32 if self.num_buckets < 2**31 else np.int64)
            key = a[small] * k + b[small]
            v = self._dense[key]
            miss = v < 0
            if miss.any():
                um = np.unique(key[miss])
                pairs = self._pairs
                self._dense[um] = np.fromiter(
                    (pairs[((x // k) << 32) | (x % k)] for x in um.tolist()), dtype=np.int64, count=um.size
                )
                v = self._dense[key]
            out[small] = v
            rest = ~small
        else:
            rest = np.ones(a.shape[0], dtype=bool)
        if rest.any():
            codes = (a[rest] << 32) | b[rest]
            out[rest] = np.fromiter(
                map(self._pairs.__getitem__, codes.tolist()), dtype=np.int64, count=codes.size
            )
        return out

    def _encode(self, texts: Sequence[str], pairs: bool = False) -> _Batch:
        """Encode one batch (texts is a sequence of str)."""
        self._maybe_reset()
        findall = self._findall
        get = self._vocab.__getitem__
        ids_list: list[int] = []
        extend = ids_list.extend
        lens_list: list[int] = []
        keep_tokens = self.ngrams >= 3
        doc_tokens: list[list[str]] = []
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"texts must be str, got {type(t).__name__}")
            toks = findall(t.lower())
            extend(map(get, toks))
            lens_list.append(len(toks))
            if keep_tokens:
                doc_tokens.append(toks)
        ids = np.array(ids_list, dtype=np.int64)
        del ids_list
        lens = np.array(lens_list, dtype=np.int64)
        n_docs = lens.shape[0]
        tok_bucket = self._sync_token_buckets()
        docof = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
        rows = [docof]
        buckets = [tok_bucket[ids]]
        pair_a = pair_b = None
        if (self.ngrams >= 2 or pairs) and ids.shape[0] > 1:
            valid = np.ones(ids.shape[0] - 1, dtype=bool)
            last = np.cumsum(lens)[lens > 0] - 1  # last token of each non-empty doc
            valid[last[last < ids.shape[0] - 1]] = False
            pair_a = ids[:-1][valid]
            pair_b = ids[1:][valid]
            if self.ngrams >= 2:
                rows.append(docof[:-1][valid])
                buckets.append(self._pair_buckets(pair_a, pair_b))
        elif self.ngrams >= 2 or pairs:
            pair_a = pair_b = np.empty(0, dtype=np.int64)
        if keep_tokens:
            strs = self._strs.__getitem__
            for order in range(3, self.ngrams + 1):
                r: list[int] = []
                bk: list[int] = []
                for d, toks in enumerate(doc_tokens):
                    m = len(toks) - order + 1
                    if m > 0:
                        bk.extend(map(strs, (" ".join(toks[i : i + order]) for i in range(m))))
                        r.extend([d] * m)
                rows.append(np.array(r, dtype=np.int64))
                buckets.append(np.array(bk, dtype=np.int64))
        return _Batch(
            lens=lens,
            ids=ids,
            rows=np.concatenate(rows) if len(rows) > 1 else rows[0],
            buckets=np.concatenate(buckets) if len(buckets) > 1 else buckets[0],
            pair_a=pair_a,
            pair_b=pair_b,
        )

    # -- public -------------------------------------------------------------------------------------
    def features(self, text: str) -> np.ndarray:
        """Count vector (int64, length num_buckets) of one document."""
        batch = self._encode([text])
        return np.bincount(batch.buckets, minlength=self.num_buckets).astype(np.int64, copy=False)

    def featurize(
        self, texts: Iterable[str], *, workers: int = 1, dense: bool = False
    ) -> sp.csr_matrix | np.ndarray:
        """Count vectors of many documents: a (num_docs, num_buckets) int64 CSR matrix (or dense
        ndarray with ``dense=True``).  ``workers > 1`` encodes batches in that many processes."""
        if workers < 0:
            workers = os.cpu_count() or 1
        if workers > 1:
            mat = _featurize_parallel(list(texts), self, workers)
        else:
            parts = [_batch_to_csr(self._encode(b), self.num_buckets) for b in _batches(texts)]
            mat = _vstack(parts, self.num_buckets)
        return mat.toarray() if dense else mat

    def bucket_totals(self, texts: Iterable[str]) -> tuple[np.ndarray, int]:
        """Summed count vector over all texts, and the number of documents."""
        total = np.zeros(self.num_buckets, dtype=np.int64)
        n = 0
        for b in _batches(texts):
            batch = self._encode(b)
            total += np.bincount(batch.buckets, minlength=self.num_buckets)
            n += batch.lens.shape[0]
        return total, n


def _batches(texts: Iterable[str], max_chars: int | None = None) -> Iterator[list[str]]:
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of str, not a str")
    if max_chars is None:
        max_chars = _BATCH_CHARS
    cur: list[str] = []
    chars = 0
    yielded = False
    for t in texts:
        cur.append(t)
        chars += len(t) if isinstance(t, str) else 0
        if chars >= max_chars or len(cur) >= _BATCH_DOCS:
            yield cur
            yielded = True
            cur = []
            chars = 0
    if cur or not yielded:
        yield cur


def _csr_from_counts(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """CSR of the multiplicities of (row, col) pairs, via one sort of the flattened keys."""
    key = rows * n_cols + cols
    if n_rows * n_cols <= 2**32:
        key = key.astype(np.uint32)  # sorting 32-bit keys is about twice as fast
    key.sort()
    if key.shape[0]:
        flag = np.empty(key.shape[0], dtype=bool)
        flag[0] = True
        np.not_equal(key[1:], key[:-1], out=flag[1:])
        starts = np.flatnonzero(flag)
        counts = np.diff(np.append(starts, key.shape[0])).astype(np.int64)
        uk = key[starts].astype(np.int64)
    else:
        counts = np.empty(0, dtype=np.int64)
        uk = np.empty(0, dtype=np.int64)
    r = uk // n_cols
    c = uk - r * n_cols
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
    idx_dtype = np.int32 if max(n_cols, counts.shape[0]) < 2**31 else np.int64
    return sp.csr_matrix((counts, c.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n_rows, n_cols))


def _batch_to_csr(batch: _Batch, num_buckets: int) -> sp.csr_matrix:
    return _csr_from_counts(batch.rows, batch.buckets, batch.lens.shape[0], num_buckets)


def _vstack(parts: list[sp.csr_matrix], num_buckets: int) -> sp.csr_matrix:
    if not parts:
        return sp.csr_matrix((0, num_buckets), dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return sp.vstack(parts, format="csr", dtype=np.int64)


# -- multiprocessing ----------------------------------------------------------------------------------
_WORKER: HashedNgramFeaturizer | None = None


def _worker_init(config: dict[str, Any]) -> None:
    global _WORKER
    _WORKER = HashedNgramFeaturizer(**config)


def _worker_csr(texts: list[str]) -> sp.csr_matrix:
    assert _WORKER is not None
    return _batch_to_csr(_WORKER._encode(texts), _WORKER.num_buckets)


def _featurize_parallel(texts: list[str], featurizer: HashedNgramFeaturizer, workers: int) -> sp.csr_matrix:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    total = sum(len(t) for t in texts if isinstance(t, str))
    # a few chunks per worker for balance; bounded by the batch size for memory
    target = max(min(_BATCH_CHARS, total // (workers * 4) + 1), 1)
    chunks = list(_batches(texts, target))
    nb = featurizer.num_buckets
    if len(chunks) <= 1:
        return _vstack([_batch_to_csr(featurizer._encode(c), nb) for c in chunks], nb)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=mp.get_context(method),
        initializer=_worker_init,
        initargs=(featurizer.config(),),
    ) as ex:
        parts = list(ex.map(_worker_csr, chunks))
    return _vstack(parts, nb)


_DEFAULT: dict[tuple[int, int, str], HashedNgramFeaturizer] = {}


def _default_featurizer(num_buckets: int, ngrams: int, engine: str) -> HashedNgramFeaturizer:
    key = (num_buckets, ngrams, engine)
    f = _DEFAULT.get(key)
    if f is None:
        f = _DEFAULT[key] = HashedNgramFeaturizer(num_buckets, ngrams, engine=engine)
    return f


def clear_default_caches() -> None:
    """Free the caches of the featurizers behind :func:`hashed_features` / :func:`featurize`."""
    _DEFAULT.clear()


def hashed_features(
    text: str, num_buckets: int = 10000, ngrams: int = 2, *, engine: str = "re"
) -> np.ndarray:
    """DSIR's feature vector of one document: int64 counts of hashed unigrams (+ bigrams, ...)."""
    return _default_featurizer(num_buckets, ngrams, engine).features(text)


def featurize(
    texts: Iterable[str],
    num_buckets: int = 10000,
    ngrams: int = 2,
    *,
    engine: str = "re",
    workers: int = 1,
    dense: bool = False,
) -> sp.csr_matrix | np.ndarray:
    """Feature vectors of many documents as a (num_docs, num_buckets) int64 CSR matrix (row i ==
    ``hashed_features(texts[i])``), or a dense array with ``dense=True``.  ``workers=-1``: all cores."""
    return _default_featurizer(num_buckets, ngrams, engine).featurize(texts, workers=workers, dense=dense)


# -- concentration statistics ---------------------------------------------------------------------------
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


# -- plots -----------------------------------------------------------------------------------------------
def _as_stats_map(corpora: Mapping[str, NgramStats | np.ndarray] | NgramStats) -> dict[str, Any]:
    if isinstance(corpora, NgramStats):
        return {"corpus": corpora}
    if not isinstance(corpora, Mapping) or not corpora:
        raise ValueError("expected a non-empty mapping label -> NgramStats (or count vector)")
    return dict(corpora)


def plot_bucket_response(
    corpora: Mapping[str, NgramStats | np.ndarray] | NgramStats,
    path: str | os.PathLike | None = None,
    *,
    panels: bool = True,
    log_y: bool = False,
    title: str | None = "Hashed n-gram bucket response",
):
    """Bucket index vs normalised count, one panel (``panels=True``) or one line per corpus label.
    Uses matplotlib's object API (Agg canvas, no pyplot state); returns the Figure, saved when
    ``path`` is given."""
    from matplotlib.figure import Figure

    data = _as_stats_map(corpora)
    n = len(data)
    if panels:
        fig = Figure(figsize=(9, 2.2 * n + 0.6), layout="constrained")
        axes = fig.subplots(n, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    else:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.subplots()
        axes = [ax] * n
    for (label, s), ax in zip(data.items(), axes, strict=True):
        c = _counts(s).astype(np.float64)
        y = c / c.sum() if c.sum() > 0 else c
        ax.plot(np.arange(c.shape[0]), y, lw=0.5, alpha=0.85 if panels else 0.6, label=str(label))
        if panels:
            ax.set_title(str(label), fontsize=9, loc="left")
        ax.set_ylabel("normalised count")
        if log_y:
            ax.set_yscale("log")
    axes[-1].set_xlabel("bucket index")
    if not panels:
        axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig


def plot_top_bigrams(
    corpora: Mapping[str, NgramStats] | NgramStats,
    path: str | os.PathLike | None = None,
    *,
    k: int = 20,
    normalise: bool = True,
    title: str | None = "Top bigrams",
):
    """Horizontal bars of the k most frequent bigrams, one panel per corpus (frequency = count /
    total bigrams when ``normalise``).  Returns the Figure, saved when ``path`` is given."""
    from matplotlib.figure import Figure

    data = _as_stats_map(corpora)
    n = len(data)
    fig = Figure(figsize=(4.2 * n, 0.28 * k + 1.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for (label, s), ax in zip(data.items(), axes, strict=True):
        tb = s.top_bigrams(k) if isinstance(s, NgramStats) else None
        if not tb:
            ax.text(0.5, 0.5, "no bigram counts", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(str(label), fontsize=9)
            continue
        names = [b for b, _ in tb][::-1]
        vals = np.array([c for _, c in tb][::-1], dtype=np.float64)
        if normalise and s.bigram_total:
            vals = vals / s.bigram_total
        ax.barh(np.arange(len(names)), vals, color="C0")
        ax.set_yticks(np.arange(len(names)), labels=names, fontsize=7)
        ax.set_xlabel("frequency" if normalise else "count")
        ax.set_title(str(label), fontsize=9)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
