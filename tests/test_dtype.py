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
    assert str(next(loaded[0].model.parameters()).dtype) == f"torch.{expected}"


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
