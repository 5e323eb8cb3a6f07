"""ShardWriter round-trips through read_shard for every format; atomicity and determinism."""

from __future__ import annotations

import errno
import gc
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toedit.io import (
    FieldSpec,
    Record,
    ShardWriter,
    list_shards,
    read_shard,
    write_json_atomic,
    write_jsonl_atomic,
)

TRICKY = [
    "Plain prose, with punctuation; numbers 1,234.56!",
    "café naïve — “quotes” … NBSP:\u00a0 zero-width:\u200b",
    "CJK 東京都は日本の首都です。中文。한국어",
    "Emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "tabs\tinside\t\tand combining e\u0301",
    "Windows\r\nline endings\r\n\r\n",
    "trailing spaces   \nand more   ",
    "",
    'quotes " and backslash \\ and \u2028 separator',
]
ROWS = [{"id": i, "text": t, "meta": {"lang": "x", "tags": ["a", "b"]}} for i, t in enumerate(TRICKY)]


def _read_back(path, spec: FieldSpec | None = None) -> list[Record]:
    (shard,) = list_shards([str(path)])
    items = list(read_shard(shard, spec or FieldSpec()))
    assert all(isinstance(r, Record) for r in items)
    return items


def _no_tmp(directory) -> bool:
    return not [p for p in os.listdir(directory) if ".tmp-" in p]


@pytest.mark.parametrize(
    ("name", "fmt", "compression"),
    [
        ("out.jsonl", "jsonl", None),
        ("out.jsonl.gz", "jsonl", "gzip"),
        ("out.jsonl.zst", "jsonl", "zstd"),
        ("out.parquet", "parquet", None),
    ],
)
def test_round_trip(tmp_path, name, fmt, compression):
    path = tmp_path / "deep" / "dir" / name
    with ShardWriter(path, fmt, compression) as w:
        for row in ROWS:
            w.write(row)
    assert path.exists() and _no_tmp(path.parent)
    records = _read_back(path)
    assert [r.data for r in records] == ROWS
    assert [r.line for r in records] == list(range(1, len(ROWS) + 1))


def test_jsonl_is_plain_utf8(tmp_path):
    path = tmp_path / "o.jsonl"
    with ShardWriter(path, "jsonl") as w:
        w.write({"text": "東 😀"})
    assert path.read_bytes() == '{"text": "東 😀"}\n'.encode()


def test_parquet_many_row_groups_and_schema_unification(tmp_path):
    path = tmp_path / "big.parquet"
    rows = []
    for i in range(3500):
        row: dict = {"text": f"t{i}", "score": i if i < 1500 else i + 0.5, "extra": None}
        if i >= 2000:
            row["extra"] = {"k": "v"}  # unknown in the first groups: typed later
        if i % 7 == 0:
            del row["score"]  # missing -> null
        rows.append(row)
    with ShardWriter(path, "parquet") as w:
        for row in rows:
            w.write(row)
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == 3500 and pf.metadata.num_row_groups >= 3
    back = [r.data for r in _read_back(path)]
    assert back[1] == {"text": "t1", "score": 1.0, "extra": None}
    assert back[0]["score"] is None
    assert back[2001] == {"text": "t2001", "score": 2001.5, "extra": {"k": "v"}}


@pytest.mark.parametrize(
    ("late", "match"),
    [({"text": "x", "n": "str"}, "field 'n' is string"), ({"text": "x", "n": 1, "new": 1}, "new field")],
)
def test_parquet_incompatible_later_group_raises(tmp_path, late, match):
    path = tmp_path / "bad.parquet"
    w = ShardWriter(path, "parquet")
    for i in range(1000):
        w.write({"text": "x", "n": i})
    w.write(late)
    with pytest.raises(ValueError, match=match) as info:
        w.commit()
    assert "rows 1001-1001" in str(info.value)
    assert not path.exists() and _no_tmp(tmp_path)


def test_parquet_no_rows_gives_empty_file(tmp_path):
    path = tmp_path / "empty.parquet"
    ShardWriter(path, "parquet").commit()
    assert pq.ParquetFile(path).metadata.num_rows == 0
    assert _read_back(path) == []


def test_txt_round_trip_is_byte_identical(tmp_path):
    raw = "Line one  \r\nline two\t\r\n\r\n東京 😀   \r\nno newline at end   ".encode()
    src = tmp_path / "in" / "doc.txt"
    src.parent.mkdir()
    src.write_bytes(raw)
    (rec,) = _read_back(src)
    out = tmp_path / "out" / "doc.txt"
    with ShardWriter(out, "txt") as w:
        w.write(rec.data)
    assert out.read_bytes() == raw
    with pytest.raises(ValueError, match="exactly one record"), ShardWriter(tmp_path / "two.txt", "txt") as w:
        w.write({"text": "a"})
        w.write({"text": "b"})
    assert not (tmp_path / "two.txt").exists()


