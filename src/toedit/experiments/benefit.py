"""`toedit experiment benefit`: does training on ToEdit-edited human data beat the human data itself?

The paper's headline (PAPER.md section 5) in three settings, each training one model per arm and seed:
- pretrain: a tiny Llama from scratch on novels, evaluated on a whole held-out novel;
- cpt: the prior continually trained on a domain corpus (the Python docs), evaluated on held-out topics;
- sft: the prior fine-tuned on human conversations (chitchat-dataset), loss and edits on the replies only.

Arms: H (human), E (p > 0.99, top-8, beta 1.5), E-rate@r (threshold calibrated to a change rate r),
E-word@r (same rate, word boundaries), R@r (as many changed tokens per document as E-rate@r, at random
scored positions, replacements drawn from the stored top-k minus the original). All arms come from ONE
scoring pass of the prior. Per seed every arm gets the same documents in the same order, the same number of
training tokens (pretrain, cpt) or sequences (sft) and the same initialisation; the edit draws are keyed by
the seed too, so the seed-to-seed spread includes the editing randomness.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibrate import calibrate
from ..config import ConfigError, EditConfig, ScoreConfig
from ..editing import STAT_KEYS, EditStats, clean_spans, splice, word_masks
from ..pipeline import edit_scored_texts
from ..scoring import TokenScores, score_texts
from . import benefit_lm as blm
from .benefit_stats import apply_family, item_bootstrap, seed_delta
from .human import seed_summary
from .mix import prepare, unigram_ppl_ids
from .results import _load, _machine

log = logging.getLogger(__name__)

SETTINGS = ("pretrain", "cpt", "sft")
ARM_KINDS = ("H", "E", "E-rate", "E-word", "R")
METRICS = {"ppl": False, "acc": True}  # metric -> higher is better
PAPER = {
    "pretrain": "OLMo-1B from scratch on 6B Dolma tokens: average accuracy over 8 tasks 32.75 (human) -> "
    "33.11 (edited); single runs, no error bars.",
    "cpt": "Continual pre-training, average domain accuracy, human -> edited: biomed OLMo-1B 38.83 -> 40.89, "
    "Llama-3-8B 56.04 -> 56.48; finance 47.92 -> 50.21, 71.40 -> 72.24; math 16.26 -> 16.59; single runs.",
    "sft": "SFT of Llama-3-8B (LoRA), response-only editing, human -> edited: Natural Instructions 69.34 -> "
    "69.70, CoT 69.01 -> 69.26, FLAN v2 70.18 -> 70.65, Open Assistant 69.19 -> 69.44, OSS-Instruct 45.76 "
    "-> 46.13, Evol-Instruct 46.62 -> 46.92; single runs.",
}


@dataclass
class BenefitConfig:
    """Settings, arms, seeds, data and budgets of `experiment benefit`."""

    setting: str = field(default="all", metadata={"help": "pretrain | cpt | sft | all"})
    model: str = field(
        default="default", metadata={"help": "prior that scores/edits (and, in cpt/sft, is trained)"}
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "training data of ONE setting: pretrain/cpt: JSONL/text files (comma-separated); sft: a "
            "chitchat-format JSON (default: novels in data/austen, the Python docs, chitchat-dataset)"
        },
    )
    heldout: str | None = field(
        default=None,
        metadata={
            "help": "held-out files of ONE setting (pretrain default: data/austen/persuasion.jsonl; cpt/sft "
            "default: 20 or 10 percent of documents/conversations by id hash)"
        },
    )
    arms: str = field(
        default="H,E,E-rate,E-word,R", metadata={"help": "arms, comma-separated: H,E,E-rate,E-word,R"}
    )
    rates: str = field(
        default="0.02", metadata={"help": "target change rate(s) of E-rate/E-word/R, comma-separated"}
    )
    seeds: str = field(default="", metadata={"help": "seeds (default: 0-4 pretrain, 0-2 cpt and sft)"})
    items: int = field(
        default=400, metadata={"help": "pretrain: multiple-choice items (fewer if the data lacks)"}
    )
    ft_items: int = field(
        default=400, metadata={"help": "cpt/sft: multiple-choice items (fewer if the data lacks)"}
    )
    bootstrap: int = field(default=2000, metadata={"help": "paired bootstrap resamples over items"})
    ppl_margin: float = field(
        default=0.02,
        metadata={
            "help": "margin of no effect for Δ held-out PPL, relative to H's mean (0.02: 2 %)",
            "verdict": True,
        },
    )
    acc_margin: float = field(
        default=0.0025,
        metadata={
            "help": "margin of no effect for Δ accuracy (0.0025: 0.25 points, the smallest effect the paper "
            "reports, so 'no effect' rules the paper's effect out)",
            "verdict": True,
        },
    )
    threads: int = field(default=0, metadata={"help": "torch threads (0: leave as is)"})
    # pretrain: the tiny Llama
    pt_docs: int = field(default=0, metadata={"help": "pretrain: training documents sampled (0: all)"})
    pt_tokens: int = field(default=2_000_000, metadata={"help": "pretrain: training tokens per run"})
    pt_hidden: int = field(default=192, metadata={"help": "pretrain: hidden size"})
    pt_layers: int = field(default=4, metadata={"help": "pretrain: decoder layers"})
    pt_vocab: int = field(default=4096, metadata={"help": "pretrain: BPE size (trained on the human texts)"})
    pt_seq_len: int = field(default=128, metadata={"help": "pretrain: sequence length"})
    pt_batch: int = field(default=16, metadata={"help": "pretrain: sequences per step"})
    pt_lr: float = field(default=3e-3, metadata={"help": "pretrain: peak learning rate"})
    # cpt / sft: the prior, top layers trained
    ft_layers: int = field(
        default=4, metadata={"help": "cpt/sft: top decoder layers trained (the rest frozen)"}
    )
    ft_lr: float = field(default=1e-4, metadata={"help": "cpt/sft: peak learning rate"})
    ft_batch: int = field(default=8, metadata={"help": "cpt/sft: sequences per step"})
    cpt_docs: int = field(default=0, metadata={"help": "cpt: training documents sampled (0: all)"})
    cpt_tokens: int = field(default=200_000, metadata={"help": "cpt: training tokens per run"})
    cpt_seq_len: int = field(default=256, metadata={"help": "cpt: sequence length"})
    sft_pairs: int = field(default=4000, metadata={"help": "sft: training (context, reply) pairs per run"})
    sft_context_turns: int = field(default=3, metadata={"help": "sft: previous turns kept as context"})
    sft_max_len: int = field(
        default=192, metadata={"help": "sft: tokens per pair (context cut from the left)"}
    )
    item_words: int = field(default=60, metadata={"help": "last-word items: context words kept"})

    def setting_list(self) -> list[str]:
        return list(SETTINGS) if self.setting == "all" else [self.setting]

    def seed_list(self, setting: str) -> list[int]:
        if self.seeds:
            return _ints(self.seeds, "seeds")
        return list(range(5)) if setting == "pretrain" else list(range(3))

    def rate_list(self) -> list[float]:
        try:
            rates = [float(x) for x in self.rates.split(",") if x.strip()]
        except ValueError as exc:
            raise ConfigError(f"rates: expected comma-separated numbers, got {self.rates!r}") from exc
        if not rates or any(not 0 < r < 1 for r in rates):
            raise ConfigError(f"rates must be in (0, 1), got {self.rates!r}")
        return rates

    def arm_names(self) -> list[str]:
        kinds = [a.strip() for a in self.arms.split(",") if a.strip()]
        bad = [a for a in kinds if a not in ARM_KINDS]
        if bad:
            raise ConfigError(f"unknown arm(s) {', '.join(bad)}; choose from {', '.join(ARM_KINDS)}")
        if "H" not in kinds:
            raise ConfigError("the arms must include H (every delta is against the human data)")
        if "R" in kinds and "E-rate" not in kinds:
            raise ConfigError("arm R matches E-rate's changes: include E-rate")
        names = []
        for kind in kinds:
            if kind in ("H", "E"):
                names.append(kind)
            else:
                names += [f"{kind}@{_pct(r)}" for r in self.rate_list()]
        return names

    def validate(self) -> None:
        if self.setting not in (*SETTINGS, "all"):
            raise ConfigError(f"setting must be pretrain, cpt, sft or all, got {self.setting!r}")
        if self.setting == "all" and (self.data or self.heldout):
            raise ConfigError(
                "--data/--heldout describe one setting: give --setting pretrain|cpt|sft with them"
            )
        self.arm_names()
        for s in self.setting_list():
            seeds = self.seed_list(s)
            if len(seeds) < 2:
                raise ConfigError("give at least 2 seeds (the intervals are over seeds)")
            if len(set(seeds)) != len(seeds):
                raise ConfigError("seeds must be distinct")
        for name in (
            "items",
            "ft_items",
            "pt_tokens",
            "pt_hidden",
            "pt_layers",
            "pt_seq_len",
            "pt_batch",
            "ft_layers",
            "ft_batch",
            "cpt_tokens",
            "cpt_seq_len",
            "sft_pairs",
            "sft_max_len",
            "item_words",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.pt_vocab < 300 or self.pt_lr <= 0 or self.ft_lr <= 0 or self.pt_docs < 0:
            raise ConfigError("pt_vocab must be >= 300, learning rates > 0, pt_docs >= 0")


# sized for ~45 min of `--quick --threads 1` on one core of a 2-core Xeon (AMX), the other core busy (probes:
# pretrain ~18 min, cpt ~13, sft ~10): the prior scores ~880 tokens/s, the tiny Llama trains ~9K tokens/s, one
# cpt/sft evaluation of 400 items takes 10-25 s. pretrain: 64 chapters (~230K tokens, scored in ~4 min) and
# 262K tokens per run take H to ~0.55 of the unigram PPL; batch 8 (more steps) beat batch 16; lr 2e-3 and 3e-3
# were unstable (PPL 360-576 across near-identical arms of one seed), 1.5e-3 moved < 3 % when a whole chapter
# was dropped. cpt/sft: 400 items each; their training budgets are what is left of the time.
BENEFIT_QUICK = dict(
    pt_docs=64,
    pt_tokens=262_144,
    pt_hidden=128,
    pt_vocab=4096,
    pt_batch=8,
    pt_lr=1.5e-3,
    items=400,
    ft_layers=2,
    ft_items=400,
    cpt_docs=24,
    cpt_tokens=12_288,
    cpt_seq_len=128,
    sft_pairs=256,
    sft_max_len=48,
    sft_context_turns=2,
    item_words=40,
)


def _ints(text: str, name: str) -> list[int]:
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name}: expected comma-separated integers, got {text!r}") from exc


def _pct(rate: float) -> str:
    return f"{100 * rate:g}%"


# ------------------------------------------------------------------------------------------------- arms


def random_edit(
    text: str,
    scores: TokenScores,
    n: int,
    rng: np.random.Generator,
    piece: Callable[[int], str],
    unsafe: frozenset[int],
    top_k: int = 8,
    beta: float = 1.5,
) -> tuple[str, EditStats]:
    """Change exactly `n` tokens at random scored positions (the R control).

    Positions are drawn uniformly among scored tokens whose span is clean and that have a usable candidate;
    the replacement is drawn from the stored top-k minus the original (weights softmax(logprob / beta)).
    """
    ids = scores.token_ids.astype(np.int64)
    new = ids.copy()
    if n == 0:
        out, stats, _ = splice(text, scores, new, piece, unsafe)
        return out, stats
    pos = np.nonzero(~np.isnan(scores.logprob))[0]
    pos = pos[clean_spans(text, scores, pos, piece)]
    chosen = 0
    for i in rng.permutation(pos):
        cands = [
            (int(c), float(v))
            for c, v in zip(scores.topk_ids[i, :top_k], scores.topk_logprobs[i, :top_k], strict=True)
            if c >= 0 and c != ids[i] and int(c) not in unsafe and "\ufffd" not in piece(int(c))
        ]
        if not cands:
            continue
        lp = np.array([v for _, v in cands])
        w = np.exp((lp - lp.max()) / beta)
        new[i] = cands[int(rng.choice(len(cands), p=w / w.sum()))][0]
        chosen += 1
        if chosen == n:
            break
    if chosen < n:
        raise ValueError(f"only {chosen} positions can change at random, {n} asked")
    out, stats, _ = splice(text, scores, new, piece, unsafe)
    stats.n_above = chosen  # R's selected positions are the changed ones
    return out, stats


def _total(stats: Sequence[EditStats]) -> EditStats:
    tot = EditStats()
    for s in stats:
        tot += s
    return tot


def rates_of(stats: EditStats) -> dict[str, Any]:
    """Realised selected/changed rates (shares of scored tokens) and the kinds of change."""
    n = max(stats.n_scored, 1)
    kinds = {k: getattr(stats, f"n_changed_{k}") for k in ("word", "fragment", "space", "punct")}
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
    """Thresholds chosen once from the single scoring pass (per rate, with and without word boundaries)."""

    rate: dict[float, float]
    word: dict[float, float]


def calibrate_arms(texts, scores, prior, config: BenefitConfig) -> Calibrated:
    rates = config.rate_list()
    kinds = {a.split("@")[0] for a in config.arm_names()}
    out = Calibrated({}, {})
    words = None
    if "E-word" in kinds:
        words = [word_masks(t, s, prior.piece, 8) for t, s in zip(texts, scores, strict=True)]
    for r in rates:
        if kinds & {"E-rate", "R"}:
            out.rate[r] = calibrate(scores, 8, 1.5, change_rate=r).threshold
        if "E-word" in kinds:
            out.word[r] = calibrate(scores, 8, 1.5, change_rate=r, words=words).threshold
    return out


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
    base = EditConfig(seed=seed)
    n_scored = sum(s.n_scored for s in scores)
    for name in config.arm_names():
        kind, _, r_txt = name.partition("@")
        if kind == "H":
            stats = EditStats(n_tokens=sum(len(s) for s in scores), n_scored=n_scored)
            arms[name] = (list(texts), rates_of(stats))
            continue
        if kind == "R":
            continue  # after its reference arm
        cfg = base
        if kind == "E-rate":
            cfg = replace(base, threshold=cal.rate[_rate_of(r_txt, config)])
        elif kind == "E-word":
            cfg = replace(base, threshold=cal.word[_rate_of(r_txt, config)], boundary="word")
        new, stats, _ = edit_scored_texts(texts, ids, scores, prior, cfg)
        arms[name] = (new, {**rates_of(_total(stats)), "threshold": cfg.threshold, "per_doc": stats})
    for name in config.arm_names():
        kind, _, r_txt = name.partition("@")
        if kind != "R":
            continue
        ref = arms[f"E-rate@{r_txt}"][1]["per_doc"]
        rng = np.random.default_rng([seed, 7919])
        new, stats = [], []
        for text, sc, st in zip(texts, scores, ref, strict=True):
            t, s = random_edit(text, sc, st.n_changed, rng, prior.piece, unsafe)
            new.append(t)
            stats.append(s)
        arms[name] = (new, {**rates_of(_total(stats)), "reference": f"E-rate@{r_txt}"})
    for name in arms:
        arms[name][1].pop("per_doc", None)
    return arms


def _rate_of(text: str, config: BenefitConfig) -> float:
    for r in config.rate_list():
        if _pct(r) == text:
            return r
    raise ConfigError(f"no rate {text}")


# ------------------------------------------------------------------------------------------------- data


def _read(files: str) -> list[tuple[str, str]]:
    from .generate import read_texts

    docs = [(str(i), t) for i, t in read_texts([f for f in files.split(",") if f.strip()]) if t.strip()]
    if not docs:
        from ..io import InputError

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


def sft_example(context: str, reply: str, tokenizer, eos: int, max_len: int) -> tuple[list[int], list[int]]:
    """(ids, labels): context tokens masked (IGNORE), reply tokens + eos as labels; context cut from the left."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    rep = tokenizer(" " + reply, add_special_tokens=False)["input_ids"][: max_len - 2] + [eos]
    keep = max(0, max_len - 1 - len(rep))
    ctx = ctx[-keep:] if keep else []
    ids = [eos, *ctx, *rep]
    labels = [blm.IGNORE] * (1 + len(ctx)) + rep
    return ids, labels


