"""Iterative training on a model's own data (model collapse) vs token-level editing, with tiny LMs.

Round 0 trains on human segments. Round n >= 1 trains, at the same token budget, on
- replace: text sampled from the round n-1 model only (prompted by each human segment's opening; the prompt
  is not part of the training text);
- accumulate: the human segments plus the samples of every earlier round's model;
- toedit: the round n-1 training data edited with the round n-1 model as the prior (edits compound over
  rounds, as in the paper's theory), its threshold recalibrated every round to a target change rate since a
  tiny prior is rarely above p = 0.99;
- toedit_fixed (the paper's practice): the round n-1 training data edited with one fixed prior (the round-0
  model) and one fixed threshold (calibrated once, on the human data, for the target change rate), so the
  edited share is left to decay over rounds;
- human (the control): the human segments again, so drift from re-training alone is measured.
Everything (tokenizer, held-out set, prompts) is shared by the chains; round n of every chain trains with the
same seed, so chains are compared per seed (paired differences).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.ngrams import NgramStats, bucket_entropy
from ..config import EditConfig
from ..pipeline import calibrate_threshold, edit_texts
from ..verdicts import (
    BELOW_CONTROL,
    DRIFTS,
    DRIFTS_LESS,
    Test,
    Verdict,
    collapse_claim,
    family,
    family_note,
    fmt_delta,
    paired_delta,
)
from .collapse_config import COLLAPSE_QUICK, SETTINGS, CollapseConfig  # noqa: F401  (re-exported)
from .common import (
    finished_stamp,
    int_list,
    prepare,
    stored_result,
    unigram_ppl,
    verdict_fields,
)
from .ensemble import Member, train_grid
from .generate import generate_texts, opening_prompts
from .human import load_human, sample, seed_summary, segments, split_heldout
from .tinylm import as_prior, build_tokenizer, evaluate, pack

log = logging.getLogger(__name__)

CONTROL = "human"
TOEDIT_ARMS = ("toedit", "toedit_fixed")
METRICS = {
    "heldout_ppl": "held-out human PPL",
    "own_ppl": "PPL on its own training data",
    "tail_share": "held-out tokens with p < 0.01",
    "ngram_entropy": "training-data n-gram entropy (nats)",
}


def _measure(
    model, tok, train_texts: list[str], heldout: list[str], config: CollapseConfig, seed: int
) -> dict:
    prior = as_prior(model, tok)
    held = evaluate(prior, heldout)
    own = evaluate(prior, sample([(str(i), t) for i, t in enumerate(train_texts)], config.own_docs, seed))
    stats = NgramStats.from_texts(train_texts, track_counts=False)
    return {
        "heldout_ppl": held["ppl"],
        "tail_share": held["tail_share"],
        "own_ppl": own["ppl"],
        "ngram_entropy": bucket_entropy(stats),
        "train_docs": len(train_texts),
    }


def _samples(model, tok, prompts, config: CollapseConfig, seed: int, round_index: int) -> list[str]:
    gen = config.generate_config(seed * 1000 + round_index)
    records = generate_texts(prompts, as_prior(model, tok), gen)
    return [r["text"] for r in records]  # the continuation only (the prompt is human text)


def _train_all(jobs: list[tuple[list[str], int, int]], tok, config: CollapseConfig) -> list[tuple]:
    """(model, stats) per (texts, seed, round) job: the tiny LMs of one round train together (`train_grid`),
    each with the seed and round's own initialisation and data order (`seed * 1000 + round`)."""
    members = []
    for texts, seed, round_index in jobs:
        tc = config.train_config(seed * 1000 + round_index)
        members.append(Member(pack(texts, tok, tc.seq_len), tc))
    return train_grid(members, len(tok))


def _edit_round(setting, data, model, model0, human, tok, config, seed, r, fixed: dict) -> tuple[list, dict]:
    """One ToEdit round of a chain: its data edited by its current model (or the round-0 model with one
    threshold calibrated on the human data, `toedit_fixed`); returns the edited texts and the rates."""
    edit = EditConfig(
        target_change_rate=config.change_rate,
        top_k=config.edit_top_k,
        beta=config.edit_beta,
        seed=seed * 1000 + r,
    )
    prior = as_prior(model, tok)
    extra: dict[str, Any] = {}
    if setting == "toedit_fixed":
        prior = as_prior(model0, tok)  # one prior for every round: the round-0 model
        if seed not in fixed:  # one threshold: calibrated once, on the human data
            fixed[seed] = calibrate_threshold(human, prior, edit).threshold
        edit = EditConfig(threshold=fixed[seed], top_k=edit.top_k, beta=edit.beta, seed=edit.seed)
        extra["threshold"] = fixed[seed]
    results = edit_texts(data, prior, edit, ids=[str(i) for i in range(len(data))])
    scored = sum(res.stats.n_scored for res in results)
    extra = {
        "change_rate": sum(res.stats.n_changed for res in results) / max(scored, 1),
        "selected_rate": sum(res.stats.n_above for res in results) / max(scored, 1),
        **extra,
    }
    return [res.text for res in results], extra


