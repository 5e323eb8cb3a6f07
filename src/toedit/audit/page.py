"""The HTML view of `toedit diff`: one self-contained page (inline CSS, no scripts), all corpus text escaped."""

from __future__ import annotations

import html as _html

from ..runs.scorefiles import Span
from .edits import DocEdits, RunInfo
from .text import inline_label, label, reveal, rule_items, totals


def _esc(text: str) -> str:
    return _html.escape(reveal(text, terminal=False), quote=True)


def _tooltip(s: Span) -> str:
    lines = [
        f"p = {s.p:.4f}" + (f" (round {s.round})" if s.round else ""),
        f"{label(s.old)} → {label(s.new)}",
    ]
    if s.candidates:
        lines.append("prior's top candidates:")
        lines += [f"  {label(t)}  {q:.4f}" for t, q in s.candidates]
    return "\n".join(lines)


def _html_token(token: str, tag: str, tip: str) -> str:
    shown = inline_label(token)
    ws = ' class="ws"' if token and not token.strip() else ""
    return f'<{tag}{ws} title="{_esc(tip)}">{_esc(shown)}</{tag}>'


def _html_inline(text: str, spans: list[Span], anchor: str) -> str:
    parts, cursor = [], 0
    for j, s in enumerate(spans, 1):
        tip = _tooltip(s)
        parts.append(_esc(text[cursor : s.start]))
        inner = _html_token(s.old, "del", tip) + (_html_token(s.new, "ins", tip) if s.new else "")
        breaks = "\n" * s.old.count("\n")  # the original's line breaks stay line breaks
        parts.append(f'<a class="edit" href="#{anchor}-{j}" id="{anchor}-t{j}">{inner}</a>{breaks}')
        cursor = s.end
    parts.append(_esc(text[cursor:]))
    return "".join(parts)


def _html_cands(s: Span) -> str:
    chips = []
    for t, q in s.candidates:
        cls = "cand new" if t == s.new else "cand old" if t == s.old else "cand"
        chips.append(f'<span class="{cls}"><code>{_esc(label(t))}</code> <small>{q:.4f}</small></span>')
    return " ".join(chips) or '<span class="muted">not recorded</span>'


def _html_table(spans: list[Span], anchor: str, inline: bool) -> str:
    if not spans:
        return ""
    rows = []
    for j, s in enumerate(spans, 1):
        where = f'<a href="#{anchor}-t{j}">{s.start}</a>' if inline else f"round {s.round} @ {s.start}"
        new = f"<code>{_esc(label(s.new))}</code>" if s.new else '<span class="muted">∅ dropped</span>'
        rows.append(
            f'<tr id="{anchor}-{j}"><td class="num">{j}</td><td class="num">{where}</td>'
            f'<td class="num">{s.p:.4f}</td><td class="old"><code>{_esc(label(s.old))}</code></td>'
            f'<td class="new">{new}</td><td class="cands">{_html_cands(s)}</td></tr>'
        )
    head = "<tr><th>#</th><th>position</th><th>p</th><th>old</th><th>new</th><th>prior's top candidates</th></tr>"
    return f'<table class="edits"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d8dee4; --bg: #f6f8fa; --del: #cf222e; --del-bg: #ffebe9;
  --ins: #116329; --ins-bg: #dafbe1; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
header.run { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
  margin-bottom: 22px; }
h1 { font-size: 20px; margin: 0 0 2px; }
.sub { color: var(--muted); margin: 0 0 12px; word-break: break-all; }
.settings { display: flex; flex-wrap: wrap; gap: 6px; margin: 0 0 14px; padding: 0; }
.settings div { background: var(--bg); border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px;
  font-size: 12.5px; }
.settings dt { display: inline; color: var(--muted); }
.settings dd { display: inline; margin: 0 0 0 4px; font-weight: 600; }
.totals { display: flex; flex-wrap: wrap; gap: 28px; margin: 0 0 10px; }
.totals .n { display: block; font-weight: 700; color: var(--ink); font-size: 22px; line-height: 1.2; }
.totals span { color: var(--muted); font-size: 12.5px; }
.legend { color: var(--muted); font-size: 12.5px; margin: 0; }
nav.docs { margin: 12px 0 0; font-size: 13px; }
nav.docs a { margin-right: 12px; }
a { color: var(--accent); text-decoration: none; }
section.doc { background: #fff; border: 1px solid var(--line); border-radius: 10px; margin: 0 0 22px;
  overflow: hidden; }
section.doc h2 { font-size: 15px; margin: 0; padding: 10px 22px; background: #fbfcfd;
  border-bottom: 1px solid var(--line); display: flex; gap: 14px; align-items: baseline; }
section.doc h2 .meta { font-weight: 400; color: var(--muted); font-size: 12.5px; }
.body { display: grid; grid-template-columns: minmax(0, 46em) minmax(0, 1fr); }
.body > * { max-height: 78vh; overflow-y: auto; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; padding: 16px 22px; margin: 0;
  font: 15px/1.65 Georgia, "DejaVu Serif", "Times New Roman", serif; border-right: 1px solid var(--line); }
