"""Stream a shard's records, one reader per format (JSONL[.gz|.zst], parquet, txt/md, `datasets` dirs, stdin)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import jsontext
from .decoding import (
    BOM,
    CORRUPT,
    JSON_SPACE,
    NL,
    lone_surrogate_escape,
    not_utf8,
    open_binary,
    undecodable_row,
    unreadable,
)
from .fields import FieldError, FieldSpec, extract_texts, record_id, type_name, unencodable
from .records import BadRecord, InputError, Record, Shard

BATCH_ROWS = 1000


def _check(
    shard: Shard,
    line: int,
    data: Any,
    spec: FieldSpec,
    default_id: str,
    strings_checked: bool = True,
    raw: str | None = None,
    row: Any = None,
) -> Record | BadRecord:
    """A Record if `data` is an object with the configured fields, else a BadRecord saying why.

    `strings_checked=False` when `data` may hold strings that cannot be written as UTF-8 (JSON escapes of
    lone surrogates): the whole record is walked, so one such record never fails a shard's writer."""
    if not isinstance(data, dict):
        name = type_name(data)
        article = "" if name == "null" else ("an " if name[0] in "aeiou" else "a ")
        return BadRecord(shard.shown, line, f"record is {article}{name}, expected a JSON object")
    try:
        extract_texts(data, spec)
    except FieldError as exc:
        return BadRecord(shard.shown, line, str(exc))
    if not strings_checked and (why := unencodable(data)) is not None:
        return BadRecord(shard.shown, line, why)
    return Record(line, record_id(data, spec, default_id), data, raw, row)


def _read_jsonl(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    line = shard.start
    with open_binary(shard) as f:
        try:
            if shard.offset and shard.compression is None:
                f.seek(shard.offset)
            else:
                for _ in itertools.islice(f, shard.start):
                    pass
            for raw in f:
                if shard.stop is not None and line >= shard.stop:
                    break
                line += 1
                if line == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM) :]
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8").rstrip(JSON_SPACE)
                except UnicodeDecodeError as exc:
                    yield BadRecord(shard.shown, line, not_utf8(raw, exc))
                    continue
                try:
                    data = jsontext.loads(text)
                except json.JSONDecodeError as exc:
                    yield BadRecord(shard.shown, line, f"invalid JSON: {exc.msg} (col {exc.colno})")
                    continue
                except jsontext.DuplicateKey as exc:
                    yield BadRecord(shard.shown, line, f"{exc} (JSON leaves its value undefined)")
                    continue
                except (ValueError, RecursionError) as exc:
                    yield BadRecord(shard.shown, line, f"invalid JSON: {exc}")
                    continue
                lone = lone_surrogate_escape(raw)
                yield _check(shard, line, data, spec, f"{shard.id_name}:{line}", not lone, raw=text)
        except CORRUPT as exc:
            raise unreadable(shard, exc, line) from exc


def _read_rows(shard: Shard, batches: Iterator[Any], spec: FieldSpec) -> Iterator[Record | BadRecord]:
    """Records of Arrow batches (RecordBatch or Table), each holding its one-row table for the writer."""
    row = 0
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            try:
                rows = table.to_pylist()
            except UnicodeDecodeError:  # a string column holds bytes that are not UTF-8: find the rows
                rows = None
            if rows is not None:
                for i, data in enumerate(rows):
                    row += 1
                    yield _check(shard, row, data, spec, f"{shard.name}:{row}", row=table.slice(i, 1))
                continue
            for i in range(table.num_rows):
                row += 1
                one = table.slice(i, 1)
                try:
                    (data,) = one.to_pylist()
                except UnicodeDecodeError as exc:
                    yield BadRecord(shard.shown, row, undecodable_row(one, exc))
                    continue
                yield _check(shard, row, data, spec, f"{shard.name}:{row}", row=one)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(shard, exc, row) from exc


def _parquet_file(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-parquet data
        raise InputError(f"{path}: not a readable parquet file: {exc}") from exc


def _load_from_disk(path: str) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            f"reading the datasets directory {path} needs the `datasets` package: pip install 'toedit[datasets]'"
        ) from exc
    return datasets.load_from_disk(path)


def _read_txt(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    with open(shard.path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield BadRecord(shard.shown, 1, not_utf8(raw, exc, multiline=True))
        return
    yield _check(shard, 1, {"text": text}, spec, shard.name)


def read_shard(shard: Shard, spec: FieldSpec) -> Iterator[Record | BadRecord]:
    """Stream a shard's records in input order; unusable lines/rows come out as BadRecords."""
    if shard.format == "jsonl":
        yield from _read_jsonl(shard, spec)
    elif shard.format == "parquet":
        yield from _read_rows(shard, _parquet_file(shard.path).iter_batches(batch_size=BATCH_ROWS), spec)
    elif shard.format == "datasets":
        ds = _load_from_disk(shard.path).with_format("arrow")
        yield from _read_rows(shard, ds.iter(batch_size=BATCH_ROWS), spec)
    elif shard.format == "txt":
        yield from _read_txt(shard, spec)
    else:
        raise InputError(f"{shard.shown}: unknown shard format {shard.format!r}")


def count_records(shard: Shard) -> int | None:
    """Cheap total for progress bars: physical lines (JSONL; None for stdin), rows, or 1 (txt)."""
    if shard.format == "txt":
        return 1
    if shard.format == "parquet":
        return _parquet_file(shard.path).metadata.num_rows
    if shard.format == "datasets":
        return _load_from_disk(shard.path).num_rows
    if shard.path == "-":
        return None
    if shard.stop is not None:
        return shard.stop - shard.start
    lines, last = 0, NL
    with open_binary(shard) as f:
        try:
            while chunk := f.read(1 << 20):
                lines += chunk.count(NL)
                last = chunk[-1:]
        except CORRUPT as exc:
            raise unreadable(shard, exc) from exc
    return lines + (last != NL)
