"""Edit audit view (`toedit diff`): every recorded edit of a run, inline in the original text.

edits.py loads them (and rebuilds the original texts), terminal.py and page.py render them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .edits import load_edits
from .page import render_html
from .terminal import render_terminal


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
