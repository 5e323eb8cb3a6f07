"""How the audit views show tokens and the run's rule: whitespace and control characters made visible."""

from __future__ import annotations

from typing import Any

from ..runs.scorefiles import Span
from .edits import DocEdits

_WS_SYMBOLS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍", "\u00a0": "⍽"}


def label(token: str) -> str:
    """A token on its own (lists, tables, tooltips): every whitespace character made visible."""
    return "".join(_WS_SYMBOLS.get(c, "·" if c.isspace() else c) for c in token) if token else "∅"


def inline_label(token: str) -> str:
    """A token inside running text: pure-whitespace tokens and line breaks made visible, spaces kept."""
    if token and not token.strip():
        return label(token)
    return token.replace("\r", "␍").replace("\n", "↵").replace("\t", "⇥")


def reveal(text: str, terminal: bool) -> str:
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


def rule_items(edit: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's decision rule as (name, value) items for the page header."""
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


def windows(spans: list[Span], n: int, context: int) -> list[tuple[int, int, list[Span]]]:
    """Merged [lo, hi) character windows of `context` characters around each span, with their spans."""
    out: list[tuple[int, int, list[Span]]] = []
    for s in sorted(spans, key=lambda s: s.start):
        lo, hi = max(0, s.start - context), min(n, s.end + context)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi), [*out[-1][2], s])
        else:
            out.append((lo, hi, [s]))
    return out


def totals(docs: list[DocEdits]) -> tuple[int, int, int]:
    spans = [s for d in docs for s in d.spans]
    dropped = sum(s.dropped for s in spans)
    return len(spans), len(spans) - dropped, dropped
