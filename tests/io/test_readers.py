"""list_shards, read_shard and count_records over every input kind, including bad lines."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from toedit.io import (
    BadRecord,
    FieldSpec,
    InputError,
    Record,
    Shard,
    count_records,
    discover,
    list_shards,
    read_shard,
)


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _touch(path, data: bytes = b'{"text": "x"}\n') -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _one(path) -> Shard:
    (shard,) = list_shards([str(path)])
    return shard


MIXED = [
    b'{"text": "first", "n": 1}\n',  # 1 ok
    b'{"text": "a" "b"}\n',  # 2 invalid JSON
    b'{"text": "caf\xff"}\n',  # 3 not UTF-8
    b"[1, 2, 3]\n",  # 4 not an object
    b'{"title": "no text"}\n',  # 5 missing field
    b'{"text": 5}\n',  # 6 wrong type
    b'{"text": ""}\n',  # 7 ok (empty text is valid)
    b"   \t \n",  # 8 blank: skipped
    b'{"text": "crlf line"}\r\n',  # 9 ok
    b"\n",  # 10 blank
    b'{"text": "last \\u00e9 \xe6\x9d\xb1"}',  # 11 ok, no final newline
]


def test_jsonl_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = _touch(tmp_path / "mixed.jsonl", b"".join(MIXED))
    shard = _one(path)
    items = list(read_shard(shard, FieldSpec()))
    bad = [(b.line, b.reason) for b in items if isinstance(b, BadRecord)]
    assert bad == [
        (2, "invalid JSON: Expecting ',' delimiter (col 14)"),
        (3, "not UTF-8 (byte 0xff at col 14)"),
        (4, "record is a list, expected a JSON object"),
        (5, "missing field 'text'"),
        (6, "field 'text' is int, expected str"),
    ]
    good = [r for r in items if isinstance(r, Record)]
    assert [(r.line, r.data["text"]) for r in good] == [
        (1, "first"),
        (7, ""),
        (9, "crlf line"),
        (11, "last é 東"),
    ]
    assert [r.id for r in good] == ["mixed:1", "mixed:7", "mixed:9", "mixed:11"]
    assert good[0].data == {"text": "first", "n": 1}
    assert all(b.file == path for b in items if isinstance(b, BadRecord))
    assert items[1].to_json() == {"file": path, "line": 2, "reason": items[1].reason}
    # in input order
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6, 7, 9, 11]
    assert count_records(shard) == 11


def test_record_kinds_and_bom(tmp_path):
    path = _touch(tmp_path / "k.jsonl", b'\xef\xbb\xbf{"text": "bom"}\n"str"\nnull\n3\n{"text": "x"')
    items = list(read_shard(_one(path), FieldSpec()))
    assert items[0] == Record(1, "k:1", {"text": "bom"})
    assert [i.reason for i in items[1:4]] == [
        "record is a str, expected a JSON object",
        "record is null, expected a JSON object",
        "record is an int, expected a JSON object",
    ]
    assert items[4].reason.startswith("invalid JSON: Expecting ',' delimiter")


def test_id_field_and_response_mode(tmp_path):
    rows = [{"uid": "a1", "prompt": "p", "response": "r1"}, {"uid": None, "prompt": "p", "response": "r2"}]
    path = _touch(tmp_path / "sub" / "inst.jsonl", _jsonl(rows) + b'{"uid": 3, "prompt": "p"}\n')
    spec = FieldSpec(id_field="uid", response_field="response")
    items = list(read_shard(_one(path), spec))
    assert [r.id for r in items[:2]] == ["a1", "inst:2"]
    assert items[2] == BadRecord(path, 3, "missing field 'response'")


def test_messages_mode_validation(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]},
        {"messages": "nope"},
    ]
    items = list(
        read_shard(_one(_touch(tmp_path / "chat.jsonl", _jsonl(rows))), FieldSpec(messages_field="messages"))
    )
    assert isinstance(items[0], Record)
    assert (items[1].line, items[1].reason) == (2, "messages[1] has no 'content'")
    assert (items[2].line, items[2].reason) == (3, "field 'messages' is str, expected list")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".ndjson", ".json"])
def test_compressed_and_alias_extensions(tmp_path, suffix):
    rows = [{"text": f"doc {i} ✓"} for i in range(5)]
    raw = _jsonl(rows)
    if suffix.endswith(".gz"):
        raw = gzip.compress(raw)
    elif suffix.endswith(".zst"):
        half = len(rows) // 2  # two zstd frames: both must be read
        cctx = zstandard.ZstdCompressor()
        raw = cctx.compress(_jsonl(rows[:half])) + cctx.compress(_jsonl(rows[half:]))
    shard = _one(_touch(tmp_path / f"part{suffix}", raw))
    assert shard.name == "part" and shard.format == "jsonl"
    assert shard.compression == {".jsonl.gz": "gzip", ".jsonl.zst": "zstd"}.get(suffix)
    assert [r.data for r in read_shard(shard, FieldSpec())] == rows
    assert count_records(shard) == 5


def _noisy_rows(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"text": "".join(rng.choice("abcdefgh 東😀\t") for _ in range(200)), "i": i} for i in range(n)]


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_truncated_compressed_input_raises_input_error(tmp_path, comp):
    rows = _noisy_rows(3000)
    if comp == "gzip":
        raw = gzip.compress(_jsonl(rows))
    else:
        cctx = zstandard.ZstdCompressor()
        raw = b"".join(cctx.compress(_jsonl(rows[i : i + 700])) for i in range(0, len(rows), 700))
        full = _one(_touch(tmp_path / "full" / "ok.jsonl.zst", raw))  # several frames, many 64 KiB reads
        assert [r.data for r in read_shard(full, FieldSpec())] == rows
    shard = _one(_touch(tmp_path / f"cut.jsonl.{'gz' if comp == 'gzip' else 'zst'}", raw[: len(raw) // 2]))
    with pytest.raises(InputError, match=f"cut.jsonl.* unreadable {comp} data after line"):
        list(read_shard(shard, FieldSpec()))
    with pytest.raises(InputError, match="unreadable"):
        count_records(shard)


def test_parquet_rows_and_bad_rows(tmp_path):
    path = str(tmp_path / "t.parquet")
    table = pa.table({"text": ["a", None, "c"] * 700, "k": list(range(2100))})
    pq.write_table(table, path, row_group_size=500)
    shard = _one(path)
    assert (shard.format, shard.out_suffix, shard.size) == ("parquet", ".parquet", os.path.getsize(path))
    items = list(read_shard(shard, FieldSpec(id_field="k")))
    assert len(items) == 2100
    assert items[0] == Record(1, "0", {"text": "a", "k": 0})
    assert items[1] == BadRecord(path, 2, "field 'text' is null, expected str")
    assert items[2099].line == 2100 and items[2099].data == {"text": "c", "k": 2099}
    assert count_records(shard) == 2100


def test_txt_bytes_and_bad_utf8(tmp_path):
    text = "Title  \r\n\r\nbody\twith tabs \u00e9 \U0001f600   \r\nno final newline  "
    good = _touch(tmp_path / "docs" / "a.md", text.encode("utf-8"))
    bad = _touch(tmp_path / "docs" / "b.txt", b"ok line\nbad \xc3\x28 here\n")
    shards = list_shards([str(tmp_path / "docs")])
    assert [(s.name, s.format, s.out_suffix) for s in shards] == [("a", "txt", ".txt"), ("b", "txt", ".txt")]
    assert list(read_shard(shards[0], FieldSpec())) == [Record(1, "a", {"text": text})]
    assert list(read_shard(shards[1], FieldSpec())) == [
        BadRecord(bad, 1, "not UTF-8 (byte 0xc3 at line 2 col 5)")
    ]
    assert count_records(shards[0]) == 1
    assert good.endswith("a.md")


def test_list_shards_dirs_globs_and_unique_names(tmp_path):
    root = tmp_path / "corpus"
    _touch(root / "part-0001.jsonl")
    _touch(root / "sub" / "part-0001.jsonl.gz", gzip.compress(b'{"text": "x"}\n'))
    _touch(root / "sub" / "deeper" / "d.parquet", b"")
    _touch(root / "sub" / "notes.csv", b"a,b\n")  # unsupported: ignored in a directory
    _touch(root / ".hidden" / "h.jsonl")
    _touch(root / "x.jsonl.tmp-123")
    shards = list_shards([str(root)])
    assert [s.name for s in shards] == ["part-0001", "sub__deeper__d", "sub__part-0001"]
    assert [s.path for s in shards] == sorted(s.path for s in shards)
    assert shards[2].out_suffix == ".jsonl.gz"
    assert len({s.name for s in shards}) == len(shards)

    globbed = list_shards([str(root / "**" / "*.jsonl*")])
    assert [s.name for s in globbed] == ["part-0001", "sub__part-0001"]
    # overlapping inputs are deduplicated; names are relative to the common root of the inputs
    both = list_shards([str(root / "sub"), str(root / "part-0001.jsonl"), str(root)])
    assert [s.name for s in both] == ["part-0001", "sub__deeper__d", "sub__part-0001"]
    assert list_shards([str(root / "sub")])[1].name == "part-0001"


def test_list_shards_errors(tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="nope.jsonl"):
        list_shards([missing])
    with pytest.raises(InputError, match=r"\*\.zzz"):
        list_shards([str(tmp_path / "*.zzz")])
    with pytest.raises(InputError, match="unsupported input format"):
        list_shards([_touch(tmp_path / "data.csv", b"a\n")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        list_shards([str(tmp_path / "empty")])
    _touch(tmp_path / "c" / "a.jsonl")
    _touch(tmp_path / "c" / "a.jsonl.gz", gzip.compress(b"\n"))
    with pytest.raises(InputError, match="'a'"):
        list_shards([str(tmp_path / "c")])
    with pytest.raises(InputError):
        list_shards([])


def test_stdin_shard(monkeypatch):
    data = b'{"text": "from stdin \xe2\x9c\x93"}\n\n{"text": 1}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    (shard,) = list_shards(["-"])
    assert shard == Shard("-", "stdin", "jsonl", None, 0, label="<stdin>")
    assert shard.out_suffix == ".jsonl"
    assert count_records(shard) is None
    items = list(read_shard(shard, FieldSpec()))
    assert items == [
        Record(1, "stdin:1", {"text": "from stdin ✓"}),
        BadRecord("<stdin>", 3, "field 'text' is int, expected str"),
    ]


@pytest.fixture
def datasets_mod():
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    return datasets


def test_datasets_dataset_dir(tmp_path, datasets_mod):
    rows = [{"text": f"row {i} 東", "meta": {"i": i}} for i in range(2500)] + [
        {"text": None, "meta": {"i": -1}}
    ]
    datasets_mod.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    shard = _one(tmp_path / "ds")
    assert (shard.name, shard.format, shard.out_suffix) == ("ds", "datasets", ".parquet")
    assert shard.size == sum(f.stat().st_size for f in (tmp_path / "ds").iterdir())
    items = list(read_shard(shard, FieldSpec()))
    assert [r.data for r in items[:-1]] == rows[:-1]
    assert items[-1] == BadRecord(shard.path, 2501, "field 'text' is null, expected str")
    assert items[1].id == "ds:2"
    assert count_records(shard) == 2501


def test_datasets_dict_dir(tmp_path, datasets_mod):
    train = datasets_mod.Dataset.from_list([{"text": "t1"}, {"text": "t2"}])
    test = datasets_mod.Dataset.from_list([{"text": "e1"}])
    datasets_mod.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "data" / "dd"))
    _touch(tmp_path / "data" / "plain.jsonl")
    shards = list_shards([str(tmp_path / "data" / "dd")])
    assert [(s.name, s.path) for s in shards] == [
        ("dd__test", str(tmp_path / "data" / "dd" / "test")),
        ("dd__train", str(tmp_path / "data" / "dd" / "train")),
    ]
    assert [r.data["text"] for r in read_shard(shards[1], FieldSpec())] == ["t1", "t2"]
    # found inside a plain directory too, without its metadata files being taken for JSON input
    assert [s.name for s in list_shards([str(tmp_path / "data")])] == ["dd__test", "dd__train", "plain"]
    assert [s.name for s in list_shards([str(tmp_path / "data" / "**" / "*.json*")])] == ["plain"]


@pytest.mark.parametrize(
    ("listing", "match"),
    [
        ({"splits": ["train", "../other"]}, "lists the split '../other', which is not a directory inside"),
        ({"splits": ["train", "ABS"]}, "which is not a directory inside"),
        ({"splits": ["train", "."]}, "lists the split '.'"),
        ({"splits": ["train", "link"]}, "lists the split 'link'"),
        ({"splits": "train"}, "not a datasets split listing .'splits' is not a list of names"),
        ([1, 2], "not a datasets split listing .a JSON list, expected an object"),
    ],
)
def test_datasets_splits_outside_the_input_are_refused(tmp_path, datasets_mod, listing, match):
    datasets_mod.Dataset.from_list([{"text": "outside"}]).save_to_disk(str(tmp_path / "other"))
    datasets_mod.DatasetDict(train=datasets_mod.Dataset.from_list([{"text": "t"}])).save_to_disk(
        str(tmp_path / "dd")
    )
    os.symlink(tmp_path / "other", tmp_path / "dd" / "link")  # a split that is a link out of the input
    if isinstance(listing, dict) and "ABS" in listing["splits"]:
        listing = {"splits": ["train", str(tmp_path / "other")]}
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps(listing))
    for inputs in ([str(tmp_path / "dd")], [str(tmp_path)]):
        with pytest.raises(InputError, match=match):
            discover(inputs)
