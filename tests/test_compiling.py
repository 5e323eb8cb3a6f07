"""torch.compile'd scoring: when it is on, that it really runs compiled, that it scores as eager does, and
that a compilation failure falls back to eager scoring."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch
import torch._dynamo

from toedit import compiling, lmhead, scoring
from toedit.config import IOConfig, ScoreConfig
from toedit.runs.manifest import fingerprint_payload
from toedit.scoring import score_texts

from .conftest import corpus_texts


def _as(prior, device: str, dtype: torch.dtype):
    return dataclasses.replace(prior, device=torch.device(device), dtype=dtype, dtype_name="", cache={})


def test_auto_compiles_a_bf16_or_bf32_body_on_cpu_only(tiny_prior):
    assert compiling.use_compile("auto", _as(tiny_prior, "cpu", torch.bfloat16))
    assert compiling.use_compile(
        "auto", dataclasses.replace(_as(tiny_prior, "cpu", torch.float32), dtype_name="bf32")
    )
    assert not compiling.use_compile("auto", _as(tiny_prior, "cpu", torch.float32))
    assert not compiling.use_compile("auto", _as(tiny_prior, "cuda", torch.bfloat16))
    assert compiling.use_compile("on", tiny_prior) and not compiling.use_compile("off", tiny_prior)
    failed = _as(tiny_prior, "cpu", torch.bfloat16)
    failed.compile_state.failed = True
    assert not compiling.use_compile("auto", failed)
    with pytest.raises(ValueError, match="compile must be one of"):
        compiling.use_compile("yes", tiny_prior)


def test_the_fingerprint_records_the_resolved_mode(tiny_prior):
    def payload(mode: str, prior) -> dict:
        return fingerprint_payload("edit", prior, (128, 112), ScoreConfig(compile=mode), IOConfig(), None)

    assert payload("auto", tiny_prior)["score"]["compile"] == "off"  # fp32
    assert payload("on", tiny_prior)["score"]["compile"] == "on"
    assert payload("auto", _as(tiny_prior, "cpu", torch.bfloat16))["score"]["compile"] == "on"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_head_statistics_match_the_eager_ones(tiny_prior, dtype, monkeypatch):
    # slices of 256 tile into 32-column blocks (fused); the last slice of 144 does not (eager fallback)
    head = lmhead.LMHead(tiny_prior, dtype, vocab_slice=256)
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, tiny_prior.model.config.hidden_size, generator=gen)
    targets = torch.randint(0, tiny_prior.vocab_size, (37,), generator=gen)
    calls = []
    real = lmhead._fused_slice_stats

    def counted(*a):
        calls.append(a[0].dtype)
        return real(*a)

    with torch.inference_mode():
        eager = head.stats(hidden, targets, 3)
        monkeypatch.setattr(lmhead, "_fused_slice_stats", counted)
        fused = head.stats(hidden, targets, 3, fused=True)
    assert calls == [dtype] * (tiny_prior.vocab_size // 256)  # the raw slice, not an fp32 copy
    torch.testing.assert_close(fused[0], eager[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(fused[1], eager[1], atol=1e-5, rtol=0)
    assert torch.equal(fused[2], eager[2])


def test_compile_on_scores_through_compiled_layers_like_eager(tiny_prior, monkeypatch):
    texts = corpus_texts(6)
    eager = score_texts(texts, tiny_prior, ScoreConfig(window=64, compile="off"))
    assert tiny_prior.compile_state.compiled is None
    seen = []
    real = scoring._score_batch

    def spy(*a):
        layers = compiling.decoder_layers(tiny_prior.model)
        seen.append(all(isinstance(m, torch._dynamo.eval_frame.OptimizedModule) for m in layers))
        return real(*a)

    monkeypatch.setattr(scoring, "_score_batch", spy)
    compiled = score_texts(texts, tiny_prior, ScoreConfig(window=64, compile="on"))
    assert seen and all(seen)  # every batch ran through the compiled wrappers ...
    layers = compiling.decoder_layers(tiny_prior.model)
    assert not any(isinstance(m, torch._dynamo.eval_frame.OptimizedModule) for m in layers)  # ... only then
    for e, c in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(c.logprob, e.logprob, atol=1e-4)
        assert (c.topk_ids[:, 0] == e.topk_ids[:, 0]).mean() > 0.99


def test_a_compilation_failure_falls_back_to_eager(tiny_prior, monkeypatch, caplog):
    texts = corpus_texts(3)
    prior = _as(tiny_prior, "cpu", torch.float32)
    eager = score_texts(texts, prior, ScoreConfig(window=64, compile="off"))

    def broken(prior):
        raise compiling.CompileError("no C++ compiler")

    monkeypatch.setattr(compiling, "compiled_layers", broken)
    with caplog.at_level(logging.WARNING, logger="toedit.compiling"):
        again = score_texts(texts, prior, ScoreConfig(window=64, compile="on"))
    assert "compile failed" in caplog.text and prior.compile_state.failed
    for e, a in zip(eager, again, strict=True):
        np.testing.assert_array_equal(a.logprob, e.logprob)


def test_a_run_records_the_mode_and_resume_refuses_another(tmp_path, tiny_prior):
    from toedit.config import RunConfig
    from toedit.runs import RunDirError, run_edit

    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": str(i), "text": t[:200]}) + "\n" for i, t in enumerate(corpus_texts(4)))
    )
    quiet = RunConfig(progress=False)
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), score=ScoreConfig(compile="on"), run=quiet, prior=tiny_prior
    )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert summary.compile == manifest["model"]["compile"] == "on" and "compile on" in summary.format()
    with pytest.raises(RunDirError):  # eager scores round differently: not the same run
        run_edit(
            [str(src)], str(tmp_path / "run"), score=ScoreConfig(compile="off"), run=quiet, prior=tiny_prior
        )


def test_nested_use_restores_the_eager_layers_once_the_last_user_leaves(tiny_prior):
    prior = _as(tiny_prior, "cpu", torch.float32)
    layers = compiling.decoder_layers(prior.model)
    eager = list(layers)

    def compiled() -> bool:
        return all(isinstance(m, torch._dynamo.eval_frame.OptimizedModule) for m in layers)

    with compiling.compiled_layers(prior) as outer:
        with compiling.compiled_layers(prior) as inner:
            assert outer and inner and compiled()
        assert compiled()  # the outer user still scores through them
    assert list(layers) == eager


def test_a_model_without_a_known_layer_list_scores_eagerly_with_one_warning(tiny_prior, monkeypatch, caplog):
    texts = corpus_texts(3)
    prior = _as(tiny_prior, "cpu", torch.float32)
    eager = score_texts(texts, prior, ScoreConfig(window=64, compile="off"))
    monkeypatch.setattr(compiling, "_LAYER_LISTS", ())
    with caplog.at_level(logging.WARNING, logger="toedit.compiling"):
        with compiling.compiled_layers(prior) as used:
            assert not used
        again = score_texts(texts, prior, ScoreConfig(window=64, compile="on"))
    assert caplog.text.count("no decoder-layer list") == 1
    assert all(not isinstance(m, torch._dynamo.eval_frame.OptimizedModule) for m in prior.model.model.layers)
    for e, a in zip(eager, again, strict=True):
        np.testing.assert_allclose(a.logprob, e.logprob, atol=1e-5)


def test_auto_compiles_only_an_input_large_enough_to_pay_it_back(tiny_prior):
    bf16 = _as(tiny_prior, "cpu", torch.bfloat16)
    assert not compiling.use_compile("auto", bf16, tokens=compiling.COMPILE_MIN_TOKENS - 1)
    assert compiling.use_compile("auto", bf16, tokens=compiling.COMPILE_MIN_TOKENS)
    assert compiling.use_compile("on", bf16, tokens=10)  # explicit modes ignore the size
    assert not compiling.use_compile("off", bf16, tokens=10**9)
    assert not compiling.use_compile("auto", _as(tiny_prior, "cpu", torch.float32), tokens=10**9)
    # the estimate: bytes / BYTES_PER_TOKEN, compressed files x COMPRESSION_RATIO
    plain = compiling.estimate_tokens({"a.jsonl": (4000, False)})
    assert plain == 4000 // compiling.BYTES_PER_TOKEN
    assert compiling.estimate_tokens({"a.jsonl.gz": (4000, True)}) == plain * compiling.COMPRESSION_RATIO


@pytest.mark.parametrize(("copies", "expected"), [(1, "off"), (None, "on")])
def test_a_run_resolves_auto_by_the_input_size(tmp_path, tiny_prior, monkeypatch, copies, expected):
    """`toedit edit` on a few lines scores eagerly; a large input compiles (the resolved mode is what the
    scorer gets, the manifest records and a resume with auto finds again)."""
    from toedit.config import RunConfig
    from toedit.runs import run_edit

    prior = _as(tiny_prior, "cpu", torch.bfloat16)
    line = json.dumps({"text": corpus_texts(1)[0][:200]}) + "\n"
    copies = copies or compiling.COMPILE_MIN_TOKENS * compiling.BYTES_PER_TOKEN // len(line) + 1
    src = tmp_path / "in.jsonl"
    src.write_text(line * copies)
    seen = []

    def spy(batch, job):
        seen.append(job.config.compile)  # score nothing: only the mode that reaches the scorer matters here

    monkeypatch.setattr(scoring, "_score_batch_compiled", spy)
    quiet = RunConfig(progress=False)
    for _ in range(2):  # the second call resumes (nothing to do) with the same fingerprint
        summary = run_edit([str(src)], str(tmp_path / "run"), score=ScoreConfig(), run=quiet, prior=prior)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert summary.compile == manifest["model"]["compile"] == expected
    assert seen and set(seen) == {expected}
