"""The recorded edits of a run, per document: its spans, and its original text rebuilt by undoing them.

Works on a run directory made with --record-spans: scores/<shard>.parquet holds, per record, the JSON list of
spans [start, end, old, new, p, round, candidates]; data/<shard><ext> holds the edited records in the same
order. For single-round runs in text/response mode the original text is rebuilt from the edited text by
undoing the spans (and checked on the way); multi-round and messages-mode runs are shown as span lists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import BadRecord, extract_texts, read_shard
from ..runs.layout import RunDirError
from ..runs.rundir import RunDir
from ..runs.schema import field_spec
from ..runs.scorefiles import Span


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
