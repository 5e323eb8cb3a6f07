"""Score and edit in-memory texts: the Python entry points under the CLI and the run layer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .calibrate import Calibration, calibrate
from .config import ConfigError, EditConfig, ScoreConfig
from .editing import STAT_KEYS, EditResult, EditStats, edit_scored, word_masks
from .prior import Prior, PriorError
from .probs import prob_histogram
from .rng import doc_uniforms
from .scoring import FullVocabDraw, TokenScores, context_id, resolve_window, score_texts

__all__ = ["calibrate_threshold", "check_settings", "edit_batch", "edit_texts", "score_texts"]


def check_settings(prior: Prior, score: ScoreConfig, edit: EditConfig | None = None) -> tuple[int, int]:
    """Refuse settings the loaded prior cannot honour (ConfigError), before any text is scored: top-k and
    store-k beyond its vocabulary, a context token it does not have, a stride its context cannot hold.
    Returns the (window, stride) the run will use."""
    vocab = prior.vocab_size
    for name, k in (("top_k", edit.top_k if edit is not None else 0), ("store_k", score.store_k)):
        if k > vocab:
            raise ConfigError(f"{name} {k} is larger than the vocabulary of {prior.name} ({vocab:,} tokens)")
    try:
        ctx = context_id(prior, score)
    except PriorError as exc:
        raise ConfigError(f"context_token {score.context_token!r}: {exc}") from exc
    if ctx is not None and not 0 <= ctx < vocab:
        raise ConfigError(
            f"context_token {score.context_token!r} is token id {ctx}, outside the vocabulary of {prior.name} "
            f"(ids 0-{vocab - 1})"
        )
    try:
        return resolve_window(prior, score)
    except ValueError as exc:
        raise ConfigError(f"{exc} ({prior.name} holds {prior.max_positions} positions)") from exc


def _scores_needed(config: EditConfig, score_config: ScoreConfig) -> int:
    return max(score_config.store_k, config.top_k)


def _has_target(config: EditConfig) -> bool:
    return config.target_change_rate is not None or config.target_selected_rate is not None


def calibrate_threshold(
    texts: Sequence[str], prior: Prior, config: EditConfig, score_config: ScoreConfig | None = None
) -> Calibration:
    """The threshold meeting `config`'s target change (or selected) rate on `texts`."""
    score_config = score_config or ScoreConfig()
    scores = score_texts(texts, prior, score_config, k=_scores_needed(config, score_config))
    words = (
        [word_masks(t, s, prior.piece, config.top_k) for t, s in zip(texts, scores, strict=True)]
        if config.boundary == "word"
        else None
    )
    return calibrate(
        scores,
        config.top_k,
        config.beta,
        config.exclude_original,
        change_rate=config.target_change_rate,
        selected_rate=config.target_selected_rate,
        words=words,
    )


def edit_round(
    texts: Sequence[str],
    ids: Sequence[str],
    prior: Prior,
    config: EditConfig,
    score_config: ScoreConfig,
    round_index: int,
) -> tuple[list[str], list[EditStats], list[list | None], list[TokenScores]]:
    """One editing round over a batch of texts; returns new texts, stats, spans and the scores used."""
    draw = None
    if config.top_k == 0 and config.strategy != "drop":
        draw = FullVocabDraw(
            config.threshold,
            config.beta,
            config.exclude_original,
            lambda d, n: doc_uniforms(config.seed, ids[d], round_index, n),
        )
    scores = score_texts(texts, prior, score_config, k=_scores_needed(config, score_config), draw=draw)
    return (*edit_scored_texts(texts, ids, scores, prior, config, round_index), scores)


def edit_scored_texts(
    texts: Sequence[str],
    ids: Sequence[str],
    scores: Sequence[TokenScores],
    prior: Prior,
    config: EditConfig,
    round_index: int = 0,
) -> tuple[list[str], list[EditStats], list[list | None]]:
    """Apply the rule to already-scored texts, each with its (seed, id, round) random stream."""
    unsafe = frozenset(prior.special_ids())
    out_texts, out_stats, out_spans = [], [], []
    for text, doc_id, sc in zip(texts, ids, scores, strict=True):
        u = doc_uniforms(config.seed, doc_id, round_index, len(sc))
        new_text, stats, spans = edit_scored(text, sc, config, u, prior.piece, unsafe)
        out_texts.append(new_text)
        out_stats.append(stats)
        out_spans.append(spans)
    return out_texts, out_stats, out_spans


def edit_texts(
    texts: Sequence[str],
    prior: Prior,
    config: EditConfig | None = None,
    ids: Sequence[str] | None = None,
    score_config: ScoreConfig | None = None,
    keep_scores: bool = False,
) -> list[EditResult]:
    """Edit texts with the ToEdit rule. `ids` key the random streams (default: the list index).

    With `keep_scores`, each result carries the first round's `TokenScores` of its input text.
    """
    config = config or EditConfig()
    config.validate()
    score_config = score_config or ScoreConfig()
    score_config.validate()
    ids = [str(i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(texts):
        raise ValueError("ids and texts must have the same length")
    if _has_target(config):  # choose the threshold on these very texts
        cal = calibrate_threshold(texts, prior, config, score_config)
        config = dataclasses.replace(config, threshold=cal.threshold)
    current = list(texts)
    results = [EditResult(text=t, stats=EditStats()) for t in texts]
    for r in range(config.rounds):
        current, stats, spans, scores = edit_round(current, ids, prior, config, score_config, r)
        for res, text, st, sp, sc in zip(results, current, stats, spans, scores, strict=True):
            if keep_scores and r == 0:
                res.scores = sc
            res.text = text
            res.stats += st
            res.rounds.append(st)
            res.round_hists.append(prob_histogram(sc.logprob))
            if config.record_spans:
                res.spans = (res.spans or []) + [[*s[:5], r, s[5]] for s in sp]
    return results


def content_id(text: str) -> str:
    """The random-stream key of a text without an id: its content hash (independent of batching and order;
    equal texts get equal streams, hence equal edits)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def edit_batch(
    batch: dict[str, list[Any]],
    prior: Prior,
    config: EditConfig | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    score_config: ScoreConfig | None = None,
) -> dict[str, list[Any]]:
    """For `datasets.Dataset.map(edit_batch, batched=True, fn_kwargs={"prior": prior, ...})`.

    Replaces `text_field` with the edited text and adds one `toedit_<stat>` column per statistic. Without an
    `id_field` the random streams are keyed by the text's content hash, so results do not depend on batching.
    """
    if config is not None and _has_target(config):
        raise ValueError(
            "target rates would be calibrated per batch: call calibrate_threshold on a sample first and "
            "pass EditConfig(threshold=calibration.threshold)"
        )
    texts = batch[text_field]
    ids = [str(i) for i in batch[id_field]] if id_field else [content_id(t) for t in texts]
    results = edit_texts(texts, prior, config, ids=ids, score_config=score_config)
    out = dict(batch)
    out[text_field] = [r.text for r in results]
    for key in STAT_KEYS:
        out[f"toedit_{key}"] = [getattr(r.stats, key) for r in results]
    return out
