"""`toedit experiment all`: theory + mixing + collapse in one go, written up as docs/RESULTS.md with figures."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ..io import InputError
from ..theory.claims import theory_verdicts
from ..theory.scope import scope_markdown
from ..verdicts import fmt_delta
from .collapse import COLLAPSE_QUICK, CollapseConfig, collapse_verdicts, final_delta, run_collapse
from .common import load_average as _load
from .common import machine as _machine
from .common import marked_block, preset, stored_result, verdict_fields, write_marked
from .editrounds import (
    EDITROUNDS_QUICK,
    EditRoundsConfig,
    editrounds_statement,
    editrounds_table,
    editrounds_verdicts,
    run_edit_rounds,
    run_label,
)
from .mix import MIX_QUICK, MixConfig, run_mix
from .mixclaims import claim_row, mix_claims, mix_family, mix_family_note

# the theory's margins (increment_margin, bound_margin, in u) are set here, before the run, like the others
THEORY = dict(
    d=10,
    T=50,
    sigma=1.0,
    generations=12,
    trials=2000,
    fraction=0.3,
    eta=0.8,
    seed=0,
    last=3,
    increment_margin=0.01,
    bound_margin=0.05,
)


def run_all(
    human: list[str],
    out_dir: str | Path = "runs/experiments",
    quick: bool = False,
    results: str | Path | None = "docs/RESULTS.md",
    seeds: str | None = None,
    threads: int = 0,
    command: str | None = None,
    progress: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
    resume: bool = True,
    prior: Any = None,
) -> dict[str, Any]:
    """Run theory, mix and collapse (quick or full setting) into `out_dir`; write `results` + its figures.

    `overrides` = {"mix": {...}, "collapse": {...}, "theory": {...}, "editrounds": {...}} replaces single
    settings (tests); `prior` is the prior of the edit-rounds part (default: `editrounds.model`).
    With `resume`, mix and collapse results already in `out_dir` for the same configuration are reused (their
    statements, tables and plots are recomputed); the theory (seconds) always reruns.
    """
    from ..theory import run_theory

    for path in human:
        if not Path(path).exists():
            raise InputError(
                f"{path} not found: fetch the human corpus first (`toedit corpus austen -o {path}`)"
            )
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    over = {"seeds": seeds} if seeds else {}
    overrides = overrides or {}
    mix_cfg = preset(MixConfig, quick, MIX_QUICK, **{"threads": threads, **over, **overrides.get("mix", {})})
    col_cfg = preset(
        CollapseConfig, quick, COLLAPSE_QUICK, **{"threads": threads, **over, **overrides.get("collapse", {})}
    )
    er_cfg = preset(EditRoundsConfig, quick, EDITROUNDS_QUICK, **overrides.get("editrounds", {}))
    theory_params = {**THEORY, **overrides.get("theory", {})}
    started = datetime.now(UTC)
    load_before = _load()
    t0 = time.perf_counter()
    theory = run_theory(**theory_params, out_dir=out / "theory")
    t_theory = time.perf_counter() - t0
    mix = run_mix(human, out / "mix", mix_cfg, progress=progress, resume=resume)
    # control: the same pools, one pass over the smaller one, so no row is ever repeated at any share
    once_cfg = replace(mix_cfg, tokens=0, epochs=1.0, synthetic=mix["corpus"]["synthetic_path"])
    mix_once = run_mix(human, out / "mix_once", once_cfg, progress=progress, resume=resume)
    t_mix = time.perf_counter() - t0 - t_theory
    collapse = run_collapse(human, out / "collapse", col_cfg, progress=progress, resume=resume)
    t1 = time.perf_counter()
    stored = out / "editrounds" / "editrounds.json"
    editrounds = stored_result(stored, asdict(er_cfg), human, verdict_fields(er_cfg)) if resume else None
    if editrounds is None:
        editrounds = run_edit_rounds(human, out / "editrounds", er_cfg, prior=prior)
    else:  # the table and the verdicts are recomputed from the stored per-round counts
        editrounds.update(resumed=True, config=asdict(er_cfg), table=editrounds_table(editrounds))
        editrounds["statement"] = editrounds_statement(editrounds)
    t_editrounds = time.perf_counter() - t1 if not editrounds.get("resumed") else editrounds["seconds"]
    resumed = [
        name
        for name, r in (
            ("mix", mix),
            ("mix control", mix_once),
            ("collapse", collapse),
            ("edit rounds", editrounds),
        )
        if r.get("resumed")
    ]
    # wall time as recorded when each part was computed (a resumed part took no time now)
    t_mix = mix["seconds"]["total"] + mix_once["seconds"]["total"]
    t_collapse = collapse["seconds"]
    total = t_theory + t_mix + t_collapse + t_editrounds
    info = {
        "command": command or f"toedit experiment all{' --quick' if quick else ''} -o {out}",
        "setting": "quick" if quick else "full",
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "load": f"{load_before} before, {_load()} after (1/5/15-minute load averages)",
        "seconds": {
            "theory": t_theory,
            "mix": t_mix,
            "collapse": t_collapse,
            "editrounds": t_editrounds,
            "total": total,
        },
        "human": human,
        "theory": theory_params,
        "resumed": resumed,
        "out": str(out),
        "finished": {"mix": mix.get("finished"), "collapse": collapse.get("finished")},
    }
    if results is not None:
        write_results(Path(results), info, theory, mix, mix_once, collapse, out, editrounds)
    return {
        "info": info,
        "theory": theory,
        "mix": mix,
        "mix_once": mix_once,
        "collapse": collapse,
        "editrounds": editrounds,
    }


def _figure(src: Path, docs: Path, name: str) -> str:
    dest = docs / name
    shutil.copyfile(src, dest)
    return name


def claims(
    theory: dict[str, Any],
    mix: dict[str, Any],
    collapse: dict[str, Any],
    mix_once: dict[str, Any] | None = None,
    editrounds: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """One row per paper claim: the claim, the paper's numbers, ours, the verdict word and its rule.

    Every verdict comes from a rule of `toedit.verdicts` applied to the results' numbers, Holm-adjusted
    within its section's family.
    """
    mv = mix_family(mix, mix_once)
    rows = mix_claims(mix, mv)
    if mix_once is not None:
        rows += mix_claims(mix_once, mv)
    cv = collapse_verdicts(collapse)
    s = collapse["summary"]
    n = len(next(iter(s.values()))) - 1
    for arm in ("toedit", "toedit_fixed"):
        if f"claim_{arm}" in cv:

            def here(a: str) -> str:
                return f"{a} {s[a][-1]['heldout_ppl']['mean']:.0f}"

            rows.append(
                claim_row(
                    f"training on own samples collapses, ToEdit does not ({arm}, round {n} vs the human control)",
                    "yes",
                    "held-out PPL at round 0: "
                    f"{s['replace'][0]['heldout_ppl']['mean']:.0f}; at round {n}: "
                    + ", ".join(here(a) for a in s)
                    + f"; paired: replace - human {fmt_delta(final_delta(collapse, 'replace', 'human'), 1)}, "
                    f"{arm} - human {fmt_delta(final_delta(collapse, arm, 'human'), 1)}",
                    cv[f"claim_{arm}"],
                )
            )
    tv = theory_verdicts(theory)
    st = theory["settings"]
    gens = len(st["replace"]["mc_mean"])
    for name, verdict in tv.items():
        if name == "bound_2u":
            disjoint = next(k for k in st if "disjoint" in k)
            scope = theory.get("scope", {}).get("where", {})
            where = "; ".join(
                f"{k}: holds up to {w['last_holds']}" for k, w in scope.items() if w["last_holds"]
            )
            rows.append(
                claim_row(
                    "theory: Theorem 2's bound E <= 2u (disjoint masks, the theorem's hypothesis)",
                    "E <= 2u at every generation",
                    f"{st[disjoint]['mc_mean'][-1]:.2f} ± {1.96 * st[disjoint]['mc_stderr'][-1]:.2f} u at generation "
                    f"{gens} with {100 * theory['params']['fraction']:g} % of rows decaying x{theory['params']['eta']:g} "
                    f"({100 * st[disjoint].get('rows_ever_edited', 1):.0f} % of rows edited)"
                    + (f"; scope (exact oracle): {where}" if where else ""),
                    verdict,
                )
            )
        else:
            rows.append(
                claim_row(
                    f"theory: {name} keeps the error bounded far below replace",
                    "yes",
                    f"{st[name]['mc_mean'][-1]:.2f} u vs replace {st['replace']['mc_mean'][-1]:.2f} u at generation "
                    f"{gens}",
                    verdict,
                )
            )
    if editrounds is not None:
        ev = editrounds_verdicts(editrounds)
        for name, run in editrounds["runs"].items():
            r = run["rounds"]
            rows.append(
                claim_row(
                    f"Table 15: the share above the threshold falls over editing rounds ({run_label(name, run)})",
                    " -> ".join(f"{x:.2f}" for x in editrounds["paper"]) + " % above 0.99",
                    " -> ".join(f"{x['above_pct']:.2f}" for x in r) + " %",
                    ev[name],
                )
            )
    return rows


def findings(
    theory: dict[str, Any],
    mix: dict[str, Any],
    collapse: dict[str, Any],
    mix_once: dict[str, Any] | None = None,
    editrounds: dict[str, Any] | None = None,
) -> list[str]:
    """One line per paper claim (`claims`), verdict in bold with its rule."""
    return [
        f"- {c['claim']} (paper: {c['paper']}): **{c['verdict']}** ({c['rule']}). Here: {c['here']}."
        for c in claims(theory, mix, collapse, mix_once, editrounds)
    ]


def claims_table(rows: list[dict[str, str]]) -> str:
    """The claims as a markdown table."""
    lines = ["| paper claim | paper | here | verdict (rule) |", "|---|---|---|---|"]
    for c in rows:
        lines.append(f"| {c['claim']} | {c['paper']} | {c['here']} | **{c['verdict']}** ({c['rule']}) |")
    return "\n".join(lines)


def write_results(
    path: Path,
    info: dict,
    theory: dict[str, Any],
    mix: dict[str, Any],
    mix_once: dict[str, Any],
    collapse: dict[str, Any],
    out: Path,
    editrounds: dict[str, Any],
) -> None:
    docs = path.parent
    docs.mkdir(parents=True, exist_ok=True)
    f_theory = _figure(out / "theory" / "theory.png", docs, "exp_theory.png")
    f_mix = _figure(out / "mix" / "mix.png", docs, "exp_mix.png")
    f_once = _figure(out / "mix_once" / "mix.png", docs, "exp_mix_once.png")
    f_col = _figure(out / "collapse" / "collapse.png", docs, "exp_collapse.png")
    sec = info["seconds"]
    th = info["theory"]
    mc, cc = mix["config"], collapse["config"]
    corpus = mix["corpus"]
    text = f"""# Experiment results ({info["setting"]} setting)

