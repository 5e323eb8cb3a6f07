"""The benefit section of the results page: per setting the declared family and primary endpoint, each arm's
Δ with its Holm-adjusted verdict, the minimum detectable effect beside the paper's effect, each arm's kinds of
change, the format and overlap checks, and whether cpt/sft moved the prior (`stats.moved`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..common import load_average, machine

PAPER = {
    "pretrain": "OLMo-1B from scratch on 6B Dolma tokens: average accuracy over 8 tasks 32.75 (human) -> "
    "33.11 (edited); single runs, no error bars.",
    "cpt": "Continual pre-training, average domain accuracy, human -> edited: biomed OLMo-1B 38.83 -> 40.89, "
    "Llama-3-8B 56.04 -> 56.48; finance 47.92 -> 50.21, 71.40 -> 72.24; math 16.26 -> 16.59; single runs.",
    "sft": "SFT of Llama-3-8B (LoRA), response-only editing, human -> edited: Natural Instructions 69.34 -> "
    "69.70, CoT 69.01 -> 69.26, FLAN v2 70.18 -> 70.65, Open Assistant 69.19 -> 69.44, OSS-Instruct 45.76 "
    "-> 46.13, Evol-Instruct 46.62 -> 46.92; single runs.",
}


def _fmt(x: float, digits: int) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def setting_markdown(res: dict[str, Any]) -> str:
    s = res["setting"]
    title = TITLES[s]
    h = next(a for a in res["arms"] if a["arm"] == "H")
    lines = [
        f"### {title} ({len(res['seeds'])} seeds)",
        "",
        f"{res['description']}",
        "",
        f"Primary endpoint (declared in the configuration): **{res.get('primary', 'E - H, acc')}**. "
        + (
            f"Did H move the prior? **{res['moved']['word']}** ({res['moved']['rule']})."
            if res.get("moved")
            else ""
        ),
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
                _verdict(dp),
                acc,
                f"{100 * da['mean']:+.2f} ± {_fmt(100 * da['half'], 2)}",
                _verdict(da),
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
        _kinds_line(res),
        _format_line(res),
        f"- Training per run: {', '.join(f'{t:,}' for t in toks)} tokens{_precision(res)} "
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
        "from the same forward pass. Training and held-out texts share one format (`data.normalise_text`), "
        "so a PPL change cannot come from editing the layout towards the evaluation's.",
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


def _verdict(d: dict[str, Any]) -> str:
    word = d.get("verdict", "undecided")
    return f"{word} (exploratory)" if d.get("exploratory") else word


def _kinds_line(res: dict[str, Any]) -> str:
    """Counts of each kind of change per arm (pooled over seeds) and R's shortfall against its reference."""
    parts = []
    for a in res["arms"]:
        if a["arm"] == "H" or "kind_counts" not in a:
            continue
        c = a["kind_counts"]
        text = f"{a['arm']} {c['word']:,} / {c['fragment']:,} / {c['space']:,} / {c['punct']:,}"
        if a.get("shortfall"):
            short = a["shortfall"]
            text += (
                f" (matched per document to its reference's kinds; shortfall {sum(short.values()):,}: "
                + ", ".join(f"{k} {v:,}" for k, v in short.items() if v)
                + ")"
                if any(short.values())
                else " (matched per document to its reference's kinds, no shortfall)"
            )
        parts.append(text)
    return (
        "- Changes by kind, whole word / fragment / whitespace / punctuation, all seeds: "
        + "; ".join(parts)
        + "."
    )


