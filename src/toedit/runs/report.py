"""A short markdown report of one run: totals, the token-probability table, and a sample of real edits."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from .manifest import RunDirError, read_json
from .stats import PROB_BINS, rates


def run_report(run_dir: str, examples: int = 12) -> str:
    """Write RUN_DIR/report.md and return its text."""
    root = Path(run_dir)
    manifest = read_json(root / "manifest.json")
    stats = read_json(root / "stats.json")
    if manifest is None or stats is None:
        raise RunDirError(f"{root} has no finished run (manifest.json / stats.json missing)")
    edit = manifest["settings"].get("edit") or {}
    r = rates(stats)
    lines = [
        f"# toedit run report: `{root}`",
        "",
        f"- model: `{manifest['model']['name']}` ({manifest['model']['fingerprint'][:24]}...)",
        f"- rule: {_rule(edit)}" if edit else "- scoring run (no edits)",
        f"- documents: {stats['n_records']:,} ({stats['n_empty']:,} empty), bad records: {stats['n_errors']:,}",
        f"- tokens: {stats['n_tokens']:,}, scored: {stats['n_scored']:,}",
        f"- above threshold: {stats['n_above']:,} ({100 * r['above_rate']:.2f} % of scored)",
        f"- really changed: {stats['n_changed']:,} ({100 * r['change_rate']:.3f} %); dropped: {stats['n_dropped']:,}; "
        f"skipped (not a clean character span): {stats['n_skipped_unsafe']:,}",
        "",
        "## Token probabilities under the prior (the paper's Table 6 bins)",
        "",
        "| bin | tokens | share |",
        "|---|---:|---:|",
    ]
    total = max(sum(stats["prob_hist"]), 1)
    for i, count in enumerate(stats["prob_hist"]):
        lo, hi = i / PROB_BINS, (i + 1) / PROB_BINS
        bracket = "]" if i == PROB_BINS - 1 else ")"
        lines.append(f"| [{lo:.1f}, {hi:.1f}{bracket} | {count:,} | {100 * count / total:.1f} % |")
    sample = _sample_edits(root, examples)
    if sample:
        lines += ["", f"## A sample of edits (first {len(sample)})", "", "| document | p | before | after |"]
        lines.append("|---|---:|---|---|")
        lines += [f"| {doc} | {p:.4f} | `{_md(old)}` | `{_md(new)}` |" for doc, p, old, new in sample]
    elif edit:
        lines += ["", "No edit spans recorded (run with --record-spans to keep them)."]
    text = "\n".join(lines) + "\n"
    (root / "report.md").write_text(text, encoding="utf-8")
    return text


def _rule(edit: dict) -> str:
    k = "full vocabulary" if edit["top_k"] == 0 else f"top-{edit['top_k']}"
    return (
        f"{edit['strategy']}, p > {edit['threshold']}, {k} + original, beta {edit['beta']}, "
        f"seed {edit['seed']}, rounds {edit['rounds']}"
    )


def _sample_edits(root: Path, n: int) -> list[tuple[str, float, str, str]]:
    from ..audit import scores_spans  # audit imports runs: import here, not at module level

    out: list[tuple[str, float, str, str]] = []
    for path in sorted((root / "scores").glob("*.parquet")):
        if "spans" not in pq.read_schema(path).names:
            return out
        for _, doc, _, spans in scores_spans(path):
            for span in spans:
                out.append((doc, span.p, span.old, span.new))
                if len(out) >= n:
                    return out
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", "\\n").replace("\r", "\\r")
