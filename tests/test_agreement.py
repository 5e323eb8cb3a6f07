"""Agreement of two scorings: IoU of selected positions (fixed and calibrated thresholds), |Δ log-prob|."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.conftest import corpus_texts
from tests.test_rule import random_scores
from toedit.agreement import AGREEMENT_TARGET, compare_scorings, iou
from toedit.prior import load_prior
from toedit.scoring import score_texts


def test_iou_counts_and_empty_sets():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert iou(a, b) == pytest.approx(1 / 3)
    assert iou(a, a) == 1.0
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_identical_scorings_agree_fully():
    scores = [random_scores(np.random.default_rng(s)) for s in range(3)]
    agr = compare_scorings(scores, copy.deepcopy(scores), threshold=0.9)
    assert agr.iou_threshold == agr.iou_calibrated == 1.0
    assert agr.mean_abs_logprob_diff == agr.max_abs_logprob_diff == 0.0
    assert agr.selected_reference == agr.selected_other > 0
    assert agr.calibrated_reference == agr.calibrated_other
    assert agr.meets()


def test_moved_positions_lower_the_iou_exactly():
    ref = [random_scores(np.random.default_rng(1), n=2000)]
    other = copy.deepcopy(ref)
    sel = np.nonzero(np.exp(ref[0].logprob.astype(np.float64)) > 0.9)[0]
    other[0].logprob[sel[:2]] = np.log(0.5)  # two selected positions fall below the threshold
    agr = compare_scorings(ref, other, threshold=0.9)
    assert agr.selected_reference == len(sel) and agr.selected_other == len(sel) - 2
    assert agr.iou_threshold == pytest.approx((len(sel) - 2) / len(sel))
    assert agr.mean_abs_logprob_diff > 0
    # the verdict follows the number, both ways
    assert agr.meets(target=agr.iou_threshold) and not agr.meets(target=agr.iou_threshold + 1e-9)


def test_the_target_is_held_against_the_fixed_threshold_iou():
    ref = [random_scores(np.random.default_rng(2), n=2000)]
    other = copy.deepcopy(ref)
    lp = other[0].logprob
    lp[1::2] = np.minimum(lp[1::2] + 0.5, 0.0)  # every other position more likely: another calibration
    agr = compare_scorings(ref, other, threshold=0.9)
    assert agr.iou_calibrated < agr.iou_threshold  # the calibrated IoU does not decide
    assert agr.meets(target=agr.iou_threshold) and not agr.meets(target=agr.iou_threshold + 1e-9)
    assert AGREEMENT_TARGET == 0.98


def test_different_tokenisations_are_refused():
    ref = [random_scores(np.random.default_rng(1))]
    other = copy.deepcopy(ref)
    other[0].token_ids[0] += 1
    with pytest.raises(ValueError, match="tokenised"):
        compare_scorings(ref, other)
    with pytest.raises(ValueError, match="documents"):
        compare_scorings(ref, [])


def test_bf16_tiny_model_against_fp32(tiny_prior, tiny_model_dir):
    texts = [t[:1500] for t in corpus_texts(6)]
    fp32 = score_texts(texts, tiny_prior)
    bf16 = score_texts(texts, load_prior(str(tiny_model_dir), device="cpu", dtype="bfloat16"))
    same = compare_scorings(fp32, score_texts(texts, tiny_prior), threshold=0.5)
    assert same.iou == 1.0 and same.mean_abs_logprob_diff == 0.0
    agr = compare_scorings(fp32, bf16, threshold=0.5)
    assert agr.tokens == sum(s.n_scored for s in fp32) and agr.selected_reference > 0
    assert 0 < agr.mean_abs_logprob_diff < 0.5  # bf16 moves log-probs, a little
    assert 0.5 < agr.iou <= 1.0
