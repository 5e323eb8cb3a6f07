"""The evaluation items of `experiment benefit`: LAMBADA-style last-word items from held-out text (pretrain,
cpt), next-reply items from held-out conversations (sft), and the token sequences a model scores for them
(`item_sequences`). Pure text and tokenizer work: the scoring is `lm.evaluate_items`."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .data import normalise_text


@dataclass
class Item:
    """A multiple-choice item: a context and choices; `answer` indexes the true one."""

    context: str
    choices: list[str]
    answer: int
    normalise: bool  # score by mean log-prob per token (True) or by the sum (False)


WORD = re.compile(r"[A-Za-z]+")
# a word of >= 3 letters closing a sentence: followed by sentence punctuation (closing quotes allowed), then
# whitespace or the end of the paragraph
SENTENCE_END = re.compile(r"\b([A-Za-z]{3,})[.!?;:]['\"\u2019\u201d)]*(?=\s|$)")


def word_ranks(texts: Sequence[str], rng: np.random.Generator) -> tuple[list[str], dict[str, int]]:
    """Word types (>= 3 letters, case folded) of `texts` by falling frequency: each type's most frequent
    surface form, and the rank of every folded type. Ties are ordered at random by `rng` (not alphabetically,
    which would put inflections of a word next to it)."""
    counts: dict[str, dict[str, int]] = {}
    for text in texts:
        for w in WORD.findall(text):
            if len(w) >= 3:
                forms = counts.setdefault(w.lower(), {})
                forms[w] = forms.get(w, 0) + 1
    types = sorted(counts)
    tie = rng.permutation(len(types))
    order = sorted(range(len(types)), key=lambda i: (-sum(counts[types[i]].values()), tie[i]))
    forms = [max(sorted(counts[types[i]].items()), key=lambda kv: kv[1])[0] for i in order]
    return forms, {types[i]: r for r, i in enumerate(order)}


def matched_distractors(
    answer: str, forms: Sequence[str], ranks: dict[str, int], rng: np.random.Generator, window: int = 12
) -> list[str]:
    """3 distinct words whose corpus frequency rank is near the answer's: drawn at random among the `window`
    types nearest in rank to it (the answer's own type, i.e. any case variant of it, excluded)."""
    r = ranks[answer.lower()]
    span = range(max(0, r - window), min(len(forms), r + window + 1))
    near = sorted((i for i in span if i != r), key=lambda i: (abs(i - r), i))[:window]
    return [forms[i] for i in rng.choice(near, 3, replace=False)]


def _passages(text: str, context_words: int, min_words: int) -> list[tuple[str, str]]:
    """(context, last word) at every sentence end of `text` with >= `min_words` words before it."""
    doc = normalise_text(text)  # the setting's one normalisation (idempotent on normalised texts)
    starts = [w.start() for w in re.finditer(r"\S+", doc)]
    out = []
    for m in SENTENCE_END.finditer(doc):
        before = bisect.bisect_left(starts, m.start(1))  # words before the answer
        if before >= min_words:
            out.append((doc[starts[max(0, before - context_words)] : m.start(1)].rstrip(), m.group(1)))
    return out


def lambada_items(texts: Sequence[str], n: int, seed: int, context_words: int = 60, min_words: int = 20):
    """LAMBADA-style items from held-out text: the last word of a sentence (>= 3 letters) given the text before
    it, against 3 frequency-matched distractors.

    Passages end at a sentence end (`SENTENCE_END`) with >= `min_words` words before it in its document; the
    context is at most the last `context_words` of them (paragraph breaks kept). Distractors: 3 distinct
    word types of the whole held-out text drawn among the 12 nearest in frequency rank to the answer
    (`matched_distractors`), never the answer or a case variant of it; so a model that merely prefers frequent
    words is at chance (25 %). Items and distractors are fixed by `seed`.
    """
    rng = np.random.default_rng(seed)
    forms, ranks = word_ranks(texts, rng)
    if len(forms) < 4:
        return []
    cands = [c for text in texts for c in _passages(text, context_words, min_words)]
    order = rng.permutation(len(cands))[:n]
    items = []
    for i in sorted(order):
        ctx, target = cands[i]
        choices = [" " + w for w in [target, *matched_distractors(target, forms, ranks, rng)]]
        perm = rng.permutation(4)
        items.append(Item(ctx, [choices[j] for j in perm], int(np.nonzero(perm == 0)[0][0]), False))
    return items


def reply_items(pairs: Sequence[tuple[str, str]], n: int, seed: int) -> list[Item]:
    """Next-utterance selection: each (context, reply) against 3 replies of other held-out pairs (one pair per
    conversation, so the distractors come from other conversations)."""
    rng = np.random.default_rng(seed)
    if len(pairs) < 4:
        return []
    idx = rng.permutation(len(pairs))[:n]
    items = []
    for i in sorted(idx):
        rest = np.delete(np.arange(len(pairs)), i)
        others = rng.choice(rest, 3, replace=False)
        choices = [pairs[i][1]] + [pairs[j][1] for j in others]
        perm = rng.permutation(4)
        items.append(Item(pairs[i][0], [choices[j] for j in perm], int(np.nonzero(perm == 0)[0][0]), True))
    return items


@dataclass
class EvalSeq:
    """One scored sequence: ids, where the choice/target starts, and what it belongs to."""

    ids: list[int]
    start: int  # first target position (token index) whose log-prob counts
    item: int
    choice: int


def item_sequences(items: Sequence[Item], tokenizer, bos: int, max_len: int) -> list[EvalSeq]:
    """bos + context + choice for every choice; the context is cut from the left to fit `max_len`."""
    seqs = []
    for it_i, it in enumerate(items):
        ctx = tokenizer(it.context, add_special_tokens=False)["input_ids"]
        for c_i, choice in enumerate(it.choices):
            ch = tokenizer(choice, add_special_tokens=False)["input_ids"][: max_len - 2]
            keep = max_len - 1 - len(ch)
            c = ctx[-keep:] if keep > 0 else []
            seqs.append(EvalSeq([bos, *c, *ch], 1 + len(c), it_i, c_i))
    return seqs
