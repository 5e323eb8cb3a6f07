"""`--dtype` (default auto) reaches the prior a run loads, from the CLI and from RunConfig."""

from __future__ import annotations

import json

import pytest

from tests.conftest import corpus_texts
from toedit import prior as prior_mod
from toedit.cli import EXIT_OK, main
from toedit.runs import run as run_mod


@pytest.mark.parametrize(
    ("flags", "argv", "expected"),
    [
        ({"amx_bf16"}, [], "bfloat16"),  # the default is auto: AMX -> bf16
        ({"avx2"}, [], "float32"),  # AVX2 only -> fp32
        ({"amx_bf16"}, ["--dtype", "float32"], "float32"),  # the exact reference on request
        ({"amx_bf16"}, ["--dtype", "bf32"], "bf32"),  # fp32 weights, bf16 matmul math
    ],
)
def test_dtype_flag_reaches_the_loaded_prior(monkeypatch, tmp_path, tiny_model_dir, flags, argv, expected):
    monkeypatch.setattr(prior_mod, "cpu_flags", lambda: frozenset(flags))
    loaded = []

    def spy(*args, **kwargs):
        prior = prior_mod.load_prior(*args, **kwargs)
        loaded.append(prior)
        return prior

    monkeypatch.setattr(run_mod, "load_prior", spy)
    corpus = tmp_path / "in.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": t[:200]}) + "\n" for t in corpus_texts(2)), encoding="utf-8"
    )
    args = ["edit", str(corpus), "-o", str(tmp_path / "run"), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu", "--no-progress", *argv]) == EXIT_OK
    assert [p.dtype_name for p in loaded] == [expected]
    weights = "float32" if expected == "bf32" else expected
    assert str(next(loaded[0].model.parameters()).dtype) == f"torch.{weights}"


def test_unknown_dtype_is_a_model_error(tmp_path, tiny_model_dir):
    corpus = tmp_path / "in.jsonl"
    corpus.write_text(json.dumps({"text": "hello"}) + "\n", encoding="utf-8")
    args = [
        "edit",
        str(corpus),
        "-o",
        str(tmp_path / "run"),
        "--model",
        str(tiny_model_dir),
        "--dtype",
        "fp8",
    ]
    assert main([*args, "--device", "cpu", "--no-progress"]) != EXIT_OK


def test_bf32_runs_the_body_with_bf16_matmul_math_and_the_head_exact(tiny_model_dir):
    import numpy as np
    import torch

    from toedit.config import ScoreConfig
    from toedit.scoring import score_texts

    exact = prior_mod.load_prior(str(tiny_model_dir), device="cpu", dtype="float32")
    bf32 = prior_mod.load_prior(str(tiny_model_dir), device="cpu", dtype="bf32")
    assert bf32.dtype == torch.float32 and bf32.dtype_name == "bf32"
    assert next(bf32.model.parameters()).dtype == torch.float32
    seen = []
    hook = bf32.model.base_model.register_forward_hook(
        lambda *_: seen.append(torch.backends.mkldnn.matmul.fp32_precision)
    )
    before = torch.backends.mkldnn.matmul.fp32_precision
    texts = corpus_texts(4)
    config = ScoreConfig(window=64, compile="off")
    got = score_texts(texts, bf32, config)
    hook.remove()
    assert seen and set(seen) == {"bf16"}  # inside the body's forward ...
    assert torch.backends.mkldnn.matmul.fp32_precision == before  # ... and only there
    ref = score_texts(texts, exact, config)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g.logprob, r.logprob, atol=0.05)  # bf16 input rounding, not garbage
    with pytest.raises(prior_mod.PriorError, match="for CPUs"):
        prior_mod.load_prior(str(tiny_model_dir), device="cuda", dtype="bf32")
