"""The terminal view of `toedit diff`: edits inline (colours, or `[-old-]{+new+}`), then one line per edit."""

from __future__ import annotations

from ..runs.scorefiles import Span
from .edits import DocEdits
from .text import inline_label, label, reveal, totals, windows

_TERMINAL_CANDIDATES = 5  # candidates listed per edit in the terminal view (the HTML shows all)

_RESET = "\x1b[0m"


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}{_RESET}" if color and text else text


def _term_text(text: str) -> str:
    return reveal(text.replace("\r\n", "\n"), terminal=True).replace("\r", "␍")


def _term_edit(s: Span, color: bool) -> str:
    old, new = reveal(inline_label(s.old), True), reveal(inline_label(s.new), True)
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
    old = _paint(reveal(label(s.old), True), "31", color)
    new = _paint(reveal(label(s.new), True) if s.new else "∅ (dropped)", "32", color)
    cands = ", ".join(
        f"{reveal(label(t), True)}{'*' if t == s.new else ''} {q:.4f}"
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
        doc_id, shard = inline_label(d.id), inline_label(d.shard)
        head = f"== {doc_id}  (shard {shard}, line {d.line}): {n_spans} edit{'s' * (n_spans != 1)} =="
        out += [_paint(reveal(head, True), "1", color), ""]
        if d.original is not None:
            if context is None:
                out.append(_term_inline(d.original, d.spans, 0, len(d.original), color))
            else:
                for lo, hi, spans in windows(d.spans, len(d.original), max(context, 0)):
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
    total, changed, dropped = totals(docs)
    out.append(
        f"{len(docs)} document{'s' * (len(docs) != 1)}, {total} edits ({changed} changed, {dropped} dropped)"
    )
    return "\n".join(out) + "\n"