def test_gzip_and_zstd_output_is_deterministic(tmp_path):
    for suffix, comp in ((".jsonl.gz", "gzip"), (".jsonl.zst", "zstd")):
        blobs = []
        for k in range(2):
            path = tmp_path / f"run{k}" / f"same{suffix}"
            with ShardWriter(path, "jsonl", comp) as w:
                for row in ROWS:
                    w.write(row)
            blobs.append(path.read_bytes())
        assert blobs[0] == blobs[1]
    header = (tmp_path / "run0" / "same.jsonl.gz").read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0"  # mtime 0
    assert not header[3] & 0x08  # no FNAME
    assert gzip.decompress((tmp_path / "run0" / "same.jsonl.gz").read_bytes()).count(b"\n") == len(ROWS)


def test_abort_and_exception_leave_nothing(tmp_path):
    w = ShardWriter(tmp_path / "a.jsonl", "jsonl")
    w.write({"text": "x"})
    assert (tmp_path / f"a.jsonl.tmp-{os.getpid()}").exists()
    assert not (tmp_path / "a.jsonl").exists()  # nothing visible before commit
    w.abort()
    w.abort()
    assert os.listdir(tmp_path) == []
    with (
        pytest.raises(RuntimeError, match="boom"),
        ShardWriter(tmp_path / "b.jsonl.gz", "jsonl", "gzip") as w2,
    ):
        w2.write({"text": "x"})
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError, match="commit after abort"):
        w.commit()


def test_commit_is_atomic_and_idempotent(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "old"}\n')
    w = ShardWriter(path, "jsonl")
    w.write({"text": "new"})
    assert path.read_text() == '{"text": "old"}\n'  # old content intact until commit
    w.commit()
    w.commit()
    w.abort()  # no-op after commit
    assert path.read_text() == '{"text": "new"}\n'
    assert os.listdir(tmp_path) == ["c.jsonl"]
    with pytest.raises(RuntimeError, match="write after committed"):
        w.write({"text": "late"})


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown output format"):
        ShardWriter(tmp_path / "x.csv", "csv")
    with pytest.raises(ValueError, match="not supported"):
        ShardWriter(tmp_path / "x.parquet", "parquet", "gzip")


