"""Every record's fields kept exactly through `toedit edit` (issue #23): JSONL pass-through values keep their
source text, duplicate keys are bad records, a record's own `toedit` field is kept, parquet output keeps the
input's Arrow schema, and errors from standard input name `<stdin>`."""

from __future__ import annotations

import decimal
import io
import json
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.io import jsongen
from toedit.cli import EXIT_INPUT, EXIT_OK, main

FLAGS = ["--device", "cpu", "--no-progress", "--compile", "off", "--threshold", "1.0"]


def edit(model_dir, *args: str) -> int:
    return main(["edit", *args, "--model", str(model_dir), *FLAGS])


def out_lines(run: Path, name: str) -> list[str]:
    return (run / "data" / name).read_bytes().decode("utf-8").split("\n")[:-1]  # not splitlines: U+2028


def test_pass_through_numbers_keep_their_text(tmp_path, tiny_model_dir):
    line = '{"id":"a","n": 12345678901234567.89, "h": 1e400,"text":"The quick brown fox.","e":"caf\\u00e9"}'
    (tmp_path / "f.jsonl").write_text(line + "\n", encoding="utf-8")
    assert edit(tiny_model_dir, str(tmp_path / "f.jsonl"), "-o", str(tmp_path / "r")) == EXIT_OK
    (out,) = out_lines(tmp_path / "r", "f.jsonl")
    assert out.startswith(line[:-1] + ',"toedit":{"n_tokens":'), out
    assert "Infinity" not in out and json.loads(out)["toedit"]["n_changed"] == 0


def test_duplicate_keys_are_bad_records_and_an_own_toedit_field_is_kept(tmp_path, tiny_model_dir):
    lines = [
        '{"id":"a","text":"first","text":"second"}',
        '{"id":"b","text":"kept","toedit":"my own field"}',
        '{"id":"c","text":"x","meta":{"k":1,"k":2}}',
    ]
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "r"
    assert edit(tiny_model_dir, str(tmp_path / "f.jsonl"), "-o", str(run)) == EXIT_OK
    (out,) = [json.loads(x) for x in out_lines(run, "f.jsonl")]
    assert out["id"] == "b" and out["toedit"] == "my own field" and out["toedit_1"]["n_tokens"] > 0
    errors = [json.loads(x) for x in (run / "errors.jsonl").read_text().splitlines()]
    assert [(e["file"], e["line"]) for e in errors] == [
        (str(tmp_path / "f.jsonl"), 1),
        (str(tmp_path / "f.jsonl"), 3),
    ]
    assert errors[0]["reason"].startswith("duplicate key 'text'") and "'k'" in errors[1]["reason"]
    assert json.loads((run / "stats.json").read_text())["n_errors"] == 2


def test_random_records_round_trip_byte_for_byte_through_edit(tmp_path, tiny_model_dir):
    """Property: random records of every JSON spelling come out of `toedit edit --threshold 1.0` as they went
    in, plus the stats member after their last member (under `toedit_1` where they hold a `toedit`)."""
    rng = random.Random(23)
    records = [jsongen.record(rng, n) for n in range(60)]
    (tmp_path / "f.jsonl").write_text("".join(raw + "\n" for raw, _ in records), encoding="utf-8")
    run = tmp_path / "r"
    assert edit(tiny_model_dir, str(tmp_path / "f.jsonl"), "-o", str(run), "--docs-per-batch", "7") == EXIT_OK
    outs = out_lines(run, "f.jsonl")
    assert len(outs) == len(records)
    for (raw, last), out in zip(records, outs, strict=True):
        tail = len(raw) - last
        assert out[:last] == raw[:last] and out[len(out) - tail :] == raw[last:], (raw, out)
        key = "toedit_1" if "toedit" in json.loads(raw) else "toedit"
        assert out[last : len(out) - tail].lstrip(" ,").startswith(json.dumps(key))
        assert json.loads(out)[key]["n_changed"] == 0


