"""Atomic output writers: one shard as JSONL[.gz|.zst], parquet or txt, plus small JSON helpers."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from .jsontext import jsonl_line
from .records import Record

ROW_GROUP = 1000
MAX_SCHEMA_ROWS = 10 * ROW_GROUP  # rows buffered at most while the first group's types are still unknown


def _tmp_path(final: Path) -> Path:
    return final.with_name(f"{final.name}.tmp-{os.getpid()}")


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (best effort; not possible on every platform)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _columns(rows: list[dict]) -> dict[str, list]:
    """Rows -> columns over the union of their keys (first-seen order); missing keys become None."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return {k: [row.get(k) for row in rows] for k in keys}


def _has_null(t: pa.Schema | pa.DataType) -> bool:
    """True if a schema or type has a part whose type is null (seen only None / empty lists so far)."""
    if isinstance(t, pa.Schema):
        return any(_has_null(f.type) for f in t)
    if pa.types.is_null(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_null(t.value_type)
    return pa.types.is_struct(t) and any(_has_null(t.field(i).type) for i in range(t.num_fields))


def _fits(src: pa.DataType, dst: pa.DataType) -> bool:
    """Whether values of type `src` convert to `dst` without loss or reinterpretation."""
    if src == dst or pa.types.is_null(src):
        return True
    if pa.types.is_integer(src) and pa.types.is_floating(dst):
        return True
    if pa.types.is_list(src) and (pa.types.is_list(dst) or pa.types.is_large_list(dst)):
        return _fits(src.value_type, dst.value_type)
    if pa.types.is_struct(src) and pa.types.is_struct(dst):
        names = [dst.field(i).name for i in range(dst.num_fields)]
        return all(
            (f := src.field(i)).name in names and _fits(f.type, dst.field(f.name).type)
            for i in range(src.num_fields)
        )
    return False


def _inferred(values: list, field: pa.Field) -> pa.Array:
    """A column the input did not have (e.g. the stats), typed from its values; must fit the file schema."""
    arr = pa.array(values)
    if not _fits(arr.type, field.type):
        raise ValueError(f"field {field.name!r} is {arr.type} here but {field.type} in the file schema")
    return arr.cast(field.type)


_ABSENT = object()


def _source_table(sources: list[Record | None]) -> pa.Table | None:
    """The input rows of a buffered group as one table, when every row came from the same Arrow schema."""
    tables = [s.row for s in sources if s is not None and s.row is not None]
    if not tables or len(tables) != len(sources) or any(t.schema != tables[0].schema for t in tables):
        return None
    return pa.concat_tables(tables)


def _conform(
    rows: list[dict], sources: list[Record | None], schema: pa.Schema, kept: frozenset[str]
) -> pa.Table:
    """A table of `schema` from the buffered rows; raises ValueError for new fields or clashing types.

    Columns of the input schema (`kept`) keep its exact types: a column no row changed is copied from the
    input's own Arrow rows, a changed one is converted to its input type; other columns are inferred."""
    cols = _columns(rows)
    extra = [k for k in cols if k not in schema.names]
    if extra:
        raise ValueError(f"new field(s) {extra}")
    n, src = len(rows), None
    arrays = []
    for field in schema:
        name = field.name
        if name not in cols:
            arr = pa.nulls(n, field.type)
        elif name not in kept:
            arr = _inferred(cols[name], field)
        elif all(
            s is not None and s.data.get(name, _ABSENT) is r.get(name)
            for r, s in zip(rows, sources, strict=True)
        ):
            src = src if src is not None else _source_table(sources)
            if src is not None and name in src.column_names:
                arr = src.column(name).combine_chunks()
            else:
                arr = pa.array(cols[name], type=field.type)
        else:
            arr = pa.array(cols[name], type=field.type)
        if not field.nullable and arr.null_count:
            raise ValueError(f"field {name!r} is null in some row but not nullable in the file schema")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


class ShardWriter:
    """Writes one output shard to `<final_path>.tmp-<pid>` and atomically renames it into place on commit()."""

    def __init__(
        self,
        final_path: str | Path,
        format: str,
        compression: str | None = None,
        schema: pa.Schema | None = None,
    ):
        """`schema` (parquet): the input's Arrow schema, whose columns the output keeps exactly; by default it
        comes from the first record written with an Arrow `source` row."""
        if format not in ("jsonl", "parquet", "txt"):
            raise ValueError(f"unknown output format {format!r} (jsonl, parquet or txt)")
        if compression not in (None, "gzip", "zstd") or (compression and format != "jsonl"):
            raise ValueError(f"compression {compression!r} is not supported for {format}")
        self.final = Path(final_path)
        self.format, self.compression = format, compression
        self.tmp = _tmp_path(self.final)
        self.state = "open"  # -> "committed" | "aborted"
        self.n_written = 0
        self._pid = os.getpid()
        self._rows: list[dict] = []
        self._sources: list[Record | None] = []
        self._input: pa.Schema | None = schema
        self._schema: pa.Schema | None = None
        self._pq: pq.ParquetWriter | None = None
        self._raw: BinaryIO | None = None
        self._out: Any = None
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(self.tmp, "wb")  # noqa: SIM115 (closed by commit/abort)
            self._out = self._raw
            if compression == "gzip":
                self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)
            elif compression == "zstd":
                cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
                self._out = cctx.stream_writer(self._raw, closefd=False)
        except BaseException:  # e.g. out of space after the temp file was created
            self.abort()
            raise

    def _guarded(self, step: Any, *args: Any) -> Any:
        """Run one I/O step; on any failure (out of space, interrupt) delete the temp file, then re-raise."""
        try:
            return step(*args)
        except BaseException:
            self.abort()
            raise

    def write(self, data: dict, source: Record | None = None) -> None:
        """Append one record (txt: data["text"] verbatim, at most one record).

        `source`: the input record `data` was made from; every value `data` did not change is then written
        as the input held it (JSONL: its source text; parquet: its Arrow values and types)."""
        if self.state != "open":
            raise RuntimeError(f"{self.final}: write after {self.state}")
        if self.format == "txt" and self.n_written:
            raise ValueError(f"{self.final}: a txt shard holds exactly one record")
        if self.format == "parquet":
            if self._input is None and source is not None and source.row is not None and self._schema is None:
                self._input = source.row.schema
            self.n_written += 1
            self._rows.append(data)
            self._sources.append(source)
            if len(self._rows) % ROW_GROUP == 0:
                self._guarded(self._flush_rows)
            return
        # encode first: a record that cannot be encoded raises here and leaves the file as it was
        if self.format == "jsonl":
            text = jsonl_line(data, *((source.raw, source.data) if source is not None else ()))
        else:
            text = data["text"]
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{self.final}: record {self.n_written + 1} holds a string that is not valid Unicode ({exc.reason} "
                f"U+{ord(text[exc.start]):04X}); it was not written"
            ) from exc
        self._guarded(self._out.write, raw)
        self.n_written += 1

    def _flush_rows(self, final: bool = False) -> None:
        """Write the buffered rows as a row group. The file schema is the input's (`schema`, or the first
        source row's) plus the new columns, typed from the first group that gives each a type."""
        if not self._rows:
            return
        first = self.n_written - len(self._rows) + 1  # 1-based number of the first buffered row
        fixed = self._input if self._input is not None else pa.schema([])
        try:
            if self._schema is None:
                cols = _columns(self._rows)
                new = pa.table({k: pa.array(v) for k, v in cols.items() if k not in fixed.names})
                if _has_null(new.schema) and len(self._rows) < MAX_SCHEMA_ROWS and not final:
                    return  # all-null parts give no type yet: keep buffering a little longer
                self._schema = pa.schema([*fixed, *new.schema], metadata=fixed.metadata)
                self._pq = pq.ParquetWriter(self._raw, self._schema)
            table = _conform(self._rows, self._sources, self._schema, frozenset(fixed.names))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
            have = f"; file schema: {self._schema}" if self._schema is not None else ""
            raise ValueError(
                f"{self.final}: rows {first}-{self.n_written} do not fit one parquet schema ({exc}){have}"
            ) from exc
        assert self._pq is not None
        self._pq.write_table(table, row_group_size=ROW_GROUP)
        self._rows, self._sources = [], []

    def commit(self) -> None:
        """Flush, fsync, close and os.replace the temp file into place; a second call does nothing."""
        if self.state == "committed":
            return
        if self.state == "aborted":
            raise RuntimeError(f"{self.final}: commit after abort")
        assert self._raw is not None
        try:
            if self.format == "parquet":
                self._flush_rows(final=True)
                if self._pq is None:
                    pq.write_table((self._input or pa.schema([])).empty_table(), self._raw)
                else:
                    self._pq.close()
            elif self._out is not self._raw:
                self._out.close()  # writes the gzip trailer / zstd frame end; leaves _raw open
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self.tmp, self.final)
        except BaseException:
            self.abort()
            raise
        self.state = "committed"
        _fsync_dir(self.final.parent)

    def abort(self) -> None:
        """Close and delete the temp file (does nothing after commit)."""
        if self.state != "open":
            return
        self.state = "aborted"
        for closer in (self._pq, self._out if self._out is not self._raw else None, self._raw):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)

    def __del__(self) -> None:
        # safety net: a writer dropped without commit (its caller failed before reaching abort) leaves no temp
        if getattr(self, "state", None) == "open" and self._pid == os.getpid():  # not a forked copy
            with contextlib.suppress(Exception):
                self.abort()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.state == "open":
            if exc_type is None:
                self.commit()
            else:
                self.abort()


def _compression_for(path: Path) -> str | None:
    return {".gz": "gzip", ".zst": "zstd"}.get(path.suffix)


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> None:
    """Write rows as JSONL (.gz/.zst by suffix) via a temp file and os.replace."""
    path = Path(path)
    with ShardWriter(path, "jsonl", _compression_for(path)) as w:
        for row in rows:
            w.write(row)


def write_json_atomic(path: str | Path, obj: dict) -> None:
    """Write pretty JSON (indent=2, key order kept) via a temp file and os.replace."""
    path = Path(path)
    with ShardWriter(path, "txt") as w:
        w.write({"text": json.dumps(obj, indent=2, ensure_ascii=False) + "\n"})
