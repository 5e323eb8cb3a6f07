"""Data of `experiment benefit`: the corpora of each setting, their one normalisation, and the held-out
sentences that occur verbatim in training (removed and counted).

Every text a setting trains on or evaluates on (the human training texts before they are scored and edited,
hence every arm, and the held-out texts) goes through the same `normalise_text`, so the arms differ from H
by their edits only and no arm can move the training text towards the evaluation's format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import ConfigError
from .config import BenefitConfig

PARAGRAPH = re.compile(r"\n\s*\n")
SENTENCE = re.compile(r"(?<=[.!?])['\"\u2019\u201d)]*\s+(?=\S)")


def normalise_text(text: str) -> str:
    """Paragraphs (split at blank lines) kept apart by one blank line; every other run of whitespace inside a
    paragraph (hard line wraps, double spaces, tabs) becomes one space."""
    return "\n\n".join(" ".join(p.split()) for p in PARAGRAPH.split(text) if p.strip())


def whitespace_stats(texts: Sequence[str]) -> dict[str, float]:
    """Newlines per word, single newlines (line wraps inside a paragraph) per word and double spaces per
    100 words of `texts`: the format a model trained on them learns."""
    words = sum(len(t.split()) for t in texts) or 1
    newlines = sum(t.count("\n") for t in texts)
    wraps = sum(len(re.findall(r"(?<!\n)\n(?!\n)", t)) for t in texts)
    doubles = sum(len(re.findall(r"(?<=\S)  +(?=\S)", t)) for t in texts)
    return {
        "newlines_per_word": newlines / words,
        "wraps_per_word": wraps / words,
        "double_spaces_per_100_words": 100 * doubles / words,
    }


def sentences(text: str) -> list[str]:
    """The sentences of a normalised text (split after . ! ? and closing quotes, inside paragraphs)."""
    return [s.strip() for p in PARAGRAPH.split(text) for s in SENTENCE.split(p) if s.strip()]


def remove_overlap(held: Sequence[str], train: Sequence[str], min_words: int) -> tuple[list[str], dict]:
    """Held-out texts without their sentences of >= `min_words` words that occur verbatim in `train`;
    returns (texts, {"sentences", "removed", "share"}). `min_words` 0 keeps everything (counted all the same)."""
    seen = {s for t in train for s in sentences(t)}
    out, total, removed = [], 0, 0
    for text in held:
        paras = []
        for p in PARAGRAPH.split(text):
            keep = []
            for s in (x.strip() for x in SENTENCE.split(p) if x.strip()):
                total += 1
                if len(s.split()) >= max(min_words, 1) and s in seen:
                    removed += 1
                    if min_words:
                        continue
                keep.append(s)
            if keep:
                paras.append(" ".join(keep))
        if paras:
            out.append("\n\n".join(paras))
    return out, {
        "sentences": total,
        "removed": removed if min_words else 0,
        "verbatim": removed,
        "share": removed / max(total, 1),
    }


@dataclass
class SettingData:
    """What a setting trains on and evaluates on, after normalisation and overlap removal."""

    ids: list[str]
    texts: list[str]  # what is scored and edited (documents; sft: the replies)
    held: list[Any]  # held-out texts (sft: (context, reply) pairs)
    contexts: list[str] = field(default_factory=list)  # sft: the context of each reply (never edited)
    overlap: dict[str, Any] = field(default_factory=dict)
    format: dict[str, Any] = field(default_factory=dict)  # whitespace statistics, training vs held-out


def _read(files: str) -> list[tuple[str, str]]:
    from ..generate import read_texts

    docs = [(str(i), t) for i, t in read_texts([f for f in files.split(",") if f.strip()]) if t.strip()]
    if not docs:
        from ...io import InputError

        raise InputError(f"no non-empty documents in {files}")
    return docs


def _hash_split(keys: Sequence[str], share: float) -> set[str]:
    ranked = sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    return set(ranked[: max(1, round(share * len(ranked)))])


def pretrain_data(config: BenefitConfig) -> tuple[list[tuple[str, str]], list[str]]:
    if config.data:
        train = _read(config.data)
    else:
        files = sorted(str(p) for p in Path("data/austen").glob("*.jsonl") if p.name != "persuasion.jsonl")
        if not files:
            raise ConfigError("no data/austen: run `toedit corpus austen -o data/austen` or give --data")
        train = _read(",".join(files))
    held = _read(config.heldout or "data/austen/persuasion.jsonl")
    if config.pt_docs and config.pt_docs < len(train):
        idx = np.random.default_rng(0).permutation(len(train))[: config.pt_docs]
        train = [train[i] for i in sorted(idx)]
    return train, [t for _, t in held]


def cpt_data(config: BenefitConfig) -> tuple[list[tuple[str, str]], list[str]]:
    if config.data:
        docs = _read(config.data)
        if config.heldout:
            return docs, [t for _, t in _read(config.heldout)]
    else:
        import pydoc_data.topics

        docs = sorted(pydoc_data.topics.topics.items())
    held = _hash_split([d[0] for d in docs], 0.2)
    train = [d for d in docs if d[0] not in held]
    if config.cpt_docs and config.cpt_docs < len(train):
        idx = np.random.default_rng(0).permutation(len(train))[: config.cpt_docs]
        train = [train[i] for i in sorted(idx)]
    return train, [d[1] for d in docs if d[0] in held]


def chitchat_pairs(path: str | None, context_turns: int) -> dict[str, list[tuple[str, str]]]:
    """(context, reply) pairs per conversation from a chitchat-format JSON ({id: {"messages": [[{text}]]}})."""
    if path is None:
        try:
            import chitchat_dataset
        except ImportError as exc:
            raise ConfigError(
                "the sft setting needs `pip install chitchat-dataset` (or --data FILE)"
            ) from exc
        path = str(Path(chitchat_dataset.__file__).with_name("dataset.json"))
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable chitchat JSON ({exc})") from exc
    convs = {}
    for cid, conv in data.items():
        try:
            turns = [" ".join(u["text"].strip() for u in msg).strip() for msg in conv["messages"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: conversation {cid!r} lacks messages[][].text") from exc
        turns = [t for t in turns if t]
        pairs = []
        for t in range(1, len(turns)):
            ctx = turns[max(0, t - context_turns) : t]
            # the replier is B; speakers alternate backwards from it
            lines = [f"{'A' if (len(ctx) - j) % 2 else 'B'}: {c}" for j, c in enumerate(ctx)]
            pairs.append(("\n".join(lines) + "\nB:", turns[t]))
        if pairs:
            convs[str(cid)] = pairs
    if not convs:
        raise ConfigError(f"{path}: no conversation with two turns")
    return convs


def sft_data(config: BenefitConfig, seed: int = 0):
    """Training pairs (one per training conversation, up to sft_pairs) and held-out pairs, split by conversation."""
    convs = chitchat_pairs(config.data, config.sft_context_turns)
    if config.heldout:
        held_convs = chitchat_pairs(config.heldout, config.sft_context_turns)
        train_keys = sorted(convs)
    else:
        held = _hash_split(sorted(convs), 0.1)
        held_convs = {k: v for k, v in convs.items() if k in held}
        train_keys = sorted(k for k in convs if k not in held)
    rng = np.random.default_rng(seed)
    keys = [train_keys[i] for i in sorted(rng.permutation(len(train_keys))[: config.sft_pairs])]
    train = [(f"{k}:{j}", *convs[k][j]) for k in keys for j in [int(rng.integers(len(convs[k])))]]
    held_pairs = [p for k in sorted(held_convs) for p in held_convs[k][-1:]]
    return train, held_pairs


def load_setting_data(setting: str, config: BenefitConfig) -> SettingData:
    """The setting's training texts and held-out data: normalised (`config.normalise`), held-out sentences
    (pretrain, cpt) or replies (sft) occurring verbatim in training removed, and both measured."""
    norm = normalise_text if config.normalise else (lambda t: t)
    if setting == "sft":
        train, held_pairs = sft_data(config)
        texts = [norm(p[2]) for p in train]
        seen = set(texts)
        kept = [
            (c, norm(r))
            for c, r in held_pairs
            if not (config.overlap_words and len(r.split()) >= config.overlap_words and norm(r) in seen)
        ]
        verbatim = sum(
            len(r.split()) >= max(config.overlap_words, 1) and norm(r) in seen for _, r in held_pairs
        )
        overlap = {
            "unit": "replies",
            "sentences": len(held_pairs),
            "verbatim": verbatim,
            "removed": len(held_pairs) - len(kept),
            "share": verbatim / max(len(held_pairs), 1),
        }
        data = SettingData([p[0] for p in train], texts, kept, [p[1] for p in train], overlap)
        held_texts = [r for _, r in kept]
    else:
        docs, held = pretrain_data(config) if setting == "pretrain" else cpt_data(config)
        texts = [norm(t) for _, t in docs]
        held_texts, overlap = remove_overlap([norm(t) for t in held], texts, config.overlap_words)
        data = SettingData([d[0] for d in docs], texts, held_texts, [], {"unit": "sentences", **overlap})
    data.format = {"train": whitespace_stats(data.texts), "heldout": whitespace_stats(held_texts)}
    return data