Generated by `{info["command"]}` on {info["started"]} (machine: {info["machine"]}; load {info["load"]}).
Compute time: {sec["total"] / 60:.1f} min (theory {sec["theory"]:.0f} s, mixing {sec["mix"] / 60:.1f} min, collapse
{sec["collapse"] / 60:.1f} min, edit rounds {sec["editrounds"] / 60:.1f} min){_resumed(info)}. Every number below is computed by that command; rerun it to
regenerate this page (with `--no-resume` to recompute everything).
Human corpus: {", ".join(info["human"])} (Jane Austen, one chapter per document); held-out chapters are chosen
by the hash of their id ({mc["heldout_share"]:.0%} of chapters) and never trained on.

## Findings

Every verdict below is computed from the numbers by the rule printed beside it (`toedit.verdicts`; the rules:
[verdicts.md](verdicts.md)). Runs that share a seed are compared per seed (paired differences, 95 %
t-intervals). Four outcomes: the claim holds, the opposite holds (Holm-adjusted p < 0.05 within the section's
family of tests), *no effect* (the family-level interval lies inside the margin of no effect printed beside
it, fixed in the configuration before the run) or *inconclusive* (neither: the interval reaches beyond the
margin), the last two with the minimum detectable effect at 80 % power beside the paper's effect.