def run_chains(
    human: list[str],
    heldout: list[str],
    prompts,
    tok,
    config: CollapseConfig,
    seeds: list[int],
    progress: bool,
) -> dict[int, dict[str, list[dict]]]:
    """All chains of all seeds, round by round (each round's models train together); per seed and setting,
    one metrics dict per round (round 0 shared by the settings of a seed)."""
    settings = config.setting_list()
    first = _train_all([(human, seed, 0) for seed in seeds], tok, config)
    out: dict[int, dict[str, list[dict]]] = {}
    chains: dict[tuple[int, str], dict[str, Any]] = {}
    for seed, (model0, stats0) in zip(seeds, first, strict=True):
        m0 = {
            "round": 0,
            **_measure(model0, tok, human, heldout, config, seed),
            "final_loss": stats0["final_loss"],
        }
        out[seed] = {setting: [m0] for setting in settings}
        for setting in settings:
            chains[seed, setting] = {"model": model0, "model0": model0, "data": list(human), "synth": []}
    fixed: dict[int, float] = {}
    for r in range(1, config.rounds + 1):
        extras = {}
        for (seed, setting), ch in chains.items():
            extras[seed, setting] = {}
            if setting == "human":
                ch["data"] = list(human)
            elif setting == "replace":
                ch["data"] = _samples(ch["model"], tok, prompts, config, seed, r)
            elif setting == "accumulate":
                ch["synth"] += _samples(ch["model"], tok, prompts, config, seed, r)
                ch["data"] = human + ch["synth"]
            else:
                ch["data"], extras[seed, setting] = _edit_round(
                    setting, ch["data"], ch["model"], ch["model0"], human, tok, config, seed, r, fixed
                )
        trained = _train_all([(ch["data"], seed, r) for (seed, _), ch in chains.items()], tok, config)
        for ((seed, setting), ch), (model, stats) in zip(chains.items(), trained, strict=True):
            ch["model"] = model
            rows = out[seed][setting]
            rows.append(
                {
                    "round": r,
                    **_measure(model, tok, ch["data"], heldout, config, seed),
                    "final_loss": stats["final_loss"],
                    **extras[seed, setting],
                }
            )
            if progress:
                print(
                    f"collapse: seed {seed} {setting:<10} round {r}: held-out PPL {rows[-1]['heldout_ppl']:.2f}",
                    flush=True,
                )
    return out