def _format_line(res: dict[str, Any]) -> str:
    f, o = res.get("format"), res.get("overlap")
    if not f:
        return "- Format: not recorded."
    tr, he = f["train"], f["heldout"]
    text = (
        f"- Format before editing (training / held-out): newlines per word {tr['newlines_per_word']:.4f} / "
        f"{he['newlines_per_word']:.4f}, line wraps inside paragraphs per word {tr['wraps_per_word']:.4f} / "
        f"{he['wraps_per_word']:.4f}, double spaces per 100 words {tr['double_spaces_per_100_words']:.3f} / "
        f"{he['double_spaces_per_100_words']:.3f}."
    )
    if o:
        text += (
            f" Held-out {o['unit']} occurring verbatim in training: {o['verbatim']:,} of {o['sentences']:,} "
            f"({100 * o['share']:.1f} %), {o['removed']:,} removed before the items were drawn."
        )
    return text


VERDICT_RULE = (
    "per metric, Δ(arm − H) paired by seed with its 95 % t-interval; Holm-adjusted p < 0.05 within the "
    "setting's family -> improves / harms by the better or worse side; otherwise no effect when the family-level "
    "interval lies inside the margin, else inconclusive (docs/verdicts.md). The item bootstrap (items "
    "resampled, accuracy averaged over seeds) is reported beside it, not used for the verdict."
)
PAPER_EFFECT = (
    "accuracy +0.36 points in pre-training, +0.33 to +2.29 in continual pre-training, +0.25 to +0.47 in SFT"
)

TITLES = {"pretrain": "Pre-training from scratch", "cpt": "Continual pre-training", "sft": "SFT"}
DESCRIPTIONS = {
    "pretrain": "A tiny Llama from scratch on Austen novels (one held out entirely: the test is out of "
    "distribution), one BPE tokenizer trained on the human training texts and shared by all arms. Items: "
    "LAMBADA-style last word of a held-out sentence given the text before it, against 3 words of the held-out "
    "text nearest to it in frequency rank (sum of log-probs; a model that knows only word frequencies is at "
    "25 %).",
    "cpt": "The prior (SmolLM2-135M) continually trained on the Python documentation (`pydoc_data.topics`; "
    "20 % of topics held out by name hash): its top decoder layers + final norm train (float32 weights), the "
    "rest is frozen and runs in the prior's own dtype (full fine-tuning of the 135M prior is too slow on 2 CPU "
    "cores for the quick setting); every model is evaluated through the prior's LM head as scoring computes it. "
    "Items: last word of held-out sentences against 3 frequency-matched words of the held-out topics.",
    "sft": "The prior fine-tuned on human conversations (chitchat-dataset; 10 % of conversations held out): "
    "context = the previous turns, loss and edits on the reply only; top decoder layers train (as in cpt). Items: the "
    "true next reply against 3 replies from other held-out conversations (mean log-prob per token).",
}


def _precision(res: dict[str, Any]) -> str:
    """ ", matmuls in bfloat16 (float32 weights)" from the runs' recorded precision (older results: "")."""
    kinds = sorted({r.get("precision") or "" for r in res["runs"]} - {""})
    if not kinds:
        return ""
    return f", matmuls in {' / '.join(kinds)}" + (" (float32 weights)" if "bfloat16" in kinds else "")


def benefit_markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Does editing help? (`toedit experiment benefit`)",
        "",
        f"Command: `{result.get('command') or 'toedit experiment benefit'}`; {result['seconds'] / 60:.1f} min on "
        f"{result.get('machine') or machine()}, load average at the end {result.get('load') or load_average()}.",
        "",
        "Arms: H = human data; E = the paper's rule (p > 0.99, top-8, beta 1.5); E-rate@r = threshold "
        "calibrated to a change rate r; E-word@r = the same rate with word boundaries (whole words replaced by "
        "whole words); E-text@r = E-rate@r leaving whitespace-only tokens alone (editing words, not "
        "layout); R@r = random scored positions with, per document, as many whole-word / fragment / whitespace / "
        "punctuation changes as E-rate@r (top-k minus the original). All arms come from one scoring pass of the prior; per seed "
        "every arm has the same documents, order, token budget and initialisation, and the edits are redrawn "
        "per seed.",
        "",
    ]
    for res in result["settings"].values():
        lines += [setting_markdown(res), ""]
    return "\n".join(lines).rstrip()
