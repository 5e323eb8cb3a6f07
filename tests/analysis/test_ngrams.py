"""Hashed n-gram features (DSIR's featurizer), NgramStats and concentration metrics."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
import scipy.sparse as sp

from toedit.analysis.ngrams import (
    HashedNgramFeaturizer,
    NgramStats,
    bucket_entropy,
    bucket_of,
    detect_nltk_engine,
    distinct_n,
    featurize,
    gini,
    hashed_features,
    ngram_metrics,
    top_share,
    wordpunct_tokenize,
)
from toedit.analysis.plots import plot_bucket_response, plot_top_bigrams

VARIED = [
    "Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.",
    "Plain English prose, with punctuation; and numbers 1,234.56!",
    "Unicode: café naïve Zürich — “quotes” ‘single’ … NBSP:\u00a0 zero-width:\u200b done",
    "CJK 東京都は日本の首都です。中文文本。한국어 텍스트",
    "Emoji 😀👍🏽 family 👨\u200d👩\u200d👧 flags 🇫🇷 end",
    "Combining e\u0301 a\u0308 and tabs\tinside\t\tthe text; x² ½ snake_case a‿b",
    "Windows line endings\r\nsecond line\r\n\r\nafter a blank line\r\n",
    "UPPER lower MiXeD İstanbul ΣΊΣΥΦΟΣ ß ẞ",
    "control\x1cchars\x1fhere and\x00nul",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code --> ... !!! ?!",
    "",
    "   ",
    "x",
    "word",
    "a a a a a a",
    "!!!",
]


def ref_features(text: str, num_buckets: int = 10000, n: int = 2, engine: str = "re") -> np.ndarray:
    """Plain reference loop: lowercase, nltk's WordPunct regex, 1..n-grams joined by a space, sha256 % N."""
    if engine == "re":
        toks = re.findall(r"\w+|[^\w\s]+", text.lower())
    else:
        regex = pytest.importorskip("regex")
        toks = regex.findall(r"\w+|[^\w\s]+", text.lower())
    counts = np.zeros(num_buckets, dtype=np.int64)
    for k in range(1, n + 1):
        for i in range(len(toks) - k + 1):
            gram = " ".join(toks[i : i + k])
            counts[int(hashlib.sha256(gram.encode("utf-8")).hexdigest(), 16) % num_buckets] += 1
    return counts


def test_bucket_of_matches_hexdigest():
    for s in ["a", "a b", "café", "😀", ""]:
        assert bucket_of(s) == int(hashlib.sha256(s.encode("utf-8")).hexdigest(), 16) % 10000
        assert bucket_of(s, 7) == int(hashlib.sha256(s.encode("utf-8")).hexdigest(), 16) % 7


@pytest.mark.parametrize("engine", ["re", "regex"])
@pytest.mark.parametrize(("num_buckets", "n"), [(10000, 2), (97, 2), (10000, 1), (501, 3), (1, 2)])
def test_features_match_reference(engine, num_buckets, n):
    if engine == "regex":
        pytest.importorskip("regex")
    for text in VARIED:
        got = hashed_features(text, num_buckets, n, engine=engine)
        assert got.dtype == np.int64 and got.shape == (num_buckets,)
        np.testing.assert_array_equal(got, ref_features(text, num_buckets, n, engine), err_msg=repr(text))
    mat = featurize(VARIED, num_buckets, n, engine=engine)
    assert sp.issparse(mat) and mat.shape == (len(VARIED), num_buckets) and mat.dtype == np.int64
    ref = np.stack([ref_features(t, num_buckets, n, engine) for t in VARIED])
    np.testing.assert_array_equal(mat.toarray(), ref)
    np.testing.assert_array_equal(featurize(VARIED, num_buckets, n, engine=engine, dense=True), ref)


@pytest.mark.parametrize("kw", [{"dense_vocab": 0}, {"dense_vocab": 3}, {"max_cache_entries": 5}, {}])
def test_cache_paths_agree(kw):
    """Dense bigram table, dict fallback and cache resets give the same features."""
    f = HashedNgramFeaturizer(**kw)
    ref = np.stack([ref_features(t) for t in VARIED])
    for _ in range(2):  # second pass runs on warm (or reset) caches
        np.testing.assert_array_equal(f.featurize(VARIED).toarray(), ref)
    for t in VARIED:
        np.testing.assert_array_equal(f.features(t), ref_features(t))


