"""`runs.arrow.table`: the arrays of `pa.Table.from_pydict`, the same Parquet bytes, no pandas import."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toedit.runs import arrow

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("line", pa.int64()),
        ("n", pa.int64()),
        ("token_ids", pa.list_(pa.int32())),
        ("logprob", pa.list_(pa.float32())),
        ("topk_ids", pa.list_(pa.list_(pa.int32()))),
        ("topk_logprobs", pa.list_(pa.list_(pa.float32()))),
        ("spans", pa.string()),
    ]
)
ROWS = {
    "id": ["a:1", "ünïcode 文字 🙂", ""],
    "line": [1, 2**40, 3],
    "n": [0, -5, 7],
    "token_ids": [[1, 2, 3], [], [2**31 - 1]],
    "logprob": [[math.nan, -0.1, -1e-8], [], [-123.456789]],
    "topk_ids": [[[1, 2], [3, 4], [5, 6]], [], [[7, 8]]],
    "topk_logprobs": [[[-0.5, -math.inf], [0.0, -2.0], [-1.0, -3.0]], [], [[-0.25, -0.75]]],
    "spans": ["[]", '[{"a": "é"}]', "[]"],
}
NO_NAN = dict(ROWS, logprob=[[0.5, -0.1, -1e-8], [], [-123.456789]])  # Table.equals counts NaN as unequal


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_same_table_and_parquet_as_from_pydict():
    ours, theirs = arrow.table(ROWS, SCHEMA), pa.Table.from_pydict(ROWS, schema=SCHEMA)
    assert ours.schema == theirs.schema
    assert _parquet(ours) == _parquet(theirs)  # NaN included
    assert arrow.table(NO_NAN, SCHEMA).equals(pa.Table.from_pydict(NO_NAN, schema=SCHEMA))


def test_empty_columns():
    empty = {name: [] for name in SCHEMA.names}
    assert arrow.table(empty, SCHEMA).equals(pa.Table.from_pydict(empty, schema=SCHEMA))


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("line", [1, None, 3]),  # a null
        ("n", [1, True, 3]),  # not an int
        ("logprob", [[0.5], None, [1.0]]),
        ("id", ["a", "\ud800", "c"]),  # a lone surrogate: pa.array's own error
        ("line", [1, 2**70, 3]),  # overflow: pa.array's own error
    ],
)
def test_unusual_values_are_left_to_pyarrow(name, values):
    rows = dict(NO_NAN, **{name: values})
    try:
        expected = pa.Table.from_pydict(rows, schema=SCHEMA)
    except (pa.ArrowException, OverflowError, UnicodeError, TypeError) as exc:
        with pytest.raises(type(exc)):
            arrow.table(rows, SCHEMA)
    else:
        assert arrow.table(rows, SCHEMA).equals(expected)


def test_writing_scores_does_not_import_pandas(tmp_path):
    code = (
        "import sys, pyarrow.parquet as pq\n"
        "from toedit.runs import arrow\n"
        "import tests.runs.test_arrow as t\n"
        f"pq.write_table(arrow.table(t.ROWS, t.SCHEMA), {str(tmp_path / 'x.parquet')!r})\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), str(root)]))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=root)