# ------------------------------------------------------------------------------------------------- runs


def _doc_order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 104729]).permutation(n)


def _row_batches(rows: torch.Tensor, batch: int, seed: int, to_inputs) -> list:
    perm = torch.from_numpy(np.random.default_rng([seed, 15485863]).permutation(len(rows)))
    rows = rows[perm]
    return [(to_inputs(rows[i : i + batch]), rows[i : i + batch]) for i in range(0, len(rows), batch)]


def run_setting(setting: str, config: BenefitConfig, prior, progress: bool = True) -> dict[str, Any]:
    """Score once, build the arms per seed, train and evaluate one model per (arm, seed); summarise."""
    t0 = time.perf_counter()
    seeds = config.seed_list(setting)
    if setting == "sft":
        train, held_pairs = sft_data(config)
        ids = [p[0] for p in train]
        texts = [p[2] for p in train]  # only the replies are scored and edited
    else:
        docs, held_texts = pretrain_data(config) if setting == "pretrain" else cpt_data(config)
        ids = [d[0] for d in docs]
        texts = [d[1] for d in docs]
    scores = score_texts(texts, prior, ScoreConfig(store_k=8), k=8)
    score_s = time.perf_counter() - t0
    cal = calibrate_arms(texts, scores, prior, config)
    log.info("%s: scored %d texts in %.0f s", setting, len(texts), score_s)

    # the model family, its tokenizer and the evaluation set (shared by every arm and seed)
    if setting == "pretrain":
        from .tinylm import build_tokenizer

        tok = build_tokenizer(
            f"bpe:{config.pt_vocab}", texts
        )  # human training texts only, shared by all arms
        eos = tok.convert_tokens_to_ids(blm_eot())
        items = blm.lambada_items(held_texts, config.items, 0, config.item_words)
        seq_len, ppl_on = config.pt_seq_len, "sequence"
    else:
        tok, eos, items, seq_len, ppl_on = _ft_eval_set(
            setting, config, prior, held_pairs if setting == "sft" else held_texts
        )
    if not items:
        raise ConfigError(f"{setting}: the held-out data gives no evaluation items")
    eval_seqs = blm.item_sequences(items, tok, eos, seq_len)
    top = (
        blm.TopLM(_trainable_copy(prior), config.ft_layers, frozen=prior.model)
        if setting != "pretrain"
        else None
    )
    top_state = top.state() if top is not None else None
    eval_cache: dict = {}
    before = None
    if top is not None:  # the prior itself, before any training: how far did training move it?
        c0, p0, _ = blm.evaluate_items(top, items, eval_seqs, ppl_on, eval_cache)
        before = {"ppl": p0, "acc": float(c0.mean())}

    runs, realised = [], {}
    unigram = None  # the level of word frequencies alone: an add-one unigram model of H's training tokens
    edit_s = 0.0
    arms_of = {}
    for seed in seeds:
        te = time.perf_counter()
        arms_of[seed] = build_arms(texts, ids, scores, prior, config, cal, seed)
        edit_s += time.perf_counter() - te
    pretrained = _pretrain_grid(arms_of, tok, eos, config) if setting == "pretrain" else {}
    for seed in seeds:
        arms = arms_of[seed]
        order = _doc_order(len(texts), seed)
        for name, (arm_texts, rates) in arms.items():
            realised.setdefault(name, []).append(rates)
            ts = time.perf_counter()
            if setting == "sft":
                lm = top
                lm.reset(top_state)
                examples = [
                    sft_example(train[i][1], arm_texts[i], tok, eos, config.sft_max_len) for i in order
                ]
                batches = _sft_batches(examples, config.ft_batch, lm)
                trained_tokens = sum(sum(x != blm.IGNORE for x in lab) for _, lab in examples)
                seen = [train[i][0] for i in order]
                stats = blm.train_lm(lm, batches, config.ft_lr, seed=seed)
            else:
                arm_ordered = [arm_texts[i] for i in order]
                if setting == "pretrain":  # trained above, with every other (seed, arm) of the grid
                    rows, model, stats = pretrained[seed, name]
                    lm = blm.FullLM(model)
                else:
                    n_rows = _n_rows(config.cpt_tokens, config.cpt_seq_len, config.ft_batch)
                    rows = blm.pack_stream(arm_ordered, tok, eos, config.cpt_seq_len, n_rows)
                    lm = top
                    lm.reset(top_state)
                    batches = _row_batches(rows, config.ft_batch, seed, lm.inputs)
                    stats = blm.train_lm(lm, batches, config.ft_lr, seed=seed)
                trained_tokens = int(rows.numel())
                seen = [ids[i] for i in order]
                if name == "H" and unigram is None:
                    unigram = _unigram_level(rows, items, eval_seqs, len(tok))
            correct, ppl, ppl_tokens = blm.evaluate_items(
                lm, items, eval_seqs, ppl_on, eval_cache if setting != "pretrain" else None
            )
            runs.append(
                {
                    "arm": name,
                    "seed": seed,
                    "ppl": ppl,
                    "acc": float(correct.mean()),
                    "correct": correct.tolist(),
                    "train_tokens": int(trained_tokens),
                    "corpus_tokens": blm.corpus_tokens(arm_texts, tok),
                    "doc_order": hashlib.sha256("\n".join(seen).encode()).hexdigest()[:16],
                    "final_loss": stats["final_loss"],
                    "steps": stats["steps"],
                    "seconds": round(time.perf_counter() - ts + stats.get("member_seconds", 0.0), 1),
                }
            )
            msg = f"benefit {setting}: seed {seed} {name:12s} PPL {ppl:8.2f} acc {correct.mean():.3f}"
            log.info(msg)
            if progress:
                print(msg, flush=True)
    result = summarize(setting, runs, config, realised)
    result.update(
        {
            "items": len(items),
            "ppl_tokens": ppl_tokens,
            "ppl_on": ppl_on,
            "unigram_ppl": unigram,
            "before": before,
            "train_texts": len(texts),
            "scored_tokens": int(sum(s.n_scored for s in scores)),
            "thresholds": {"rate": _keys(cal.rate), "word": _keys(cal.word)},
            "seconds": {
                "scoring": round(score_s, 1),
                "editing": round(edit_s, 1),
                "total": round(time.perf_counter() - t0, 1),
            },
        }
    )
    return result


