from __future__ import annotations

import json
import math

import pytest
import torch

from toedit.cli import main
from toedit.config import ConfigError
from toedit.experiments.tinylm import (
    TrainConfig,
    as_prior,
    build_tokenizer,
    evaluate,
    pack,
    train_rows,
    train_tinylm,
)

from ..conftest import corpus_texts

TOY = TrainConfig(
    tokens=4096, seq_len=32, batch_size=8, hidden=32, layers=1, heads=2, intermediate=64, lr=1e-2
)


@pytest.fixture(scope="module")
def toy_tokenizer():
    return build_tokenizer("bpe:300", corpus_texts(30))


def test_loss_falls_and_heldout_ppl(toy_tokenizer):
    res = train_tinylm(
        corpus_texts(30)[:20],
        TOY,
        heldout=[t[:1500] for t in corpus_texts(30)[20:24]],
        tokenizer=toy_tokenizer,
    )
    m = res["metrics"]
    assert m["steps"] == 16 and m["train_tokens"] == 4096
    assert m["final_loss"] < m["first_loss"] - 1.0
    assert m["first_loss"] == pytest.approx(math.log(len(toy_tokenizer)), abs=0.5)  # starts near uniform
    assert 1 < m["heldout"]["ppl"] < len(toy_tokenizer) and 0 <= m["heldout"]["tail_share"] <= 1


def test_deterministic_with_a_seed(toy_tokenizer):
    rows = pack(corpus_texts(10), toy_tokenizer, TOY.seq_len)
    a, sa = train_rows(rows, TOY, len(toy_tokenizer))
    b, sb = train_rows(rows, TOY, len(toy_tokenizer))
    assert sa["losses"] == sb["losses"]
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    c, sc = train_rows(rows, TrainConfig(**{**TOY.__dict__, "seed": 1}), len(toy_tokenizer))
    assert sc["losses"] != sa["losses"]


def test_pack_joins_documents_and_pads(toy_tokenizer):
    texts = ["abc def", "ghi"]
    rows = pack(texts, toy_tokenizer, 4)
    eot = toy_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    flat = rows.flatten().tolist()
    ids = [toy_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    stream = ids[0] + [eot] + ids[1] + [eot]
    assert flat[: len(stream)] == stream and set(flat[len(stream) :]) <= {-1}
    assert rows.shape[1] == 4 and len(flat) - len(stream) < 4


def test_evaluate_matches_the_model_loss(toy_tokenizer):
    model, _ = train_rows(pack(corpus_texts(10), toy_tokenizer, 32), TOY, len(toy_tokenizer))
    text = "The for statement is used to iterate"
    ids = toy_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < 32  # one window: every token sees all of its prefix
    eot = toy_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    x = torch.tensor([[eot, *ids]])
    with torch.no_grad():
        loss = float(model(input_ids=x, labels=x).loss)
    ev = evaluate(as_prior(model, toy_tokenizer), [text])
    assert ev["tokens"] == len(ids)
    assert ev["ppl"] == pytest.approx(math.exp(loss), rel=1e-4)


def test_config_errors():
    with pytest.raises(ConfigError):
        TrainConfig(hidden=30, heads=4).validate()
    with pytest.raises(ConfigError):
        TrainConfig(tokenizer="nonsense").validate()
    with pytest.raises(ConfigError):
        build_tokenizer("bpe:x", ["a"])


def test_cli_train(tmp_path, human_jsonl, capsys):
    out = tmp_path / "lm"
    args = [
        "train",
        str(human_jsonl),
        "--heldout",
        str(human_jsonl),
        "-o",
        str(out),
        "--tokens",
        "1024",
        "--seq-len",
        "32",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--tokenizer",
        "bpe:300",
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert printed["steps"] == saved["steps"] == 2 and "heldout" in printed
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    assert main(["train", str(human_jsonl), "--hidden", "30"]) == 2
