"""Line-range shards: parts cover every line once, in order, and a split run equals the unsplit one."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.runs.conftest import EDIT, IO, run_stats, scale_run
from toedit.io import FieldSpec, list_shards, read_shard, split_shards
from toedit.runs import run_edit, run_status

SPEC = FieldSpec("text", "id", None, (), None)


def records(shards):
    """(line, id or None, data or the bad record's reason) of every item, in reading order."""
    out = []
    for shard in shards:
        for r in read_shard(shard, SPEC):
            out.append((r.line, r.id, r.data) if hasattr(r, "data") else (r.line, None, r.reason))
    return out


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("trailing_newline", [False, True])
def test_parts_cover_every_line_once_in_order(tmp_path, compressed, trailing_newline):
    lines = [json.dumps({"text": f"doc {i}"}) for i in range(11)]
    lines[6] = "not json"  # bad records keep their file and line
    raw = ("\n".join(lines) + ("\n" if trailing_newline else "")).encode()
    path = tmp_path / ("a.jsonl.gz" if compressed else "a.jsonl")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    whole = list_shards([str(path)])
    for n in (1, 3, 5, 10, 11, 50):
        parts = split_shards(whole, n)
        assert records(parts) == records(whole), n
        if n >= 11:
            assert parts == whole  # a file that fits one part keeps its name
        else:
            assert [p.name for p in parts] == [f"a.part-{i:05d}" for i in range(-(-11 // n))]
            assert [(p.start, p.stop) for p in parts][-1] == (n * (len(parts) - 1), 11)
            assert {r[1] for r in records(parts) if r[1]} == {
                f"a:{i}" for i in range(1, 12) if i != 7
            }  # default ids are the whole file's `<name>:<line>`
    assert all(p.offset == 0 for p in split_shards(whole, 3)) == compressed


def test_split_run_equals_unsplit_run(tmp_path, scale_corpus, reference_run, tiny_model_dir):
    run = tmp_path / "run"
    summary = run_edit(
        [str(scale_corpus)], str(run), EDIT, io=IO, run=scale_run(tiny_model_dir, shard_lines=3)
    )
    assert summary.shards == 12 and run_status(str(run))["shards_done"] == 12  # p2 has 9 lines: 3 parts
    for name in ("p0", "p1", "p2", "p3"):
        parts = sorted((run / "data").glob(f"{name}.part-*.jsonl"))
        assert len(parts) == 3
        assert (
            b"".join(p.read_bytes() for p in parts) == (reference_run / "data" / f"{name}.jsonl").read_bytes()
        )
        split = pq.read_table(sorted((run / "scores").glob(f"{name}.part-*.parquet"))).to_pydict()
        whole = pq.read_table(reference_run / "scores" / f"{name}.parquet").to_pydict()
        assert {k: v for k, v in split.items() if k != "logprob"} == {
            k: v for k, v in whole.items() if k != "logprob"
        }
        # other batch neighbours change float rounding in the last bits only
        np.testing.assert_allclose(
            np.concatenate(split["logprob"]), np.concatenate(whole["logprob"]), atol=1e-5
        )
    assert (run / "errors.jsonl").read_bytes() == (reference_run / "errors.jsonl").read_bytes()
    split_stats, ref_stats = run_stats(run), run_stats(reference_run)
    assert split_stats["shards"] == 12 and ref_stats["shards"] == 4
    for key in ("n_records", "n_tokens", "n_scored", "n_above", "n_changed", "n_errors", "prob_hist"):
        assert split_stats[key] == ref_stats[key], key
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"][3]["name"] == "p1.part-00000" and manifest["inputs"][3]["lines"] == [1, 3]
