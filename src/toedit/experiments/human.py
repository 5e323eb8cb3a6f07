"""Human corpora for the experiments: a held-out split by document and equal-length token segments."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..config import ConfigError
from ..io import InputError
from ..verdicts import interval
from .generate import read_texts

Doc = tuple[str, str]  # (id, text)


def load_human(inputs: Sequence[str], text_field: str = "text") -> list[Doc]:
    docs = [(i, t) for i, t in read_texts(inputs, text_field) if t.strip()]
    if not docs:
        raise InputError(f"no non-empty documents in {', '.join(inputs)}")
    return docs


def split_heldout(docs: Sequence[Doc], share: float) -> tuple[list[Doc], list[Doc]]:
    """(train, held-out) by the hash of each document id: disjoint documents, independent of input order."""
    if not 0 < share < 1:
        raise ConfigError(f"held-out share must be in (0, 1), got {share}")
    ranked = sorted(docs, key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
    n = max(1, round(share * len(ranked)))
    if n >= len(ranked):
        raise InputError(f"{len(ranked)} document(s) cannot be split into training and held-out sets")
    held = {d[0] for d in ranked[:n]}
    return [d for d in docs if d[0] not in held], [d for d in docs if d[0] in held]


def segments(docs: Sequence[Doc], tokenizer, length: int) -> list[Doc]:
    """Consecutive pieces of `length` tokens (the exact source characters); a shorter last piece is kept."""
    out = []
    for doc_id, text in docs:
        offs = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for k, start in enumerate(range(0, len(offs), length)):
            end = min(start + length, len(offs))
            lo = 0 if start == 0 else offs[start - 1][1]
            hi = len(text) if end == len(offs) else offs[end - 1][1]
            piece = text[lo:hi]
            if piece.strip():
                out.append((f"{doc_id}#{k}", piece))
    return out


def sample(docs: Sequence[Doc], n: int, seed: int, min_chars: int = 1) -> list[Doc]:
    """`n` documents without replacement (seeded), in a reproducible order; all of them when fewer."""
    pool = [d for d in docs if len(d[1]) >= min_chars]
    idx = np.random.default_rng(seed).permutation(len(pool))[: min(n, len(pool))]
    return [pool[i] for i in sorted(idx)]


def seed_summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard error and the half-width of a 95 % t-interval over seeds (NaN-free input; no scipy)."""
    if not len(values):
        return {"mean": float("nan"), "se": float("nan"), "ci95": float("nan"), "n": 0}
    iv = interval(values)
    return {"mean": iv["mean"], "se": iv["se"], "ci95": iv["half"], "n": iv["n"]}
