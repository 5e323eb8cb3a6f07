"""Edit audit view (`toedit diff`): every recorded edit of a run, inline in the original text.

Works on a run directory made with --record-spans: scores/<shard>.parquet holds, per record, the JSON list of
spans [start, end, old, new, p, round, candidates]; data/<shard><ext> holds the edited records in the same
order. For single-round runs in text/response mode the original text is rebuilt from the edited text by
undoing the spans (and checked on the way); multi-round and messages-mode runs are shown as span lists.
"""

from __future__ import annotations

import html as _html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import BadRecord, extract_texts, read_shard
from .runs.rundir import RunDir, RunDirError, Span, field_spec

_WS_SYMBOLS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍", "\u00a0": "⍽"}
_TERMINAL_CANDIDATES = 5  # candidates listed per edit in the terminal view (the HTML shows all)


class AuditError(RunDirError, ValueError):
    """The run cannot be audited (no spans recorded, unknown document, spans that do not fit the text)."""


@dataclass(frozen=True)
class RunInfo:
    """What the page header says about the run: where, which model, which rule, which field mode, totals."""

    run_dir: str
    model: str
    mode: str  # "text" | "response" | "messages"
    edit: dict[str, Any]
    stats: dict[str, Any] | None = None  # stats.json (None while the run is unfinished)


@dataclass
class DocEdits:
    """One document's edits. `original` is None where it cannot be rebuilt (rounds > 1, messages mode)."""

    id: str
    shard: str
    line: int
    edited: str  # the edited text (messages mode: the edited turns joined by a blank line)
    original: str | None
    spans: list[Span]
    run: RunInfo | None = field(default=None, repr=False)

    @property
    def inline(self) -> bool:
        """True if the edits can be shown inline in the original text."""
        return self.original is not None

    @property
    def note(self) -> str:
        """Why the edits are listed without inline context ("" when they are inline)."""
        if self.inline:
            return ""
        if self.run is not None and self.run.mode == "messages":
            return (
                "messages mode: the spans of all edited turns are concatenated without a turn index, "
                "so they are listed without inline context"
            )
        rounds = self.run.edit.get("rounds", "several") if self.run is not None else "several"
        return (
            f"{rounds} editing rounds: each span's offsets are in that round's input text, "
            "so they are listed without inline context"
        )


# ---------------------------------------------------------------------------------------------------- loading


def original_text(edited: str, spans: list[Span], doc_id: str = "?") -> str:
    """Undo single-round spans on the edited text; checks that the edited text holds every new token."""
    parts: list[str] = []
    cursor = 0  # in the edited text
    shift = 0  # sum(len(new) - len(old)) over the spans before
    orig_len = 0
    prev_end = 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < prev_end or s.end - s.start != len(s.old):
            raise AuditError(
                f"document {doc_id!r}: span [{s.start}, {s.end}) {s.old!r} overlaps the previous one or "
                "does not match its old text"
            )
        pos = s.start + shift
        if pos < cursor or edited[pos : pos + len(s.new)] != s.new:
            raise AuditError(
                f"document {doc_id!r}: the edited text does not hold {s.new!r} at {pos} (span "
                f"[{s.start}, {s.end}) {s.old!r}); found {edited[pos : pos + len(s.new)]!r}: the run's "
                "data/ and scores/ do not belong together"
            )
        parts.append(edited[cursor:pos])
        orig_len += pos - cursor
        if orig_len != s.start:  # cannot happen when the checks above pass; guards the arithmetic
            raise AuditError(f"document {doc_id!r}: span offsets are inconsistent at {s.start}")
        parts.append(s.old)
        orig_len += len(s.old)
        cursor = pos + len(s.new)
        shift += len(s.new) - len(s.old)
        prev_end = s.end
    parts.append(edited[cursor:])
    return "".join(parts)


def _wanted_rows(path: Path, doc: str | None, limit: int | None) -> list[tuple[int, str, int, list[Span]]]:
    """(row, id, line, spans) of the rows to show from one scores file."""
    out: list[tuple[int, str, int, list[Span]]] = []
    for row, doc_id, line, spans in RunDir.iter_spans(path):
        if (doc is None and spans) or (doc is not None and doc_id == doc):
            out.append((row, doc_id, line, spans))
            if limit is not None and len(out) >= limit:
                return out
    return out


