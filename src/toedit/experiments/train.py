"""`toedit train`: one tiny LM trained from scratch (through the grid trainer, as one member) and evaluated on
held-out human text. Kept apart from `tinylm` (the model, data and evaluation) so that `ensemble` can build on
`tinylm` without an import circle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .ensemble import Member, train_grid
from .tinylm import TrainConfig, as_prior, build_tokenizer, evaluate, pack


def train_tinylm(
    texts: Sequence[str],
    config: TrainConfig | None = None,
    heldout: Sequence[str] = (),
    tokenizer=None,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Train a tiny LM on `texts` and report held-out PPL; with `output`, save model + tokenizer + metrics.

    Returns {"model", "tokenizer", "metrics"}; `tokenizer` (default: built from `config.tokenizer` on `texts`)
    lets experiments keep one tokenizer across runs so perplexities are comparable.
    """
    config = config or TrainConfig()
    config.validate()
    if not texts:
        raise ConfigError("no training texts")
    tokenizer = tokenizer or build_tokenizer(config.tokenizer, texts)

    rows = pack(texts, tokenizer, config.seq_len)
    ((model, stats),) = train_grid([Member(rows, config)], len(tokenizer))
    metrics: dict[str, Any] = {"config": asdict(config), **stats}
    if heldout:
        metrics["heldout"] = evaluate(as_prior(model, tokenizer), heldout)
    if output is not None:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return {"model": model, "tokenizer": tokenizer, "metrics": metrics}


def run_train(
    inputs: Sequence[str],
    output: str | Path | None = None,
    heldout: Sequence[str] = (),
    text_field: str = "text",
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """`toedit train`: read the training (and held-out) documents from files and `train_tinylm` on them."""
    from .generate import read_texts

    texts = [t for _, t in read_texts(list(inputs), text_field)]
    held = [t for _, t in read_texts(list(heldout), text_field)] if heldout else []
    return train_tinylm(texts, config, heldout=held, output=output)
