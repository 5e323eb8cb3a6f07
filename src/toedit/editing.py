"""Apply the ToEdit rule to scored documents and splice the edits into the original text.

Pure functions on `TokenScores` (no model inside): `decide` picks a new id per position (or DROP), `splice`
rewrites only the character spans of changed tokens so untouched text stays byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .config import EditConfig
from .rule import DROP, above, below, draw_topk
from .scoring import TokenScores

STAT_KEYS = (
    "n_tokens",
    "n_scored",
    "n_above",
    "n_changed",
    "n_dropped",
    "n_skipped_unsafe",
    "n_changed_word",
    "n_changed_fragment",
    "n_changed_space",
    "n_changed_punct",
)
CHANGE_KINDS = ("word", "fragment", "space", "punct")  # n_changed_<kind>; they sum to n_changed
APOSTROPHES = "'\u2019"


@dataclass
class EditStats:
    """Per-document counts; additive, so shards and rounds merge by summing."""

    n_tokens: int = 0
    n_scored: int = 0
    n_above: int = 0
    n_changed: int = 0
    n_dropped: int = 0
    n_skipped_unsafe: int = 0
    # every change classified (see `change_kind`): whole word / word fragment / whitespace / punctuation
    n_changed_word: int = 0
    n_changed_fragment: int = 0
    n_changed_space: int = 0
    n_changed_punct: int = 0

    def __iadd__(self, other: EditStats) -> EditStats:
        for key in STAT_KEYS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        return self

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class EditResult:
    """The edited text, its stats (summed over rounds), per-round stats and optional audit spans."""

    text: str
    stats: EditStats
    rounds: list[EditStats] = field(default_factory=list)
    round_hists: list[np.ndarray] = field(default_factory=list)  # each round's input: probability histogram
    # [start, end, old_text, new_text, p, round, candidates] in that round's input text; candidates are the
    # stored top-k as [text, probability] pairs
    spans: list[list] | None = None
    scores: TokenScores | None = None  # first-round scores of the input text, when asked for


def _word_char_at(text: str, i: int) -> bool:
    """text[i] is part of a word: alphanumeric, or an apostrophe between two alphanumerics (don't)."""
    if not 0 <= i < len(text):
        return False
    ch = text[i]
    if ch.isalnum():
        return True
    return ch in APOSTROPHES and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def _word_body(piece: str) -> tuple[str, str]:
    """(leading whitespace, rest) of a token's text."""
    rest = piece.lstrip()
    return piece[: len(piece) - len(rest)], rest


def _is_word(body: str) -> bool:
    """A run of alphanumerics with inner apostrophes only (no punctuation, no whitespace)."""
    return (
        bool(body)
        and body[0].isalnum()
        and body[-1].isalnum()
        and all(c.isalnum() or c in APOSTROPHES for c in body)
    )


def whole_word(text: str, start: int, end: int) -> bool:
    """text[start:end] is (whitespace +) one whole word: it starts a word and ends one in `text`."""
    lead, body = _word_body(text[start:end])
    if not _is_word(body):
        return False
    return not _word_char_at(text, start + len(lead) - 1) and not _word_char_at(text, end)


def candidate_starts_word(text: str, start: int, piece: str) -> bool:
    """Replacing the token at `start` by `piece` puts a whole word there (it cannot glue onto the left)."""
    lead, body = _word_body(piece)
    return _is_word(body) and (bool(lead) or not _word_char_at(text, start - 1))


def word_masks(
    text: str, scores: TokenScores, piece: Callable[[int], str], k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The word-boundary rule: (eligible [n], allowed candidates [n, k]).

    A position is eligible when its token is a whole word in the text; a candidate is allowed when it is a
    whole word that starts a word there. Tokens inside a word (fragments) are never eligible.
    """
    n = len(scores)
    k = scores.topk_ids.shape[1] if k is None else k
    eligible = np.zeros(n, dtype=bool)
    allowed = np.zeros((n, k), dtype=bool)
    for i in range(n):
        s, e = int(scores.offsets[i, 0]), int(scores.offsets[i, 1])
        if e <= s or not whole_word(text, s, e):
            continue
        eligible[i] = True
        for j in range(k):
            c = int(scores.topk_ids[i, j])
            allowed[i, j] = c >= 0 and candidate_starts_word(text, s, piece(c))
    return eligible, allowed


def change_kind(text: str, start: int, end: int, new: str) -> str:
    """Classify one change of text[start:end] into `new`: space | word | fragment | punct.

    space: either side is only whitespace (a newline replaced, paragraphs merged); word: both sides are whole
    words in context; fragment: a side with letters or digits that is not a whole word (it splits a word);
    punct: the rest (punctuation and symbols).
    """
    old = text[start:end]
    if not old.strip() or not new.strip():
        return "space"
    if (
        whole_word(text, start, end)
        and candidate_starts_word(text, start, new)
        and not _word_char_at(text, end)
    ):
        return "word"
    if any(c.isalnum() for c in old + new):
        return "fragment"
    return "punct"


def decide(
    scores: TokenScores,
    config: EditConfig,
    uniforms: np.ndarray,
    words: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """New token id per position (the original where kept, DROP where deleted).

    `words` (from `word_masks`) restricts the rule to eligible positions and allowed candidates; it is
    required when `config.boundary == "word"`.
    """
    ids = scores.token_ids.astype(np.int64)
    new = ids.copy()
    if config.boundary == "word" and words is None:
        raise ValueError("boundary word needs the word masks of the text (word_masks)")
    if config.strategy in ("resample", "resample+drop"):
        mask = above(scores.logprob, config.threshold)
        if config.boundary == "word":
            mask &= words[0]
        sel = np.nonzero(mask)[0]
        if config.top_k == 0:
            if scores.sampled is None:
                raise ValueError("top_k = 0 needs full-vocabulary draws from the scorer (FullVocabDraw)")
            new[sel] = scores.sampled[sel]
        else:
            k = config.top_k
            if scores.topk_ids.shape[1] < k:
                raise ValueError(f"scores hold top-{scores.topk_ids.shape[1]} candidates, the rule needs {k}")
            cand_lp = scores.topk_logprobs[sel, :k]
            if config.boundary == "word":
                cand_lp = np.where(words[1][sel, :k], cand_lp, -np.inf)
            new[sel] = draw_topk(
                ids[sel],
                scores.logprob[sel],
                scores.topk_ids[sel, :k].astype(np.int64),
                cand_lp,
                config.beta,
                uniforms[sel],
                config.exclude_original,
            )
    if config.strategy in ("resample+drop", "drop"):
        drop = below(scores.logprob, config.low)
        if config.strategy == "resample+drop":
            drop &= ~above(scores.logprob, config.threshold)  # the official order: resample first
        new[drop] = DROP
    return new


def clean_spans(
    text: str, scores: TokenScores, positions: np.ndarray, piece: Callable[[int], str]
) -> np.ndarray:
    """Which of `positions` are clean character spans: decode(token) == text[span], no overlap with neighbours."""
    offs = scores.offsets
    n = len(offs)
    ok = np.zeros(len(positions), dtype=bool)
    for j, i in enumerate(positions):
        s, e = int(offs[i, 0]), int(offs[i, 1])
        if i > 0 and offs[i - 1, 1] > s:
            continue
        if i + 1 < n and offs[i + 1, 0] < e:
            continue
        ok[j] = piece(int(scores.token_ids[i])) == text[s:e]
    return ok


def splice(
    text: str,
    scores: TokenScores,
    new_ids: np.ndarray,
    piece: Callable[[int], str],
    unsafe_ids: set[int] | frozenset[int] = frozenset(),
    record_spans: bool = False,
) -> tuple[str, EditStats, list[list] | None]:
    """Rewrite the spans of changed/dropped tokens; every other character is copied unchanged."""
    stats = EditStats(n_tokens=len(scores), n_scored=scores.n_scored)
    touched = np.nonzero(new_ids != scores.token_ids)[0]
    spans: list[list] | None = [] if record_spans else None
    if len(touched) == 0:
        return text, stats, spans
    clean = clean_spans(text, scores, touched, piece)
    parts: list[str] = []
    cursor = 0
    with np.errstate(invalid="ignore"):
        probs = np.exp(scores.logprob.astype(np.float64))
    for i, ok in zip(touched, clean, strict=True):
        new_id = int(new_ids[i])
        replacement = "" if new_id == DROP else piece(new_id)
        # a replacement must be a whole character string (no byte-level fragment, no special token)
        if not ok or (new_id != DROP and (new_id in unsafe_ids or "\ufffd" in replacement)):
            stats.n_skipped_unsafe += 1
            continue
        s, e = int(scores.offsets[i, 0]), int(scores.offsets[i, 1])
        parts.append(text[cursor:s])
        parts.append(replacement)
        cursor = e
        if new_id == DROP:
            stats.n_dropped += 1
        else:
            stats.n_changed += 1
            kind = change_kind(text, s, e, replacement)
            setattr(stats, f"n_changed_{kind}", getattr(stats, f"n_changed_{kind}") + 1)
        if spans is not None:
            cands = [
                [piece(int(c)), float(np.exp(v))]
                for c, v in zip(scores.topk_ids[i], scores.topk_logprobs[i], strict=True)
                if c >= 0
            ]
            spans.append([s, e, text[s:e], replacement, float(probs[i]), cands])
    parts.append(text[cursor:])
    return "".join(parts), stats, spans


def edit_scored(
    text: str,
    scores: TokenScores,
    config: EditConfig,
    uniforms: np.ndarray,
    piece: Callable[[int], str],
    unsafe_ids: set[int] | frozenset[int] = frozenset(),
) -> tuple[str, EditStats, list[list] | None]:
    """One round on one document: decide, splice, and count the selected positions.

    Selected: above the threshold (and, with the word boundary, a whole word: the positions the rule may
    resample).
    """
    words = word_masks(text, scores, piece, config.top_k) if config.boundary == "word" else None
    new_ids = decide(scores, config, uniforms, words)
    out, stats, spans = splice(text, scores, new_ids, piece, unsafe_ids, config.record_spans)
    selected = above(scores.logprob, config.threshold)
    if words is not None:
        selected &= words[0]
    stats.n_above = int(np.count_nonzero(selected))
    return out, stats, spans