def _run_info(rd: RunDir, manifest: dict[str, Any]) -> RunInfo:
    settings = manifest.get("settings") or {}
    model = (manifest.get("model") or {}).get("name") or "?"
    return RunInfo(
        str(rd.root),
        model,
        field_spec(settings.get("io") or {}).mode,
        dict(settings.get("edit") or {}),
        rd.read_stats(),
    )


def load_edits(run_dir: str | os.PathLike, doc: str | None = None, limit: int | None = 20) -> list[DocEdits]:
    """The documents of a run that have at least one edit (the first `limit`; None: all), or document `doc`.

    Raises AuditError (a ValueError) for a run without recorded spans or an unknown `doc`.
    """
    rd = RunDir(run_dir)
    root = rd.root
    manifest = rd.manifest
    if manifest.get("kind") != "edit":
        raise AuditError(f"{root} is a {manifest.get('kind')} run: it has no edits to show")
    info = _run_info(rd, manifest)
    entries = manifest.get("inputs") or []
    scored = [(e, rd.scores_path(e["name"])) for e in entries]
    scored = [(e, p) for e, p in scored if p.exists()]
    if not scored:
        raise AuditError(f"{root} has no finished shard yet (scores/ is empty)")
    if not info.edit.get("record_spans") or not rd.has_spans():
        raise AuditError(
            f"{root} was run without edit spans (scores/ have no 'spans' column): rerun with --record-spans"
        )
    spec = rd.field_spec()
    inline = info.mode != "messages" and int(info.edit.get("rounds", 1)) == 1
    docs: list[DocEdits] = []
    for entry, path in scored:
        left = None if (limit is None or doc is not None) else limit - len(docs)
        if left is not None and left <= 0:
            break
        rows = _wanted_rows(path, doc, left)
        if not rows:
            continue
        shard = rd.edited_shard(entry)
        todo = {r[0]: r for r in rows}
        for i, rec in enumerate(read_shard(shard, spec)):
            if isinstance(rec, BadRecord):
                raise AuditError(f"{shard.path} line {rec.line} cannot be read back: {rec.reason}")
            if i not in todo:
                continue
            _, doc_id, line, spans = todo.pop(i)
            if rec.id != doc_id:
                raise AuditError(
                    f"{shard.path} record {i + 1} has id {rec.id!r} but scores/{shard.name}.parquet says "
                    f"{doc_id!r}: data/ and scores/ do not belong together"
                )
            texts = extract_texts(rec.data, spec)
            edited = texts[0] if inline else "\n\n".join(texts)
            original = original_text(edited, spans, doc_id) if inline else None
            docs.append(DocEdits(doc_id, shard.name, line, edited, original, spans, info))
            if not todo:
                break
        if todo:
            raise AuditError(f"{shard.path} has fewer records than scores/{shard.name}.parquet")
    if doc is not None and not docs:
        raise AuditError(f"no document with id {doc!r} in {root}")
    return docs


# ------------------------------------------------------------------------------------------- shared helpers


def _label(token: str) -> str:
    """A token on its own (lists, tables, tooltips): every whitespace character made visible."""
    return "".join(_WS_SYMBOLS.get(c, "·" if c.isspace() else c) for c in token) if token else "∅"


def _inline(token: str) -> str:
    """A token inside running text: pure-whitespace tokens and line breaks made visible, spaces kept."""
    if token and not token.strip():
        return _label(token)
    return token.replace("\r", "␍").replace("\n", "↵").replace("\t", "⇥")


def _reveal(text: str, terminal: bool) -> str:
    """Control and bidi-override characters as visible stand-ins (nothing hidden, no terminal escapes)."""
    out = []
    for c in text:
        o = ord(c)
        if c in "\n\t" or (c == "\r" and not terminal):
            out.append(c)
        elif o < 0x20:
            out.append(chr(0x2400 + o))  # ␀ .. ␟ (␛ for ESC)
        elif o == 0x7F:
            out.append("␡")
        elif 0x80 <= o < 0xA0 or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            out.append(f"<U+{o:04X}>")
        else:
            out.append(c)
    return "".join(out)


