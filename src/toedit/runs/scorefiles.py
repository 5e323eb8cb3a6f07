"""Reading a run's scores/ files (parquet): records' columns, and the edit spans `--record-spans` keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import RunDirError


@dataclass(frozen=True)
class Span:
    """One recorded edit: [start, end) in that round's input text, the old and new token text, p(old)."""

    start: int
    end: int
    old: str
    new: str  # "" for a dropped token
    p: float
    round: int = 0
    candidates: tuple[tuple[str, float], ...] = ()  # the prior's top-k at this position, descending

    @classmethod
    def from_json(cls, raw: list) -> Span:
        # [start, end, old, new, p, round, candidates]; older runs lack round and candidates
        rnd = int(raw[5]) if len(raw) > 5 else 0
        cands = tuple((str(t), float(q)) for t, q in raw[6]) if len(raw) > 6 else ()
        return cls(int(raw[0]), int(raw[1]), str(raw[2]), str(raw[3]), float(raw[4]), rnd, cands)

    @property
    def dropped(self) -> bool:
        return self.new == ""


def iter_rows(paths: list[Path], columns: list[str], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """One dict per record of the scores files (the asked-for columns), in file and row order."""
    for path in paths:
        for batch in _batches(path, columns, batch_size):
            cols = batch.to_pydict()
            for i in range(batch.num_rows):
                yield {c: cols[c][i] for c in columns}


def has_column(path: Path, name: str) -> bool:
    return name in _schema(path).names


def iter_spans(path: Path) -> Iterator[tuple[int, str, int, list[Span]]]:
    """(row, id, line, spans) of every record of one scores file that has a spans column."""
    row = 0
    for batch in _batches(path, ["id", "line", "spans"], 4096):
        cols = batch.to_pydict()
        for doc_id, line, raw in zip(cols["id"], cols["line"], cols["spans"], strict=True):
            try:
                spans = [Span.from_json(s) for s in (json.loads(raw) if raw else [])]
            except (ValueError, TypeError, IndexError) as exc:
                raise RunDirError(f"{path} row {row + 1}: its spans are damaged ({exc})") from exc
            yield row, doc_id, int(line), spans
            row += 1


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise RunDirError(f"{path} is not a readable parquet file ({exc}); rerun the run's command") from exc


def _batches(path: Path, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """A scores file's batches; a damaged file is a RunDirError naming it."""
    try:
        yield from pq.ParquetFile(path).iter_batches(columns=columns, batch_size=batch_size)
    except (pa.ArrowException, OSError) as exc:
        raise RunDirError(f"{path} is not a readable parquet file ({exc}); rerun the run's command") from exc
