"""A short markdown report of one run: totals, the token-probability table (per round), sample edits.

Every corpus-derived string (document ids, token text, field names, the model name) is escaped, so a corpus
cannot add headings, links, HTML or table cells to the report.
"""

from __future__ import annotations

import html
import re

from .layout import RunDirError
from .rundir import RunDir
from .stats import PROB_BINS, new_stats, rates

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(text: str) -> str:
    """Corpus text made inert in Markdown (and in the HTML it renders to), line breaks shown as ↵."""
    text = html.escape(str(text), quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r", "␍").replace("\n", "↵")


def run_report(run_dir: str, examples: int = 12) -> str:
    """Write RUN_DIR/report.md and return its text."""
    rd = RunDir(run_dir)
    manifest = rd.read_manifest()
    stats = rd.read_stats()
    if manifest is None or stats is None:
        raise RunDirError(f"{rd.root} has no finished run (manifest.json / stats.json missing)")
    damaged = [k for k, v in new_stats().items() if not isinstance(stats.get(k), type(v))]
    if damaged or len(stats["prob_hist"]) != PROB_BINS:
        raise RunDirError(
            f"{rd.stats_path} is damaged ({', '.join(damaged) or 'prob_hist'} missing or of the wrong type); "
            "rerun the run's command to rebuild it"
        )
    edit = (manifest.get("settings") or {}).get("edit") or {}
    r = rates(stats)
    model = manifest.get("model") or {}
    lines = [
        f"# toedit run report: {md_text(rd.root)}",
        "",
        f"- model: {md_text(model.get('name', '?'))} ({md_text(str(model.get('fingerprint', ''))[:24])}...)",
        f"- rule: {_rule(edit)}" if edit else "- scoring run (no edits)",
        f"- documents: {stats['n_records']:,} ({stats['n_empty']:,} empty), bad records: {stats['n_errors']:,}",
        f"- tokens: {stats['n_tokens']:,}, scored: {stats['n_scored']:,}",
        f"- above threshold: {stats['n_above']:,} ({100 * r['above_rate']:.2f} % of scored)",
        f"- really changed: {stats['n_changed']:,} ({100 * r['change_rate']:.3f} %); dropped: {stats['n_dropped']:,}; "
        f"skipped (not a clean character span): {stats['n_skipped_unsafe']:,}",
        f"- changes by kind: {_kinds(stats)}" if stats.get("n_changed") else "- changes by kind: none",
        "",
        "## Token probabilities under the prior (the paper's Table 6 bins)",
        "",
    ]
    rounds = stats.get("rounds") or []
    hists = [stats["prob_hist"]] if not rounds else [rnd["prob_hist"] for rnd in rounds]
    head = (
        "| bin | tokens | share |"
        if not rounds
        else "| bin | " + " | ".join(f"round {i + 1}" for i in range(len(rounds))) + " |"
    )
    lines += [head, "|---|" + "---:|" * (2 if not rounds else len(rounds))]
    totals = [max(sum(h), 1) for h in hists]
    for i in range(PROB_BINS):
        lo, hi = i / PROB_BINS, (i + 1) / PROB_BINS
        bracket = "]" if i == PROB_BINS - 1 else ")"
        if rounds:
            cells = " | ".join(f"{100 * h[i] / t:.1f} %" for h, t in zip(hists, totals, strict=True))
        else:
            cells = f"{hists[0][i]:,} | {100 * hists[0][i] / totals[0]:.1f} %"
        lines.append(f"| [{lo:.1f}, {hi:.1f}{bracket} | {cells} |")
    if rounds:
        lines += [
            "",
            "## Per round",
            "",
            "| round | scored | above threshold | changed |",
            "|---:|---:|---:|---:|",
        ]
        for i, rnd in enumerate(rounds):
            rr = rates(rnd)
            lines.append(
                f"| {i + 1} | {rnd['n_scored']:,} | {rnd['n_above']:,} ({100 * rr['above_rate']:.2f} %) | "
                f"{rnd['n_changed']:,} ({100 * rr['change_rate']:.3f} %) |"
            )
    sample = _sample_edits(rd, examples)
    if sample:
        lines += ["", f"## A sample of edits (first {len(sample)})", "", "| document | p | before | after |"]
        lines.append("|---|---:|---|---|")
        lines += [
            f"| {md_text(doc)} | {p:.4f} | {md_text(old)} | {md_text(new)} |" for doc, p, old, new in sample
        ]
    elif edit:
        lines += ["", "No edit spans recorded (run with --record-spans to keep them)."]
    text = "\n".join(lines) + "\n"
    rd.write_report(text)
    return text


def _kinds(stats: dict) -> str:
    """Whole words / word fragments / whitespace / punctuation among the real changes."""
    total = max(stats.get("n_changed", 0), 1)
    kinds = (
        ("word", "whole words"),
        ("fragment", "word fragments"),
        ("space", "whitespace"),
        ("punct", "punctuation"),
    )
    return ", ".join(
        f"{label} {stats.get(f'n_changed_{key}', 0):,} ({100 * stats.get(f'n_changed_{key}', 0) / total:.0f} %)"
        for key, label in kinds
    )


def _rule(edit: dict) -> str:
    k = "full vocabulary" if edit["top_k"] == 0 else f"top-{edit['top_k']}"
    return (
        f"{md_text(edit['strategy'])}, p > {edit['threshold']}, {k} + original, beta {edit['beta']}, "
        f"seed {edit['seed']}, rounds {edit['rounds']}"
    )


def _sample_edits(rd: RunDir, n: int) -> list[tuple[str, float, str, str]]:
    out: list[tuple[str, float, str, str]] = []
    if not rd.has_spans():
        return out
    for path in rd.scores_files():
        for _, doc, _, spans in rd.iter_spans(path):
            for span in spans:
                out.append((doc, span.p, span.old, span.new))
                if len(out) >= n:
                    return out
    return out