def _unigram_level(rows: torch.Tensor, items, seqs, vocab: int) -> float:
    """Unigram PPL (`mix.unigram_ppl`) on exactly the held-out tokens the models' PPL counts."""
    true = [s.ids[1:] for s in seqs if s.choice == items[s.item].answer]
    return unigram_ppl_ids(rows, true, vocab)


def _ft_eval_set(setting: str, config: BenefitConfig, prior, held) -> tuple:
    """(tokenizer, eos id, items, sequence length, PPL mode) of the cpt / sft evaluation."""
    tok = prior.tokenizer
    eos = tok.eos_token_id if tok.eos_token_id is not None else prior.context_id
    if setting == "cpt":
        return (
            tok,
            eos,
            blm.lambada_items(held, config.ft_items, 0, config.item_words),
            config.cpt_seq_len,
            "sequence",
        )
    return tok, eos, blm.reply_items(held, config.ft_items, 0), config.sft_max_len, "choice"


def prior_baseline(setting: str, config: BenefitConfig, prior) -> dict[str, float]:
    """The untrained prior on the cpt / sft evaluation set (what `run_setting` stores as "before")."""
    held = sft_data(config)[1] if setting == "sft" else cpt_data(config)[1]
    tok, eos, items, seq_len, ppl_on = _ft_eval_set(setting, config, prior, held)
    seqs = blm.item_sequences(items, tok, eos, seq_len)
    top = blm.TopLM(_trainable_copy(prior), config.ft_layers, frozen=prior.model)
    c0, p0, _ = blm.evaluate_items(top, items, seqs, ppl_on)
    return {"ppl": p0, "acc": float(c0.mean())}


