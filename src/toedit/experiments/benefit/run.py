"""`toedit experiment benefit`: does training on ToEdit-edited human data beat the human data itself?

The paper's headline (PAPER.md section 5) in three settings (`settings`), each training one model per arm and
seed. All arms come from ONE scoring pass of the prior, after the setting's one normalisation of every text
(`data`). Per seed every arm gets the same documents in the same order, the same number of training tokens
(pretrain, cpt) or sequences (sft) and the same initialisation; the edit draws are keyed by the seed too, so
the seed-to-seed spread includes the editing randomness.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import ConfigError, ScoreConfig
from ...scoring import score_texts
from ..common import load_average, machine, prepare, write_marked
from ..tinylm import resolve_device
from . import items as bitems
from . import lm as blm
from .arms import build_arms, calibrate_arms
from .config import BenefitConfig, _pct
from .data import load_setting_data
from .report import DESCRIPTIONS, benefit_markdown
from .settings import SETTING_TYPES, Context, doc_order
from .stats import summarize

log = logging.getLogger(__name__)


def run_setting(setting: str, config: BenefitConfig, prior, progress: bool = True) -> dict[str, Any]:
    """Score once, build the arms per seed, train and evaluate one model per (arm, seed); summarise."""
    t0 = time.perf_counter()
    config = config.for_setting(setting)
    seeds = config.seed_list(setting)
    data = load_setting_data(setting, config)
    scores = score_texts(data.texts, prior, ScoreConfig(store_k=8), k=8)
    score_s = time.perf_counter() - t0
    cal = calibrate_arms(data.texts, scores, prior, config)
    log.info("%s: scored %d texts in %.0f s", setting, len(data.texts), score_s)

    impl = SETTING_TYPES[setting]()
    device = next(prior.model.parameters()).device
    ctx = Context(config, prior, data, device)
    impl.evaluation(ctx)
    if not ctx.items:
        raise ConfigError(f"{setting}: the held-out data gives no evaluation items")
    if not ctx.seqs:
        ctx.seqs = bitems.item_sequences(ctx.items, ctx.tok, ctx.eos, ctx.seq_len)

    te = time.perf_counter()
    arms_of = {seed: build_arms(data.texts, data.ids, scores, prior, config, cal, seed) for seed in seeds}
    edit_s = time.perf_counter() - te
    tp = time.perf_counter()
    impl.prepare(ctx, arms_of)
    grid_s = time.perf_counter() - tp
    runs, realised = [], {}
    ppl_tokens = 0
    for seed in seeds:
        order = doc_order(len(data.texts), seed)
        for name, (arm_texts, rates) in arms_of[seed].items():
            realised.setdefault(name, []).append(rates)
            ts = time.perf_counter()
            trained = impl.train(ctx, seed, name, arm_texts, order)
            correct, ppl, ppl_tokens = blm.evaluate_items(trained.lm, ctx.items, ctx.seqs, ctx.ppl_on)
            stats = trained.stats
            runs.append(
                {
                    "arm": name,
                    "seed": seed,
                    "ppl": ppl,
                    "acc": float(correct.mean()),
                    "correct": correct.tolist(),
                    "train_tokens": trained.tokens,
                    "corpus_tokens": blm.corpus_tokens(arm_texts, ctx.tok),
                    "doc_order": hashlib.sha256("\n".join(trained.seen).encode()).hexdigest()[:16],
                    "final_loss": stats["final_loss"],
                    "steps": stats["steps"],
                    "precision": stats.get("precision", ""),
                    "seconds": round(time.perf_counter() - ts + stats.get("member_seconds", 0.0), 1),
                }
            )
            msg = f"benefit {setting}: seed {seed} {name:12s} PPL {ppl:8.2f} acc {correct.mean():.3f}"
            log.info(msg)
            if progress:
                print(msg, flush=True)
    result = summarize(setting, runs, config, realised, ctx.before)
    result.update(
        {
            "items": len(ctx.items),
            "ppl_tokens": ppl_tokens,
            "ppl_on": ctx.ppl_on,
            "unigram_ppl": ctx.unigram,
            "before": ctx.before,
            "format": data.format,
            "overlap": data.overlap,
            "train_texts": len(data.texts),
            "scored_tokens": int(sum(s.n_scored for s in scores)),
            "thresholds": {
                k: {_pct(r): v for r, v in getattr(cal, k).items()} for k in ("rate", "word", "text")
            },
            "seconds": {
                "scoring": round(score_s, 1),
                "editing": round(edit_s, 1),
                "grid": round(grid_s, 1),
                "total": round(time.perf_counter() - t0, 1),
            },
        }
    )
    return result


def run_benefit(
    out_dir: str | Path,
    config: BenefitConfig | None = None,
    progress: bool = True,
    results: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """`toedit experiment benefit`: every setting of `config`; writes benefit.json + benefit.md in
    `out_dir` and, with `results`, the marked section of that markdown page."""
    from ...prior import load_prior

    config = config or BenefitConfig()
    out = prepare(config, out_dir)
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    prior = load_prior(config.model, device=device.type)
    result: dict[str, Any] = {
        "config": asdict(config),
        "settings": {},
        "command": command,
        "device": device.type,
    }
    for setting in config.setting_list():
        res = run_setting(setting, config, prior, progress)
        res["description"] = DESCRIPTIONS[setting]
        result["settings"][setting] = res
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["machine"], result["load"] = machine(), load_average()
        (out / "benefit.json").write_text(json.dumps(result, indent=1) + "\n")
        if results is not None:  # each finished setting is on the page at once
            write_marked(Path(results), "benefit", benefit_markdown(result))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return _write(result, out, results)


def rerender(out_dir: str | Path, results: str | Path | None = None) -> dict[str, Any]:
    """Recompute every summary, table and verdict of a finished benefit.json from its stored runs (no training)."""
    out = Path(out_dir)
    result = json.loads((out / "benefit.json").read_text())
    config = BenefitConfig(**result["config"])
    for setting, res in result["settings"].items():
        res.update(
            summarize(setting, res["runs"], config.for_setting(setting), res["realised"], res.get("before"))
        )
    return _write(result, out, results)


def _write(result: dict[str, Any], out: Path, results: str | Path | None) -> dict[str, Any]:
    """benefit.json and benefit.md in `out`; with `results`, the marked benefit section of that page."""
    md = benefit_markdown(result)
    (out / "benefit.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "benefit.md").write_text(md + "\n")
    if results is not None:
        write_marked(Path(results), "benefit", md)
    return result