def test_stdin_errors_name_stdin(tmp_path, tiny_model_dir, monkeypatch, capsys):
    data = b'{"id":"a","text":"ok","n":1e400}\n{"id":"b","text":3}\n'
    for target in ("-", str(tmp_path / "r")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        assert edit(tiny_model_dir, "-", "-o", target) == EXIT_OK
        captured = capsys.readouterr()
        if target == "-":  # the record on stdout is spliced too
            assert captured.out.startswith('{"id":"a","text":"ok","n":1e400,"toedit":{"n_tokens":')
        err = captured.err if target == "-" else (tmp_path / "r" / "errors.jsonl").read_text()
        (error,) = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
        assert error["file"] == "<stdin>" and error["line"] == 2, err


def _types_table(rng: random.Random, n: int) -> pa.Table:
    """A column of (almost) every Arrow type Parquet stores, with random values and nulls."""

    def pick(values):
        return [rng.choice(values) if rng.random() < 0.8 else None for _ in range(n)]

    cols = {
        "text": pa.array([f"row {i} of the table." for i in range(n)], pa.large_string()),
        "i8": pa.array(pick([-128, 0, 127]), pa.int8()),
        "u64": pa.array(pick([0, 2**64 - 1]), pa.uint64()),
        "f16": pa.array(pick([1.5, -0.0]), pa.float16()),
        "f32": pa.array(pick([1.1, 3e38]), pa.float32()),
        "dec": pa.array(
            pick([decimal.Decimal("123456789012345678.91"), decimal.Decimal("-0.01")]), pa.decimal128(20, 2)
        ),
        "bin": pa.array(pick([b"\x00\xff", b""]), pa.binary()),
        "ts": pa.array(pick([1, 1700000000123456789]), pa.timestamp("ns", tz="UTC")),
        "t64": pa.array(pick([1, 86399999999999]), pa.time64("ns")),
        "map": pa.array(pick([[("k", 1)], []]), pa.map_(pa.string(), pa.int64())),
        "dict": pa.array(pick(["x", "y"])).dictionary_encode(),
        "nested": pa.array(
            pick([{"a": [1, None], "b": "s"}]), pa.struct([("a", pa.list_(pa.int16())), ("b", pa.string())])
        ),
        "late": pa.array([None] * (n - 1) + [7], pa.int64()),  # null until the last row
    }
    schema = pa.schema(
        [pa.field(k, v.type, nullable=k != "text") for k, v in cols.items()], metadata={"m": "1"}
    )
    return pa.table(cols, schema=schema)


@pytest.mark.parametrize("seed", [1, 2])
def test_parquet_output_keeps_the_input_schema_and_values(tmp_path, tiny_model_dir, seed):
    """Property: random tables of every type (a column null but in its last row, maps, dictionaries,
    decimal128(20, 2), int8, float16/32, large_string, time64[ns], not-null fields) come out with the input's
    Arrow schema and values, plus the stats column (tests/io/test_writers.py: null in the first 10,000 rows)."""
    table = _types_table(random.Random(seed), 300 if seed == 1 else 37)
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=120)
    run = tmp_path / "r"
    assert (
        edit(tiny_model_dir, str(tmp_path / "t.parquet"), "-o", str(run), "--docs-per-batch", "50") == EXIT_OK
    )
    back = pq.read_table(run / "data" / "t.parquet")
    assert back.schema.remove(back.schema.get_field_index("toedit")) == table.schema
    assert back.schema.metadata[b"m"] == b"1"
    assert back.drop_columns(["toedit"]).equals(table)
    assert back.column("toedit").to_pylist()[0]["n_changed"] == 0


def test_parquet_map_column_and_spans(tmp_path, tiny_model_dir):
    table = pa.table(
        {
            "text": ["The quick brown fox jumps."],
            "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    run = tmp_path / "r"
    args = [str(tmp_path / "m.parquet"), "-o", str(run), "--record-spans"]
    assert main(["edit", *args, "--model", str(tiny_model_dir), *FLAGS[:-1], "0.0"]) == EXIT_OK
    (row,) = pq.read_table(run / "data" / "m.parquet").to_pylist()
    assert row["m"] == [("k", 1)] and isinstance(json.loads(row["toedit"]["spans"]), list)


def test_datasets_splits_outside_the_input_are_refused(tmp_path, tiny_model_dir, capsys):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["outside"]}).save_to_disk(str(tmp_path / "other"))
    datasets.DatasetDict({"t": datasets.Dataset.from_dict({"text": ["inside"]})}).save_to_disk(
        str(tmp_path / "ds")
    )
    for split in ("../other", str(tmp_path / "other")):
        (tmp_path / "ds" / "dataset_dict.json").write_text(json.dumps({"splits": ["t", split]}))
        assert edit(tiny_model_dir, str(tmp_path / "ds"), "-o", str(tmp_path / "r")) == EXIT_INPUT
        assert "not a directory inside" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