def _keys(d: dict[float, float]) -> dict[str, float]:
    return {_pct(k): v for k, v in d.items()}


def blm_eot() -> str:
    from .tinylm import EOT

    return EOT


def _n_rows(tokens: int, seq_len: int, batch: int) -> int:
    return max(batch, math.ceil(tokens / seq_len / batch) * batch)


def pretrain_config(config: BenefitConfig, seed: int):
    """The tiny Llama of the pretrain setting as a `TrainConfig` (shape, budget, lr; weight decay 0.1)."""
    from .tinylm import TrainConfig

    return TrainConfig(
        tokens=config.pt_tokens,
        seq_len=config.pt_seq_len,
        batch_size=config.pt_batch,
        lr=config.pt_lr,
        hidden=config.pt_hidden,
        layers=config.pt_layers,
        heads=max(1, config.pt_hidden // 64),
        intermediate=config.pt_hidden * 8 // 3 // 32 * 32 or 32,
        seed=seed,
    )


def _pretrain_grid(arms_of: dict[int, dict], tok, eos: int, config: BenefitConfig) -> dict[tuple, tuple]:
    """Every (seed, arm) tiny Llama of the pretrain setting, trained together (`ensemble.train_grid`): each
    member is its arm's texts in the seed's document order, packed, its rows in the seed's batch order
    (`_row_batches`), the seed's initialisation; AdamW decays every parameter (as `benefit_lm.train_lm`).
    Returns {(seed, arm): (rows, model, stats)}."""
    from .ensemble import Member, train_grid

    n_rows = _n_rows(config.pt_tokens, config.pt_seq_len, config.pt_batch)
    keys, members = [], []
    for seed, arms in arms_of.items():
        perm = np.random.default_rng([seed, 15485863]).permutation(n_rows)  # `_row_batches`' order
        for name, (arm_texts, _) in arms.items():
            order = _doc_order(len(arm_texts), seed)
            rows = blm.pack_stream([arm_texts[i] for i in order], tok, eos, config.pt_seq_len, n_rows)
            keys.append((seed, name))
            members.append(Member(rows, pretrain_config(config, seed), order=perm))
    trained = train_grid(members, len(tok), decay_vectors=True)
    return {k: (m.rows, *res) for k, m, res in zip(keys, members, trained, strict=True)}


def _trainable_copy(prior) -> torch.nn.Module:
    """A float32 copy of the prior's weights: training never touches the scorer."""
    import copy

    return copy.deepcopy(prior.model).float()


def _sft_batches(examples: Sequence[tuple[list[int], list[int]]], batch: int, lm) -> list:
    out = []
    for i in range(0, len(examples), batch):
        chunk = examples[i : i + batch]
        width = max(len(x) for x, _ in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), blm.IGNORE, dtype=torch.long)
        for r, (x, y) in enumerate(chunk):
            ids[r, : len(x)] = torch.tensor(x)
            labels[r, : len(y)] = torch.tensor(y)
        out.append((lm.inputs(ids), labels))  # right padding: causal attention never sees it
    return out


