"""DSIR importance resampling on hashed n-gram features."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from toedit.analysis.dsir import (
    SelectionError,
    _words_from_feature_sums,
    bucket_distribution,
    gumbel_top_k,
    kl_divergence,
    read_records,
    select,
    select_files,
)
from toedit.analysis.ngrams import detect_nltk_engine, featurize
from toedit.io import InputError

COOK = [
    "pasta",
    "tomato",
    "garlic",
    "basil",
    "simmer",
    "sauce",
    "olive",
    "oil",
    "onion",
    "bake",
    "oven",
    "salt",
    "pepper",
    "stir",
    "pan",
    "fresh",
    "herbs",
]
CODE = [
    "function",
    "return",
    "variable",
    "compiler",
    "integer",
    "pointer",
    "array",
    "loop",
    "thread",
    "socket",
    "kernel",
    "buffer",
    "module",
]


def make_docs(words: list[str], n: int, seed: int, length: int = 25) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, length)) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def pool():
    target = make_docs(COOK, 80, 0)
    good = make_docs(COOK, 50, 1)
    bad = make_docs(CODE, 50, 2)
    raw = [d for pair in zip(good, bad, strict=True) for d in pair]  # interleaved: even = target-like
    return target, raw


def test_identical_corpora_give_zero_weights_and_kl():
    texts = make_docs(COOK, 30, 3) + ["short one.", "a much longer document " * 20]
    res = select(texts, texts, 10, seed=0)
    # q == p exactly, so every log weight is 0 whatever the document length
    np.testing.assert_allclose(res.log_weights, 0.0, atol=1e-12)
    assert abs(res.kl_before) <= 1e-12
    assert res.kl_after >= 0.0
    assert len(set(res.indices.tolist())) == 10


def test_selects_target_like_and_reduces_kl(pool):
    target, raw = pool
    res = select(target, raw, 30, seed=0)
    picked_good = np.mean(res.indices % 2 == 0)
    assert picked_good >= 0.9
    assert res.kl_after < res.kl_before
    assert res.kl_reduction > 0 and 0 < res.kl_relative_reduction <= 1
    # target-like documents have larger weights than off-target ones
    assert res.log_weights[0::2].min() > res.log_weights[1::2].max()
    # selection order: descending key
    assert np.all(np.diff(res.keys) <= 0)
    s = res.summary()
    json.dumps(s)
    assert s["num_selected"] == 30 and s["num_raw"] == len(raw)


def test_seeded_reproducible(pool):
    target, raw = pool
    a = select(target, raw, 20, seed=7)
    b = select(target, raw, 20, seed=7)
    c = select(target, raw, 20, seed=8)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.log_weights, b.log_weights)
    assert a.kl_after == b.kl_after
    assert not np.array_equal(a.indices, c.indices)
    top = select(target, raw, 20, top_k=True)
    np.testing.assert_array_equal(top.indices, np.argsort(-top.log_weights, kind="stable")[:20])


def test_gumbel_top_k_properties():
    lw = np.log(np.array([1.0, 2.0, 7.0, 0.5, 3.0]))
    for n in range(6):
        idx, keys = gumbel_top_k(lw, n, seed=n)
        assert idx.shape == (n,) and len(set(idx.tolist())) == n
        assert np.all(np.diff(keys) <= 0)
    idx, _ = gumbel_top_k(lw, 5, seed=0)
    assert sorted(idx.tolist()) == [0, 1, 2, 3, 4]
    # a SelectionError (a ValueError) is what the CLI reports as an input error, without a traceback
    with pytest.raises(SelectionError, match="cannot select 6 documents: only 5 raw documents are eligible"):
        gumbel_top_k(lw, 6)
    with pytest.raises(SelectionError, match="n must be >= 0"):
        gumbel_top_k(lw, -1)
    with pytest.raises(SelectionError, match="the target corpus has no n-grams"):
        select([], ["some raw text"], 1)
    # excluded (-inf) rows are never picked
    ex = lw.copy()
    ex[2] = -np.inf
    idx, _ = gumbel_top_k(ex, 4, seed=1)
    assert 2 not in idx.tolist()
    with pytest.raises(ValueError):
        gumbel_top_k(ex, 5)
    # Gumbel-max: the first pick is drawn with probability proportional to w
    rng = np.random.default_rng(123)
    firsts = np.array([gumbel_top_k(lw, 1, rng)[0][0] for _ in range(6000)])
    freq = np.bincount(firsts, minlength=5) / firsts.size
    np.testing.assert_allclose(freq, np.exp(lw) / np.exp(lw).sum(), atol=0.025)


def test_distribution_and_kl_helpers():
    q = bucket_distribution(np.array([3, 0, 1]), smoothing=1.0)
    np.testing.assert_allclose(q, [4 / 7, 1 / 7, 2 / 7])
    np.testing.assert_allclose(bucket_distribution(np.array([3, 0, 1]), 0.0), [0.75, 0, 0.25])
    p = np.array([0.5, 0.5])
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence(np.array([1.0, 0.0]), p) == pytest.approx(math.log(2))
    assert kl_divergence(p, np.array([1.0, 0.0])) == math.inf
    with pytest.raises(ValueError):
        select(["a b"], ["c d"], 1, smoothing=0.0, eps=0.0)


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_min_words(ngrams):
    texts = ["one", "one two", "one two three", "", "a b c d e f g h", "x y"]
    lengths = np.array([1, 2, 3, 0, 8, 2])
    sums = featurize(texts, ngrams=ngrams).sum(axis=1).A1
    np.testing.assert_array_equal(_words_from_feature_sums(sums, ngrams), lengths)
    res = select(["one two three four"], texts, 2, min_words=3, ngrams=ngrams)
    assert sorted(res.indices.tolist()) == [2, 4]


def test_log_weights_match_data_selection_package(tmp_path):
    pytest.importorskip("data_selection")
    from data_selection import HashedNgramDSIR

    target = make_docs(COOK, 20, 5) + ["Café crème, naïve façade!"]
    raw = make_docs(COOK, 10, 6) + make_docs(CODE, 10, 7) + ["Unrelated: 東京 and émigrés…"]
    for name, docs in (("target", target), ("raw", raw)):
        with open(tmp_path / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"text": t}) + "\n" for t in docs)
    pkg = HashedNgramDSIR(
        [str(tmp_path / "raw.jsonl")], [str(tmp_path / "target.jsonl")], str(tmp_path / "cache"), num_proc=1
    )
    pkg.fit_importance_estimator(num_tokens_to_fit="all")
    theirs = np.array([np.dot(pkg.log_diff, pkg.featurizer(t)) for t in raw])
    res = select(target, raw, 5, smoothing=0.0, eps=1e-8, engine=detect_nltk_engine())
    np.testing.assert_allclose(res.log_ratio, pkg.log_diff, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.log_weights, theirs, rtol=1e-10, atol=1e-9)


def _write_jsonl(path, records, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")


def test_select_files(tmp_path, pool):
    target, raw = pool
    _write_jsonl(tmp_path / "t1.jsonl", [{"text": t} for t in target[:40]])
    _write_jsonl(tmp_path / "t2.jsonl.gz", [{"text": t} for t in target[40:]], gz=True)
    raw_recs = [{"id": i, "text": t, "meta": {"k": [1, "é"]}} for i, t in enumerate(raw)]
    _write_jsonl(tmp_path / "r1.jsonl.gz", raw_recs[:60], gz=True)
    _write_jsonl(
        tmp_path / "r2.jsonl", ["", *[json.dumps(r, ensure_ascii=False) for r in raw_recs[60:]], "  "]
    )
    out = tmp_path / "sub" / "selected.jsonl"
    res, summary = select_files(
        [tmp_path / "t1.jsonl", tmp_path / "t2.jsonl.gz"],
        [tmp_path / "r1.jsonl.gz", tmp_path / "r2.jsonl"],
        25,
        out,
        seed=3,
    )
    direct = select(target, raw, 25, seed=3)
    np.testing.assert_array_equal(res.indices, direct.indices)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps(raw_recs[i], ensure_ascii=False) for i in res.indices.tolist()]
    assert json.loads(json.dumps(summary))["num_selected"] == 25
    assert summary["out_path"] == str(out) and summary["kl_after"] < summary["kl_before"]
    # gzip output
    res2, _ = select_files(tmp_path / "t1.jsonl", tmp_path / "r2.jsonl", 3, tmp_path / "o.jsonl.gz", seed=1)
    with gzip.open(tmp_path / "o.jsonl.gz", "rt", encoding="utf-8") as fh:
        assert [json.loads(x)["id"] - 60 for x in fh] == res2.indices.tolist()


def test_read_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl:3: "):
        list(read_records([bad]))
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"missing\.jsonl:2: .*text"):
        select_files(missing, missing, 1, tmp_path / "o.jsonl")
    badutf = tmp_path / "latin1.jsonl"
    badutf.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1\.jsonl:2: .*UTF-8"):
        list(read_records([badutf]))
    nonstr = tmp_path / "num.jsonl"
    nonstr.write_text('{"text": 3}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"num\.jsonl:1: "):
        list(read_records([nonstr]))


def test_select_files_reads_parquet_and_keeps_the_given_order(tmp_path, pool):
    import pyarrow as pa
    import pyarrow.parquet as pq

    target, raw = pool
    _write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in target])
    pq.write_table(pa.table({"text": raw[:50], "n": list(range(50))}), tmp_path / "z.parquet")
    _write_jsonl(tmp_path / "a.jsonl", [{"text": t, "n": 50 + i} for i, t in enumerate(raw[50:])])
    res, summary = select_files(
        tmp_path / "t.jsonl", [tmp_path / "z.parquet", tmp_path / "a.jsonl"], 10, tmp_path / "o.jsonl"
    )
    got = [json.loads(x)["n"] for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert got == res.indices.tolist()  # indices count z.parquet first, as given, not sorted by path
    np.testing.assert_array_equal(res.indices, select(target, raw, 10).indices)


def test_length_normalized_selection():
    # on-target documents of very different lengths: a raw log weight is a sum over the document's n-grams,
    # so its size grows with length; for documents drawn like the pool the per-n-gram term is negative on
    # average (-KL(p || q)), so top-k on raw weights picks the shortest; normalised weights do not care
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=60)
    good = [" ".join(rng.choice(COOK, n)) for n in lengths]
    raw = good + make_docs(CODE, 60, 4, length=40)
    target = make_docs(COOK, 40, 1, length=30)
    plain = select(target, raw, 15, seed=0, top_k=True)
    normed = select(target, raw, 15, seed=0, top_k=True, length_normalized=True)
    assert (plain.indices < 60).all() and (normed.indices < 60).all()
    assert lengths[plain.indices].max() < np.median(lengths)  # the short documents only
    assert lengths[normed.indices].mean() > lengths[plain.indices].mean() + 30
    sums = featurize(raw).sum(axis=1).A1
    per_gram = plain.log_weights / sums
    want = np.argsort(-per_gram, kind="stable")[:15]
    np.testing.assert_array_equal(np.sort(normed.indices), np.sort(want))
    s = normed.summary()
    assert s["length_normalized"] and s["kl_after_length_normalized"] == normed.kl_after
    assert s["kl_after_raw_weights"] == pytest.approx(plain.kl_after)


def test_random_subset_baseline(pool):
    target, raw = pool
    res = select(target, raw, 30, seed=0)
    s = res.summary()
    # DSIR beats a random half of an interleaved pool (half of it off-target)
    assert s["kl_after"] < s["kl_after_random_subset"] < s["kl_before"] + 1.0
    assert select(target, raw, 30, seed=0).kl_after_random == res.kl_after_random  # seeded
