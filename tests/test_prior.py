"""Prior loading: HF directories, clear errors, the context token; the embedded GGUF in integration tests."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import torch

from tests.conftest import TRICKY_TEXTS, corpus_texts, make_tiny_model
from toedit import prior as prior_mod
from toedit.config import EditConfig
from toedit.pipeline import edit_texts
from toedit.prior import PriorError, context_token_id, load_prior, looks_like_path, prior_from_model
from toedit.scoring import score_texts


def test_hf_directory_prior(tiny_prior, tiny_model_dir):
    assert tiny_prior.fingerprint.startswith("dir-sha256:")
    assert tiny_prior.context_id == tiny_prior.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tiny_prior.dtype == torch.float32 and tiny_prior.device.type == "cpu"
    again = load_prior(str(tiny_model_dir), device="cpu")
    assert again.fingerprint == tiny_prior.fingerprint


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(PriorError, match="not a Hugging Face model directory"):
        load_prior(str(tmp_path))
    with pytest.raises(PriorError, match="GGUF file not found"):
        load_prior(str(tmp_path / "nope.gguf"))
    with pytest.raises(PriorError):
        load_prior(str(tmp_path / "no-such-model-dir"))  # not a dir, not on any hub reachable here


def _copy_model(src, dst):
    shutil.copytree(src, dst)
    old = time.time_ns() - 10**10  # outside the hash cache's racy window: the cache is used
    for p in dst.iterdir():
        os.utime(p, ns=(old, old))
    return dst


def test_dir_fingerprint_hashes_weight_contents(tiny_model_dir, tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TOEDIT_CACHE", str(tmp_path / "cache"))
    a = _copy_model(tiny_model_dir, tmp_path / "a")
    b = _copy_model(tiny_model_dir, tmp_path / "b")
    assert prior_mod._dir_fingerprint(a) == prior_mod._dir_fingerprint(b)  # same contents, other place
    make_tiny_model(len(tiny_tokenizer), seed=1).save_pretrained(tmp_path / "other")
    swapped = (tmp_path / "other" / "model.safetensors").read_bytes()
    assert len(swapped) == (b / "model.safetensors").stat().st_size  # same name, same size
    (b / "model.safetensors").write_bytes(swapped)
    assert prior_mod._dir_fingerprint(a) != prior_mod._dir_fingerprint(b)
    assert load_prior(str(b), device="cpu").fingerprint == f"dir-sha256:{prior_mod._dir_fingerprint(b)}"


def test_weights_are_read_once_then_cached(tiny_model_dir, tmp_path, monkeypatch):
    import toedit.io.hashing as hashing

    monkeypatch.setenv("TOEDIT_CACHE", str(tmp_path / "cache"))
    a = _copy_model(tiny_model_dir, tmp_path / "a")
    read: list[str] = []
    real = hashing._sha256_file
    monkeypatch.setattr(hashing, "_sha256_file", lambda p: read.append(os.path.basename(p)) or real(p))
    first = prior_mod._dir_fingerprint(a)
    assert prior_mod._dir_fingerprint(a) == first
    assert read == ["model.safetensors"]


@pytest.mark.parametrize(
    "spec", ["a/b", "./model", "~/no-such-toedit-model", "x/y/z", "m.safetensors", "a--b"]
)
def test_missing_model_path_fails_at_once(spec, tmp_path, monkeypatch):
    """Offline (as in every test): nothing is tried on the hub, no retries, a message naming the path."""
    import transformers

    monkeypatch.chdir(tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained must not be reached")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", never)
    with pytest.raises(PriorError, match=f"model '{spec}': no such file or directory") as info:
        load_prior(spec)
    if not looks_like_path(spec):  # `a/b` may be a hub id: the message says where else it was looked for
        assert "not a model in the Hugging Face cache" in str(info.value)


def test_hub_id_shapes():
    assert [looks_like_path(s) for s in ["gpt2", "HuggingFaceTB/SmolLM2-135M", "org/name.v2"]] == [False] * 3
    assert all(
        looks_like_path(s) for s in ["./m", "../m", "~/m", "/m", "a/b/c", "m.gguf", "a b", "a--b", "a/"]
    )


def test_hub_id_in_the_local_cache_is_allowed(tiny_model_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--toedit-test--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # no local directory toedit-test/tiny here
    prior = load_prior("toedit-test/tiny", device="cpu")
    # identified by content: the same fingerprint as the same files in a local directory
    assert prior.fingerprint == f"dir-sha256:{prior_mod._dir_fingerprint(tiny_model_dir)}"
    with pytest.raises(PriorError, match="not a model in the Hugging Face cache"):
        load_prior("toedit-test/other")


@pytest.mark.parametrize("answer", ["not-found", "unreachable"])
def test_online_hub_id_is_asked_once_not_retried(answer, tmp_path, monkeypatch):
    """Online, a hub-shaped id that is not cached costs one metadata request, whose failure is final."""
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    asked = []

    def model_info(self, repo_id, timeout=None):
        asked.append((repo_id, timeout))
        if answer == "not-found":
            raise RepositoryNotFoundError("404", response=SimpleNamespace(headers={}, request=None))
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.chdir(tmp_path)
    want = "the hub has no model 'a/b'" if answer == "not-found" else "the hub cannot be reached"
    with pytest.raises(PriorError, match=want):
        load_prior("a/b")
    assert asked == [("a/b", 10)]


def test_bad_dtype_is_a_clear_error(tiny_model_dir):
    with pytest.raises(PriorError, match="dtype"):
        load_prior(str(tiny_model_dir), dtype="float8")


def test_context_token_rules(tiny_tokenizer):
    assert context_token_id(tiny_tokenizer) == tiny_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert context_token_id(tiny_tokenizer, 5) == 5
    with pytest.raises(PriorError, match="not in the tokenizer"):
        context_token_id(tiny_tokenizer, "<|no-such-token|>")


def test_prior_from_model_fingerprints_weights(tiny_prior):
    a = prior_from_model(tiny_prior.model, tiny_prior.tokenizer)
    b = prior_from_model(tiny_prior.model, tiny_prior.tokenizer)
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("weights-sha256:")


@pytest.fixture(scope="module")
def default_prior():
    try:
        return load_prior("default", device="cpu", dtype="float32")  # the exact reference
    except PriorError as exc:  # pragma: no cover - `make test` installs it
        pytest.skip(f"embedded prior not installed: {exc}")


@pytest.mark.integration
def test_embedded_prior_loads_and_scores_exactly(default_prior):
    assert default_prior.fingerprint.startswith("gguf-sha256:")
    assert default_prior.tokenizer.convert_ids_to_tokens(default_prior.context_id) == "<|endoftext|>"
    assert default_prior.vocab_size == 49152
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
    (sc,) = score_texts([text], default_prior)
    seq = torch.tensor([[default_prior.context_id, *sc.token_ids.tolist()]])
    with torch.no_grad():
        logp = default_prior.model(seq).logits.float().log_softmax(-1)[0, :-1]
    np.testing.assert_allclose(sc.logprob, logp.gather(1, seq[0, 1:, None])[:, 0].numpy(), atol=1e-4)
    assert np.exp(sc.logprob).max() > 0.9  # the real model is confident somewhere


@pytest.mark.integration
@pytest.mark.slow
def test_embedded_prior_edits_and_keeps_text(default_prior):
    texts = [t[:1500] for t in corpus_texts(4)] + TRICKY_TEXTS
    same = edit_texts(texts, default_prior, EditConfig(threshold=1.0))
    assert [r.text for r in same] == texts
    edited = edit_texts(texts, default_prior, EditConfig(threshold=0.9, record_spans=True))
    assert sum(r.stats.n_above for r in edited) > 20
    assert sum(r.stats.n_changed for r in edited) > 0
    for r in edited:
        assert r.stats.n_changed == sum(1 for s in r.spans if s[3] != "")


@pytest.mark.integration
@pytest.mark.slow
def test_embedded_prior_run_on_a_real_corpus(default_prior, tmp_path):
    import json

    from toedit.config import RunConfig
    from toedit.runs import run_edit

    src = tmp_path / "topics.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus_texts(3)), encoding="utf-8")
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), EditConfig(), run=RunConfig(progress=False), prior=default_prior
    )
    s = summary.stats
    assert s["n_records"] == 3 and s["n_scored"] == s["n_tokens"] > 500
    assert 0 < s["n_above"] < 0.2 * s["n_scored"]  # a 135M prior is rarely sure (PAPER.md: 2-3 %)
    assert s["n_changed"] <= s["n_above"]


@pytest.mark.parametrize(
    ("device", "flags", "expected"),
    [
        ("cpu", {"avx2", "avx512f", "amx_tile", "amx_bf16"}, "bfloat16"),  # Sapphire Rapids class: AMX
        ("cpu", {"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # Cooper Lake / Zen 4: AVX512-BF16
        ("cpu", {"avx2", "fma"}, "float32"),  # AVX2 only (e.g. older EPYC): bf16 would be emulated
        ("cpu", set(), "float32"),
        ("cuda", set(), "bfloat16"),
    ],
)
def test_auto_dtype_follows_the_hardware(monkeypatch, device, flags, expected):
    from toedit import prior as prior_mod

    assert prior_mod.auto_dtype(torch.device(device), frozenset(flags)) == expected
    monkeypatch.setattr(prior_mod, "cpu_flags", lambda: frozenset(flags))
    for requested in (None, "auto"):
        assert prior_mod._resolve_device_dtype(device, requested) == (torch.device(device), expected)
    assert prior_mod._resolve_device_dtype(device, "float32")[1] == "float32"  # explicit wins


def test_cpu_flags_reads_this_machine():
    from toedit.prior import cpu_flags

    flags = cpu_flags()
    assert isinstance(flags, frozenset) and all(isinstance(f, str) and " " not in f for f in flags)


@pytest.mark.parametrize(("flags", "dtype"), [({"amx_bf16"}, torch.bfloat16), ({"avx2"}, torch.float32)])
def test_load_prior_auto_dtype_reaches_the_model(monkeypatch, tiny_model_dir, flags, dtype):
    from toedit import prior as prior_mod

    monkeypatch.setattr(prior_mod, "cpu_flags", lambda: frozenset(flags))
    prior = load_prior(str(tiny_model_dir), device="cpu")  # dtype defaults to auto
    assert prior.dtype == dtype and prior.dtype_name == str(dtype).removeprefix("torch.")
    assert next(prior.model.base_model.parameters()).dtype == dtype
    exact = load_prior(str(tiny_model_dir), device="cpu", dtype="float32")
    assert exact.dtype_name == "float32" and next(exact.model.parameters()).dtype == torch.float32