# ------------------------------------------------------------------------------------------- statistics


def summarize(setting: str, runs: list[dict], config: BenefitConfig, realised: dict) -> dict[str, Any]:
    """Per arm: metric means over seeds, Δ(arm − H) paired by seed with 95 % t-intervals and verdicts, and
    the paired bootstrap over items of the accuracy difference."""
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["arm"], r["seed"]): r for r in runs}
    per_arm = []
    for arm in arms:
        row: dict[str, Any] = {"arm": arm}
        for metric in METRICS:
            vals = [by[(arm, s)][metric] for s in seeds]
            row[metric] = seed_summary(vals)
            if arm != "H":
                row[f"d_{metric}"] = seed_delta(vals, [by[("H", s)][metric] for s in seeds])
        if arm != "H":
            a = np.array([by[(arm, s)]["correct"] for s in seeds])
            h = np.array([by[("H", s)]["correct"] for s in seeds])
            row["items_acc"] = item_bootstrap(a, h, config.bootstrap, seed=0)
        rr = realised.get(arm, [])
        row["selected_rate"] = float(np.mean([x["selected_rate"] for x in rr])) if rr else math.nan
        row["changed_rate"] = float(np.mean([x["changed_rate"] for x in rr])) if rr else math.nan
        # kinds pooled over seeds (counts, not mean shares: a seed without changes has no shares)
        counts = {
            k: sum(x["counts"][f"n_changed_{k}"] for x in rr) for k in ("word", "fragment", "space", "punct")
        }
        total = sum(counts.values())
        row["kinds"] = {k: (v / total if total else math.nan) for k, v in counts.items()}
        row["train_tokens"] = sorted({by[(arm, s)]["train_tokens"] for s in seeds})
        row["corpus_tokens"] = float(np.mean([by[(arm, s)]["corpus_tokens"] for s in seeds]))
        per_arm.append(row)
    note = apply_family(per_arm, config.ppl_margin, config.acc_margin) if len(seeds) > 1 else ""
    return {
        "setting": setting,
        "seeds": seeds,
        "arms": per_arm,
        "runs": runs,
        "realised": realised,
        "family": note,
    }


