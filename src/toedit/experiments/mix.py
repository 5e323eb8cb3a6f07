"""Synthetic-share pre-training (PAPER.md section 3): held-out human PPL of tiny LMs vs the synthetic share.

Human and synthetic pools are matched piece by piece: each human segment's first `prompt_tokens` prior tokens
prompt the prior, which writes as many tokens as the rest of the segment; the rest of the segment is the human
text and the prompt is dropped from both. Every run sees the same token budget; only the share of synthetic
rows changes. The synthetic corpus is generated once; seeds change the model's initialisation, which rows
of each pool are used and their order.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..io import write_jsonl_atomic
from ..verdicts import fmt_delta, paired_delta, slope_trend
from .common import (
    TinyLMOptions,
    finished_stamp,
    int_list,
    lm_config,
    prepare,
    sampling_config,
    stored_result,
    unigram_ppl,
    verdict_fields,
)
from .ensemble import Member, train_grid
from .generate import GenerateConfig, continuation, generate_texts, opening_prompts, read_records
from .human import load_human, sample, seed_summary, segments, split_heldout
from .mixclaims import mix_statement
from .tinylm import (
    TrainConfig,
    as_prior,
    build_tokenizer,
    data_order,
    evaluate,
    pack,
    resolve_device,
)

log = logging.getLogger(__name__)


@dataclass
class MixConfig(TinyLMOptions):
    """The mixing sweep: shares, seeds, corpus sizes, generation and the tiny LM."""

    shares: str = field(
        default="0,25,50,75,100",
        metadata={"help": "synthetic shares of the training tokens in percent, comma-separated"},
    )
    seeds: str = field(
        default="0,1,2",
        metadata={"help": "seeds, comma-separated (one run per share and seed; runs of one seed are paired)"},
    )
    human_segments: int = field(
        default=2000,
        metadata={"help": "human training segments (the synthetic pool mirrors them one to one)"},
    )
    segment_tokens: int = field(default=288, metadata={"help": "prior tokens per segment, prompt included"})
    prompt_tokens: int = field(
        default=32,
        metadata={"help": "prior tokens of each human segment that prompt its synthetic continuation"},
    )
    gen_batch_size: int = field(default=16, metadata={"help": "prompts generated together"})
    gen_seed: int = field(default=0, metadata={"help": "seed of the synthetic pool's sampling"})
    model: str = field(default="default", metadata={"help": "the prior that writes the synthetic text"})
    synthetic: str | None = field(
        default=None,
        metadata={"help": "reuse a generated JSONL (records with `text` and `prompt`) instead of generating"},
    )
    tokens: int = field(
        default=0, metadata={"help": "training tokens per run (0: `epochs` passes over the smaller pool)"}
    )
    epochs: float = field(default=3.0, metadata={"help": "passes over the smaller pool when tokens is 0"})
    ppl_margin: float = field(
        default=0.02,
        metadata={
            "help": "margin of no effect for held-out PPL, relative to the 0 % runs' mean (0.02: 2 %, below the "
            "3.4 % the paper calls 'barely moves')",
            "verdict": True,
        },
    )
    loss_margin: float = field(
        default=0.02,
        metadata={
            "help": "margin of no effect for the training loss in nats (0.02 ~ 2 % in PPL)",
            "verdict": True,
        },
    )

    def validate(self) -> None:
        shares = int_list(self.shares, "shares")
        if not shares or any(not 0 <= s <= 100 for s in shares):
            raise ConfigError("shares must be percentages in [0, 100]")
        if not int_list(self.seeds, "seeds"):
            raise ConfigError("give at least one seed")
        if self.segment_tokens <= self.prompt_tokens:
            raise ConfigError("segment_tokens must exceed prompt_tokens")
        if self.human_segments < 1 or self.heldout_segments < 1:
            raise ConfigError("human_segments and heldout_segments must be >= 1")
        if self.tokens < 0 or self.epochs <= 0:
            raise ConfigError("tokens must be >= 0 (0: epochs x the smaller pool), epochs > 0")
        if self.ppl_margin <= 0 or self.loss_margin <= 0:
            raise ConfigError("ppl_margin and loss_margin must be > 0")
        self.train_config(0).validate()
        self.generate_config().validate()

    def train_config(self, seed: int, tokens: int | None = None) -> TrainConfig:
        return lm_config(self, seed, tokens or self.tokens or 1)

    def generate_config(self) -> GenerateConfig:
        return sampling_config(self, self.gen_seed)


# quick: a 768-segment pool (the prior's generation is the slow part: ~175 tokens/s with 1 thread), 3 passes
# at batch 8 (~300K training tokens per run), so the tiny LMs get well below the unigram level (the results
# page states both); sized with the collapse preset for ~1 hour of `experiment all --quick --threads 1`
MIX_QUICK = dict(
    human_segments=768, heldout_segments=80, segment_tokens=160, hidden=128, batch_size=8, epochs=3.0
)


def build_pools(human: list[str], config: MixConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Held-out and training segments of the human corpus and the matched synthetic pool (generated or reused)."""
    from ..prior import load_prior

    docs = load_human(human)
    train_docs, held_docs = split_heldout(docs, config.heldout_share)
    prior = load_prior(config.model, device=resolve_device(config.device).type)
    train_segs = sample(
        segments(train_docs, prior.tokenizer, config.segment_tokens), config.human_segments, 0
    )
    held_segs = sample(
        segments(held_docs, prior.tokenizer, config.segment_tokens), config.heldout_segments, 0
    )
    gen = config.generate_config()
    prompts = opening_prompts(train_segs, prior.tokenizer, gen)
    by_source = {p.source_id: p for p in prompts}
    synth_path = Path(config.synthetic) if config.synthetic else out_dir / "synthetic.jsonl"
    if config.synthetic:
        records = [data for _, data in read_records([config.synthetic])]
        log.info("reusing %d synthetic documents from %s", len(records), synth_path)
    else:
        t0 = time.perf_counter()
        records = generate_texts(prompts, prior, gen, progress=progress)
        write_jsonl_atomic(synth_path, records)
        log.info("generated %d documents in %.0f s", len(records), time.perf_counter() - t0)
    human_texts = [text[len(by_source[i].text) :] for i, text in train_segs if i in by_source]
    synth_texts = [continuation(r) for r in records]
    return {
        "human": human_texts,
        "synthetic": synth_texts,
        "heldout": [t for _, t in held_segs],
        "synthetic_path": str(synth_path),
        "prior": prior,
        "train_docs": len(train_docs),
        "heldout_docs": len(held_docs),
        "heldout_ids": sorted(d[0] for d in held_docs),
    }


