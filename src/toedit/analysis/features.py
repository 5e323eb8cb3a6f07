"""Hashed n-gram features: DSIR's featurizer, reproduced exactly and about 6x faster.

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
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = [
    "WORDPUNCT_PATTERN",
    "HashedNgramFeaturizer",
    "bucket_of",
    "clear_default_caches",
    "detect_nltk_engine",
    "featurize",
    "hashed_features",
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


def _sparse():
    """scipy.sparse, imported when a sparse matrix is asked for (counts alone need only numpy)."""
    from ..optional import optional_import

    return optional_import("scipy.sparse", purpose="sparse n-gram feature matrices")


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
    return _sparse().csr_matrix(
        (counts, c.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n_rows, n_cols)
    )


def _batch_to_csr(batch: _Batch, num_buckets: int) -> sp.csr_matrix:
    return _csr_from_counts(batch.rows, batch.buckets, batch.lens.shape[0], num_buckets)


def _vstack(parts: list[sp.csr_matrix], num_buckets: int) -> sp.csr_matrix:
    if not parts:
        return _sparse().csr_matrix((0, num_buckets), dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    return _sparse().vstack(parts, format="csr", dtype=np.int64)


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