def test_featurize_multiprocess_and_batches(monkeypatch):
    import toedit.analysis.features as ng

    texts = VARIED * 5
    ref = np.stack([ref_features(t) for t in texts])
    np.testing.assert_array_equal(featurize(texts, workers=2).toarray(), ref)
    monkeypatch.setattr(ng, "_BATCH_CHARS", 50)  # many small batches
    np.testing.assert_array_equal(featurize(iter(texts)).toarray(), ref)
    assert len(list(ng._batches(texts))) > 5
    stats = NgramStats().add_texts(texts)
    assert stats == NgramStats().add_texts(texts[:3]).merge(NgramStats().add_texts(texts[3:]))
    assert featurize([]).shape == (0, 10000)
    with pytest.raises(TypeError):
        featurize("not a list")


def test_bigrams_do_not_cross_documents():
    joined = hashed_features("alpha beta")
    split = featurize(["alpha", "beta"]).toarray().sum(axis=0)
    assert joined.sum() == 3 and split.sum() == 2
    assert joined[bucket_of("alpha beta")] >= 1


def test_engines_differ_only_on_special_unicode():
    pytest.importorskip("regex")
    assert wordpunct_tokenize("Cafe\u0301!", "re") == ["cafe", "\u0301!"]
    assert wordpunct_tokenize("Cafe\u0301!", "regex") == ["cafe\u0301", "!"]
    assert wordpunct_tokenize("a\x1cb", "re") == ["a", "b"]
    assert wordpunct_tokenize("a\x1cb", "regex") == ["a", "\x1c", "b"]
    plain = "Good muffins cost $3.88 in New York — “quotes”, café, 東京."
    assert wordpunct_tokenize(plain, "re") == wordpunct_tokenize(plain, "regex")
    with pytest.raises(ValueError):
        HashedNgramFeaturizer(engine="pcre")


def test_matches_data_selection_package():
    dsir = pytest.importorskip("data_selection.hashed_ngram_dsir")
    engine = detect_nltk_engine()
    assert engine in ("re", "regex")
    texts = [*VARIED, *(t.upper() for t in VARIED)]
    for n, nb in [(2, 10000), (1, 10000), (3, 997)]:
        ours = featurize(texts, nb, n, engine=engine).toarray()
        for i, t in enumerate(texts):
            theirs = dsir.get_ngram_counts(t, n=n, num_buckets=nb)
            np.testing.assert_array_equal(ours[i], theirs, err_msg=f"n={n} {t!r}")


# -- metrics ------------------------------------------------------------------------------------------
def test_entropy_hand_checked():
    # "a a": unigram "a" twice, bigram "a a" once, in two different buckets -> p = (2/3, 1/3)
    assert bucket_of("a") != bucket_of("a a")
    s = NgramStats().add_texts(["a a"])
    assert s.total_ngrams == 3
    expected = math.log(3) - (2 / 3) * math.log(2)
    assert bucket_entropy(s) == pytest.approx(expected, abs=1e-12)
    assert bucket_entropy(s, base=2) == pytest.approx(expected / math.log(2), abs=1e-12)
    assert bucket_entropy(np.array([1, 1, 2, 0]), base=2) == pytest.approx(1.5, abs=1e-12)
    assert bucket_entropy(np.array([5, 0, 0])) == 0.0
    assert math.isnan(bucket_entropy(np.zeros(4)))


def test_repeated_corpus_is_more_concentrated():
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "seven",
        "wizards",
        "quietly",
        "hex",
        "jovial",
        "gnomes",
    ]
    rng = np.random.default_rng(0)
    varied = [" ".join(rng.choice(words, 12)) + f" {i} {i * 7 % 13}." for i in range(60)]
    repeated = ["The quick brown fox jumps over the lazy dog."] * 60
    sv, sr = NgramStats().add_texts(varied), NgramStats().add_texts(repeated)
    assert bucket_entropy(sr) < bucket_entropy(sv)
    assert gini(sr) > gini(sv)
    assert top_share(sr) > top_share(sv)
    assert sr.distinct_2 < sv.distinct_2 and sr.distinct_1 < sv.distinct_1
    for s in (sr, sv):
        assert 0.0 <= gini(s) <= 1.0
        assert 0.0 < top_share(s) <= 1.0


