"""Scoring: exact log-probs, windows that score every token once, batching that never changes results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TRICKY_TEXTS, corpus_texts
from toedit import scoring
from toedit.config import ScoreConfig
from toedit.scoring import plan_windows, score_texts, tokenize


def reference_logprobs(prior, ids: np.ndarray) -> np.ndarray:
    """Plain full forward with full log_softmax (what a naive implementation does)."""
    seq = torch.tensor([[prior.context_id, *ids.tolist()]])
    with torch.no_grad():
        logp = prior.model(seq).logits.float().log_softmax(-1)[0]
    return logp[:-1].gather(1, seq[0, 1:, None])[:, 0].numpy(), logp[:-1]


@pytest.mark.parametrize("vocab_slice,block", [(4096, 32), (64, 4), (64, 32), (7, 32)])
def test_logprobs_and_topk_match_a_full_forward(tiny_prior, vocab_slice, block, monkeypatch):
    from toedit import lmhead

    monkeypatch.setattr(lmhead.LMHead, "CPU_VOCAB_SLICE", vocab_slice)  # vocabulary slices merge exactly
    monkeypatch.setattr(lmhead, "TOPK_BLOCK", block)  # the block top-k filter and its fallback
    texts = corpus_texts(4)
    texts = [t[:300] for t in texts]  # within one window (the tiny model has 256 positions)
    for sc in score_texts(texts, tiny_prior, ScoreConfig(store_k=5)):
        want, full = reference_logprobs(tiny_prior, sc.token_ids)
        np.testing.assert_allclose(sc.logprob, want, atol=2e-5)
        top = full.topk(5, dim=-1)
        np.testing.assert_array_equal(sc.topk_ids[:, 0], top.indices[:, 0].numpy())
        np.testing.assert_allclose(sc.topk_logprobs, top.values.numpy(), atol=2e-5)
        assert sc.n_scored == len(sc)  # the context token makes the first real token scorable


@pytest.mark.parametrize(
    "length,window,stride", [(1, 8, 4), (2, 8, 4), (8, 8, 4), (9, 8, 4), (100, 16, 12), (57, 10, 1)]
)
def test_windows_cover_every_target_once_with_context(length, window, stride):
    windows = plan_windows(length, window, stride)
    targets = [t for _, lo, hi in windows for t in range(lo, hi)]
    assert targets == list(range(1, length))
    for k, (start, lo, hi) in enumerate(windows):
        assert hi - start <= window and start < lo
        if k:
            assert lo - start >= window - stride


def test_long_document_is_scored_whole(tiny_prior):
    text = " ".join(corpus_texts(40))
    ids, _ = tokenize(tiny_prior, [text])[0]
    window = 64
    assert len(ids) > 10 * window
    (sc,) = score_texts([text], tiny_prior, ScoreConfig(window=window, stride=48))
    assert len(sc) == len(ids) and sc.n_scored == len(ids)
    # the first window is an ordinary forward pass
    want, _ = reference_logprobs(tiny_prior, ids[: window - 1])
    np.testing.assert_allclose(sc.logprob[: window - 1], want, atol=2e-5)


@pytest.mark.parametrize("budget", [64, 300, 5000])
def test_batching_does_not_change_scores(tiny_prior, budget):
    texts = [t[: 50 + 37 * i] for i, t in enumerate(corpus_texts(12))] + TRICKY_TEXTS
    base = score_texts(texts, tiny_prior, ScoreConfig(window=128, token_budget=128 * 64))
    other = score_texts(texts, tiny_prior, ScoreConfig(window=128, token_budget=budget, head_chunk=17))
    for a, b in zip(base, other, strict=True):
        np.testing.assert_array_equal(a.token_ids, b.token_ids)
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-5)
        np.testing.assert_array_equal(a.topk_ids, b.topk_ids)


def test_offsets_tile_the_text(tiny_prior):
    for text, (ids, offs) in zip(TRICKY_TEXTS, tokenize(tiny_prior, TRICKY_TEXTS), strict=True):
        assert tiny_prior.tokenizer.decode(ids.tolist()) == text
        if len(ids):
            assert offs[0, 0] == 0 and offs[-1, 1] == len(text)
            assert (offs[1:, 0] <= offs[:-1, 1]).all()  # no gaps (overlaps only inside multi-byte characters)


def test_empty_and_single_token_documents(tiny_prior):
    empty, one = score_texts(["", "x"], tiny_prior)
    assert len(empty) == 0 and empty.n_scored == 0
    assert len(one) == 1 and one.n_scored == 1


def test_entropy_matches_reference(tiny_prior):
    (sc,) = score_texts([corpus_texts(1)[0][:300]], tiny_prior, ScoreConfig(entropy=True))
    _, full = reference_logprobs(tiny_prior, sc.token_ids)
    want = -(full.exp() * full).sum(-1).numpy()
    np.testing.assert_allclose(sc.entropy, want, atol=1e-4)


def test_context_token_none_matches_an_unprefixed_forward(tiny_prior):
    """Parity mode: no prepended token, the first token unscored (kept), every other log-prob exactly that of
    a plain HF forward over the unprefixed ids, so the positions selected at any threshold are the same."""
    from toedit.rule import above

    texts = [t[:300] for t in corpus_texts(4)]
    scores = score_texts(texts, tiny_prior, ScoreConfig(context_token="none", store_k=3))
    prefixed = score_texts(texts, tiny_prior, ScoreConfig())
    differs = 0
    for sc, pre in zip(scores, prefixed, strict=True):
        seq = torch.tensor([sc.token_ids.tolist()])
        with torch.no_grad():
            logp = tiny_prior.model(seq).logits.float().log_softmax(-1)[0]
        want = logp[:-1].gather(1, seq[0, 1:, None])[:, 0].numpy()
        assert np.isnan(sc.logprob[0]) and sc.n_scored == len(sc) - 1
        np.testing.assert_allclose(sc.logprob[1:], want, atol=2e-5)
        for threshold in (0.2, 0.5, 0.9):
            got = np.nonzero(above(sc.logprob, threshold))[0]
            ref = np.nonzero(np.exp(want.astype(np.float64)) > threshold)[0] + 1
            np.testing.assert_array_equal(got, ref)
        differs += int(not np.allclose(sc.logprob[1:], pre.logprob[1:], atol=1e-4))
    assert differs > 0, "the prefix should change the conditioning (else this test shows nothing)"


def test_context_token_by_name_or_id(tiny_prior):
    text = [corpus_texts(1)[0][:200]]
    by_id = score_texts(text, tiny_prior, ScoreConfig(context_token=str(tiny_prior.context_id)))[0]
    auto = score_texts(text, tiny_prior, ScoreConfig())[0]
    by_name = score_texts(text, tiny_prior, ScoreConfig(context_token="<|endoftext|>"))[0]
    np.testing.assert_array_equal(by_id.logprob, auto.logprob)
    np.testing.assert_array_equal(by_name.logprob, auto.logprob)


@pytest.mark.parametrize("width,k", [(4096, 8), (4096, 1), (256, 8), (100, 8), (64, 3), (4096, 0)])
def test_slice_stats_equal_logsumexp_and_topk(width, k):
    from toedit.lmhead import slice_stats

    g = torch.Generator().manual_seed(width + k)
    logits = torch.randn(37, width, generator=g) * 4
    logits[3, : width // 2] = float("-inf")  # masked vocabulary entries
    logits[5] = float("-inf")  # a row with nothing allowed
    lse, (v, i) = slice_stats(logits.clone(), k)
    torch.testing.assert_close(lse, torch.logsumexp(logits, -1), rtol=0, atol=1e-5)
    if k:
        want = logits.topk(k, dim=-1)
        torch.testing.assert_close(v, want.values)
        finite = torch.isfinite(want.values)
        assert torch.equal(i[finite], want.indices[finite])
        assert torch.equal(logits.gather(1, i), v)


def test_bf16_head_refines_the_target_and_candidates_in_fp32(tiny_prior):
    """A bf16 head's log-probs differ from the fp32 head's only through the bf16 logits of the tokens it does
    not refine: by at most their probability mass x the largest bf16 error of a logit (inputs and output
    rounded: 2^-7 x sum |h w|, x 2 for slack); the candidates and the p > 0.99 decisions are the fp32 head's."""
    from toedit.lmhead import LMHead as _Head

    exact, fast = _Head(tiny_prior, torch.float32), _Head(tiny_prior, torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, exact.exact.shape[1], generator=g)
    hidden[:150] *= 40  # peaked distributions (p_top near 1) as well as flat ones
    targets = torch.randint(0, exact.exact.shape[0], (300,), generator=g)
    targets[:100] = exact.logits(hidden[:100]).argmax(-1)  # confident targets, the ones the rule edits
    lp32, v32, i32 = exact.stats(hidden, targets, 5)
    lp16, v16, i16 = fast.stats(hidden, targets, 5)
    logits = exact.logits(hidden)
    probs = logits.softmax(-1)
    refined = torch.zeros_like(probs, dtype=torch.bool)
    refined.scatter_(1, probs.topk(8, dim=-1).indices, True)
    refined.scatter_(1, targets[:, None], True)
    rest = (probs * ~refined).sum(-1)
    scale = (hidden.abs() @ exact.exact.abs().T).amax(-1)  # of the largest |logit| and its rounding
    bound = (2 * rest * 2**-7 + 1e-6) * scale + 2e-5  # + fp32 summation-order differences
    bad = (lp16 - lp32).abs() > bound
    assert not bad.any(), (torch.nonzero(bad)[:5, 0], (lp16 - lp32)[bad][:5], bound[bad][:5], rest[bad][:5])
    assert ((v16 - v32).abs() <= bound[:, None]).all()
    assert (rest[:150] < 1e-3).float().mean() > 0.5  # the peaked rows are nearly exact
    assert torch.equal(i16[:, 0], i32[:, 0])
    assert torch.equal(lp16 > np.log(0.99), lp32 > np.log(0.99))


def test_batches_bound_the_padding_of_every_row():
    lengths = [1188, 921, 471, 276, 261, 190, 175, 58, 58, 57]
    segs = [scoring._Segment(d, 0, 1, n) for d, n in enumerate(lengths)]
    batches = scoring._batches(segs, 2048)
    assert sorted(s.doc for b in batches for s in b) == list(range(len(lengths)))  # each row exactly once
    for b in batches:
        width = max(s.hi - s.start for s in b)
        assert len(b) * width <= 2048 or len(b) == 1
        assert all(s.hi - s.start >= width * (1 - scoring.PAD_SHARE) for s in b)
    assert [len(b) for b in batches] == [1, 1, 1, 2, 1, 1, 3]  # 921 and 471 no longer share a batch
