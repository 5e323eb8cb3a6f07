"""The ToEdit rule against a plain per-token reference of the official code's semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toedit.config import EditConfig
from toedit.editing import decide
from toedit.rule import DROP, above, draw_topk
from toedit.scoring import TokenScores


def reference_decide(token_ids, logprob, topk_ids, topk_lps, threshold, beta, low, strategy, u, k):
    """Official semantics, one token at a time: dict of top-k plus the actual token, weights p^(1/beta),
    numpy-choice style draw (cdf searchsorted side='right'), strict `p > threshold`, drop `p < low`."""
    out = []
    for i, tok in enumerate(token_ids):
        lp = float(logprob[i])
        if math.isnan(lp):
            out.append(int(tok))
            continue
        p = math.exp(lp)
        if strategy in ("resample", "resample+drop") and p > threshold:
            cands = {int(t): float(v) for t, v in zip(topk_ids[i][:k], topk_lps[i][:k], strict=True)}
            cands.setdefault(int(tok), lp)
            ids = list(cands)
            w = np.array([math.exp(cands[c]) ** (1.0 / beta) for c in ids])
            cdf = np.cumsum(w / w.sum())
            cdf /= cdf[-1]
            out.append(ids[int(np.searchsorted(cdf, u[i], side="right"))])
        elif strategy in ("resample+drop", "drop") and p < low:
            out.append(DROP)
        else:
            out.append(int(tok))
    return np.array(out)


def random_scores(rng, n=400, vocab=60, k=8, peaky=0.5):
    logits = rng.normal(size=(n, vocab)) * rng.choice([1.0, 12.0], size=(n, 1), p=[1 - peaky, peaky])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    token_ids = np.where(rng.random(n) < 0.7, logp.argmax(1), rng.integers(0, vocab, n)).astype(np.int32)
    order = np.argsort(-logp, axis=1)[:, :k]
    return TokenScores(
        token_ids=token_ids,
        offsets=np.stack([np.arange(n), np.arange(n) + 1], 1).astype(np.int32),
        logprob=logp[np.arange(n), token_ids].astype(np.float32),
        topk_ids=order.astype(np.int32),
        topk_logprobs=np.take_along_axis(logp, order, 1).astype(np.float32),
    )


@pytest.mark.parametrize("strategy", ["resample", "resample+drop", "drop"])
@pytest.mark.parametrize("threshold,beta,k", [(0.99, 1.5, 8), (0.9, 1.0, 8), (0.5, 1.5, 3), (0.0, 2.0, 1)])
def test_decide_matches_reference(strategy, threshold, beta, k):
    rng = np.random.default_rng(7)
    sc = random_scores(rng)
    sc.logprob[5] = np.nan  # an unscored position is always kept
    u = rng.random(len(sc))
    cfg = EditConfig(threshold=threshold, beta=beta, top_k=k, strategy=strategy, low=0.05)
    got = decide(sc, cfg, u)
    want = reference_decide(
        sc.token_ids, sc.logprob, sc.topk_ids, sc.topk_logprobs, threshold, beta, 0.05, strategy, u, k
    )
    np.testing.assert_array_equal(got, want)
    assert above(sc.logprob, threshold).sum() > 10, "the test data should select positions"
    if strategy != "drop" and threshold <= 0.5:
        assert (got != sc.token_ids).any(), "the test data should produce some edits"


def test_threshold_is_strict():
    lp = np.log(np.array([0.99, 0.990001, 0.98, np.nan]))
    assert above(lp, 0.99).tolist() == [False, True, False, False]
    assert not above(np.array([0.0]), 1.0)[0]  # p = 1 is not > 1


def test_exclude_original_never_returns_original():
    rng = np.random.default_rng(1)
    sc = random_scores(rng, n=300)
    u = rng.random(len(sc))
    new = decide(sc, EditConfig(threshold=0.0, exclude_original=True, top_k=8), u)
    assert (new != sc.token_ids).all()


def test_draw_frequencies_follow_tempered_weights():
    # one position, two candidates: P(change) = q^(1/b) / (p^(1/b) + q^(1/b))
    p, q, beta = 0.995, 0.005, 1.5
    n = 200_000
    u = np.random.default_rng(0).random(n)
    orig = np.zeros(n, dtype=np.int64)
    picked = draw_topk(
        orig,
        np.full(n, np.log(p)),
        np.tile([[0, 1]], (n, 1)),
        np.tile(np.log([[p, q]]), (n, 1)),
        beta,
        u,
    )
    expected = q ** (1 / beta) / (p ** (1 / beta) + q ** (1 / beta))
    observed = (picked == 1).mean()
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
