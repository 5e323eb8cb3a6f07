"""Shared fixtures: a tiny randomly initialised Llama + byte-level BPE tokenizer, built in-test (no download)."""

from __future__ import annotations

import os
import pydoc_data.topics

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

TRICKY_TEXTS = [
    "Plain English prose, with punctuation; and numbers 1,234.56!",
    "Unicode: café naïve Zürich — “quotes” ‘single’ … NBSP:\u00a0 zero-width:\u200b done",
    "CJK 東京都は日本の首都です。中文文本。한국어 텍스트",
    "Emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷 end",
    "Combining e\u0301 a\u0308 and tabs\tinside\t\tthe text",
    "Windows line endings\r\nsecond line\r\n\r\nafter a blank line\r\n",
    "trailing spaces   \nand more trailing   ",
    "   leading spaces and a final newline\n",
    "",
    "x",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code\n",
]


def corpus_texts(n: int = 30) -> list[str]:
    topics = pydoc_data.topics.topics
    return [topics[k] for k in sorted(topics)][:n]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus_texts(20), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def make_tiny_model(vocab_size: int, seed: int = 0, max_positions: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def train_briefly(model, tokenizer, steps: int = 200, seq: int = 64, batch: int = 8, seed: int = 0):
    """A few seconds of training on the pydoc corpus, so the model is confident on some tokens (as real
    priors are: the U-shape) instead of uniform."""
    torch.manual_seed(seed)
    ids = tokenizer("\n".join(corpus_texts(60)), add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids[: (len(ids) // seq) * seq]).view(-1, seq)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(len(data), (batch,), generator=gen)]
        loss = model(input_ids=rows, labels=rows).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    path = tmp_path_factory.mktemp("tiny-model")
    train_briefly(make_tiny_model(len(tiny_tokenizer)), tiny_tokenizer).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_prior(tiny_model_dir):
    from toedit.prior import load_prior

    return load_prior(str(tiny_model_dir), device="cpu", dtype="float32")  # exact on every CPU