def _rule(edit: dict[str, Any]) -> list[tuple[str, str]]:
    if not edit:
        return []
    top_k = edit.get("top_k")
    items = [
        ("strategy", str(edit.get("strategy", "?"))),
        ("resample", f"p > {edit.get('threshold')}"),
        ("candidates", "full vocabulary" if top_k == 0 else f"top-{top_k} + original"),
        ("beta", str(edit.get("beta"))),
    ]
    if edit.get("strategy") in ("drop", "resample+drop"):
        items.append(("drop", f"p < {edit.get('low')}"))
    if edit.get("exclude_original"):
        items.append(("exclude original", "yes"))
    items += [("seed", str(edit.get("seed"))), ("rounds", str(edit.get("rounds")))]
    return items


def _windows(spans: list[Span], n: int, context: int) -> list[tuple[int, int, list[Span]]]:
    """Merged [lo, hi) character windows of `context` characters around each span, with their spans."""
    out: list[tuple[int, int, list[Span]]] = []
    for s in sorted(spans, key=lambda s: s.start):
        lo, hi = max(0, s.start - context), min(n, s.end + context)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi), [*out[-1][2], s])
        else:
            out.append((lo, hi, [s]))
    return out


def _totals(docs: list[DocEdits]) -> tuple[int, int, int]:
    spans = [s for d in docs for s in d.spans]
    dropped = sum(s.dropped for s in spans)
    return len(spans), len(spans) - dropped, dropped


# ----------------------------------------------------------------------------------------------- terminal

_RESET = "\x1b[0m"


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}{_RESET}" if color and text else text


def _term_text(text: str) -> str:
    return _reveal(text.replace("\r\n", "\n"), terminal=True).replace("\r", "␍")


def _term_edit(s: Span, color: bool) -> str:
    old, new = _reveal(_inline(s.old), True), _reveal(_inline(s.new), True)
    if color:
        return _paint(old, "31;9", True) + _paint(new, "32", True)
    return f"[-{old}-]" + (f"{{+{new}+}}" if new else "")


def _term_inline(text: str, spans: list[Span], lo: int, hi: int, color: bool) -> str:
    parts, cursor = [], lo
    for s in spans:
        parts.append(_term_text(text[cursor : s.start]))
        parts.append(_term_edit(s, color) + "\n" * s.old.count("\n"))  # keep the original's line breaks
        cursor = s.end
    parts.append(_term_text(text[cursor:hi]))
    return "".join(parts)


def _term_list_line(i: int, s: Span, color: bool, rounds: bool) -> str:
    where = f"r{s.round}@{s.start}" if rounds else f"@{s.start}"
    old = _paint(_reveal(_label(s.old), True), "31", color)
    new = _paint(_reveal(_label(s.new), True) if s.new else "∅ (dropped)", "32", color)
    cands = ", ".join(
        f"{_reveal(_label(t), True)}{'*' if t == s.new else ''} {q:.4f}"
        for t, q in s.candidates[:_TERMINAL_CANDIDATES]
    )
    more = (
        f" (+{len(s.candidates) - _TERMINAL_CANDIDATES})" if len(s.candidates) > _TERMINAL_CANDIDATES else ""
    )
    line = f"  {i:>3}. {where:<9} p={s.p:.4f}  {old} -> {new}"
    return line + (f"   top: {cands}{more}" if cands else "")


