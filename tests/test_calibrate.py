"""Target rates: the expected change probability, the calibrated threshold, and a run that hits its target."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import corpus_texts
from tests.test_rule import random_scores
from toedit.calibrate import calibrate, change_probability, expected_rates
from toedit.config import ConfigError, EditConfig, RunConfig
from toedit.runs import run_edit
from toedit.scoring import score_texts


def reference_change_probability(token, lp, ids, lps, beta):
    cands = {int(t): float(v) for t, v in zip(ids, lps, strict=True)}
    cands.setdefault(int(token), float(lp))
    w = {t: math.exp(v / beta) for t, v in cands.items()}
    return 1 - w[int(token)] / sum(w.values())


@pytest.mark.parametrize("k,beta", [(8, 1.5), (3, 1.0), (1, 2.0)])
def test_change_probability_matches_reference(k, beta):
    sc = random_scores(np.random.default_rng(3), n=200, k=8)
    got = change_probability(sc, k, beta, exclude_original=False)
    want = [
        reference_change_probability(
            sc.token_ids[i], sc.logprob[i], sc.topk_ids[i, :k], sc.topk_logprobs[i, :k], beta
        )
        for i in range(len(sc))
    ]
    np.testing.assert_allclose(got, want, atol=1e-9)
    has_other = (sc.topk_ids[:, :k] != sc.token_ids[:, None]).any(axis=1)
    np.testing.assert_array_equal(
        change_probability(sc, k, beta, exclude_original=True), has_other.astype(float)
    )


def test_calibrated_threshold_hits_the_expected_target():
    scores = [random_scores(np.random.default_rng(s), n=300) for s in range(4)]
    cal = calibrate(scores, 8, 1.5, change_rate=0.05)
    n = sum(len(s) for s in scores)
    assert abs(cal.expected_change_rate - 0.05) <= 1 / n
    assert expected_rates(scores, cal.threshold, 8, 1.5) == (cal.expected_change_rate, cal.selected_rate)
    sel = calibrate(scores, 8, 1.5, selected_rate=0.2)
    assert abs(sel.selected_rate - 0.2) <= 2 / n
    with pytest.raises(ConfigError):
        calibrate(scores, 8, 1.5)
    with pytest.raises(ConfigError):
        EditConfig(target_change_rate=0.1, top_k=0).validate()


def test_run_with_target_change_rate_realises_it(tmp_path, tiny_prior):
    texts = [t[:600] for t in corpus_texts(40)]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    target = 0.03
    cfg = EditConfig(target_change_rate=target, seed=5, calibration_docs=1000)
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), cfg, run=RunConfig(progress=False), prior=tiny_prior
    )
    cal = summary.calibration
    realised = summary.stats["n_changed"] / summary.stats["n_scored"]
    # the whole corpus is the sample: the expectation is exact up to one token; the draw is Bernoulli noise
    scores = score_texts(texts, tiny_prior)
    c = np.concatenate([change_probability(s, 8, 1.5, False) for s in scores])
    p = np.exp(np.concatenate([s.logprob for s in scores]).astype(np.float64))
    sel = p > cal["threshold"]
    sd = math.sqrt((c[sel] * (1 - c[sel])).sum()) / len(c)
    assert abs(cal["expected_change_rate"] - target) <= 1 / len(c)
    assert abs(realised - cal["expected_change_rate"]) <= 4 * sd + summary.stats["n_skipped_unsafe"] / len(c)
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["calibration"]["threshold"] == cal["threshold"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["calibration"]["target_rate"] == target
    # rerun: the calibration is reused from the manifest and the run resumes
    again = run_edit([str(src)], str(tmp_path / "run"), cfg, run=RunConfig(progress=False), prior=tiny_prior)
    assert again.shards_done_before == 1 and again.calibration["threshold"] == cal["threshold"]


def test_edit_texts_calibrates_on_its_texts(tiny_prior):
    import pytest as _pytest

    from toedit.pipeline import calibrate_threshold, edit_batch, edit_texts

    texts = [t[:500] for t in corpus_texts(20)]
    cfg = EditConfig(target_selected_rate=0.1)
    cal = calibrate_threshold(texts, tiny_prior, cfg)
    results = edit_texts(texts, tiny_prior, cfg)
    above = sum(r.stats.n_above for r in results) / sum(r.stats.n_scored for r in results)
    assert above == _pytest.approx(cal.selected_rate) and abs(above - 0.1) < 0.01
    with _pytest.raises(ValueError, match="per batch"):
        edit_batch({"text": texts[:2]}, tiny_prior, cfg)


def test_word_boundary_calibration_honours_the_rule(tmp_path, tiny_prior):
    """With boundary=word the calibrated threshold counts only eligible positions and allowed candidates, so
    the target change rate is realised (and is not what the unrestricted calibration would give)."""
    from toedit.editing import word_masks

    texts = [t[:600] for t in corpus_texts(40)]
    scores = score_texts(texts, tiny_prior)
    words = [word_masks(t, s, tiny_prior.piece) for t, s in zip(texts, scores, strict=True)]
    plain = calibrate(scores, 8, 1.5, change_rate=0.02)
    word = calibrate(scores, 8, 1.5, change_rate=0.02, words=words)
    assert word.threshold != plain.threshold
    assert abs(word.expected_change_rate - 0.02) <= 1 / word.sample_tokens
    # ineligible positions never count: the masked change probability is 0 there
    c = change_probability(scores[0], 8, 1.5, False, words[0])
    assert np.all(c[~words[0][0] & ~np.isnan(c)] == 0)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    cfg = EditConfig(target_change_rate=0.02, boundary="word", seed=1, calibration_docs=1000)
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), cfg, run=RunConfig(progress=False), prior=tiny_prior
    )
    assert summary.calibration["threshold"] == word.threshold
    st = summary.stats
    assert abs(st["n_changed"] / st["n_scored"] - 0.02) < 0.01
    assert st["n_changed_word"] == st["n_changed"]  # the run layer merges the new counters


def test_word_boundary_config_is_validated():
    with pytest.raises(ConfigError, match="boundary"):
        EditConfig(boundary="sentence").validate()
    with pytest.raises(ConfigError, match="boundary word"):
        EditConfig(boundary="word", top_k=0).validate()
