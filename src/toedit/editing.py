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

STAT_KEYS = ("n_tokens", "n_scored", "n_above", "n_changed", "n_dropped", "n_skipped_unsafe")


@dataclass
class EditStats:
    """Per-document counts; additive, so shards and rounds merge by summing."""

    n_tokens: int = 0
    n_scored: int = 0
    n_above: int = 0
    n_changed: int = 0
    n_dropped: int = 0
    n_skipped_unsafe: int = 0

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


def decide(scores: TokenScores, config: EditConfig, uniforms: np.ndarray) -> np.ndarray:
    """New token id per position (the original where kept, DROP where deleted)."""
    ids = scores.token_ids.astype(np.int64)
    new = ids.copy()
    if config.strategy in ("resample", "resample+drop"):
        sel = np.nonzero(above(scores.logprob, config.threshold))[0]
        if config.top_k == 0:
            if scores.sampled is None:
                raise ValueError("top_k = 0 needs full-vocabulary draws from the scorer (FullVocabDraw)")
            new[sel] = scores.sampled[sel]
        else:
            k = config.top_k
            if scores.topk_ids.shape[1] < k:
                raise ValueError(f"scores hold top-{scores.topk_ids.shape[1]} candidates, the rule needs {k}")
            new[sel] = draw_topk(
                ids[sel],
                scores.logprob[sel],
                scores.topk_ids[sel, :k].astype(np.int64),
                scores.topk_logprobs[sel, :k],
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
    """One round on one document: decide, splice, and count the positions above the threshold."""
    new_ids = decide(scores, config, uniforms)
    out, stats, spans = splice(text, scores, new_ids, piece, unsafe_ids, config.record_spans)
    stats.n_above = int(np.count_nonzero(above(scores.logprob, config.threshold)))
    return out, stats, spans