def render_terminal(docs: list[DocEdits], color: bool = True, context: int | None = None) -> str:
    """Each document's original text with its edits inline (old struck red, new green; without color
    `[-old-]{+new+}`), then one line per edit: position, p, old -> new and the prior's top candidates
    (* marks the one drawn). `context`: show only that many characters around each edit."""
    out: list[str] = []
    for d in docs:
        n_spans = len(d.spans)
        # ids and shard names come from the corpus: their line breaks are shown, never obeyed (no forged block)
        doc_id, shard = _inline(d.id), _inline(d.shard)
        head = f"== {doc_id}  (shard {shard}, line {d.line}): {n_spans} edit{'s' * (n_spans != 1)} =="
        out += [_paint(_reveal(head, True), "1", color), ""]
        if d.original is not None:
            if context is None:
                out.append(_term_inline(d.original, d.spans, 0, len(d.original), color))
            else:
                for lo, hi, spans in _windows(d.spans, len(d.original), max(context, 0)):
                    pre, post = ("..." if lo > 0 else ""), ("..." if hi < len(d.original) else "")
                    out.append(pre + _term_inline(d.original, spans, lo, hi, color) + post)
            if not d.spans:
                out.append("(no edits in this document)")
        else:
            out.append(_paint(f"({d.note})", "2", color))
            if context is None:
                out += ["", "edited text:", _term_text(d.edited)]
        out += ["", "edits:" if d.spans else ""]
        rounds = d.original is None
        out += [_term_list_line(i, s, color, rounds) for i, s in enumerate(d.spans, 1)]
        out.append("")
    total, changed, dropped = _totals(docs)
    out.append(
        f"{len(docs)} document{'s' * (len(docs) != 1)}, {total} edits ({changed} changed, {dropped} dropped)"
    )
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------------ html


def _esc(text: str) -> str:
    return _html.escape(_reveal(text, terminal=False), quote=True)


def _tooltip(s: Span) -> str:
    lines = [
        f"p = {s.p:.4f}" + (f" (round {s.round})" if s.round else ""),
        f"{_label(s.old)} → {_label(s.new)}",
    ]
    if s.candidates:
        lines.append("prior's top candidates:")
        lines += [f"  {_label(t)}  {q:.4f}" for t, q in s.candidates]
    return "\n".join(lines)


def _html_token(token: str, tag: str, tip: str) -> str:
    shown = _inline(token)
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
        chips.append(f'<span class="{cls}"><code>{_esc(_label(t))}</code> <small>{q:.4f}</small></span>')
    return " ".join(chips) or '<span class="muted">not recorded</span>'


def _html_table(spans: list[Span], anchor: str, inline: bool) -> str:
    if not spans:
        return ""
    rows = []
    for j, s in enumerate(spans, 1):
        where = f'<a href="#{anchor}-t{j}">{s.start}</a>' if inline else f"round {s.round} @ {s.start}"
        new = f"<code>{_esc(_label(s.new))}</code>" if s.new else '<span class="muted">∅ dropped</span>'
        rows.append(
            f'<tr id="{anchor}-{j}"><td class="num">{j}</td><td class="num">{where}</td>'
            f'<td class="num">{s.p:.4f}</td><td class="old"><code>{_esc(_label(s.old))}</code></td>'
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
    total, changed, dropped = _totals(docs)
    parts = [f"<h1>{_esc(title)}</h1>"]
    if run is not None:
        parts.append(
            f'<p class="sub">{_esc(run.run_dir)} · model {_esc(run.model)} · {_esc(run.mode)} mode</p>'
        )
        items = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in _rule(run.edit))
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


# ------------------------------------------------------------------------------------------------------- verb


def run_diff(
    run_dir: str | os.PathLike,
    doc: str | None = None,
    html: str | os.PathLike | None = None,
    limit: int | None = 20,
    color: bool | None = None,
    context: int | None = None,
) -> str:
    """`toedit diff`: load the edits, write the HTML page to `html` if given, return the terminal view
    (color=None: color when stdout is a terminal and NO_COLOR is unset; limit 0 or None: every document)."""
    limit = limit or None
    docs = load_edits(run_dir, doc, limit)
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = render_terminal(docs, color=color, context=context)
    if not docs:
        text = f"no edits recorded in {run_dir}\n"
    elif doc is None and limit is not None and len(docs) >= limit:
        text += f"(the first {limit} documents with edits; --limit N for more, --doc ID for one)\n"
    if html is not None:
        out = Path(html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(docs, f"toedit diff · {Path(run_dir).name or run_dir}"), encoding="utf-8")
        text += f"wrote {out}\n"
    return text