def run_collapse(
    human: list[str],
    out_dir: str | Path,
    config: CollapseConfig | None = None,
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """`toedit experiment collapse`: replace / accumulate / ToEdit chains; collapse.json, .md and .png.

    With `resume`, a collapse.json of the same configuration and inputs is reused (summary, statement, table
    and plot recomputed from its stored per-seed rounds).
    """
    config = config or CollapseConfig()
    out = prepare(config, out_dir)
    t0 = time.perf_counter()
    stored = (
        stored_result(out / "collapse.json", asdict(config), human, verdict_fields(config))
        if resume
        else None
    )
    if stored is not None:
        per_seed = {int(k): v for k, v in stored["runs"].items()}
        fresh = {**summarize_collapse(per_seed, config), "resumed": True, "config": asdict(config)}
        return _write_collapse({**stored, **fresh}, out)
    train_docs, held_docs = split_heldout(load_human(human), config.heldout_share)
    tok = build_tokenizer(f"bpe:{config.vocab}", [t for _, t in train_docs])
    train_segs = sample(segments(train_docs, tok, config.segment_tokens), config.human_segments, 0)
    held = [t for _, t in sample(segments(held_docs, tok, config.segment_tokens), config.heldout_segments, 0)]
    prompts = opening_prompts(train_segs, tok, config.generate_config(0))
    human_texts = [t for _, t in train_segs]
    per_seed = run_chains(human_texts, held, prompts, tok, config, int_list(config.seeds, "seeds"), progress)
    result = summarize_collapse(per_seed, config)
    result.update(
        {
            "config": asdict(config),
            "corpus": {
                "human_segments": len(human_texts),
                "human_tokens": int((pack(human_texts, tok, config.seq_len) >= 0).sum()),
                "unigram_heldout_ppl": unigram_ppl(pack(human_texts, tok, config.seq_len), held, tok),
                "heldout_segments": len(held),
                "prompts": len(prompts),
                "train_docs": len(train_docs),
                "heldout_docs": len(held_docs),
            },
            "seconds": round(time.perf_counter() - t0, 1),
            "human": list(human),
            "finished": finished_stamp(),
        }
    )
    return _write_collapse(result, out)


def _write_collapse(result: dict[str, Any], out: Path) -> dict[str, Any]:
    result["table"] = collapse_table(result)
    (out / "collapse.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "collapse.md").write_text(result["table"] + "\n\n" + result["statement"] + "\n")
    plot_collapse(result, out / "collapse.png")
    return result


def summarize_collapse(per_seed: dict[int, dict[str, list[dict]]], config: CollapseConfig) -> dict[str, Any]:
    """Mean / s.e. / 95 % CI over seeds for every (setting, round, metric)."""
    seeds = list(per_seed)
    summary: dict[str, list[dict]] = {}
    for setting in config.setting_list():
        summary[setting] = []
        for r in range(config.rounds + 1):
            rows = [per_seed[s][setting][r] for s in seeds]
            keys = [k for k in rows[0] if k not in ("round", "train_docs")]
            summary[setting].append({"round": r, **{k: seed_summary([row[k] for row in rows]) for k in keys}})
    result = {"seeds": seeds, "runs": {str(s): v for s, v in per_seed.items()}, "summary": summary}
    result["config"] = asdict(config)
    result["statement"] = collapse_statement(result, config)
    return result


def final_delta(result: dict[str, Any], a: str, b: str, metric: str = "heldout_ppl", rnd: int = -1) -> dict:
    """Paired difference (a - b) of `metric` at round `rnd` over the seeds (95 % t-interval)."""
    runs = list(result["runs"].values())
    return paired_delta([v[a][rnd][metric] for v in runs], [v[b][rnd][metric] for v in runs])


def collapse_tests(result: dict[str, Any]) -> list[Test]:
    """The collapse family at the last round (paired by seed): every chain - the human control, and replace -
    each ToEdit arm; margin: `ppl_margin` x the control's mean held-out PPL at the last round."""
    s = result["summary"]
    if CONTROL not in s:
        return []
    ref = s[CONTROL][-1]["heldout_ppl"]["mean"]
    frac = result.get("config", {}).get("ppl_margin", 0.02)
    margin = frac * ref
    why = f"{100 * frac:g} % of the human control's {ref:.1f}; the paper calls a 3.4 % change 'barely moves'"
    n = len(s[CONTROL]) - 1
    tests = [
        Test(
            f"{arm} - {CONTROL}, held-out PPL at round {n}",
            final_delta(result, arm, CONTROL),
            margin,
            why,
            words=(DRIFTS, BELOW_CONTROL),
            digits=3,
        )
        for arm in s
        if arm != CONTROL
    ]
    if "replace" in s:
        tests += [
            Test(
                f"replace - {arm}, held-out PPL at round {n}",
                final_delta(result, "replace", arm),
                margin,
                why,
                words=(DRIFTS_LESS, "drifts more than replace"),
                digits=3,
            )
            for arm in TOEDIT_ARMS
            if arm in s
        ]
    return tests


def collapse_family(result: dict[str, Any]) -> str:
    """The section's family sentence (primary endpoint: the paper's practice, toedit_fixed - human)."""
    tests = collapse_tests(result)
    if not tests:
        return ""
    names = [t.name for t in tests]
    primary = next((x for x in names if x.startswith("toedit_fixed - ")), names[0])
    return family_note("collapse", tests, primary)


def collapse_verdicts(result: dict[str, Any]) -> dict[str, Verdict]:
    """Per chain, its drift against the human control at the last round; "replace-<arm>": replace against each
    ToEdit arm; "claim_<arm>": the paper's "own samples collapse, ToEdit does not" (`collapse_claim`).
    All tests Holm-adjusted within the collapse family (`collapse_tests`)."""
    tests = collapse_tests(result)
    if not tests:
        return {}
    judged = family(tests)
    out = {}
    for t in tests:
        a, b = t.name.split(",")[0].split(" - ")
        out[a if b == CONTROL else f"{a}-{b}"] = judged[t.name]
    if "replace" in out:
        for arm in TOEDIT_ARMS:
            if arm in out:
                out[f"claim_{arm}"] = collapse_claim(out["replace"], out[arm], out[f"replace-{arm}"], arm)
    return out


def collapse_statement(result: dict[str, Any], config: CollapseConfig) -> str:
    s = result["summary"]
    n = config.rounds
    parts = []
    for setting in s:
        a, b = s[setting][0]["heldout_ppl"], s[setting][-1]["heldout_ppl"]
        parts.append(f"{setting}: {a['mean']:.2f} -> {b['mean']:.2f} ± {b['ci95']:.2f}")
    text = (
        f"Held-out human PPL, round 0 -> round {n} (mean ± 95 % CI over {len(result['seeds'])} seeds): "
        + "; ".join(parts)
        + "."
    )
    v = collapse_verdicts(result)
    for arm, verdict in v.items():
        if not arm.startswith("claim_"):
            what = f"{arm} against the human control" if "-" not in arm else arm.replace("-", " against ")
            text += f" {what} at round {n}: {verdict.bold}."
    family_text = collapse_family(result)
    if family_text:
        text += " " + family_text
    for arm in TOEDIT_ARMS:
        if arm in s:
            rates = [row["change_rate"]["mean"] for row in s[arm][1:]]
            text += (
                f" {arm} really changed {100 * rates[0]:.2f} % of tokens in round 1 and "
                f"{100 * rates[-1]:.2f} % in round {n}."
            )
    return text


def collapse_table(result: dict[str, Any]) -> str:
    s = result["summary"]
    settings = list(s)
    lines = []
    for metric, label in METRICS.items():
        lines.append(f"**{label}** (mean ± 95 % CI over seeds)\n")
        lines.append("| round | " + " | ".join(settings) + " |")
        lines.append("|---:|" + "---:|" * len(settings))
        fmt = (
            (lambda v: f"{100 * v:.2f} %")
            if metric == "tail_share"
            else (lambda v: f"{v:.3f}" if v < 20 else f"{v:.1f}")
        )
        for r in range(len(s[settings[0]])):
            cells = []
            for st in settings:
                m = s[st][r][metric]
                ci = (100 * m["ci95"]) if metric == "tail_share" else m["ci95"]
                cells.append(f"{fmt(m['mean'])} ± {ci:.2f}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append("")
    if CONTROL in s and len(result["runs"]):
        arms = [a for a in settings if a != CONTROL]
        lines.append(
            "**Δ held-out human PPL against the human control** (paired by seed: mean [95 % t-interval])\n"
        )
        lines.append("| round | " + " | ".join(f"{a} - {CONTROL}" for a in arms) + " |")
        lines.append("|---:|" + "---:|" * len(arms))
        for r in range(1, len(s[settings[0]])):
            cells = [fmt_delta(final_delta(result, a, CONTROL, rnd=r), 1) for a in arms]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append("")
    arms = [a for a in TOEDIT_ARMS if a in s]
    if arms:
        lines.append("**ToEdit edit rates per round** (share of scored tokens, mean over seeds)\n")
        lines.append("| round | " + " | ".join(f"{a}: selected | {a}: really changed" for a in arms) + " |")
        lines.append("|---:|" + "---:|---:|" * len(arms))
        for r in range(1, len(s[arms[0]])):
            cells = []
            for a in arms:
                row = s[a][r]
                cells += [
                    f"{100 * row['selected_rate']['mean']:.2f} %",
                    f"{100 * row['change_rate']['mean']:.2f} %",
                ]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_collapse(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (metric, label) in zip(axes.flat, METRICS.items(), strict=True):
        for setting, rows in s.items():
            x = [row["round"] for row in rows]
            m = np.array([row[metric]["mean"] for row in rows])
            ci = np.nan_to_num(np.array([row[metric]["ci95"] for row in rows]))
            ax.plot(x, m, marker="o", label=setting)
            ax.fill_between(x, m - ci, m + ci, alpha=0.2)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Collapse chains of tiny LMs (bands: 95 % CI over {len(result['seeds'])} seeds)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
