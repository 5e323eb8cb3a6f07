"""The arms of `experiment benefit`, all edited from ONE scoring pass of the prior.

H: the human texts. E: the paper's rule (p > 0.99, top-8, beta 1.5). E-rate@r: threshold calibrated to a change
rate r. E-text@r: E-rate@r with whitespace-only tokens neither selected nor drawn (editing words, not layout).
E-word@r: the word-boundary rule at rate r. R@r: random scored positions matched per document to E-rate@r's
numbers of changes of each kind (whole word / fragment / whitespace / punctuation), replacements drawn by
`rule.draw_topk` from the stored top-k minus the original; a kind with too few positions is a shortfall, counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...calibrate import calibrate
from ...config import ConfigError, EditConfig
from ...editing import (
    CHANGE_KINDS,
    STAT_KEYS,
    EditStats,
    change_kind,
    clean_spans,
    decide,
    splice,
    word_masks,
)
from ...pipeline import edit_scored_texts
from ...rng import doc_uniforms
from ...rule import above, draw_topk
from ...scoring import TokenScores
from .config import BenefitConfig, _pct

TOP_K, BETA = 8, 1.5


def _piece_test(
    piece: Callable[[int], str], test: Callable[[str], bool]
) -> Callable[[np.ndarray], np.ndarray]:
    """Vectorised `test(piece(id))` over an id array (cached per id; ids < 0 give False)."""
    cache: dict[int, bool] = {}

    def run(ids: np.ndarray) -> np.ndarray:
        flat = ids.ravel()
        out = np.zeros(len(flat), dtype=bool)
        for j, c in enumerate(flat.tolist()):
            if c >= 0:
                if c not in cache:
                    cache[c] = test(piece(c))
                out[j] = cache[c]
        return out.reshape(ids.shape)

    return run


def text_masks(scores: TokenScores, is_text: Callable[[np.ndarray], np.ndarray], k: int = TOP_K):
    """The E-text rule as (eligible [n], allowed [n, k]) masks: a position is eligible when its token is not
    whitespace only, a candidate is allowed when it is not whitespace only."""
    return is_text(scores.token_ids.astype(np.int64)), is_text(scores.topk_ids[:, :k].astype(np.int64))


def matched_random(
    text: str,
    scores: TokenScores,
    want: dict[str, int],
    rng: np.random.Generator,
    piece: Callable[[int], str],
    usable: Callable[[np.ndarray], np.ndarray],
    unsafe: frozenset[int],
) -> tuple[str, EditStats, dict[str, int]]:
    """R: per kind of change, `want[kind]` changes at random scored positions; returns (text, stats, shortfall).

    Every clean scored position gets one replacement drawn by `rule.draw_topk` (top-k minus the original,
    weights softmax(logprob / beta)); the kind of that change (`editing.change_kind`) sorts the positions, and
    each kind's positions are drawn uniformly without replacement. Missing positions of a kind are counted in
    the shortfall, never filled with another kind.
    """
    ids = scores.token_ids.astype(np.int64)
    pos = np.nonzero(~np.isnan(scores.logprob))[0]
    pos = pos[clean_spans(text, scores, pos, piece)]
    new = ids.copy()
    got = dict.fromkeys(CHANGE_KINDS, 0)
    if len(pos) and sum(want.values()):
        cand = scores.topk_ids[pos, :TOP_K].astype(np.int64)
        lp = np.where(usable(cand) & (cand >= 0), scores.topk_logprobs[pos, :TOP_K], -np.inf)
        lp = np.where(np.isin(cand, list(unsafe)), -np.inf, lp)
        drawn = draw_topk(ids[pos], scores.logprob[pos], cand, lp, BETA, rng.random(len(pos)), True)
        ok = drawn != ids[pos]
        by_kind: dict[str, list[int]] = {k: [] for k in CHANGE_KINDS}
        for i, c in zip(pos[ok].tolist(), drawn[ok].tolist(), strict=True):
            s, e = int(scores.offsets[i, 0]), int(scores.offsets[i, 1])
            by_kind[change_kind(text, s, e, piece(c))].append(i)
        replacement = dict(zip(pos[ok].tolist(), drawn[ok].tolist(), strict=True))
        for kind, n in want.items():
            avail = by_kind[kind]
            take = rng.choice(len(avail), min(n, len(avail)), replace=False) if avail else []
            for j in take:
                new[avail[j]] = replacement[avail[j]]
            got[kind] = len(take)
    out, stats, _ = splice(text, scores, new, piece, unsafe)
    stats.n_above = int(sum(got.values()))  # R's selected positions are the changed ones
    return out, stats, {k: want.get(k, 0) - got[k] for k in CHANGE_KINDS}


def total(stats: Sequence[EditStats]) -> EditStats:
    tot = EditStats()
    for s in stats:
        tot += s
    return tot


def rates_of(stats: EditStats) -> dict[str, Any]:
    """Realised selected/changed rates (shares of scored tokens) and the kinds of change."""
    n = max(stats.n_scored, 1)
    kinds = {k: getattr(stats, f"n_changed_{k}") for k in CHANGE_KINDS}
    return {
        "selected_rate": stats.n_above / n,
        "changed_rate": stats.n_changed / n,
        "changed": stats.n_changed,
        "scored": stats.n_scored,
        "kinds": {k: v / max(stats.n_changed, 1) for k, v in kinds.items()},
        "counts": {k: getattr(stats, k) for k in STAT_KEYS},
    }


@dataclass
class Calibrated:
    """Thresholds chosen once from the single scoring pass, per rate and rule (rate / text / word)."""

    rate: dict[float, float]
    word: dict[float, float]
    text: dict[float, float]


def _is_text(prior) -> Callable[[np.ndarray], np.ndarray]:
    return _piece_test(prior.piece, lambda p: bool(p.strip()) and "\ufffd" not in p)


def calibrate_arms(texts, scores, prior, config: BenefitConfig) -> Calibrated:
    kinds = {a.split("@")[0] for a in config.arm_names()}
    out = Calibrated({}, {}, {})
    words = texts_ = None
    if "E-word" in kinds:
        words = [word_masks(t, s, prior.piece, TOP_K) for t, s in zip(texts, scores, strict=True)]
    if "E-text" in kinds:
        is_text = _is_text(prior)
        texts_ = [text_masks(s, is_text) for s in scores]
    for r in config.rate_list():
        if kinds & {"E-rate", "R"}:
            out.rate[r] = calibrate(scores, TOP_K, BETA, change_rate=r).threshold
        if words is not None:
            out.word[r] = calibrate(scores, TOP_K, BETA, change_rate=r, words=words).threshold
        if texts_ is not None:
            out.text[r] = calibrate(scores, TOP_K, BETA, change_rate=r, words=texts_).threshold
    return out


def _masked_edit(texts, ids, scores, prior, config: EditConfig, masks) -> tuple[list[str], list[EditStats]]:
    """`pipeline.edit_scored_texts` with given (eligible, allowed) masks (the E-text rule): the same
    per-document random streams, `editing.decide` restricted by the masks, `editing.splice`."""
    unsafe = frozenset(prior.special_ids())
    out, stats = [], []
    for text, doc_id, sc, m in zip(texts, ids, scores, masks, strict=True):
        u = doc_uniforms(config.seed, doc_id, 0, len(sc))
        new_ids = decide(sc, replace(config, boundary="word"), u, m)  # "word": apply the masks
        t, st, _ = splice(text, sc, new_ids, prior.piece, unsafe)
        st.n_above = int(np.count_nonzero(above(sc.logprob, config.threshold) & m[0]))
        out.append(t)
        stats.append(st)
    return out, stats


def build_arms(
    texts: Sequence[str],
    ids: Sequence[str],
    scores: Sequence[TokenScores],
    prior,
    config: BenefitConfig,
    cal: Calibrated,
    seed: int,
) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Every arm's texts and realised rates for one seed, edited from the one scoring pass."""
    unsafe = frozenset(prior.special_ids())
    arms: dict[str, tuple[list[str], dict[str, Any]]] = {}
    per_doc: dict[str, list[EditStats]] = {}
    base = EditConfig(seed=seed)
    n_scored = sum(s.n_scored for s in scores)
    is_text = _is_text(prior)
    for name in config.arm_names():
        kind, _, r_txt = name.partition("@")
        if kind == "H":
            stats = EditStats(n_tokens=sum(len(s) for s in scores), n_scored=n_scored)
            arms[name] = (list(texts), rates_of(stats))
            continue
        if kind == "R":
            continue  # after its reference arm
        cfg = base
        if kind == "E-text":
            cfg = replace(base, threshold=cal.text[_rate_of(r_txt, config)])
            masks = [text_masks(s, is_text) for s in scores]
            new, stats = _masked_edit(texts, ids, scores, prior, cfg, masks)
        else:
            if kind == "E-rate":
                cfg = replace(base, threshold=cal.rate[_rate_of(r_txt, config)])
            elif kind == "E-word":
                cfg = replace(base, threshold=cal.word[_rate_of(r_txt, config)], boundary="word")
            new, stats, _ = edit_scored_texts(texts, ids, scores, prior, cfg)
        per_doc[name] = stats
        arms[name] = (new, {**rates_of(total(stats)), "threshold": cfg.threshold})
    usable = _piece_test(prior.piece, lambda p: "\ufffd" not in p)
    for name in config.arm_names():
        kind, _, r_txt = name.partition("@")
        if kind != "R":
            continue
        ref = f"E-rate@{r_txt}"
        rng = np.random.default_rng([seed, 7919])
        new, stats, short = [], [], dict.fromkeys(CHANGE_KINDS, 0)
        for text, sc, st in zip(texts, scores, per_doc[ref], strict=True):
            want = {k: getattr(st, f"n_changed_{k}") for k in CHANGE_KINDS}
            t, s, miss = matched_random(text, sc, want, rng, prior.piece, usable, unsafe)
            new.append(t)
            stats.append(s)
            short = {k: short[k] + miss[k] for k in CHANGE_KINDS}
        arms[name] = (new, {**rates_of(total(stats)), "reference": ref, "shortfall": short})
    return arms


def _rate_of(text: str, config: BenefitConfig) -> float:
    for r in config.rate_list():
        if _pct(r) == text:
            return r
    raise ConfigError(f"no rate {text}")