@media (max-width: 900px) {
  .body { grid-template-columns: minmax(0, 1fr); }
  .text { border-right: 0; border-bottom: 1px solid var(--line); }
}
.note { color: var(--muted); font-style: italic; padding: 10px 22px 0; margin: 0; }
a.edit { color: inherit; }
del, ins, .del, .ins { text-decoration: none; border-radius: 3px; padding: 0 1px; }
del, .del { color: var(--del); background: var(--del-bg); text-decoration: line-through;
  text-decoration-color: rgba(207, 34, 46, .55); }
ins, .ins { color: var(--ins); background: var(--ins-bg); font-weight: 600; margin-left: 1px; }
del.ws, ins.ws { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 14px; }
table.edits { border-collapse: collapse; width: 100%; font-size: 12.5px; }
table.edits th { text-align: left; color: var(--muted); font-weight: 600; background: #fbfcfd;
  border-bottom: 1px solid var(--line); padding: 6px 8px; position: sticky; top: 0; }
table.edits td { border-top: 1px solid #eef1f4; padding: 5px 8px; vertical-align: top; }
table.edits tr:target { background: #fff8c5; }
td.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; width: 1%; }
code { font: 12.5px "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap; }
td.old code { color: var(--del); background: var(--del-bg); border-radius: 3px; padding: 0 3px; }
td.new code { color: var(--ins); background: var(--ins-bg); border-radius: 3px; padding: 0 3px; }
td.cands { line-height: 1.8; }
.cand { display: inline-block; border: 1px solid var(--line); border-radius: 4px; padding: 0 4px;
  margin: 0 1px 2px 0; white-space: nowrap; }
.cand code { font-size: 12px; }
.cand small { color: var(--muted); font-variant-numeric: tabular-nums; }
.cand.new { border-color: #4ac26b; background: var(--ins-bg); }
.cand.old { border-color: #ff8182; background: var(--del-bg); }
.muted { color: var(--muted); }
.empty { padding: 16px 22px; color: var(--muted); }
"""


def _html_header(docs: list[DocEdits], title: str, run: RunInfo | None) -> str:
    total, changed, dropped = totals(docs)
    parts = [f"<h1>{_esc(title)}</h1>"]
    if run is not None:
        parts.append(
            f'<p class="sub">{_esc(run.run_dir)} · model {_esc(run.model)} · {_esc(run.mode)} mode</p>'
        )
        items = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in rule_items(run.edit))
        parts.append(f'<dl class="settings">{items}</dl>')
    stats = [
        (f"{len(docs):,}", "documents shown"),
        (f"{total:,}", f"edits shown ({changed:,} changed, {dropped:,} dropped)"),
    ]
    if run is not None and run.stats:
        st = run.stats
        run_edits = int(st.get("n_changed", 0)) + int(st.get("n_dropped", 0))
        rate = 100 * run_edits / max(int(st.get("n_scored", 0)), 1)
        stats += [
            (
                f"{run_edits:,}",
                f"edits in the run ({rate:.3f} % of {int(st.get('n_scored', 0)):,} scored tokens)",
            ),
            (f"{int(st.get('n_records', 0)):,}", "documents in the run"),
        ]
    parts.append(
        '<div class="totals">'
        + "".join(f'<div><span class="n">{v}</span><span>{_esc(k)}</span></div>' for v, k in stats)
        + "</div>"
    )
    parts.append(
        '<p class="legend"><span class="del">old</span><span class="ins">new</span> each edit in the original text; hover it for p and the '
        "prior's candidates, click it for its table row. ␣ space · ↵ newline · ⇥ tab · ∅ dropped</p>"
    )
    if len(docs) > 1:
        links = "".join(f'<a href="#d{i}">{_esc(d.id)} ({len(d.spans)})</a>' for i, d in enumerate(docs))
        parts.append(f'<nav class="docs">{links}</nav>')
    return f'<header class="run">{"".join(parts)}</header>'


def render_html(docs: list[DocEdits], title: str, run: RunInfo | None = None) -> str:
    """One self-contained HTML page (inline CSS, no scripts, no external resources): the run's rule and
    totals, then per document its original text with <del>/<ins> edits (tooltips: p and the candidates) and
    a table of its edits. All corpus and token text is escaped."""
    run = run or next((d.run for d in docs if d.run is not None), None)
    body = [_html_header(docs, title, run)]
    for i, d in enumerate(docs):
        anchor = f"d{i}"
        n = len(d.spans)
        meta = f"shard {d.shard} · line {d.line} · {n} edit{'s' * (n != 1)}"
        sec = [
            f'<section class="doc" id="{anchor}"><h2>{_esc(d.id)} <span class="meta">{_esc(meta)}</span></h2>'
        ]
        if d.original is None:
            sec.append(f'<p class="note">{_esc(d.note)}; the edited text:</p>')
        text = _html_inline(d.original, d.spans, anchor) if d.original is not None else _esc(d.edited)
        table = _html_table(d.spans, anchor, d.original is not None) or '<p class="empty">No edits.</p>'
        sec.append(f'<div class="body"><div class="text">{text}</div><div class="side">{table}</div></div>')
        sec.append("</section>")
        body.append("".join(sec))
    if not docs:
        body.append('<section class="doc"><p class="empty">No edits recorded in this run.</p></section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