{claims_table(claims(theory, mix, collapse, mix_once, editrounds))}

Training budgets against the unigram level (an add-one unigram model of the training tokens, scored on the
held-out segments; below it, a model has learnt more than word frequencies): {_unigram(mix, mix_once, collapse)}

## 1. Theory: linear-regression collapse chains

`toedit theory` with d = {th["d"]}, T = {th["T"]}, sigma = {th["sigma"]}, {th["trials"]} Monte Carlo
trials per point, {th["generations"]} generations, edited share {th["fraction"]} decaying x{th["eta"]}
per round ({theory["seconds"]:.1f} s). Errors in units of u = sigma^2 d / (T - d - 1).

{theory["table"]}

{theory["statement"]}

![theory]({f_theory})

### Theorem 2's scope

The plateau error of edit chains with disjoint masks (the theorem's hypothesis) against the share of rows edited
in all, per schedule: exact covariance oracle averaged over {theory["scope"]["trials"]} trials' designs and masks
(same d, T, sigma and generations). A schedule that asks for more rows than remain is marked.

{scope_markdown(theory["scope"])}

## 2. Synthetic share in pre-training (`toedit experiment mix`)

A tiny Llama ({mix["params"]:,} parameters: hidden {mc["hidden"]}, {mc["layers"]} layers, tied embeddings,
BPE of {mc["vocab"]} tokens trained on both pools, so a token budget holds as much text from either) is trained from scratch on
{mix["train_tokens_per_run"]:,} tokens per run (sequence {mc["seq_len"]}, batch {mc["batch_size"]}, AdamW lr {mc["lr"]}, warm-up + cosine) for
each synthetic share {mc["shares"]} % and seed {mc["seeds"]}. Human pool: {corpus["human_segments"]} segments of
{mc["segment_tokens"]} prior tokens from {corpus["train_docs"]} training chapters ({corpus["human_train_tokens"]:,}
tiny-LM tokens, {corpus.get("human_train_chars", 0):,} characters); synthetic pool: for each human segment, the
embedded prior ({mc["model"]}) continues its first {mc["prompt_tokens"]} tokens for as many tokens as the rest of
the segment (temperature {mc["temperature"]}, top-p {mc["top_p"]}, top-k {mc["top_k"] or "off"};
{corpus["synthetic_train_tokens"]:,} tiny-LM tokens, {corpus.get("synthetic_train_chars", 0):,} characters); the
prompts are dropped from both pools. The last column of each table gives the text each run saw. Δ columns: per
seed, the run at that share minus the run at 0 % (same seed), mean and 95 % t-interval. Held-out: {corpus["heldout_segments"]} segments ({corpus["heldout_tokens"]:,} tokens) of
{corpus["heldout_docs"]} held-out chapters. Pools smaller than the budget are cycled (epochs in `mix.json`).

{mix_family_note(mix, mix_once)}

### {mix["epochs_label"]}

{mix["table"]}

{mix["statement"]}

![mix]({f_mix})

### Control: {mix_once["epochs_label"]}

The same pools and seeds, {mix_once["train_tokens_per_run"]:,} tokens per run: no training row is repeated at any
share, so the mixtures do not see more distinct text than the pure runs (with a budget of several passes, the
0 % run repeats its human rows while a mixture sees two pools).

{mix_once["table"]}

{mix_once["statement"]}

![mix, one pass]({f_once})

## 3. Collapse chains (`toedit experiment collapse`)

{collapse["config"]["rounds"]} generations after a round-0 model trained on {collapse["corpus"]["human_segments"]} human
segments of {cc["segment_tokens"]} tiny-LM tokens ({collapse["corpus"]["human_tokens"]:,} tokens); every model:
hidden {cc["hidden"]}, {cc["layers"]} layers, {cc["tokens"]:,} training tokens, seeds {cc["seeds"]} (round n of every
chain trains with the same seed, so chains are compared per seed).
*human* (the control): the human segments again each round, so drift from re-training alone shows;
*replace*: generation n trains only on samples of generation n-1 (prompted by the first {cc["prompt_tokens"]} tokens
of each human segment, length-matched, prompts dropped; temperature {cc["temperature"]}, top-p {cc["top_p"]});
*accumulate* (where listed): human data plus every earlier generation's samples, same token budget; *toedit*: the previous
round's training data edited with generation n-1 as the prior (top-{cc["edit_top_k"]}, beta {cc["edit_beta"]},
threshold recalibrated every round for a {100 * cc["change_rate"]:.1f} % target change rate, since a tiny prior is
almost never above p = 0.99); *toedit_fixed* (the paper's practice): the previous round's data edited with one
fixed prior (the round-0 model) and one fixed threshold (calibrated once on the human data for the same target
rate), so the edited share decays. Tail share: held-out tokens to which the model gives p < 0.01. n-gram entropy:
hashed unigram + bigram buckets (DSIR featurizer) of the training data.

{collapse["table"]}

{collapse["statement"]}

![collapse]({f_col})

## 4. Editing rounds on a real corpus: the paper's Table 15

`toedit.pipeline.edit_texts(texts, prior, EditConfig(rounds={editrounds["config"]["rounds"]}))` on
{editrounds["documents"]} Austen chapters (a seeded sample) with the embedded prior ({editrounds["prior"]}), top-{editrounds["config"]["top_k"]},
beta {editrounds["config"]["beta"]}: each round re-scores the previous round's output with the same prior and
threshold. Once at the paper's p = {editrounds["config"]["threshold"]} and once at a threshold calibrated on the
round-0 text for a {100 * editrounds["config"]["selected_rate"]:.1f} % selected share (the paper's round-1 share),
then kept fixed ({editrounds["seconds"]:.0f} s).

{editrounds["table"]}

{editrounds["statement"]}

## Settings and how to rerun

- Quick (this page when it says "quick"): `toedit experiment all --quick`; mix overrides {MIX_QUICK},
  collapse overrides {COLLAPSE_QUICK}.
- Full: `toedit experiment all` (the defaults of `toedit experiment mix` / `collapse`; hours on 2 CPU cores, not
  run for this page unless it says "full"): mix {_full(MixConfig, MIX_QUICK)}; collapse
  {_full(CollapseConfig, COLLAPSE_QUICK)}; edit rounds {_full(EditRoundsConfig, EDITROUNDS_QUICK)}.
- Raw numbers: `{out}/theory/theory.json`, `{out}/mix/mix.json` (every run), `{out}/collapse/collapse.json`
  (every seed and round), `{out}/editrounds/editrounds.json` (every document and round); the synthetic corpus:
  `{corpus["synthetic_path"]}`.

Mix configuration: `{asdict_short(mc)}`

Collapse configuration: `{asdict_short(cc)}`

Edit-rounds configuration: `{asdict_short(editrounds["config"])}`
"""
    block = marked_block(path, "benefit")
    path.write_text(text)
    if block is not None:  # `experiment benefit` owns its marked section: keep it
        write_marked(path, "benefit", block)


def _full(cls: type, quick: dict[str, Any]) -> str:
    """The full setting's values of the keys the quick preset overrides."""
    full = asdict(cls())
    return "{" + ", ".join(f"{k}={full[k]}" for k in quick) + "}"


def _unigram(mix: dict[str, Any], mix_once: dict[str, Any], collapse: dict[str, Any]) -> str:
    """The lowest mean held-out PPL each experiment reached, beside its unigram level."""
    parts = []
    for name, res in (("mixing", mix), ("mixing, one pass", mix_once)):
        uni = res["corpus"].get("unigram_heldout_ppl")
        best = min(p["heldout_ppl"]["mean"] for p in res["per_share"])
        if uni:
            parts.append(f"{name}: lowest mean held-out PPL {best:.1f} vs unigram {uni:.1f}")
    uni = collapse["corpus"].get("unigram_heldout_ppl")
    if uni:
        r0 = collapse["summary"][next(iter(collapse["summary"]))][0]["heldout_ppl"]["mean"]
        parts.append(f"collapse round 0: {r0:.1f} vs unigram {uni:.1f}")
    return "; ".join(parts) + "."


def _resumed(info: dict[str, Any]) -> str:
    if not info["resumed"]:
        return ""
    done = ", ".join(f"{k} {v}" for k, v in info["finished"].items() if v)
    return (
        f"; reused from `{info['out']}`: {', '.join(info['resumed'])}"
        + (f" (finished {done})" if done else "")
        + ", with statements, tables and figures recomputed from the stored runs"
    )


def asdict_short(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


__all__ = ["findings", "run_all", "write_results"]
