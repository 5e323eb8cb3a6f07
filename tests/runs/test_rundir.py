"""RunDir: nothing written outside RUN_DIR or into an input, "done" only while the outputs match their marker,
damaged run directories are exit 4 naming the file, report.md replaced atomically (issue #23); the layout
contract of runs/layout, markers, schema, scorefiles and lock; input discovery never reads a RUN_DIR."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.conftest import corpus_texts
from toedit.cli import EXIT_CONFIG, EXIT_INPUT, EXIT_OK, main
from toedit.config import EditConfig, IOConfig, RunConfig, ScoreConfig
from toedit.io import FieldSpec, InputError, Shard, discover, list_shards
from toedit.runs import (
    RunDir,
    RunDirError,
    RunLocked,
    markers,
    run_edit,
    run_report,
    run_status,
    schema,
    scorefiles,
)
from toedit.runs.layout import RunLayout
from toedit.runs.lock import hold
from toedit.runs.rundir import RUN_DIRS, is_run_dir

QUIET = RunConfig(progress=False)
EDIT = EditConfig(threshold=0.2, record_spans=True)


def write_corpus(path: Path, n: int = 3) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"d{i}", "text": t[:160]} for i, t in enumerate(corpus_texts(n))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.read_bytes()


def cli(model_dir: Path, *args: str) -> int:
    flags = ["--model", str(model_dir), "--device", "cpu", "--dtype", "float32", "--no-progress"]
    return main([*args, *flags])


# ------------------------------------------------------------------------------------------- confinement


def test_a_data_link_into_the_input_is_refused_and_the_input_kept(tmp_path, tiny_model_dir, capsys):
    """`mkdir in r; cp f.jsonl in/; ln -s ../in r/data; toedit edit in -o r --threshold 0` overwrote in/f.jsonl."""
    before = write_corpus(tmp_path / "in" / "f.jsonl")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "data").symlink_to("../in")
    code = cli(tiny_model_dir, "edit", str(tmp_path / "in"), "-o", str(tmp_path / "r"), "--threshold", "0")
    assert code == EXIT_INPUT
    err = capsys.readouterr().err
    assert "data leads outside the run directory" in err and "Traceback" not in err
    assert (tmp_path / "in" / "f.jsonl").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["f.jsonl"]


@pytest.mark.parametrize("link", ["scores", "done", "errors", "failed", "manifest.json", ".lock"])
def test_no_path_of_the_run_dir_may_lead_outside_it(tmp_path, tiny_prior, link):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "r"
    run.mkdir()
    target = elsewhere / "x" if "." in link else elsewhere
    (run / link).symlink_to(target)
    with pytest.raises(RunDirError, match=f"{link} leads outside the run directory"):
        run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert list(elsewhere.iterdir()) == []


def test_a_link_inside_the_run_dir_to_an_input_is_refused(tmp_path, tiny_prior):
    """Inside RUN_DIR but onto an input: data/ -> RUN_DIR/src holding the input file."""
    run = tmp_path / "r"
    before = write_corpus(run / "src" / "f.jsonl")
    (run / "data").symlink_to("src")
    with pytest.raises(RunDirError, match="leads to the input"):
        run_edit([str(run / "src" / "f.jsonl")], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert (run / "src" / "f.jsonl").read_bytes() == before


def test_links_that_stay_inside_the_run_dir_are_allowed(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    (run / "elsewhere").mkdir(parents=True)
    (run / "data").symlink_to("elsewhere")
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert (run / "elsewhere" / "f.jsonl").exists()


def test_an_existing_regular_file_as_run_dir_is_a_usage_error(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    (tmp_path / "file").write_text("keep me")
    for out in ("file", "file/sub"):
        assert cli(tiny_model_dir, "edit", str(src), "-o", str(tmp_path / out)) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert "is an existing file, not a directory" in err and "Traceback" not in err
    assert (tmp_path / "file").read_text() == "keep me"


# -------------------------------------------------------------------------------- done = outputs in place


def test_a_deleted_output_is_never_done_and_is_made_again(tmp_path, tiny_model_dir, capsys, caplog):
    """`toedit edit f.jsonl -o r; rm r/data/f.jsonl; toedit edit f.jsonl -o r` said "1 already done"."""
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run)) == EXIT_OK
    first = (run / "data" / "f.jsonl").read_bytes()
    marker = json.loads((run / "done" / "f.json").read_text())
    assert set(marker["outputs"]) == {"data/f.jsonl", "scores/f.parquet", "errors/f.jsonl"}
    assert marker["outputs"]["data/f.jsonl"]["size"] == len(first)
    (run / "data" / "f.jsonl").unlink()
    capsys.readouterr()
    assert main(["status", str(run)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "shards 0/1 done" in shown and "data/f.jsonl is missing" in shown
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run)) == EXIT_OK
    assert "0 already done" in capsys.readouterr().out
    assert "data/f.jsonl is missing; running it again" in caplog.text
    assert (run / "data" / "f.jsonl").read_bytes() == first
    assert run_status(str(run))["shards_done"] == 1


def test_a_changed_output_of_the_same_size_is_run_again(tmp_path, tiny_prior, caplog):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    data = run / "data" / "f.jsonl"
    good = data.read_bytes()
    data.write_bytes(good.replace(b'"d0"', b'"X0"'))  # same size, other bytes
    again = run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    assert again.shards_done_before == 0 and again.tokens_this_run > 0
    assert "sha256 differs" in caplog.text
    assert data.read_bytes() == good


def test_a_truncated_scores_file_is_not_done_and_report_and_diff_name_it(tmp_path, tiny_model_dir, capsys):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    assert cli(tiny_model_dir, "edit", str(src), "-o", str(run), "--threshold", "0.2", "--record-spans") == 0
    scores = run / "scores" / "f.parquet"
    scores.write_bytes(scores.read_bytes()[:100])
    capsys.readouterr()
    assert main(["status", str(run)]) == EXIT_OK
    assert "shards 0/1 done" in capsys.readouterr().out
    for verb in ("report", "diff"):
        assert main([verb, str(run)]) == EXIT_INPUT, verb
        err = capsys.readouterr().err
        assert "scores/f.parquet" in err and "Traceback" not in err, (verb, err)


def test_markers_without_recorded_outputs_are_not_trusted(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    path = run / "done" / "f.json"
    marker = json.loads(path.read_text())
    del marker["outputs"]
    path.write_text(json.dumps(marker))
    assert RunDir(run).done_markers() == {}
    assert run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior).shards_done_before == 0


# ---------------------------------------------------------------------------------- damaged run dirs


@pytest.mark.parametrize(
    "manifest",
    ["[1, 2]", "not json", '{"kind": "edit"}', '{"kind": "edit", "fingerprint": "x", "inputs": 3}'],
)
@pytest.mark.parametrize("verb", ["status", "report", "diff"])
def test_a_damaged_manifest_is_exit_4_naming_it(tmp_path, capsys, manifest, verb):
    run = tmp_path / "r"
    run.mkdir()
    (run / "manifest.json").write_text(manifest)
    (run / "stats.json").write_text("{}")
    assert main([verb, str(run)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err


@pytest.mark.parametrize("stats", ["[1]", '{"n_records": 1}'])
def test_damaged_stats_are_exit_4_naming_the_file(tmp_path, tiny_prior, capsys, stats):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    (run / "stats.json").write_text(stats)
    assert main(["report", str(run)]) == EXIT_INPUT
    assert "stats.json" in capsys.readouterr().err


def test_a_damaged_manifest_is_replaced_with_overwrite(tmp_path, tiny_prior):
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run.mkdir()
    (run / "manifest.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="not a JSON object|holds a JSON list"):
        run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    overwrite = RunConfig(progress=False, overwrite=True)
    assert run_edit([str(src)], str(run), EDIT, run=overwrite, prior=tiny_prior).stats["n_records"] == 3


# ------------------------------------------------------------------------------------------- report.md


def test_report_is_replaced_atomically(tmp_path, tiny_prior, monkeypatch):
    """A failure while writing report.md leaves the previous report whole (it was written in place)."""
    src = tmp_path / "f.jsonl"
    write_corpus(src)
    run = tmp_path / "r"
    run_edit([str(src)], str(run), EDIT, run=QUIET, prior=tiny_prior)
    good = run_report(str(run))
    assert (run / "report.md").read_text() == good
    real_replace = os.replace

    def killed(a, b):
        if str(b).endswith("report.md"):
            raise KeyboardInterrupt  # killed between the write and the rename
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run_report(str(run), examples=1)
    assert (run / "report.md").read_text() == good
    assert [p.name for p in run.iterdir() if ".tmp-" in p.name] == []


# ------------------------------------------------------------------------------------ the layout contract


def test_layout_paths_are_the_documented_ones(tmp_path):
    rd = RunDir(tmp_path / "r")
    gz = Shard("in/a.jsonl.gz", "sub__a", "jsonl", "gzip")
    ds = Shard("in/ds", "ds__train", "datasets")
    root = tmp_path / "r"
    assert rd.data_path(gz) == root / "data" / "sub__a.jsonl.gz"
    assert rd.data_path(ds) == root / "data" / "ds__train.parquet"
    assert rd.scores_path("x") == root / "scores" / "x.parquet"
    assert rd.marker_path("x") == root / "done" / "x.json"
    assert rd.shard_errors_path("x") == root / "errors" / "x.jsonl"
    assert rd.failed_path("x") == root / "failed" / "x.json"
    assert (rd.manifest_path, rd.stats_path, rd.errors_path, rd.report_path, rd.stdin_path) == tuple(
        root / n for n in ("manifest.json", "stats.json", "errors.jsonl", "report.md", "stdin.jsonl")
    )
    assert rd.output_names(gz) == (
        "sub__a.jsonl.gz",
        "sub__a.parquet",
        "sub__a.json",
        "sub__a.jsonl",
        "sub__a.json",
    )
    assert rd.shard_outputs(gz, "edit") == [
        rd.data_path(gz),
        rd.scores_path("sub__a"),
        rd.shard_errors_path("sub__a"),
    ]
    assert rd.shard_outputs(gz, "score") == [rd.scores_path("sub__a"), rd.shard_errors_path("sub__a")]
    written = rd.written_paths([gz], rank=3)
    assert root / ".lock-rank-3" in written and all(root in p.parents for p in written)


def test_reset_keeps_locks_and_spooled_stdin_and_temp_files_go_by_owner(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.make_dirs()
    shard, other = Shard("a.jsonl", "a", "jsonl"), Shard("b.jsonl", "b", "jsonl")
    for path in (rd.data_path(shard), rd.report_path, rd.stats_path, rd.stdin_path, rd.root / ".lock"):
        path.write_text("x")
    mine, theirs = (
        rd.data_path(shard).with_name("a.jsonl.tmp-111"),
        rd.data_path(other).with_name("b.jsonl.tmp-222"),
    )
    mine.write_text("t")
    theirs.write_text("t")
    rd.remove_temp_files(shards=[shard])  # another launch's shard b may be in flight: its temp file stays
    assert not mine.exists() and theirs.exists()
    rd.remove_temp_files(pid=222)
    assert not theirs.exists()
    rd.reset()
    assert sorted(p.name for p in rd.root.iterdir()) == [".lock", "stdin.jsonl"]


def test_done_markers_follow_their_outputs(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.make_dirs()
    shard = Shard("a.jsonl", "a", "jsonl")
    outputs = rd.shard_outputs(shard, "edit")
    for i, path in enumerate(outputs):
        path.write_text("y" * (i + 1))
    rd.write_marker(
        "a", {"shard": "a", "fingerprint": "fp", "stats": {}, "outputs": rd.describe_outputs(outputs)}
    )
    assert rd.done_marker("a", "fp", deep=True) is not None and rd.done_marker("a", "other") is None
    outputs[1].write_text("zz")  # same size, other bytes: only the sha256 tells
    assert rd.done_marker("a", "fp") is not None and rd.done_marker("a", "fp", deep=True) is None
    assert "sha256 differs" in rd.outputs_problem(rd.marker("a"), deep=True)
    outputs[0].unlink()
    assert rd.outputs_problem(rd.marker("a")) == "data/a.jsonl is missing"


def test_a_marker_without_stats_is_damaged_and_one_of_another_run_is_ignored(tmp_path):
    path = tmp_path / "done" / "a.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"fingerprint": "fp"}))
    assert markers.read_marker(path, "other") is None
    with pytest.raises(RunDirError, match="a.json is not a completion marker"):
        markers.read_marker(path, "fp")
    assert markers.read_marker(tmp_path / "done" / "missing.json") is None
    out = tmp_path / "x.bin"
    out.write_bytes(b"abc")
    described = markers.describe_outputs(tmp_path, [out])
    assert described == {"x.bin": {"size": 3, "sha256": markers.sha256_of([out])[out]}}
    assert markers.outputs_problem(tmp_path, {"outputs": described}, deep=True) is None
    assert "records no outputs" in markers.outputs_problem(tmp_path, {"outputs": {}})


def test_the_manifest_schema_and_its_typed_settings():
    good = {"kind": "edit", "fingerprint": "f", "inputs": [{"name": "a", "path": "a.jsonl"}]}
    assert schema.manifest_problem(good) is None
    assert schema.manifest_problem({**good, "kind": "sort"}).startswith("kind 'sort'")
    assert (
        schema.manifest_problem({**good, "settings": {"io": 3}}) == "a section of 'settings' is not an object"
    )
    typed = schema.typed_settings({"score": {"window": 64, "from_the_future": 1}})
    assert typed["edit"] is None and typed["io"] == IOConfig() and typed["score"].window == 64
    assert isinstance(typed["score"], ScoreConfig)
    spec = schema.field_spec({"messages_field": "msgs", "roles": "user, assistant"})
    assert spec == FieldSpec("text", None, "msgs", ("user", "assistant"), None)
    io = IOConfig(text_field="body", roles="user")
    assert schema.field_spec(io) == schema.field_spec(dataclasses.asdict(io))  # a config or its manifest


def test_scores_files_and_spans_read_back(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    spans = [[0, 1, "a", "b", 0.9], [2, 3, "c", "", 0.8, 1, [["c", 0.8], ["d", 0.1]]]]
    table = {"id": ["d0", "d1"], "line": [1, 2], "spans": [json.dumps(spans), ""]}
    pq.write_table(pa.table(table), path)
    assert scorefiles.has_column(path, "spans") and not scorefiles.has_column(path, "topk_ids")
    rows = list(scorefiles.iter_spans(path))
    assert [(r, i, line, len(s)) for r, i, line, s in rows] == [(0, "d0", 1, 2), (1, "d1", 2, 0)]
    old, new = rows[0][3]
    assert (old.round, old.candidates, old.dropped) == (0, (), False)  # written by an older toedit
    assert (new.round, new.candidates, new.dropped) == (1, (("c", 0.8), ("d", 0.1)), True)
    assert list(scorefiles.iter_rows([path, path], ["id"], batch_size=1)) == [{"id": "d0"}, {"id": "d1"}] * 2
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(RunDirError, match="bad.parquet is not a readable parquet file"):
        scorefiles.has_column(tmp_path / "bad.parquet", "spans")
    pq.write_table(pa.table({"id": ["d0"], "line": [1], "spans": ["[[0, 1]]"]}), path)
    with pytest.raises(RunDirError, match="row 1: its spans are damaged"):
        list(scorefiles.iter_spans(path))


def test_the_lock_files_name_their_holder(tmp_path):
    layout = RunLayout(tmp_path / "r")
    assert (layout.lock_path(), layout.lock_path(2)) == (layout.root / ".lock", layout.root / ".lock-rank-2")
    with hold(layout, rank=2):
        info = json.loads(layout.lock_path(2).read_text())
        assert info["pid"] == os.getpid() and info["rank"] == 2
        with pytest.raises(RunLocked, match=f"in use by pid {os.getpid()} .*\\(rank 2\\)"), hold(layout, 2):
            pass
    with hold(layout), pytest.raises(RunLocked, match="in use by"), hold(layout, 0):
        pass


# ------------------------------------------------------------------------ input discovery never reads RUN_DIRs


def _fake_run(run: Path) -> Path:
    """A RUN_DIR as `toedit edit` leaves it: its outputs are JSONL files a walk would read."""
    for rel, body in (
        ("manifest.json", json.dumps({"kind": "edit", "fingerprint": "abc", "inputs": []})),
        ("data/a.jsonl", '{"text": "edited"}\n'),
        ("errors.jsonl", '{"file": "f", "line": 1, "reason": "r"}\n'),
        ("stats.json", "{}"),
    ):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(body)
    return run


def test_is_run_dir(tmp_path):
    assert is_run_dir(_fake_run(tmp_path / "run"))
    for i, body in enumerate(['{"kind": "edit"}', "[1]", "{not json", '{"fingerprint": 1}']):
        (tmp_path / f"other{i}").mkdir()
        (tmp_path / f"other{i}" / "manifest.json").write_text(body)
        assert not is_run_dir(tmp_path / f"other{i}")
    assert not is_run_dir(tmp_path / "missing")
    (tmp_path / "file.jsonl").write_text("{}\n")
    assert not is_run_dir(tmp_path / "file.jsonl")


def test_walks_and_globs_never_read_a_run_dir(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text('{"text": "x"}\n')
    run = _fake_run(corpus / "run")
    _fake_run(corpus / "deep" / "older-run")
    for inputs in (
        [str(corpus)],
        [str(corpus / "**" / "*.jsonl")],
        [str(corpus / "*")],
        [str(corpus / "**")],
    ):
        found = discover(inputs, fence=RUN_DIRS)
        assert [s.path for s in found.shards] == [str(corpus / "a.jsonl")], inputs
        runs = [s for s in found.skipped if s.reason == RUN_DIRS.reason]
        assert [s.path for s in runs] == [str(corpus / "deep" / "older-run"), str(run)], inputs
    assert RUN_DIRS.reason == "a toedit run directory (its outputs are never read as input)"
    # named explicitly, a run's outputs can be read (a second round of editing); the run dir itself cannot
    data = [str(run / "data" / "a.jsonl")]
    assert [s.path for s in list_shards([str(run / "data")], fence=RUN_DIRS)] == data
    assert [s.path for s in list_shards([str(run / "data" / "*.jsonl")], fence=RUN_DIRS)] == data
    with pytest.raises(InputError, match="is a toedit run directory; to read its edited documents, pass"):
        list_shards([str(run)], fence=RUN_DIRS)


def test_rerun_with_run_dir_inside_the_input_dir_reads_only_the_inputs(tmp_path, tiny_prior):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "docs.jsonl").write_bytes(b"".join(b'{"text": "document %d"}\n' % i for i in range(3)))
    out = str(corpus / "run")
    summaries = [
        run_edit([str(corpus)], out, EditConfig(), run=RunConfig(progress=False), prior=tiny_prior)
        for _ in range(2)
    ]
    assert [s.stats["n_records"] for s in summaries] == [3, 3]
    assert sorted(os.listdir(corpus / "run" / "data")) == ["docs.jsonl"]
    assert not (corpus / "run" / "errors.jsonl").exists() or not (corpus / "run" / "errors.jsonl").read_text()