def test_json_helpers(tmp_path):
    write_json_atomic(tmp_path / "m" / "done.json", {"z": 1, "a": ["é"]})
    assert (tmp_path / "m" / "done.json").read_text(
        encoding="utf-8"
    ) == '{\n  "z": 1,\n  "a": [\n    "é"\n  ]\n}\n'
    rows = [{"file": "f", "line": 2, "reason": "r"}, {"file": "g", "line": 3, "reason": "東"}]
    write_jsonl_atomic(tmp_path / "e" / "errors.jsonl", rows)
    lines = (tmp_path / "e" / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == rows
    write_jsonl_atomic(tmp_path / "e" / "none.jsonl", [])
    assert (tmp_path / "e" / "none.jsonl").read_bytes() == b""
    assert sorted(os.listdir(tmp_path / "e")) == ["errors.jsonl", "none.jsonl"]


class _FullDisk:
    """A file whose `step` ("write", "flush" or "close") fails with ENOSPC, as on a full disk."""

    def __init__(self, path, mode, step):
        self._f = open(path, mode)  # noqa: SIM115
        self._step = step

    def _maybe_fail(self, step):
        if step == self._step:
            raise OSError(errno.ENOSPC, "No space left on device")

    def write(self, data):
        self._maybe_fail("write")
        return self._f.write(data)

    def flush(self):
        self._maybe_fail("flush")
        return self._f.flush()

    def close(self):
        self._f.close()  # the real file is closed either way, as the OS does
        self._maybe_fail("close")

    def __getattr__(self, name):
        return getattr(self._f, name)


STEPS = ["open", "open-after-create", "write", "flush", "close", "fsync", "replace"]
KINDS = [("o.jsonl", "jsonl", None), ("o.jsonl.gz", "jsonl", "gzip"), ("o.jsonl.zst", "jsonl", "zstd")]
KINDS += [("o.parquet", "parquet", None), ("o.txt", "txt", None)]


@pytest.mark.parametrize("managed", [True, False], ids=["with", "bare"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("name", "fmt", "compression"), KINDS)
def test_out_of_space_at_any_step_leaves_no_temp_file(
    tmp_path, monkeypatch, step, name, fmt, compression, managed
):
    """ENOSPC at open, write, flush, close, fsync or rename; `bare`: the caller never calls abort()."""
    import toedit.io.writers as writers

    def full_open(path, mode="r", *args, **kwargs):
        if step == "open":
            raise OSError(errno.ENOSPC, "No space left on device")
        if step == "open-after-create":
            open(path, mode).close()  # noqa: SIM115 (the file exists, then the next step fails)
            raise OSError(errno.ENOSPC, "No space left on device")
        return _FullDisk(path, mode, step)

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "open", full_open, raising=False)
    if step in ("fsync", "replace"):
        monkeypatch.setattr(writers.os, step, fail)
    rows = [{"text": f"row {i} " + "x" * 200} for i in range(1 if fmt == "txt" else 2 * writers.ROW_GROUP)]
    with pytest.raises(OSError) as info:
        if managed:
            with ShardWriter(tmp_path / name, fmt, compression) as w:
                for row in rows:
                    w.write(row)
        else:
            w = ShardWriter(tmp_path / name, fmt, compression)
            for row in rows:
                w.write(row)
            w.commit()
    assert info.value.errno == errno.ENOSPC
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # gone at once, not only when collected
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []  # neither the temp file nor a partial output


def test_writer_dropped_without_commit_or_abort_leaves_no_temp(tmp_path):
    w = ShardWriter(tmp_path / "d.jsonl", "jsonl")
    w.write({"text": "x"})
    assert os.listdir(tmp_path) == [f"d.jsonl.tmp-{os.getpid()}"]
    del w
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_unencodable_record_is_refused_and_the_writer_stays_usable(tmp_path):
    path = tmp_path / "u.jsonl"
    with ShardWriter(path, "jsonl") as w:
        w.write({"text": "a"})
        with pytest.raises(ValueError, match="record 2 holds a string that is not valid Unicode"):
            w.write({"text": "\ud800"})
        w.write({"text": "b"})
    assert path.read_text() == '{"text": "a"}\n{"text": "b"}\n' and w.n_written == 2


def _copy_through(src, out, schema=None) -> list[Record]:
    """Every record of `src` written to `out` with its source record, the text upper-cased."""
    (shard,) = list_shards([str(src)])
    records = list(read_shard(shard, FieldSpec()))
    with ShardWriter(out, "parquet", schema=schema) as w:
        for rec in records:
            w.write(rec.data | {"text": rec.data["text"].upper()}, rec)
    return records


def test_parquet_schema_comes_from_the_input_not_the_first_rows(tmp_path):
    """An int64 column null in the first 10,000 rows and set later, a map and a dictionary column: the output
    has the input's schema (inferring it from the first rows failed on every retry)."""
    n = 10_001
    table = pa.table(
        {
            "text": pa.array(["t"] * n, pa.large_string()),
            "s": pa.array([None] * (n - 1) + [7], pa.int64()),
            "m": pa.array([[("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
            "d": pa.array([["a", "b", "c"][i % 3] for i in range(n)]).dictionary_encode(),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=3000)
    _copy_through(tmp_path / "in.parquet", tmp_path / "out.parquet")
    back = pq.read_table(tmp_path / "out.parquet")
    assert back.schema == table.schema
    assert back.column("text").to_pylist() == ["T"] * n
    assert back.drop_columns(["text"]).equals(table.drop_columns(["text"]))


def test_parquet_changed_column_keeps_its_input_type_and_new_rows_must_fit(tmp_path):
    schema = pa.schema([pa.field("text", pa.string(), nullable=False), pa.field("n", pa.int8())])
    pq.write_table(pa.table({"text": ["a", "b"], "n": [1, None]}, schema=schema), tmp_path / "in.parquet")
    _copy_through(tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert pq.read_schema(tmp_path / "out.parquet").remove_metadata() == schema
    w = ShardWriter(tmp_path / "bad.parquet", "parquet", schema=schema)
    w.write({"text": None, "n": 1})
    with pytest.raises(ValueError, match="'text' is null in some row but not nullable") as info:
        w.commit()
    assert "JSONL" not in str(info.value) and not (tmp_path / "bad.parquet").exists()


def test_parquet_without_rows_keeps_the_input_schema(tmp_path):
    schema = pa.schema([("text", pa.large_string()), ("x", pa.decimal128(20, 2))])
    ShardWriter(tmp_path / "e.parquet", "parquet", schema=schema).commit()
    assert pq.read_schema(tmp_path / "e.parquet") == schema
