"""Config sections: values no run can use are refused when the options are built (exit 2, before any model),
and values the loaded model cannot honour are refused before any shard (exit 2, nothing under done/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toedit.cli import EXIT_CONFIG, main
from toedit.config import MAX_ROUNDS, ConfigError, EditConfig, IOConfig, ScoreConfig
from toedit.pipeline import check_settings


@pytest.mark.parametrize(
    "config, message",
    [
        (EditConfig(beta=float("nan")), "beta must be a finite number > 0, got nan"),
        (EditConfig(beta=float("inf")), "beta must be a finite number > 0, got inf"),
        (EditConfig(beta=0.0), "beta must be a finite number > 0"),
        (EditConfig(rounds=MAX_ROUNDS + 1), f"rounds must be in \\[1, {MAX_ROUNDS}\\]"),
        (EditConfig(rounds=1_000_000), "each round is a full re-scoring pass"),
        (EditConfig(calibration_docs=0), "calibration_docs must be >= 1"),
        (IOConfig(docs_per_batch=0), "docs_per_batch must be >= 1, got 0"),
        (IOConfig(docs_per_batch=-5), "docs_per_batch must be >= 1, got -5"),
        (IOConfig(max_errors=-1), "max_errors must be >= 0"),
    ],
)
def test_unusable_values_are_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_edge_values_that_work_are_kept():
    EditConfig(rounds=MAX_ROUNDS, beta=1e-3, calibration_docs=1).validate()
    IOConfig(docs_per_batch=1, max_errors=0).validate()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beta", "nan"], "beta must be a finite number > 0, got nan"),
        (["--beta", "inf"], "beta must be a finite number > 0, got inf"),
        (["--rounds", "1000000"], "rounds must be in [1, 100]"),
        (["--docs-per-batch", "0"], "docs_per_batch must be >= 1"),
        (["--max-errors", "-1"], "max_errors must be >= 0"),
    ],
)
def test_cli_refuses_them_at_parse_time(tmp_path, flags, message, capsys):
    """No model is loaded: the model path does not even exist."""
    src = tmp_path / "f.jsonl"
    src.write_text('{"id": "a", "text": "The quick brown fox."}\n')
    argv = ["edit", str(src), "-o", str(tmp_path / "r"), "--model", str(tmp_path / "no-model"), *flags]
    assert main(argv) == EXIT_CONFIG
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------- against the model


def test_check_settings_against_the_loaded_prior(tiny_prior):
    vocab = tiny_prior.vocab_size
    assert check_settings(tiny_prior, ScoreConfig(store_k=vocab), EditConfig(top_k=vocab))
    with pytest.raises(ConfigError, match=f"top_k {vocab + 1} is larger than the vocabulary"):
        check_settings(tiny_prior, ScoreConfig(), EditConfig(top_k=vocab + 1))
    with pytest.raises(ConfigError, match=f"store_k {vocab + 1} is larger than the vocabulary"):
        check_settings(tiny_prior, ScoreConfig(store_k=vocab + 1))
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        check_settings(tiny_prior, ScoreConfig(context_token=str(vocab)))
    with pytest.raises(ConfigError, match="context_token '<nope>'"):
        check_settings(tiny_prior, ScoreConfig(context_token="<nope>"))
    with pytest.raises(ConfigError, match="positions"):
        check_settings(tiny_prior, ScoreConfig(window=100_000, stride=tiny_prior.max_positions))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--top-k", "60000"], "top_k 60000 is larger than the vocabulary"),
        (["--store-k", "49153"], "store_k 49153 is larger than the vocabulary"),
        (["--context-token", "999999"], "token id 999999, outside the vocabulary"),
    ],
)
def test_model_limits_are_config_errors_before_any_shard(tmp_path, tiny_model_dir, flags, message, capsys):
    """They were three retries, then exit 6 (RuntimeError / IndexError inside the shard)."""
    src = tmp_path / "f.jsonl"
    src.write_text('{"id": "a", "text": "The quick brown fox jumps over the lazy dog."}\n')
    run = tmp_path / "r"
    argv = ["edit", str(src), "-o", str(run), "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*argv, "--dtype", "float32", "--no-progress", *flags]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(Path(run).glob("done/*")) and not list(Path(run).glob("failed/*"))


def test_sweep_checks_its_top_ks_too(tmp_path, tiny_prior):
    from toedit.sweep import run_sweep

    src = tmp_path / "f.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "The quick brown fox."}) + "\n")
    with pytest.raises(ConfigError, match="top_k 100000"):
        run_sweep([str(src)], top_ks=[8, 100_000], prior=tiny_prior)