# ----------------------------------------------------------------------------------------------- report


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def setting_markdown(res: dict[str, Any]) -> str:
    s = res["setting"]
    title = {"pretrain": "Pre-training from scratch", "cpt": "Continual pre-training", "sft": "SFT"}[s]
    h = next(a for a in res["arms"] if a["arm"] == "H")
    lines = [
        f"### {title} ({len(res['seeds'])} seeds)",
        "",
        f"{res['description']}",
        "",
        "| arm | selected % | changed % | word / fragment / space / punct % of changes | held-out PPL | Δ PPL "
        "(95 % CI) | verdict | accuracy % | Δ acc pts (95 % CI) | verdict | items: Δ acc pts (bootstrap CI, p) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in res["arms"]:
        k = a["kinds"]
        kinds = (
            " / ".join(_fmt(100 * k[x], 0) for x in ("word", "fragment", "space", "punct"))
            if a["arm"] != "H"
            else "-"
        )
        ppl = f"{a['ppl']['mean']:.2f} ± {_fmt(a['ppl']['ci95'], 2)}"
        acc = f"{100 * a['acc']['mean']:.2f} ± {_fmt(100 * a['acc']['ci95'], 2)}"
        if a["arm"] == "H":
            cells = [ppl, "-", "-", acc, "-", "-", "-"]
        else:
            dp, da, it = a["d_ppl"], a["d_acc"], a["items_acc"]
            cells = [
                ppl,
                f"{dp['mean']:+.2f} ± {_fmt(dp['half'], 2)}",
                dp.get("verdict", "undecided"),
                acc,
                f"{100 * da['mean']:+.2f} ± {_fmt(100 * da['half'], 2)}",
                da.get("verdict", "undecided"),
                f"{100 * it['mean']:+.2f} [{100 * it['lo']:+.2f}, {100 * it['hi']:+.2f}], p = {it['p']:.3f}",
            ]
        lines.append(
            f"| {a['arm']} | {100 * a['selected_rate']:.2f} | {100 * a['changed_rate']:.2f} | {kinds} | "
            + " | ".join(cells)
            + " |"
        )
    toks = sorted({t for a in res["arms"] for t in a["train_tokens"]})
    corpus = [a["corpus_tokens"] for a in res["arms"]]
    lines += [
        "",
        f"- Paper: {PAPER[s]}",
        f"- Training per run: {', '.join(f'{t:,}' for t in toks)} tokens "
        f"({'identical in every arm' if len(toks) == 1 else 'trained reply tokens; every arm sees the same pairs in the same order'}); "
        f"arm corpora {min(corpus):,.0f}-{max(corpus):,.0f} tokens "
        f"(spread {100 * (max(corpus) - min(corpus)) / min(corpus):.2f} %). H reaches held-out PPL "
        f"{h['ppl']['mean']:.2f} (final training loss {np.mean([r['final_loss'] for r in res['runs'] if r['arm'] == 'H']):.3f})"
        + (
            f"; an add-one unigram model of H's training tokens: PPL {res['unigram_ppl']:.2f} on the same "
            f"tokens (H at {h['ppl']['mean'] / res['unigram_ppl']:.2f} of it)"
            if res.get("unigram_ppl")
            else ""
        )
        + (
            f"; the prior before training: PPL {res['before']['ppl']:.2f}, accuracy {100 * res['before']['acc']:.2f} %."
            if res.get("before")
            else "."
        ),
        f"- Evaluation: {res['items']} items, PPL over {res['ppl_tokens']:,} held-out tokens "
        f"({'the passages' if res['ppl_on'] == 'sequence' else 'the true replies given their context'}), "
        "from the same forward pass. The PPL is biased towards H: edited text is off the human distribution by "
        "construction, so a lower PPL for H is expected and a gain there would be notable.",
        f"- Verdicts: {VERDICT_RULE} {res.get('family', '')}",
        "- Minimum detectable effects at 80 % power (two-sided 5 %, from the seed spread): "
        + "; ".join(
            f"{a['arm']}: PPL ±{_fmt(a['d_ppl'].get('mde', math.nan), 2)}, accuracy ±{_fmt(100 * a['d_acc'].get('mde', math.nan), 2)} pts"
            for a in res["arms"]
            if a["arm"] != "H"
        )
        + f" (the paper's effects: {PAPER_EFFECT}).",
        f"- Time: {res['seconds']['total'] / 60:.1f} min ({res['seconds']['scoring']:.0f} s scoring "
        f"{res['scored_tokens']:,} tokens once for all arms).",
    ]
    return "\n".join(lines)


VERDICT_RULE = (
    "per metric, Δ(arm − H) paired by seed with its 95 % t-interval; Holm-adjusted p < 0.05 within the "
    "setting's family -> improves / harms by the better or worse side; otherwise no effect when the family-level "
    "interval lies inside the margin, else inconclusive (docs/verdicts.md). The item bootstrap (items "
    "resampled, accuracy averaged over seeds) is reported beside it, not used for the verdict."
)
PAPER_EFFECT = (
    "accuracy +0.36 points in pre-training, +0.33 to +2.29 in continual pre-training, +0.25 to +0.47 in SFT"
)

DESCRIPTIONS = {
    "pretrain": "A tiny Llama from scratch on Austen novels (one held out entirely: the test is out of "
    "distribution), one BPE tokenizer trained on the human training texts and shared by all arms. Items: "
    "LAMBADA-style last word of a held-out sentence given the text before it, against 3 words of the held-out "
    "text nearest to it in frequency rank (sum of log-probs; a model that knows only word frequencies is at "
    "25 %).",
    "cpt": "The prior (SmolLM2-135M) continually trained on the Python documentation (`pydoc_data.topics`; "
    "20 % of topics held out by name hash): its top decoder layers + final norm train in float32, the rest "
    "is frozen and runs in the prior's own bfloat16 (full fine-tuning of the 135M prior is too slow on 2 CPU cores for the quick setting). Items: last word "
    "of held-out sentences against 3 frequency-matched words of the held-out topics.",
    "sft": "The prior fine-tuned on human conversations (chitchat-dataset; 10 % of conversations held out): "
    "context = the previous turns, loss and edits on the reply only; top decoder layers train (as in cpt). Items: the "
    "true next reply against 3 replies from other held-out conversations (mean log-prob per token).",
}


def run_benefit(
    out_dir: str | Path,
    config: BenefitConfig | None = None,
    progress: bool = True,
    results: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """`toedit experiment benefit`: every setting of `config`; writes benefit.json + benefit.md in
    `out_dir` and, with `results`, the marked section of that markdown page."""
    from ..prior import load_prior

    config = config or BenefitConfig()
    out = prepare(config, out_dir)
    t0 = time.perf_counter()
    prior = load_prior(config.model, device="cpu")
    result: dict[str, Any] = {"config": asdict(config), "settings": {}, "command": command}
    for setting in config.setting_list():
        res = run_setting(setting, config, prior, progress)
        res["description"] = DESCRIPTIONS[setting]
        result["settings"][setting] = res
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["machine"], result["load"] = _machine(), _load()
        (out / "benefit.json").write_text(json.dumps(result, indent=1) + "\n")
        if results is not None:  # each finished setting is on the page at once
            write_section(Path(results), benefit_markdown(result))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    md = benefit_markdown(result)
    (out / "benefit.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "benefit.md").write_text(md + "\n")
    if results is not None:
        write_section(Path(results), md)
    return result


START, END = "<!-- benefit:start -->", "<!-- benefit:end -->"


def benefit_markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Does editing help? (`toedit experiment benefit`)",
        "",
        f"Command: `{result.get('command') or 'toedit experiment benefit'}`; {result['seconds'] / 60:.1f} min on "
        f"{result.get('machine') or _machine()}, load average at the end {result.get('load') or _load()}.",
        "",
        "Arms: H = human data; E = the paper's rule (p > 0.99, top-8, beta 1.5); E-rate@r = threshold "
        "calibrated to a change rate r; E-word@r = the same rate with word boundaries (whole words replaced by "
        "whole words); R@r = exactly as many changed tokens per document as E-rate@r at random scored "
        "positions (top-k minus the original). All arms come from one scoring pass of the prior; per seed "
        "every arm has the same documents, order, token budget and initialisation, and the edits are redrawn "
        "per seed.",
        "",
    ]
    for res in result["settings"].values():
        lines += [setting_markdown(res), ""]
    return "\n".join(lines).rstrip()


def rerender(out_dir: str | Path, results: str | Path | None = None) -> dict[str, Any]:
    """Recompute every summary, table and verdict of a finished benefit.json from its stored runs (no training)."""
    out = Path(out_dir)
    result = json.loads((out / "benefit.json").read_text())
    config = BenefitConfig(**result["config"])
    for setting, res in result["settings"].items():
        res.update(summarize(setting, res["runs"], config, res["realised"]))
    md = benefit_markdown(result)
    (out / "benefit.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "benefit.md").write_text(md + "\n")
    if results is not None:
        write_section(Path(results), md)
    return result


def write_section(path: Path, md: str) -> None:
    """Replace (or append) the text between the benefit markers of `path`."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{md}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
