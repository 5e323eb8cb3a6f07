"""The GPU path on CPU: out-of-memory halving (simulated), and the memory-sized token budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import corpus_texts
from toedit import scoring
from toedit.config import ScoreConfig
from toedit.scoring import GPU_BUDGET_RANGE, gpu_token_budget, score_texts, token_budget_for_memory

TEXTS = [corpus_texts(1)[0][:300]] * 16  # 16 rows of the same width: batch sizes are easy to follow
CONFIG = ScoreConfig(token_budget=10**6)  # one batch of all rows


def test_out_of_memory_halves_the_batch_and_remembers_the_budget(monkeypatch, tiny_prior, caplog):
    expected = score_texts(TEXTS, tiny_prior, CONFIG)
    real, attempts = scoring._score_batch, []

    def small_gpu(batch, *args):
        attempts.append(len(batch))
        if len(batch) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(batch, *args)

    monkeypatch.setattr(scoring, "_score_batch", small_gpu)
    got = score_texts(TEXTS, tiny_prior, CONFIG)
    # 16 fails, 8 fails; the budget is then 4 rows, so the other 8 is split before it is tried
    assert attempts == [16, 8, 4, 4, 4, 4]
    assert caplog.text.count("out of memory") == 2
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.token_ids, b.token_ids)
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-5)
        np.testing.assert_array_equal(a.topk_ids, b.topk_ids)


def test_out_of_memory_on_a_single_row_is_raised(monkeypatch, tiny_prior):
    def no_memory(batch, *args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(scoring, "_score_batch", no_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        score_texts(TEXTS[:3], tiny_prior, CONFIG)


def test_token_budget_follows_gpu_memory(monkeypatch, tiny_prior):
    def budget(gib, hidden=4096, inter=14336, heads=32):
        return token_budget_for_memory(gib * 2**30, hidden, inter, heads, 2048, 128_256, 512)

    assert budget(2) == GPU_BUDGET_RANGE[0] and budget(80) == GPU_BUDGET_RANGE[1]
    assert GPU_BUDGET_RANGE[0] < budget(10) < budget(16) < GPU_BUDGET_RANGE[1]
    assert budget(16) % 256 == 0
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 24 * 2**30))
    sized = gpu_token_budget(tiny_prior)
    assert GPU_BUDGET_RANGE[0] <= sized <= GPU_BUDGET_RANGE[1]
