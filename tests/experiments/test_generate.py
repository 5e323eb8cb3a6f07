from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toedit.cli import main
from toedit.config import ConfigError
from toedit.experiments import generate as gen
from toedit.experiments.generate import (
    GenerateConfig,
    continuation,
    generate_texts,
    opening_prompts,
    read_texts,
    run_generate,
)

from ..conftest import corpus_texts


def _prompts(tok, config, n=6):
    docs = [(f"d{i}", t) for i, t in enumerate(corpus_texts(n))]
    return opening_prompts(docs, tok, config)


def test_prompts_respected_and_length_matched(tiny_prior):
    config = GenerateConfig(prompt_tokens=5, max_new_tokens=12, batch_size=4)
    docs = [(f"d{i}", t) for i, t in enumerate(corpus_texts(6))] + [("short", "hi")]
    prompts = opening_prompts(docs, tiny_prior.tokenizer, config)
    assert [p.source_id for p in prompts] == [f"d{i}" for i in range(6)]  # the 1-token doc gives no prompt
    records = generate_texts(prompts, tiny_prior, config)
    tok = tiny_prior.tokenizer
    for (doc_id, text), p, rec in zip(docs, prompts, records, strict=False):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert text.startswith(rec["prompt"])
        assert tok(rec["prompt"], add_special_tokens=False)["input_ids"] == ids[:5]
        # the text is the continuation only: no human prompt in it
        assert rec["text"] and not rec["text"].startswith(rec["prompt"])
        assert continuation(rec) == rec["text"] and rec["toedit_generate"]["prompt_in_text"] is False
        old_style = {**rec, "text": rec["prompt"] + rec["text"], "toedit_generate": {}}
        assert continuation(old_style) == rec["text"]  # records of earlier versions: prompt stripped
        assert rec["source_id"] == doc_id and rec["id"] == p.id
        meta = rec["toedit_generate"]
        assert meta["new_tokens"] == min(len(ids) - 5, 12) == p.n_new
        assert meta["seed"] == 0 and meta["top_p"] == 0.95 and meta["fingerprint"] == tiny_prior.fingerprint


def test_seeded_reproducible_and_batch_independent(tiny_prior):
    config = GenerateConfig(prompt_tokens=4, max_new_tokens=10, batch_size=4)
    prompts = _prompts(tiny_prior.tokenizer, config)
    a = generate_texts(prompts, tiny_prior, config)
    b = generate_texts(prompts, tiny_prior, config)
    assert a == b
    one = generate_texts(
        prompts, tiny_prior, GenerateConfig(prompt_tokens=4, max_new_tokens=10, batch_size=1)
    )
    assert [r["text"] for r in one] == [r["text"] for r in a]
    other = generate_texts(prompts, tiny_prior, GenerateConfig(prompt_tokens=4, max_new_tokens=10, seed=1))
    assert [r["text"] for r in other] != [r["text"] for r in a]


def test_kv_cache_greedy_matches_full_forward(tiny_prior):
    config = GenerateConfig(prompt_tokens=6, max_new_tokens=8, top_k=1)
    prompt = _prompts(tiny_prior.tokenizer, config, 1)[0]
    rec = generate_texts([prompt], tiny_prior, config)[0]
    ids = list(prompt.ids)
    banned = set(tiny_prior.special_ids())
    with torch.inference_mode():
        for _ in range(8):
            logits = tiny_prior.model(input_ids=torch.tensor([ids])).logits[0, -1].clone()
            logits[list(banned)] = -torch.inf
            ids.append(int(logits.argmax()))
    expected = tiny_prior.tokenizer.decode(ids[6:], clean_up_tokenization_spaces=False)
    assert rec["text"] == expected and rec["prompt"] == prompt.text


def test_nucleus_filter(monkeypatch):
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    probs = gen._filter(logits, GenerateConfig(top_p=0.7), None)
    assert torch.allclose(
        probs, torch.tensor([[0.625, 0.375, 0, 0], [0, 0, 0.375, 0.625]], dtype=torch.float64)
    )
    monkeypatch.setattr(gen, "_NUCLEUS_PROBE", 1)  # the probe misses the nucleus: falls back to a full sort
    assert torch.allclose(gen._filter(logits, GenerateConfig(top_p=0.7), None), probs)
    topk = gen._filter(logits, GenerateConfig(top_p=1.0, top_k=2, temperature=0.5), torch.tensor([0]))
    assert topk[0, 0] == 0 and topk[0, 3] == 0 and topk[0, 1] > topk[0, 2] > 0
    # inverse-CDF: u below the first mass picks it; u near 1 picks the last kept token
    assert gen._inverse_cdf(probs, np.array([0.1, 0.999])).tolist() == [0, 3]


def test_run_generate_files_topics_and_errors(tmp_path, tiny_model_dir, human_jsonl, capsys):
    out = tmp_path / "syn.jsonl"
    code = main(
        [
            "generate",
            str(human_jsonl),
            "-o",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--prompt-tokens",
            "4",
            "--max-new-tokens",
            "6",
            "--limit",
            "3",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and json.loads(capsys.readouterr().out)["new_tokens"] == 18
    assert {r["id"] for _, r in [(0, x) for x in rows]} == {"doc00:gen", "doc01:gen", "doc02:gen"}
    topics = tmp_path / "topics.txt"
    topics.write_text("the for statement\n\nexceptions\n")
    summary = run_generate(
        [],
        tmp_path / "t.jsonl",
        GenerateConfig(max_new_tokens=5),
        topics=topics,
        model=str(tiny_model_dir),
        progress=False,
    )
    assert summary["documents"] == 2 and summary["new_tokens"] == 10
    topic_rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert topic_rows[0]["prompt"] == "the for statement"
    assert [t for _, t in read_texts([str(tmp_path / "t.jsonl")])][0] == topic_rows[0]["text"]
    with pytest.raises(ConfigError):
        run_generate([str(human_jsonl)], out, topics=topics, model=str(tiny_model_dir))
    assert main(["generate", str(human_jsonl), "-o", str(out), "--temperature", "0"]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine text here"}\n{"id": 1, "text": 5}\n')
    assert main(["generate", str(bad), "-o", str(out), "--model", str(tiny_model_dir)]) == 4
    assert "bad.jsonl:2" in capsys.readouterr().err