def mixed_rows(
    human: torch.Tensor, synth: torch.Tensor, share: float, n_rows: int, seed: int
) -> torch.Tensor:
    """`n_rows` rows, a `share` of them synthetic; each pool cycled in seeded permutations, then shuffled."""
    n_s = round(share * n_rows)
    parts = []
    if n_rows - n_s:
        parts.append(human[torch.from_numpy(data_order(len(human), n_rows - n_s, seed))])
    if n_s:
        parts.append(synth[torch.from_numpy(data_order(len(synth), n_s, seed + 1))])
    rows = torch.cat(parts)
    return rows[torch.from_numpy(np.random.default_rng(seed + 2).permutation(len(rows)))]


def run_mix(
    human: list[str],
    out_dir: str | Path,
    config: MixConfig | None = None,
    progress: bool = True,
    pools: dict[str, Any] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """`toedit experiment mix`: one tiny LM per (share, seed); writes mix.json, mix.md and mix.png.

    With `resume`, a mix.json of the same configuration and inputs is reused: only its summary, statement,
    table and plot are recomputed from the stored runs.
    """
    config = config or MixConfig()
    out = prepare(config, out_dir)
    stored = (
        stored_result(out / "mix.json", asdict(config), human, verdict_fields(config)) if resume else None
    )
    if stored is not None:
        result = {
            **stored,
            **summarize_mix(stored["runs"], config),
            "resumed": True,
            "config": asdict(config),
        }
        return _write_mix(result, out)
    t0 = time.perf_counter()
    pools = pools or build_pools(human, config, out, progress)
    gen_seconds = time.perf_counter() - t0
    # one tokenizer trained on both pools: a token budget then holds the same amount of text in either pool
    tok = build_tokenizer(f"bpe:{config.vocab}", pools["human"] + pools["synthetic"])
    h_rows = pack(pools["human"], tok, config.seq_len)
    s_rows = pack(pools["synthetic"], tok, config.seq_len)
    # characters per packed row of each pool, to report the text each run saw
    h_cpr = sum(map(len, pools["human"])) / len(h_rows)
    s_cpr = sum(map(len, pools["synthetic"])) / len(s_rows)
    # whole batches only, so `epochs=1` never repeats a row
    pool_rows = int(config.epochs * min(len(h_rows), len(s_rows))) // config.batch_size * config.batch_size
    budget = config.tokens or max(pool_rows, config.batch_size) * config.seq_len
    runs = []
    grid = [
        (seed, share)
        for seed in int_list(config.seeds, "seeds")
        for share in int_list(config.shares, "shares")
    ]
    members = []  # every (seed, share) run has one shape: they train together (the grid trainer)
    for seed, share in grid:
        tc = config.train_config(seed, budget)
        members.append(Member(mixed_rows(h_rows, s_rows, share / 100, tc.steps * tc.batch_size, seed), tc))
    trained = train_grid(members, len(tok))
    for (seed, share), (model, stats) in zip(grid, trained, strict=True):
        n_rows = stats["steps"] * config.batch_size
        ev = evaluate(as_prior(model, tok), pools["heldout"])
        n_s = round(share / 100 * n_rows)
        runs.append(
            {
                "share": share,
                "seed": seed,
                "heldout_ppl": ev["ppl"],
                "heldout_tail_share": ev["tail_share"],
                "final_train_loss": stats["final_loss"],
                "human_chars_seen": round((n_rows - n_s) * h_cpr),
                "synthetic_chars_seen": round(n_s * s_cpr),
                "human_epochs": round((n_rows - n_s) / len(h_rows), 3),
                "synthetic_epochs": round(n_s / len(s_rows), 3),
                "seconds": stats["seconds"],
            }
        )
        log.info("share %d%% seed %d: held-out PPL %.2f", share, seed, ev["ppl"])
        if progress:
            print(f"mix: share {share:3d}% seed {seed}: held-out PPL {ev['ppl']:.2f}", flush=True)
    result = summarize_mix(runs, config)
    result.update(
        {
            "config": asdict(config),
            "corpus": {
                "human_train_tokens": int((h_rows >= 0).sum()),
                "synthetic_train_tokens": int((s_rows >= 0).sum()),
                "human_train_chars": sum(map(len, pools["human"])),
                "synthetic_train_chars": sum(map(len, pools["synthetic"])),
                "tokenizer": "BPE trained on both pools (human + synthetic training texts)",
                "unigram_heldout_ppl": unigram_ppl(h_rows, pools["heldout"], tok),
                "heldout_tokens": evaluate_tokens(pools["heldout"], tok),
                "human_segments": len(pools["human"]),
                "synthetic_documents": len(pools["synthetic"]),
                "heldout_segments": len(pools["heldout"]),
                "train_docs": pools.get("train_docs"),
                "heldout_docs": pools.get("heldout_docs"),
                "synthetic_path": pools.get("synthetic_path"),
            },
            "params": sum(p.numel() for p in model.parameters()),
            "train_tokens_per_run": config.train_config(0, budget).steps * config.batch_size * config.seq_len,
            "epochs_label": (
                f"{config.tokens:,} training tokens per run"
                if config.tokens
                else f"{config.epochs:g} pass(es) over the smaller pool per run"
            ),
            "seconds": {"pools": round(gen_seconds, 1), "total": round(time.perf_counter() - t0, 1)},
        }
    )
    result["human"] = list(human)
    result["finished"] = finished_stamp()
    return _write_mix(result, out)


def _write_mix(result: dict[str, Any], out: Path) -> dict[str, Any]:
    result["table"] = mix_table(result)
    (out / "mix.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "mix.md").write_text(result["table"] + "\n\n" + result["statement"] + "\n")
    plot_mix(result, out / "mix.png")
    return result


def evaluate_tokens(texts: list[str], tokenizer) -> int:
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def _by_seed(runs: list[dict[str, Any]], share: int, key: str) -> dict[int, float]:
    return {r["seed"]: r[key] for r in runs if r["share"] == share}


def paired_vs_base(runs: list[dict[str, Any]], share: int, base: int, key: str) -> dict[str, float]:
    """Paired difference (share - base) of `key` over the seeds both shares ran."""
    a, b = _by_seed(runs, share, key), _by_seed(runs, base, key)
    seeds = sorted(set(a) & set(b))
    return paired_delta([a[s] for s in seeds], [b[s] for s in seeds])


def summarize_mix(runs: list[dict[str, Any]], config: MixConfig) -> dict[str, Any]:
    """Per share: mean, s.e. and 95 % interval over seeds; per share > base: the paired difference against
    the lowest share (per seed, 95 % t-interval) of held-out PPL and final training loss; the verdicts."""
    shares = int_list(config.shares, "shares")
    per_share = []
    for share in shares:
        rs = [r for r in runs if r["share"] == share]
        per_share.append(
            {
                "share": share,
                "heldout_ppl": seed_summary([r["heldout_ppl"] for r in rs]),
                "heldout_tail_share": seed_summary([r["heldout_tail_share"] for r in rs]),
                "final_train_loss": seed_summary([r["final_train_loss"] for r in rs]),
                "human_chars_seen": float(np.mean([r.get("human_chars_seen", math.nan) for r in rs])),
                "synthetic_chars_seen": float(np.mean([r.get("synthetic_chars_seen", math.nan) for r in rs])),
            }
        )
    base = min(shares)
    paired = {
        str(s): {
            "heldout_ppl": paired_vs_base(runs, s, base, "heldout_ppl"),
            "final_train_loss": paired_vs_base(runs, s, base, "final_train_loss"),
        }
        for s in shares
        if s != base
    }
    result = {
        "runs": runs,
        "per_share": per_share,
        "base_share": base,
        "paired": paired,
        "config": asdict(config),
    }
    if len(shares) >= 2:
        result["trend"] = {
            key: share_slopes(runs, shares, key) for key in ("heldout_ppl", "final_train_loss")
        }
    result["statement"] = mix_statement(result, config)
    return result


def share_slopes(runs: list[dict[str, Any]], shares: list[int], key: str) -> dict[str, Any]:
    """Per seed (seeds that ran every share), the least-squares slope of `key` on the share, per 100 % share;
    mean with a t-interval across seeds (`verdicts.slope_trend`)."""
    by_seed: dict[int, dict[int, float]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["share"]] = r[key]
    seeds = sorted(s for s, v in by_seed.items() if all(x in v for x in shares))
    trend = slope_trend([x / 100 for x in shares], [[by_seed[s][x] for x in shares] for s in seeds])
    return {**trend, "seeds": seeds}


def mix_table(result: dict[str, Any]) -> str:
    rows = [
        "| synthetic % | held-out human PPL (mean ± 95 % CI) | Δ PPL vs "
        f"{result.get('base_share', 0)} % (paired, 95 % CI) | tail share (p < 0.01) | final train loss | "
        "Δ loss (paired, 95 % CI) | text seen: human / synthetic characters |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    paired = result.get("paired", {})
    for p in result["per_share"]:
        h, t, loss = p["heldout_ppl"], p["heldout_tail_share"], p["final_train_loss"]
        d = paired.get(str(p["share"]))
        dp = fmt_delta(d["heldout_ppl"], 1) if d else "-"
        dl = fmt_delta(d["final_train_loss"], 3) if d else "-"
        seen = f"{p.get('human_chars_seen', math.nan):,.0f} / {p.get('synthetic_chars_seen', math.nan):,.0f}"
        rows.append(
            f"| {p['share']} | {h['mean']:.2f} ± {h['ci95']:.2f} | {dp} | "
            f"{100 * t['mean']:.2f} % | {loss['mean']:.3f} | {dl} | {seen} |"
        )
    return "\n".join(rows)


def plot_mix(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = result["per_share"]
    x = [p["share"] for p in ps]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in result["runs"]:
        ax.plot(r["share"], r["heldout_ppl"], ".", color="0.6", ms=5)
    ax.errorbar(
        x,
        [p["heldout_ppl"]["mean"] for p in ps],
        yerr=[p["heldout_ppl"]["ci95"] for p in ps],
        marker="o",
        capsize=4,
        label="mean ± 95 % CI over seeds",
    )
    ax.set_xlabel("synthetic share of training tokens (%)")
    ax.set_ylabel("held-out human PPL")
    ax.set_title("Tiny LM: held-out human perplexity vs synthetic share")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
