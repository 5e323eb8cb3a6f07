"""CorpusStats: per-shard statistics merge exactly into the whole corpus's (the cluster path)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from tests.conftest import corpus_texts
from toedit.analysis.corpus import CorpusStats, collect_run, run_texts, shard_stats
from toedit.analysis.features import bucket_of, wordpunct_tokenize
from toedit.analysis.ngrams import bucket_entropy
from toedit.config import RunConfig
from toedit.runs import RunDirError, run_score
from toedit.runs.schema import field_spec


def test_repeated_sentence_has_the_entropy_of_one_sentence():
    sentence = "The quick brown fox jumps over the lazy dog."
    toks = wordpunct_tokenize(sentence)
    grams = toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]
    counts = np.array(list(Counter(bucket_of(g) for g in grams).values()), dtype=float)
    p = counts / counts.sum()
    by_hand = float(-(p * np.log(p)).sum())
    s = CorpusStats("rep")
    s.add_texts([(f"k{i}", sentence) for i in range(50)])
    assert bucket_entropy(s.ngrams) == pytest.approx(by_hand, abs=1e-12)
    varied = CorpusStats("varied")
    varied.add_texts([(f"k{i}", t[:300]) for i, t in enumerate(corpus_texts(20))])
    assert bucket_entropy(s.ngrams) < bucket_entropy(varied.ngrams) - 2


def test_scores_and_sample():
    s = CorpusStats("x", threshold=0.9, sample_size=3, seed=1)
    s.add_scores(np.log(np.array([np.nan, 0.95, 0.5, 0.05])))
    s.add_scores(np.array([np.nan]))  # no scored token: no PPL
    assert s.ppl == [pytest.approx(math.exp(-np.log([0.95, 0.5, 0.05]).mean()))]
    assert s.num_no_ppl == 1 and s.n_scored == 3 and s.n_above == 1
    assert s.prob_hist.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    table = s.prob_table()
    assert table["rows"][9]["bin"] == "[0.9, 1.0]" and table["above_pct"] == pytest.approx(100 / 3)
    s.add_texts([(f"d{i}", f"text {i}") for i in range(10)])
    assert len(s.sample) == 3 and s.sample == sorted(s.sample)


def test_merge_of_shards_equals_the_whole():
    docs = [(f"shard:{i}", t[:200]) for i, t in enumerate(corpus_texts(12))]
    rng = np.random.default_rng(0)
    lps = [np.log(rng.uniform(0.01, 1.0, size=20)) for _ in docs]

    def stats(items):
        s = CorpusStats("c", sample_size=4, seed=3)
        for (k, t), lp in items:
            s.add_scores(lp)
            s.add_texts([(k, t)])
        return s

    pairs = list(zip(docs, lps, strict=True))
    whole = stats(pairs)
    parts = sum([stats(pairs[:5]), stats(pairs[5:9]), stats(pairs[9:])])
    assert parts.to_dict() == whole.to_dict()
    # JSON round trip stays exact and mergeable
    back = CorpusStats.from_dict(json.loads(json.dumps(whole.to_dict())))
    assert back.to_dict() == whole.to_dict()
    assert back.merge(whole).num_docs == 24
    with pytest.raises(ValueError, match="merge"):
        whole.merge(CorpusStats("c", sample_size=5, seed=3))


def test_collect_run_reads_scores_and_texts(tmp_path, tiny_prior):
    a = tmp_path / "in" / "a.jsonl"
    a.parent.mkdir()
    texts = [t[:250] for t in corpus_texts(6)]
    a.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts[:4])))
    (tmp_path / "in" / "b.jsonl").write_text(
        "".join(json.dumps({"id": f"e{i}", "text": t}) + "\n" for i, t in enumerate(texts[4:])) + "not json\n"
    )
    run = tmp_path / "run"
    run_score([str(tmp_path / "in")], str(run), run=RunConfig(progress=False), prior=tiny_prior)
    total, manifest = collect_run("c", run, sample_size=100)
    assert total.num_docs == 6 and total.num_bad == 1 and len(total.ppl) == 6
    assert total.n_scored == int(total.prob_hist.sum()) > 0
    assert sorted(t for _, t in total.sample) == sorted(texts)
    # the sum of per-shard statistics is the run's
    _, parts = run_texts(run)
    spec = field_spec(manifest["settings"]["io"])
    merged = sum(shard_stats("c", p, spec, sample_size=100) for p in parts)
    assert merged.to_dict() == total.to_dict()
    with pytest.raises(RunDirError):
        collect_run("c", tmp_path / "in")