def test_gini_and_top_share_hand_checked():
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    assert gini(np.array([1, 2, 3, 4])) == pytest.approx(0.25)  # mean |xi - xj| / (2 mean) = 20/80
    assert gini(np.array([4, 3, 2, 1])) == pytest.approx(0.25)  # order does not matter
    assert math.isnan(gini(np.zeros(3)))
    c = np.ones(200)
    c[17] = 101.0  # 2 buckets in the top 1% of 200: 101 + 1 out of 300
    assert top_share(c) == pytest.approx(102 / 300)
    assert top_share(c, frac=0.0) == pytest.approx(101 / 300)  # at least one bucket


def test_distinct_and_top_bigrams_hand_checked():
    s = NgramStats().add_texts(["A b a", "b", "a b a b!"])
    # tokens: a b a | b | a b a b ! -> 9 unigrams, 3 distinct
    assert (s.unigram_total, s.unigram_distinct) == (9, 3)
    assert s.distinct_1 == pytest.approx(3 / 9)
    # bigrams (none across documents): a b, b a | - | a b, b a, a b, b ! -> 6, distinct 3
    assert (s.bigram_total, s.bigram_distinct) == (6, 3)
    assert distinct_n(s, 2) == pytest.approx(0.5)
    assert s.top_bigrams(2) == [("a b", 3), ("b a", 2)]
    assert s.total_ngrams == 15
    assert s.num_docs == 3
    m = ngram_metrics(s)
    json.dumps(m)
    assert m["top_bigrams"][0] == ["a b", 3]
    assert m["top_1pct_share"] == top_share(s) and m["gini"] == gini(s)


def test_stats_merge_equals_concatenation_and_roundtrip():
    a = [*VARIED[:7], "shared words here", "shared words here"]
    b = [*VARIED[7:], "shared words here"]
    sa, sb = NgramStats().add_texts(a), NgramStats().add_texts(b)
    merged = sa.merge(sb)
    whole = NgramStats().add_texts(a + b)
    assert merged == whole
    assert (sa + sb).to_dict() == whole.to_dict()
    np.testing.assert_array_equal(merged.bucket_counts, featurize(a + b).toarray().sum(axis=0))
    # incremental add == one call
    inc = NgramStats().add_texts(a).add_texts(b)
    assert inc == whole
    # JSON round trip keeps exact mergeability
    d = json.loads(json.dumps(whole.to_dict()))
    back = NgramStats.from_dict(d)
    assert back == whole
    assert back.merge(sa) == whole.merge(sa)
    # summary-only round trip: distinct values and top bigrams survive, merging loses them
    lite = NgramStats.from_dict(json.loads(json.dumps(whole.to_dict(include_counters=False))))
    assert lite.distinct_2 == whole.distinct_2 and lite.top_bigrams(5) == whole.top_bigrams(5)
    assert lite.merge(sa).distinct_2 is None
    assert len(whole.to_dict()["top_bigrams"]) == min(40, whole.bigram_distinct)
    with pytest.raises(ValueError):
        sa.merge(NgramStats(num_buckets=10))


def test_untracked_stats():
    s = NgramStats(track_counts=False).add_texts(VARIED)
    full = NgramStats().add_texts(VARIED)
    np.testing.assert_array_equal(s.bucket_counts, full.bucket_counts)
    assert s.unigram_total == full.unigram_total and s.bigram_total == full.bigram_total
    assert s.distinct_1 is None and s.top_bigrams() is None


def test_plots(tmp_path):
    from matplotlib.figure import Figure

    rep = NgramStats().add_texts(["the cat sat on the mat."] * 5)
    var = NgramStats().add_texts(VARIED[:4])
    fig = plot_bucket_response({"human": var, "synthetic": rep}, tmp_path / "resp.png")
    assert isinstance(fig, Figure) and (tmp_path / "resp.png").stat().st_size > 0
    fig = plot_bucket_response({"human": var.bucket_counts, "synthetic": rep}, panels=False, log_y=True)
    assert isinstance(fig, Figure)
    fig = plot_top_bigrams({"human": var, "synthetic": rep}, tmp_path / "bigrams.png", k=5)
    assert isinstance(fig, Figure) and (tmp_path / "bigrams.png").stat().st_size > 0
