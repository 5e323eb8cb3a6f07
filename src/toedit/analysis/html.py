"""The self-contained report.html: tables of every number, figures as base64 data URIs, all text escaped.

No script, no external resource: the page reads the same from a file, offline, in any browser.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from .ngrams import CONCENTRATION_KEYS

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #eee}
pre{white-space:pre-wrap;background:#f8f8f8;padding:.6em;border:1px solid #eee;max-height:14em;overflow:auto}
table.find td{vertical-align:top}table.find td.s{font-weight:600;white-space:nowrap}.muted{color:#777}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _n(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 or abs(x) >= 1e5 else f"{x:.{digits}f}"
    return _e(x)


def _table(head: list[str], rows: list[list[Any]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(head))
    body = []
    for r in rows:
        tds = "".join(
            f'<td class="{"l" if i < left else ""}">{_e(v) if i < left else _n(v)}</td>'
            for i, v in enumerate(r)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with the findings' inline Markdown (**bold**, `code`) as HTML tags."""
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", _e(text)))


def _split_top(text: str, sep: str = "; ") -> list[str]:
    """`text` split at `sep` outside parentheses and brackets (the rules in parentheses stay whole)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch in "([") - (ch in ")]" and depth > 0)
        if depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    return [p for p in (*parts, text[start:]) if p.strip()]


def finding_rows(findings: list[str], labels: list[str], ref: str) -> list[tuple[str, list[str]]]:
    """Each finding as (subject, its statements): the subject is the corpus or corpus pair the finding opens
    with (matched against the labels, so a label may hold any character), the statements its `; ` parts."""
    subjects = [f"Token probabilities of '{la}'" for la in labels] + [f"'{la}' vs '{ref}'" for la in labels]
    rows = []
    for text in findings:
        subject = next((s for s in subjects if text.startswith(s + ": ")), "")
        body = text[len(subject) + 2 :] if subject else text
        rows.append((subject, [p.strip().removesuffix(".") for p in _split_top(body)]))
    return rows


def _findings(findings: list[str], labels: list[str], ref: str) -> str:
    """The findings as a table: one row per statement, verdict words in bold."""
    rows = []
    for subject, statements in finding_rows(findings, labels, ref):
        for i, statement in enumerate(statements):
            head = f"<td class='l s' rowspan='{len(statements)}'>{_e(subject)}</td>" if i == 0 else ""
            rows.append(f"<tr>{head}<td class='l'>{_inline(statement)}</td></tr>")
    if not rows:
        return "<p class='muted'>No findings.</p>"
    return (
        "<table class='find'><tr><th class='l'>corpus</th><th class='l'>finding</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _img(out: Path, name: str | None, alt: str) -> str:
    if not name or not (out / name).exists():
        return ""
    data = base64.b64encode((out / name).read_bytes()).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def render_report(report: dict[str, Any], out_dir: str | Path) -> str:
    """The HTML page of a report dict (figures read from out_dir and embedded)."""
    out = Path(out_dir)
    figs = report.get("figures", {})
    labels = report["labels"]
    ref = report["reference"]
    corp = report["corpora"]
    cmps = report["comparisons"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>toedit analysis: {_e(', '.join(labels))}</title><style>{_CSS}</style></head><body>",
        f"<h1>toedit analysis of {len(labels)} corpora</h1>",
        f"<p>Reference: <b>{_e(ref)}</b>. Prior: {_e(', '.join(report.get('models') or ['?']))}. "
        f"Embeddings: {_e(report['settings']['embedding'])}.</p>",
    ]
    for w in report.get("warnings", []):
        parts.append(f"<p><b>Warning:</b> {_e(w)}</p>")
    parts.append("<h2>Findings</h2>" + _findings(report.get("findings", []), labels, ref))

    rows = []
    for label in labels:
        s = report["sources"][label]
        diff = f" (edits: {s['diff_html']})" if s.get("diff_html") else ""
        rows.append(
            [label, s["kind"], s["input"] + diff, s.get("scored", "as given"), corp[label]["documents"]]
        )
    parts.append(
        "<h2>Corpora</h2>" + _table(["label", "kind", "input", "scored text", "documents"], rows, left=4)
    )
    for label in labels:
        s = report["sources"][label]
        if s.get("diff_html"):
            parts.append(
                f"<p>Every recorded edit of <b>{_e(label)}</b>: "
                f"<a href='{_e(s['diff_html'])}'>{_e(s['diff_html'])}</a> (a separate page beside this one).</p>"
            )

    # -- PPL
    parts.append("<h2>Perplexity distributions</h2>")
    parts.append(
        "<p>Per-document PPL = exp(-mean token log-prob) over scored tokens. KL(reference || corpus) and JS on "
        "one shared 50-bin log-PPL grid; 1-Wasserstein distance on log PPL; coverage: share of the "
        "reference's 1-99 % log-PPL range inside the corpus's (range) and share of reference documents "
        "inside the corpus's whole range (mass).</p>"
    )
    rows = []
    for label in labels:
        p = corp[label]["ppl"]
        c = cmps.get(label, {}).get("ppl", {})
        rows.append(
            [label, p.get("documents"), p.get("q05"), p.get("q25"), p.get("q50"), p.get("q75"), p.get("q95")]
            + [c.get(k) for k in ("kl", "js", "wasserstein_log_ppl", "range_coverage", "mass_coverage")]
        )
    head = [
        "corpus",
        "docs",
        "q05",
        "q25",
        "median",
        "q75",
        "q95",
        "KL",
        "JS",
        "W1 log",
        "range cov.",
        "mass cov.",
    ]
    parts.append(_table(head, rows))
    parts.append(_img(out, figs.get("ppl_hist"), "PPL histograms"))

    # -- token probabilities
    parts.append("<h2>Token probabilities (the paper's Table 6 format)</h2>")
    tp = {label: corp[label]["token_probs"] for label in labels}
    head = ["bin"] + [f"{label} %" for label in labels] + [f"{label} count" for label in labels]
    rows = []
    for i in range(10):
        first = tp[labels[0]]["rows"][i]["bin"]
        rows.append(
            [first]
            + [tp[la]["rows"][i]["pct"] for la in labels]
            + [tp[la]["rows"][i]["count"] for la in labels]
        )
    thr = report["settings"]["threshold"]
    rows.append(
        [f"p > {thr} (editable)"]
        + [tp[la]["above_pct"] for la in labels]
        + [tp[la]["n_above"] for la in labels]
    )
    parts.append(_table(head, rows))
    edits = [(la, report["sources"][la]["edit"]) for la in labels if report["sources"][la].get("edit")]
    if edits:
        rows = [
            [
                la,
                e.get("threshold"),
                e.get("n_scored"),
                e.get("above_rate"),
                e.get("change_rate"),
                e.get("drop_rate"),
            ]
            for la, e in edits
        ]
        parts.append(
            "<p>Edit runs: what the rule selected and what it really changed (% of scored tokens).</p>"
        )
        parts.append(
            _table(["edit run", "threshold", "scored", "selected %", "changed %", "dropped %"], rows)
        )
    parts.append(_img(out, figs.get("token_probs"), "token probability histogram"))

    # -- n-grams
    parts.append("<h2>n-gram concentration (DSIR hashed features)</h2>")
    parts.append(
        "<p>Lowercased word-punct tokens, unigrams + bigrams hashed by sha256 into "
        f"{_n(report['settings']['ngram_buckets'])} buckets. KL/JS: add-one smoothed bucket distributions.</p>"
    )
    rows = []
    for label in labels:
        g = corp[label]["ngrams"]
        c = cmps.get(label, {}).get("ngrams", {})
        rows.append(
            [label, g["total_ngrams"], g["bucket_entropy_bits"], g["gini"], g.get("top_1pct_share")]
            + [g["distinct_1"], g["distinct_2"], c.get("kl"), c.get("js")]
        )
    head = [
        "corpus",
        "n-grams",
        "entropy bits",
        "Gini",
        "top-1 % share",
        "distinct-1",
        "distinct-2",
        "KL",
        "JS",
    ]
    parts.append(_table(head, rows))
    sm = report.get("ngrams_size_matched")
    if sm:
        parts.append(
            f"<p>At equal size (entropy and distinct-n depend on corpus size): each corpus's seeded sample cut to "
            f"whole documents at {_n(sm['target_ngrams'])} n-grams.</p>"
        )
        rows = [[la] + [sm[la][k] for k in CONCENTRATION_KEYS] for la in labels if la in sm]
        parts.append(
            _table(
                [
                    "corpus",
                    "docs",
                    "n-grams",
                    "entropy bits",
                    "Gini",
                    "top-1 % share",
                    "distinct-1",
                    "distinct-2",
                ],
                rows,
            )
        )
    parts.append(_img(out, figs.get("ngram_buckets"), "bucket response"))
    tb = {la: corp[la]["ngrams"].get("top_bigrams") or [] for la in labels}
    depth = max((len(v) for v in tb.values()), default=0)
    rows = [
        [str(i + 1)] + [f"{v[i][0]}  ({v[i][1]:,})" if i < len(v) else "" for v in tb.values()]
        for i in range(depth)
    ]
    parts.append("<details><summary>Top-40 bigrams with counts</summary>")
    parts.append(_table(["#"] + labels, rows, left=len(labels) + 1) + "</details>")
    parts.append(_img(out, figs.get("top_bigrams"), "top bigrams"))

    # -- embeddings
    emb = report.get("embeddings")
    parts.append("<h2>Embedding shift</h2>")
    if emb:
        rows = []
        for label, c in emb["comparisons"].items():
            rows.append(
                [
                    label,
                    emb["documents_embedded"].get(label),
                    c.get("frechet"),
                    c.get("mmd2"),
                    c.get("p_value"),
                    c.get("mean_cosine"),
                ]
            )
        if emb.get("reference_split_half"):
            c = emb["reference_split_half"]
            rows.append(
                [
                    f"{ref}: half vs half",
                    None,
                    c.get("frechet"),
                    c.get("mmd2"),
                    c.get("p_value"),
                    c.get("mean_cosine"),
                ]
            )
        parts.append(
            f"<p>{_n(emb['documents_embedded'].get(ref))} reference documents embedded. Frechet distance of "
            "fitted Gaussians; unbiased MMD² with an RBF kernel (median heuristic) and a permutation p-value "
            f"({report['settings']['permutations']} permutations).</p>"
        )
        parts.append(_table(["corpus", "docs", "Frechet", "MMD²", "p-value", "cos(means)"], rows))
        parts.append(_img(out, figs.get("embedding_map"), "embedding map"))
    else:
        parts.append("<p class='muted'>Skipped (--no-embeddings).</p>")

    # -- excerpts (escaped corpus text)
    parts.append("<h2>Excerpts</h2>")
    for label, texts in report.get("excerpts", {}).items():
        for t in texts:
            parts.append(f"<p><b>{_e(label)}</b></p><pre>{_e(t)}</pre>")
    parts.append("<h2>Settings</h2><pre>" + _e(json.dumps(report["settings"], indent=2)) + "</pre>")
    parts.append("<p class='muted'>All numbers: report.json beside this page.</p></body></html>")
    return "\n".join(p for p in parts if p)
