"""Strings that cannot be written as UTF-8 (lone surrogates) are bad records in every reader, never a shard failure."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toedit.io import BadRecord, FieldSpec, Record, ShardWriter, list_shards, read_shard
from toedit.io.fields import unencodable

SPEC = FieldSpec(id_field="id", messages_field=None)
CHAT = FieldSpec(id_field="id", messages_field="messages")
# strings that json.loads turns into lone surrogates, and the code point each reason must name
LONE = [("\ud800", "D800"), ("a\udfff", "DFFF"), ("\udc00\ud800", "DC00"), ("tail \udbff", "DBFF")]


def _base(i: int) -> dict:
    return {
        "id": f"r{i}",
        "text": "plain",
        "meta": {"x": "ok", "tags": ["a", "b"]},
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }


def _placements(bad: str) -> list[tuple[dict, str]]:
    """(record, expected reason prefix) with `bad` put in each kind of place a record can hold a string."""
    out = []

    def put(edit, reason):
        rec = _base(len(out))
        edit(rec)
        out.append((rec, reason))

    put(lambda r: r.update(text=bad), "field 'text' holds an unencodable string")
    put(lambda r: r.update(id=bad), "field 'id' holds an unencodable string")
    put(lambda r: r.update(source=bad), "field 'source' holds an unencodable string")
    put(lambda r: r["meta"].update(x=bad), "field 'meta.x' holds an unencodable string")
    put(lambda r: r["meta"]["tags"].append(bad), "field 'meta.tags[2]' holds an unencodable string")
    put(
        lambda r: r.update({bad: 1}),
        f"key '{bad.encode('utf-8', 'backslashreplace').decode()}' at the top level",
    )
    put(lambda r: r["meta"].update({bad: 1}), "key '")
    put(lambda r: r.update(deep=[[{"k": [bad]}]]), "field 'deep[0][0].k[0]' holds an unencodable string")
    put(lambda r: r["messages"][1].update(content=bad), "field 'messages[1].content' holds an unencodable")
    put(lambda r: r["messages"][0].update(role=bad), "field 'messages[0].role' holds an unencodable string")
    return out


def _record_set() -> tuple[list[dict], list[str | None]]:
    """Every placement of every lone surrogate, interleaved with good records (None: must be a Record)."""
    rows: list[dict] = []
    reasons: list[str | None] = []
    for bad, code in LONE:
        for rec, reason in _placements(bad):
            rows.append(rec)
            reasons.append(f"{reason}|U+{code}")
            rows.append(_base(len(rows)) | {"text": "emoji \U0001f600 pair and \\ud800 as text"})
            reasons.append(None)
    return rows, reasons


def _jsonl(rows: list[dict]) -> bytes:
    # ensure_ascii=True writes every surrogate as a \\uXXXX escape: the only way one reaches a JSON file
    return "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows).encode("ascii")


def _assert_items(items, reasons, path):
    assert len(items) == len(reasons)
    for line, (item, want) in enumerate(zip(items, reasons, strict=True), start=1):
        assert item.line == line
        if want is None:
            assert isinstance(item, Record), item
            continue
        assert isinstance(item, BadRecord), (line, want, item)
        prefix, code = want.split("|")
        assert item.reason.startswith(prefix), (item.reason, prefix)
        assert f"lone surrogate {code}" in item.reason, item.reason
        assert item.file == path
        json.dumps(item.to_json(), ensure_ascii=False).encode("utf-8")  # errors.jsonl can hold it


@pytest.mark.parametrize("spec", [SPEC, CHAT], ids=["text", "messages"])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_lone_surrogates_anywhere_are_bad_records(tmp_path, spec, suffix):
    rows, reasons = _record_set()
    raw = _jsonl(rows)
    path = tmp_path / f"set{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    (shard,) = list_shards([str(path)])
    items = list(read_shard(shard, spec))
    _assert_items(items, reasons, str(path))
    # every Record can be written: the writer never meets a string it cannot encode
    for fmt, name in (("jsonl", "out.jsonl"), ("parquet", "out.parquet")):
        with ShardWriter(tmp_path / name, fmt) as w:
            for item in items:
                if isinstance(item, Record):
                    w.write(item.data)
        assert w.n_written == reasons.count(None)


def test_stdin_and_line_parts(tmp_path, monkeypatch):
    rows, reasons = _record_set()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_jsonl(rows)), encoding="utf-8"))
    (shard,) = list_shards(["-"])
    _assert_items(list(read_shard(shard, SPEC)), reasons, "<stdin>")
    path = tmp_path / "parts.jsonl"
    path.write_bytes(_jsonl(rows))
    items = [i for s in list_shards([str(path)], shard_lines=7) for i in read_shard(s, SPEC)]
    _assert_items(items, reasons, str(path))


def test_unencodable_names_the_first_problem():
    assert unencodable({"text": "fine \U0001f600", "n": [1, {"k": None}]}) is None
    assert unencodable({"a": {"b": ["x", "\ud800"]}}) == (
        "field 'a.b[1]' holds an unencodable string (lone surrogate U+D800 at character 1)"
    )
    assert unencodable({"a": {"k\udfff": 1}}) == (
        "key 'k\\udfff' in field 'a' is an unencodable string (lone surrogate U+DFFF at character 2)"
    )
    deep: dict = {"text": "x"}
    node = deep
    for _ in range(50_000):  # deeper than Python's recursion limit
        node["n"] = {}
        node = node["n"]
    node["s"] = "\ud800"
    assert unencodable(deep).startswith("field 'n.n.n.")


def _invalid_utf8_table(values: list[bytes]) -> pa.Table:
    """A table whose string columns hold raw bytes, as a foreign writer may leave them (Arrow does not check)."""
    text = pa.array(values, pa.binary()).view(pa.string())
    meta = pa.StructArray.from_arrays(
        [
            pa.array([[b"ok"], [b"ok", b"\xed\xa0\x80"], [b"ok"], [b"ok"]], pa.list_(pa.binary())).view(
                pa.list_(pa.string())
            )
        ],
        ["tags"],
    )
    return pa.table({"text": text, "id": pa.array(["a", "b", "c", "d"]), "meta": meta})


def test_parquet_invalid_utf8_rows_are_bad_records(tmp_path):
    path = tmp_path / "raw.parquet"
    table = _invalid_utf8_table([b"good", b"fine", b"\xed\xa0\x80 surrogate", b"caf\xff"])
    pq.write_table(table, path)
    (shard,) = list_shards([str(path)])
    items = list(read_shard(shard, SPEC))
    assert items[0] == Record(1, "a", {"text": "good", "id": "a", "meta": {"tags": ["ok"]}})
    assert items[1] == BadRecord(
        str(path),
        2,
        "field 'meta.tags[1]' holds an unencodable string (lone surrogate U+D800 stored as bytes ed a0 80)",
    )
    assert items[2] == BadRecord(
        str(path),
        3,
        "field 'text' holds an unencodable string (lone surrogate U+D800 stored as bytes ed a0 80)",
    )
    assert items[3] == BadRecord(str(path), 4, "field 'text' holds invalid UTF-8 (byte 0xff at byte 4)")


def test_datasets_invalid_utf8_rows_are_bad_records(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    table = _invalid_utf8_table([b"good", b"ok", b"\xed\xbf\xbf", b"fine"])
    datasets.Dataset(table).save_to_disk(str(tmp_path / "ds"))
    (shard,) = list_shards([str(tmp_path / "ds")])
    items = list(read_shard(shard, SPEC))
    assert [type(i).__name__ for i in items] == ["Record", "BadRecord", "BadRecord", "Record"]
    assert "field 'text'" in items[2].reason and "U+DFFF" in items[2].reason


def test_edit_run_keeps_every_good_record(tmp_path, tiny_prior):
    """End to end: the shard commits, the good records are edited, each bad one is in errors.jsonl."""
    from toedit.config import EditConfig, RunConfig
    from toedit.runs import run_edit

    rows, reasons = _record_set()
    src = tmp_path / "in.jsonl"
    src.write_bytes(_jsonl(rows))
    summary = run_edit(
        [str(src)], str(tmp_path / "run"), EditConfig(), run=RunConfig(progress=False), prior=tiny_prior
    )
    out = (tmp_path / "run" / "data" / "in.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in out] == [
        r["id"] for r, w in zip(rows, reasons, strict=True) if w is None
    ]
    errors = [
        json.loads(x) for x in (tmp_path / "run" / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [e["line"] for e in errors] == [i for i, w in enumerate(reasons, start=1) if w is not None]
    assert summary.stats["n_records"] == reasons.count(None)


def test_line_prefilter_agrees_with_the_decoded_record():
    """The byte-level test that skips the record walk never misses a lone surrogate (random escape soups)."""
    import random

    from toedit.io.decoding import lone_surrogate_escape as _lone_surrogate_escape

    pieces = [
        "\\ud800",
        "\\udbff",
        "\\udc00",
        "\\uDFFF",
        "\\ud83d\\ude00",
        "\\\\",
        "\\\\ud800",
        "a",
        "\\u00e9",
        "\\n",
    ]
    rng = random.Random(0)
    for _ in range(5000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        line = ('{"text": "' + body + '"}').encode()
        assert _lone_surrogate_escape(line) == (unencodable(json.loads(line)) is not None), line
