"""Perplexity distributions: hand-checkable values, identical and shifted corpora, run scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import corpus_texts
from toedit.analysis.ppl import compare, doc_ppl, run_ppls, summarize
from toedit.config import RunConfig
from toedit.runs import run_score
from toedit.scoring import score_texts


def test_doc_ppl_by_hand():
    assert doc_ppl(np.log([0.5, 0.5, np.nan])) == pytest.approx(2.0)
    assert doc_ppl(np.array([np.log(0.25), np.log(1.0)])) == pytest.approx(2.0)
    assert math.isnan(doc_ppl(np.array([np.nan])))


def test_identical_corpora_are_at_distance_zero():
    ppl = np.exp(np.random.default_rng(0).normal(3, 0.5, 500))
    d = compare(ppl, ppl)
    assert d["kl"] == pytest.approx(0.0, abs=1e-12) and d["js"] == pytest.approx(0.0, abs=1e-12)
    assert d["wasserstein_log_ppl"] == 0.0 and d["range_coverage"] == 1.0 and d["mass_coverage"] == 1.0


def test_narrow_corpus_covers_little_of_a_wide_one():
    rng = np.random.default_rng(1)
    human = np.exp(rng.normal(3.0, 1.0, 2000))  # long tail
    synthetic = np.exp(rng.normal(2.0, 0.2, 2000))  # narrow and low, as in the paper's Fig. 3
    d = compare(human, synthetic)
    assert d["kl"] > 0.5 and 0 < d["js"] <= math.log(2) and d["wasserstein_log_ppl"] > 0.8
    assert d["range_coverage"] < 0.3 and d["mass_coverage"] < 0.4
    s = summarize(synthetic)
    assert s["documents"] == 2000 and s["q05"] < s["q50"] < s["q95"]


def test_run_ppls_match_scoring(tmp_path, tiny_prior):
    texts = [t[:300] for t in corpus_texts(5)]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    run_score([str(src)], str(tmp_path / "run"), run=RunConfig(progress=False), prior=tiny_prior)
    got = list(run_ppls(tmp_path / "run"))
    want = [doc_ppl(s.logprob) for s in score_texts(texts, tiny_prior)]
    assert [d for d, _ in got] == [f"d{i}" for i in range(5)]
    np.testing.assert_allclose([p for _, p in got], want, rtol=1e-5)
